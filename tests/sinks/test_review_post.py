"""Posting the review comment against loopback GitHub and GitLab stand-ins: made once, edited
in place after (found by its marker and its author, on any page), never a second one, other
people's comments untouched even when they carry the marker, errors as ForgeError with the
right retriable flag."""

from __future__ import annotations

import json

import pytest

from mendline.schemas.errors import ForgeError
from mendline.sinks.forges import COMMENT_LIMITS, REVIEW_MARKER, ForgeAPI, post_review_comment
from tests.channel_servers import Reply
from tests.forge_servers import ACTIONS_BOT, GITLAB_BOT, FakeGitHub, FakeGitLab, fake_forge

MR_URL = "https://gitlab.example/acme/web/shop/-/merge_requests/3"


def _github(server: FakeGitHub, token: str = "ghp-test-token") -> ForgeAPI:
    return ForgeAPI(kind="github", api_url=server.base, project="acme/shop", token=token)


def _gitlab(server: FakeGitLab, token: str = "glpat-test-token") -> ForgeAPI:
    return ForgeAPI(kind="gitlab", api_url=server.api_url, project="acme/web/shop", token=token)


#: GitHub's answer to ``GET /user`` with an Actions or App token.
NO_USER = Reply(403, json.dumps({"message": "Resource not accessible by integration"}))


def _ours(bodies: list[str]) -> list[str]:
    return [body for body in bodies if body.startswith(REVIEW_MARKER)]


async def test_github_makes_the_comment_then_edits_it_in_place() -> None:
    with fake_forge(FakeGitHub()) as github:
        theirs = github.comment(7, "Looks fine to me @alice", "alice")
        github.comment(8, f"{REVIEW_MARKER}\nthe review of another pull request")
        first = await post_review_comment(_github(github), 7, "### first review")
        second = await post_review_comment(_github(github), 7, f"{REVIEW_MARKER}\nsecond")

    on_seven = [c for c in github.comments if c["issue"] == 7]
    (ours,) = _ours([c["body"] for c in on_seven])
    assert ours == f"{REVIEW_MARKER}\nsecond"
    assert first == second == on_seven[1]["html_url"]
    assert theirs["body"] == "Looks fine to me @alice" and len(on_seven) == 2
    assert github.comments[1]["body"].endswith("another pull request")  # PR 8's untouched
    calls = [(r.method, r.path) for r in github.requests]
    assert calls == [
        ("GET", "/user"),
        ("GET", "/repos/acme/shop/issues/7/comments"),
        ("POST", "/repos/acme/shop/issues/7/comments"),
        ("GET", "/user"),
        ("GET", "/repos/acme/shop/issues/7/comments"),
        ("PATCH", f"/repos/acme/shop/issues/comments/{on_seven[1]['id']}"),
    ]
    assert github.requests[1].query == {"per_page": "100"}
    assert github.requests[2].body == {"body": f"{REVIEW_MARKER}\n### first review"}
    assert all(r.headers["authorization"] == "Bearer ghp-test-token" for r in github.requests)


async def test_github_finds_the_marker_on_a_later_page() -> None:
    with fake_forge(FakeGitHub()) as github:
        github.per_page_cap = 2
        for n in range(3):
            github.comment(7, f"comment {n}")
        ours = github.comment(7, f"{REVIEW_MARKER}\nold review", ACTIONS_BOT, "Bot")
        for n in range(3):
            github.comment(7, f"later {n} {REVIEW_MARKER}")  # mentions it, does not start with it
        url = await post_review_comment(_github(github), 7, "new review")

    assert url == ours["html_url"] and ours["body"] == f"{REVIEW_MARKER}\nnew review"
    gets = [r for r in github.requests if r.path.endswith("/comments")]
    assert [g.query for g in gets] == [{"per_page": "100"}, {"per_page": "2", "page": "2"}]
    assert [r.method for r in github.requests] == ["GET", "GET", "GET", "PATCH"]
    assert len(_ours([c["body"] for c in github.comments])) == 1


async def test_github_edits_the_oldest_of_its_own_and_ignores_a_quote() -> None:
    with fake_forge(FakeGitHub()) as github:
        github.comment(7, f"> {REVIEW_MARKER}\n> quoted in a reply", "bob")
        oldest = github.comment(7, f"{REVIEW_MARKER}\nfirst", ACTIONS_BOT, "Bot")
        twin = github.comment(7, f"{REVIEW_MARKER}\na run at the same time", ACTIONS_BOT, "Bot")
        await post_review_comment(_github(github), 7, "latest")

    assert oldest["body"] == f"{REVIEW_MARKER}\nlatest"
    assert twin["body"] == f"{REVIEW_MARKER}\na run at the same time"
    assert len(github.comments) == 3  # nothing new


