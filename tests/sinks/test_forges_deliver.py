"""Delivering a fix: a push to a bare repository on disk, pull and merge requests against
loopback GitHub and GitLab stand-ins, a patch file that `git am` applies, and the push token
only ever in git's environment."""

from __future__ import annotations

import base64
import json
import logging
import stat
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mendline.analyzers.rootcause._patches import diff
from mendline.schemas.errors import ForgeError
from mendline.sinks.forges import ApplyOutcome, DeliveryPlan, ForgeAPI, apply_fix
from tests.channel_servers import Reply
from tests.forge_servers import FakeGitHub, FakeGitLab, FakeGitRemote, fake_forge
from tests.git_helpers import bare_remote, change, checkout, git, make_repo, plan_with_tests

BRANCH = "mendline/fix-1-2"
PATCH = diff("calc/core.py", 9, "    return table[key]", "    return table.get(key)")
TOKEN = "ghp_pushTokenThatMustNeverShow0123456789"
# The commit's date: the same fix applied again makes the same commit.
WHEN = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _refs(bare: Path) -> list[str]:
    return git(bare, "for-each-ref", "--format=%(refname:short)", "refs/heads/").split()


async def _apply(
    repo: Path, tmp_path: Path, delivery: DeliveryPlan, **options: object
) -> ApplyOutcome:
    return await apply_fix(
        checkout(repo, tmp_path, **options),
        change(PATCH, link="http://127.0.0.1:8000/issues/1", when=WHEN),
        verify_plan=plan_with_tests(test_command=None),
        delivery=delivery,
    )