@pytest.mark.parametrize("login", [None, "mendline-ci"])
async def test_github_never_edits_a_marked_comment_someone_else_wrote(login: str | None) -> None:
    # Anyone can start a comment with the marker; editing theirs would put the review
    # where they can change it, and a 403 on it would stop every later review.
    with fake_forge(FakeGitHub(login=login)) as github:
        planted = github.comment(7, f"{REVIEW_MARKER}\nplanted first", "mallory")
        if login is not None:  # a person's token: even a bot's marked comment is not ours
            other_bot = github.comment(7, f"{REVIEW_MARKER}\nanother", "some-app[bot]", "Bot")
        first = await post_review_comment(_github(github), 7, "review")
        second = await post_review_comment(_github(github), 7, "review again")

    assert planted["body"] == f"{REVIEW_MARKER}\nplanted first"
    ours = [c for c in github.comments if c["user"]["login"] == (login or ACTIONS_BOT)]
    assert [c["body"] for c in ours] == [f"{REVIEW_MARKER}\nreview again"]
    assert first == second == ours[0]["html_url"]
    if login is not None:
        assert other_bot["body"] == f"{REVIEW_MARKER}\nanother"


async def test_github_with_only_a_quote_of_the_marker_makes_our_comment() -> None:
    with fake_forge(FakeGitHub()) as github:
        github.comment(7, f"> {REVIEW_MARKER}\n> quoted", "bob")
        await post_review_comment(_github(github), 7, "review")

    assert [c["body"] for c in github.comments] == [
        f"> {REVIEW_MARKER}\n> quoted",
        f"{REVIEW_MARKER}\nreview",
    ]


@pytest.mark.parametrize(
    ("reply", "code", "retriable"),
    [
        (None, "http_401", False),  # the wrong token: the fake's own answer
        (Reply(404, json.dumps({"message": "Not Found"})), "http_404", False),
        (Reply.error(500, "boom"), "http_500", True),
        (Reply.rate_limited(30), "http_429", True),
        (Reply(200, "<html>"), "bad_response", True),
    ],
)
async def test_github_errors_are_forge_errors(
    reply: Reply | None, code: str, retriable: bool
) -> None:
    with fake_forge(FakeGitHub()) as github:
        if reply is not None:
            github.script.append(reply)
        token = "ghp-test-token" if reply else "ghp-wrong"
        with pytest.raises(ForgeError) as failed:
            await post_review_comment(_github(github, token), 7, "review")

    assert (failed.value.code, failed.value.retriable) == (code, retriable)
    assert token not in str(failed.value)
    assert github.comments == []


async def test_github_error_while_editing_leaves_no_second_comment() -> None:
    with fake_forge(FakeGitHub()) as github:
        ours = github.comment(7, f"{REVIEW_MARKER}\nold", ACTIONS_BOT, "Bot")
        github.script += [NO_USER, Reply(200, json.dumps([ours])), Reply.error(502, "bad gateway")]
        with pytest.raises(ForgeError) as failed:
            await post_review_comment(_github(github), 7, "new")

    assert (failed.value.code, failed.value.retriable) == ("http_502", True)
    assert [r.method for r in github.requests] == ["GET", "GET", "PATCH"]
    assert len(github.comments) == 1 and ours["body"].endswith("old")


async def test_a_next_page_on_another_server_is_not_followed_with_the_token() -> None:
    with fake_forge(FakeGitHub()) as github, fake_forge(FakeGitHub()) as elsewhere:
        link = f'<{elsewhere.base}/repos/acme/shop/issues/7/comments?page=2>; rel="next"'
        github.script += [NO_USER, Reply(200, "[]", {"Link": link})]
        with pytest.raises(ForgeError) as failed:
            await post_review_comment(_github(github), 7, "review")

    assert failed.value.code == "bad_response"
    assert elsewhere.requests == [] and github.comments == []


async def test_a_body_over_the_limit_is_refused_before_any_request() -> None:
    with fake_forge(FakeGitHub()) as github, pytest.raises(ForgeError) as failed:
        await post_review_comment(_github(github), 7, "x" * COMMENT_LIMITS["github"])

    assert (failed.value.code, failed.value.retriable) == ("too_long", False)
    assert github.requests == []


async def test_an_unreachable_forge_is_retriable() -> None:
    with fake_forge(FakeGitHub()) as github:
        closed = _github(github)
    with pytest.raises(ForgeError) as failed:
        await post_review_comment(closed, 7, "review")
    assert (failed.value.code, failed.value.retriable) == ("unreachable", True)


def _merge_request(gitlab: FakeGitLab, **more: object) -> None:
    gitlab.merge_requests.append({"iid": 3, "source_branch": "feature", **more})


async def test_gitlab_makes_the_note_then_edits_it_in_place() -> None:
    with fake_forge(FakeGitLab()) as gitlab:
        _merge_request(gitlab, web_url=MR_URL)
        gitlab.note(3, "Please rebase @bob", "alice")
        first = await post_review_comment(_gitlab(gitlab), 3, "first")
        second = await post_review_comment(_gitlab(gitlab), 3, "second")

    (ours,) = [n for n in gitlab.notes if n["body"].startswith(REVIEW_MARKER)]
    assert first == second == f"{MR_URL}#note_{ours['id']}"
    assert ours["body"] == f"{REVIEW_MARKER}\nsecond"
    assert gitlab.notes[0]["body"] == "Please rebase @bob" and len(gitlab.notes) == 2
    mr = "/api/v4/projects/acme%2Fweb%2Fshop/merge_requests/3"
    assert [(r.method, r.path) for r in gitlab.requests] == [
        ("GET", mr),
        ("GET", "/api/v4/user"),
        ("GET", f"{mr}/notes"),
        ("POST", f"{mr}/notes"),
        ("GET", mr),
        ("GET", "/api/v4/user"),
        ("GET", f"{mr}/notes"),
        ("PUT", f"{mr}/notes/{ours['id']}"),
    ]
    assert gitlab.requests[2].query == {
        "per_page": "100",
        "sort": "asc",
        "order_by": "created_at",
        "page": "1",
    }
    assert all(r.headers["private-token"] == "glpat-test-token" for r in gitlab.requests)


async def test_gitlab_follows_x_next_page_to_the_oldest_marked_note() -> None:
    with fake_forge(FakeGitLab()) as gitlab:
        _merge_request(gitlab, web_url=MR_URL)
        gitlab.per_page_cap = 2
        gitlab.note(3, f"{REVIEW_MARKER} a system note", "gitlab", system=True)
        gitlab.note(3, "a question")
        planted = gitlab.note(3, f"{REVIEW_MARKER}\nplanted", "mallory")
        oldest = gitlab.note(3, f"{REVIEW_MARKER}\nold", GITLAB_BOT)
        newer = gitlab.note(3, f"{REVIEW_MARKER}\na copy", "carol")
        url = await post_review_comment(_gitlab(gitlab), 3, "new")

    assert url == f"{MR_URL}#note_{oldest['id']}"
    assert oldest["body"] == f"{REVIEW_MARKER}\nnew" and newer["body"].endswith("a copy")
    assert planted["body"].endswith("planted")  # the marker, but not ours
    pages = [r.query.get("page") for r in gitlab.requests if r.path.endswith("/notes")]
    assert pages == ["1", "2"] and len(gitlab.notes) == 5


async def test_gitlab_without_the_merge_requests_page_answers_the_notes_api_url() -> None:
    with fake_forge(FakeGitLab()) as gitlab:
        _merge_request(gitlab)
        url = await post_review_comment(_gitlab(gitlab), 3, "review")

    (note,) = gitlab.notes
    assert url == (
        f"{gitlab.api_url}/projects/acme%2Fweb%2Fshop/merge_requests/3/notes/{note['id']}"
    )


@pytest.mark.parametrize(
    ("setup", "code", "retriable"),
    [
        ("wrong token", "http_401", False),
        ("no merge request", "http_404", False),
        ("server error", "http_503", True),
    ],
)
async def test_gitlab_errors_are_forge_errors(setup: str, code: str, retriable: bool) -> None:
    with fake_forge(FakeGitLab()) as gitlab:
        if setup != "no merge request":
            _merge_request(gitlab, web_url=MR_URL)
        if setup == "server error":
            gitlab.script.append(Reply.error(503, "down"))
        token = "glpat-wrong" if setup == "wrong token" else "glpat-test-token"
        with pytest.raises(ForgeError) as failed:
            await post_review_comment(_gitlab(gitlab, token), 3, "review")

    assert (failed.value.code, failed.value.retriable) == (code, retriable)
    assert gitlab.notes == []