async def test_push_puts_the_branch_on_the_remote(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    bare = bare_remote(repo, tmp_path)

    outcome = await _apply(repo, tmp_path, DeliveryPlan(mode="push"))

    assert outcome.delivery is not None
    assert (outcome.delivery.mode, outcome.delivery.remote) == ("push", "origin")
    assert git(bare, "rev-parse", BRANCH) == outcome.delivery.commit
    assert git(repo, "rev-parse", BRANCH) == outcome.delivery.commit  # the branch stays


async def test_a_push_the_remote_refuses_removes_the_branch_again(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    bare = bare_remote(repo, tmp_path)
    git(repo, "push", "-q", "origin", f"main:refs/heads/{BRANCH}")  # someone's branch there
    (repo / "x.txt").write_text("x\n")
    git(repo, "add", "x.txt")
    git(repo, "commit", "-q", "-m", "x")
    git(repo, "push", "-q", "origin", f"main:refs/heads/{BRANCH}")
    git(repo, "reset", "-q", "--hard", "HEAD^")

    with pytest.raises(ForgeError) as failed:
        await _apply(repo, tmp_path, DeliveryPlan(mode="push"))

    assert (failed.value.code, failed.value.retriable) == ("push_rejected", False)
    assert BRANCH not in git(repo, "branch", "--list")
    assert len(_refs(bare)) == 2  # theirs as it was


def _git_spy(tmp_path: Path) -> tuple[Path, Path]:
    """A git that logs its argv and the git settings in its environment, then runs git."""
    log = tmp_path / "git-calls.jsonl"
    spy = tmp_path / "git-spy"
    spy.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"with open({str(log)!r}, 'a') as out:\n"
        "    env = {k: v for k, v in os.environ.items() if k.startswith('GIT_CONFIG')}\n"
        "    out.write(json.dumps({'argv': sys.argv, 'env': env}) + '\\n')\n"
        "os.execvp('git', ['git', *sys.argv[1:]])\n"
    )
    spy.chmod(spy.stat().st_mode | stat.S_IEXEC)
    return spy, log


async def test_the_push_token_goes_through_gits_environment_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    repo = make_repo(tmp_path)
    bare_remote(repo, tmp_path)
    spy, log = _git_spy(tmp_path)
    caplog.set_level(logging.DEBUG)

    with fake_forge(FakeGitRemote()) as remote:
        git(repo, "remote", "set-url", "origin", remote.url)
        plan = DeliveryPlan(mode="push", push_token=TOKEN)
        with pytest.raises(ForgeError) as failed:
            await _apply(repo, tmp_path, plan, git=str(spy))

    basic = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    assert remote.requests and remote.requests[0].path == "/owner/repo.git/info/refs"
    assert remote.requests[0].headers["authorization"] == f"Basic {basic}"
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    pushes = [call for call in calls if "push" in call["argv"]]
    assert pushes and all(TOKEN not in " ".join(call["argv"]) for call in calls)
    assert f"Authorization: Basic {basic}" in pushes[0]["env"].values()
    assert all(not call["env"] for call in calls if "push" not in call["argv"])
    assert failed.value.code == "git_failed" and failed.value.retriable
    assert TOKEN not in str(failed.value) and basic not in str(failed.value)
    assert TOKEN not in caplog.text and TOKEN not in repr(plan)


def _github(server: FakeGitHub, token: str = "ghp-test-token") -> ForgeAPI:
    return ForgeAPI(kind="github", api_url=server.base, project="acme/shop", token=token)


async def test_a_pull_request_is_opened_on_github(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    bare = bare_remote(repo, tmp_path)
    with fake_forge(FakeGitHub()) as github:
        outcome = await _apply(
            repo, tmp_path, DeliveryPlan(mode="pull_request", forge=_github(github))
        )

    assert outcome.delivery is not None
    assert outcome.delivery.pr_url == "https://github.example/acme/shop/pull/1"
    assert git(bare, "rev-parse", BRANCH) == outcome.delivery.commit
    (request,) = github.requests
    assert (request.method, request.path) == ("POST", "/repos/acme/shop/pulls")
    assert request.headers["authorization"] == "Bearer ghp-test-token"
    assert request.headers["accept"] == "application/vnd.github+json"
    assert request.headers["x-github-api-version"] == "2022-11-28"
    body = request.body
    assert (body["head"], body["base"]) == (BRANCH, "main")
    assert body["title"] == "mendline: fix KeyError: 'a'"
    assert "### Root cause" in body["body"] and "+    return table.get(key)" in body["body"]
    assert "[issue 1](<http://127.0.0.1:8000/issues/1>)" in body["body"]


async def test_a_pull_request_open_already_for_the_branch_is_answered(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    bare_remote(repo, tmp_path)
    with fake_forge(FakeGitHub()) as github:
        github.pulls.append(
            {"html_url": "https://github.example/acme/shop/pull/7", "head": {"ref": BRANCH}}
        )
        outcome = await _apply(
            repo, tmp_path, DeliveryPlan(mode="pull_request", forge=_github(github))
        )

    assert outcome.delivery is not None
    assert outcome.delivery.pr_url == "https://github.example/acme/shop/pull/7"
    post, get = github.requests
    assert (post.method, get.method) == ("POST", "GET")
    assert get.query == {"head": f"acme:{BRANCH}", "state": "open"}


@pytest.mark.parametrize(
    ("reply", "code", "retriable"),
    [
        (Reply.error(502, "bad gateway"), "http_502", True),
        (Reply.rate_limited(30), "http_429", True),
        (Reply(401, json.dumps({"message": "Bad credentials"})), "http_401", False),
        (Reply(404, json.dumps({"message": "Not Found"})), "http_404", False),
    ],
)
async def test_a_pull_request_github_refuses_undoes_the_push(
    tmp_path: Path, reply: Reply, code: str, retriable: bool
) -> None:
    repo = make_repo(tmp_path)
    bare = bare_remote(repo, tmp_path)
    with fake_forge(FakeGitHub()) as github:
        github.script.append(reply)
        with pytest.raises(ForgeError) as failed:
            await _apply(repo, tmp_path, DeliveryPlan(mode="pull_request", forge=_github(github)))

    assert (failed.value.code, failed.value.retriable) == (code, retriable)
    assert "ghp-test-token" not in str(failed.value)
    assert _refs(bare) == ["main"]  # the pushed branch deleted again
    assert BRANCH not in git(repo, "branch", "--list")


async def test_a_merge_request_is_opened_on_gitlab_or_found_open(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    bare_remote(repo, tmp_path)
    with fake_forge(FakeGitLab()) as gitlab:
        api = ForgeAPI(
            kind="gitlab", api_url=gitlab.api_url, project="acme/web/shop", token="glpat-test-token"
        )
        plan = DeliveryPlan(mode="pull_request", forge=api)
        first = await _apply(repo, tmp_path, plan)
        git(repo, "branch", "-D", BRANCH)  # as if interrupted after the merge request
        again = await _apply(repo, tmp_path, plan)

    url = "https://gitlab.example/acme/web/shop/-/merge_requests/1"
    assert first.delivery is not None and again.delivery is not None
    assert first.delivery.pr_url == again.delivery.pr_url == url
    assert first.delivery.commit == again.delivery.commit
    assert [r.method for r in gitlab.requests] == ["POST", "POST", "GET"]
    assert gitlab.requests[2].query == {"source_branch": BRANCH, "state": "opened"}
    created = gitlab.requests[0]
    assert created.path == "/api/v4/projects/acme%2Fweb%2Fshop/merge_requests"
    assert created.headers["private-token"] == "glpat-test-token"
    assert {k: created.body[k] for k in ("source_branch", "target_branch", "title")} == {
        "source_branch": BRANCH,
        "target_branch": "main",
        "title": "mendline: fix KeyError: 'a'",
    }
    assert "### Verification" in created.body["description"]


async def test_a_patch_file_is_written_that_git_am_applies(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    patches = tmp_path / "patches"

    outcome = await _apply(repo, tmp_path, DeliveryPlan(mode="patch", patch_dir=patches))

    assert outcome.delivery is not None
    path = Path(outcome.delivery.patch_path or "")
    assert path == patches / "mendline-fix-1-2.patch"
    _git_am_applies(path, repo, tmp_path)


def _git_am_applies(path: Path, repo: Path, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    git(clone, "am", "-q", str(path))
    assert git(clone, "rev-parse", "HEAD^{tree}") == git(repo, "rev-parse", f"{BRANCH}^{{tree}}")
    assert "Mendline-Fix: 2" in git(clone, "log", "-1", "--format=%B")


async def test_a_forge_that_cannot_be_reached_is_retriable(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    bare = bare_remote(repo, tmp_path)
    with fake_forge(FakeGitHub()) as github:
        closed = _github(github)  # the server is gone once the block ends
    with pytest.raises(ForgeError) as failed:
        await _apply(repo, tmp_path, DeliveryPlan(mode="pull_request", forge=closed))
    assert (failed.value.code, failed.value.retriable) == ("unreachable", True)
    assert _refs(bare) == ["main"]
