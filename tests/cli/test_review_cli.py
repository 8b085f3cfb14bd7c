"""``mendline review`` end to end, as a CI job runs it: real git repositories with real
histories, the sample shop's real production stored in a real PostgreSQL, every output
written, the exit status --fail-on asks for, and the one comment kept on a pull request of a
loopback GitHub."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from mendline.cli import main
from mendline.sinks.postgres import migrated_pool
from tests.channel_servers import Reply
from tests.db_helpers import fresh_database
from tests.forge_servers import FakeGitHub, fake_forge
from tests.git_helpers import commit_all, git
from tests.review_helpers import Production, seed_production

SHOP = Path(__file__).resolve().parents[2] / "mendline" / "sample_app" / "shop.py"
SHOP_PATH = "mendline/sample_app/shop.py"
CULPRIT = '    return int(query["qty"])'
GUARDED = '    return int(query.get("qty") or 1)'
SARIF_SCHEMA = Path(__file__).resolve().parents[1] / "data" / "sarif-schema-2.1.0.json"

HANDLER = '''"""A web handler added by the pull request."""


def order_quantity(request):
    try:
        raw = request.args["qty"]
    except KeyError:
        raw = "1"
    return int(raw)


def report(request):
    try:
        return build(request)
    except:
        return None
'''


def _clean() -> dict[str, str]:
    """The variables a CI job would have that the tests must not inherit."""
    return dict.fromkeys(
        (
            "MENDLINE_DATABASE_URL",
            "GITHUB_BASE_REF",
            "GITHUB_EVENT_PATH",
            "GITHUB_REF",
            "GITHUB_STEP_SUMMARY",
            "GITHUB_EVENT_NAME",
            "CI_MERGE_REQUEST_DIFF_BASE_SHA",
        ),
        "",
    )


@pytest.fixture
def ci(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment without a CI job's or a database's variables."""
    for name in _clean():
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository whose main has the shop with the quantity guarded, and whose branch
    ``feature`` writes the unguarded line back (the culprit of an issue resolved 40 days
    ago), applies nothing to the gift wrap, and adds a handler with a bare except."""
    repo = tmp_path_factory.mktemp("review") / "repo"
    (repo / "mendline" / "sample_app").mkdir(parents=True)
    original = SHOP.read_text()
    assert CULPRIT in original
    (repo / SHOP_PATH).write_text(original.replace(CULPRIT, GUARDED))
    (repo / "README.md").write_text("# shop\n")
    git(repo, "init", "-q", "-b", "main")
    commit_all(repo, "the shop")
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / SHOP_PATH).write_text(original)
    (repo / "handlers.py").write_text(HANDLER)
    (repo / "README.md").write_text("# shop\n\nnow with handlers\n")
    commit_all(repo, "handlers")
    return repo


@pytest.fixture(scope="module")
def production(database_url: str) -> Iterator[tuple[str, Production]]:
    """A migrated database holding the sample shop's production (tests.review_helpers)."""
    loop = asyncio.new_event_loop()
    database = fresh_database(database_url)
    url = loop.run_until_complete(database.__aenter__())
    try:
        loop.run_until_complete(_migrate(url))
        yield url, loop.run_until_complete(seed_production(url))
    finally:
        loop.run_until_complete(database.__aexit__(None, None, None))
        loop.close()


async def _migrate(url: str) -> None:
    (await migrated_pool(url, 1)).terminate()


def _review(repo: Path, *args: str) -> int:
    return main(["review", "--repo", str(repo), "--base", "main", "--head", "feature", *args])


def test_without_a_database_the_rules_run_and_the_output_says_so(
    repo: Path, tmp_path: Path, ci: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sarif, data = tmp_path / "review.sarif", tmp_path / "review.json"
    status = _review(repo, "--sarif", str(sarif), "--json-file", str(data))
    out = capsys.readouterr().out
    assert status == 0  # no --fail-on
    review = json.loads(data.read_text())
    assert any("no database" in note for note in review["notes"])
    bare = [c for c in review["comments"] if c["path"] == "handlers.py" and c["line"] == 15]
    assert bare and bare[0]["source"] == "rule"
    assert "handlers.py:15:" in out and "no database" in out
    skipped = {s["path"]: s["reason"] for s in review["skipped"]}
    assert skipped == {"README.md": "not Python (not reviewed yet)"}
    log = json.loads(sarif.read_text())
    jsonschema.Draft4Validator(json.loads(SARIF_SCHEMA.read_text())).validate(log)
    results = log["runs"][0]["results"]
    assert {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results} >= {
        "handlers.py"
    }


def test_fail_on_sets_the_exit_status(repo: Path, ci: pytest.MonkeyPatch) -> None:
    assert _review(repo, "--fail-on", "warning") == 1
    # The branch against itself: nothing changed, nothing to say.
    assert main(["review", "--repo", str(repo), "--base", "feature", "--fail-on", "info"]) == 0


def test_production_context_likely_regression_and_learned_rules(
    repo: Path,
    production: tuple[str, Production],
    ci: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    url, seeded = production
    ci.setenv("MENDLINE_DATABASE_URL", url)
    data = tmp_path / "review.json"
    status = _review(repo, "--json-file", str(data), "--regression-days", "60")
    review = json.loads(data.read_text())
    assert status == 0 and not review["notes"], review["notes"]
    shop = [c for c in review["comments"] if c["path"] == SHOP_PATH]
    regressions = [c for c in shop if c["rule_id"] == "MRP001"]
    assert [(c["issue_id"], c["code"]) for c in regressions] == [
        (seeded.issues["bad_quantity"], CULPRIT.strip())
    ]
    functions = {f["function"]["qualname"]: f for f in review["functions"]}
    assert "parse_quantity" in functions
    issue_ids = [i["issue_id"] for i in functions["parse_quantity"]["issues"]]
    assert seeded.issues["bad_quantity"] in issue_ids
    # Within 30 days only, the resolution 40 days ago is no longer a likely regression.
    assert _review(repo, "--json-file", str(data)) == 0
    assert not [c for c in json.loads(data.read_text())["comments"] if c["rule_id"] == "MRP001"]


def test_an_unreachable_database_is_a_note(
    repo: Path, ci: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ci.setenv("MENDLINE_DATABASE_URL", "postgresql://nobody:pw@127.0.0.1:9/none")
    data = tmp_path / "review.json"
    assert _review(repo, "--json-file", str(data)) == 0
    notes = json.loads(data.read_text())["notes"]
    assert len(notes) == 1 and notes[0].startswith("production context not read")
    assert "pw@" not in notes[0]


def test_a_diff_on_standard_input(
    repo: Path, ci: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    diff = git(repo, "diff", "main", "feature") + "\n"
    git(repo, "checkout", "-q", "feature")
    ci.setattr(sys, "stdin", _Stdin(diff))
    status = main(["review", "--repo", str(repo), "--diff", "-", "--json"])
    review = json.loads(capsys.readouterr().out)
    assert status == 0 and review["base"] is None
    assert any(c["path"] == "handlers.py" and c["line"] == 15 for c in review["comments"])


def test_a_diff_naming_a_path_outside_the_repository_is_not_read(
    repo: Path, ci: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    diff = "--- /dev/null\n+++ b/../../outside.py\n@@ -0,0 +1 @@\n+x = eval(input())\n"
    ci.setattr(sys, "stdin", _Stdin(diff))
    assert main(["review", "--repo", str(repo), "--diff", "-", "--json"]) == 0
    review = json.loads(capsys.readouterr().out)
    assert review["comments"] == []
    assert [s["reason"] for s in review["skipped"]] == ["cannot be read after the change"]


def test_the_comment_is_posted_once_and_updated_in_place(
    repo: Path, ci: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with fake_forge(FakeGitHub()) as github:
        ci.setenv("GITHUB_API_URL", github.base)
        ci.setenv("GITHUB_REPOSITORY", "acme/shop")
        ci.setenv("GITHUB_REF", "refs/pull/3/merge")
        ci.setenv("GITHUB_TOKEN", github.token)
        for _ in range(2):
            assert _review(repo, "--post", "github", "--annotations") == 0
        posted = [r for r in github.requests if r.method in ("POST", "PATCH")]
    assert [r.method for r in posted] == ["POST", "PATCH"]
    assert posted[0].path == "/repos/acme/shop/issues/3/comments"
    body: dict[str, Any] = posted[1].body
    assert body["body"].startswith("<!-- mendline-review -->") and "handlers.py" in body["body"]
    out = capsys.readouterr().out
    assert "::warning file=handlers.py,line=15" in out or "::error file=handlers.py,line=15" in out


def _github_job(
    ci: pytest.MonkeyPatch, github: FakeGitHub, event: dict[str, Any], tmp: Path
) -> None:
    """The variables of a GitHub Actions job for pull request 3, on ``event``."""
    (tmp / "event.json").write_text(json.dumps(event))
    ci.setenv("GITHUB_API_URL", github.base)
    ci.setenv("GITHUB_REPOSITORY", "acme/shop")
    ci.setenv("GITHUB_EVENT_NAME", "pull_request")
    ci.setenv("GITHUB_EVENT_PATH", str(tmp / "event.json"))
    ci.setenv("GITHUB_TOKEN", github.token)


def _pull(head: str) -> dict[str, Any]:
    return {
        "pull_request": {
            "number": 3,
            "head": {"repo": {"full_name": head}},
            "base": {"repo": {"full_name": "acme/shop"}},
        }
    }


def test_a_forks_pull_request_is_reviewed_but_not_commented_on(
    repo: Path, tmp_path: Path, ci: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Its token reads only: posting would fail every fork's pull request however clean.
    with fake_forge(FakeGitHub()) as github:
        _github_job(ci, github, _pull("stranger/shop"), tmp_path)
        assert _review(repo, "--post", "github", "--annotations") == 0
    assert github.requests == []
    captured = capsys.readouterr()
    assert "::warning file=handlers.py,line=15" in captured.out
    assert "not posted: a pull request from a fork" in captured.err


def test_a_comment_that_cannot_be_posted_exits_2_after_the_outputs_are_written(
    repo: Path, tmp_path: Path, ci: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # 1 says "comments at or above --fail-on": a failure to report is another thing.
    with fake_forge(FakeGitHub()) as github:
        _github_job(ci, github, _pull("acme/shop"), tmp_path)
        github.script.append(Reply(403, json.dumps({"message": "Resource not accessible"})))
        github.script.append(Reply(403, json.dumps({"message": "Resource not accessible"})))
        sarif = tmp_path / "out.sarif"
        assert _review(repo, "--post", "github", "--sarif", str(sarif)) == 2
    assert json.loads(sarif.read_text())["runs"][0]["results"]
    assert "GitHub answered HTTP 403" in capsys.readouterr().err


def test_an_output_in_no_folder_exits_2_before_the_review(
    repo: Path, tmp_path: Path, ci: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _review(repo, "--sarif", str(tmp_path / "nowhere" / "out.sarif")) == 2
    assert "--sarif: there is no folder" in capsys.readouterr().err
    ci.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "nowhere" / "summary.md"))
    assert _review(repo, "--step-summary") == 2


def test_outside_a_repository_is_a_wrong_use(
    tmp_path: Path, ci: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["review", "--repo", str(tmp_path)]) == 2
    assert "is not in a git repository" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--base", "no-such-branch"], "no-such-branch"),
        (["--base", "main", "--json", "--annotations"], "standard output"),
        (["--base", "main", "--step-summary"], "GITHUB_STEP_SUMMARY"),
        (["--base", "main", "--post", "github"], "cannot post on github"),
    ],
)
def test_wrong_uses_exit_2(
    repo: Path,
    ci: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    says: str,
) -> None:
    for name in ("GITHUB_TOKEN", "GITHUB_REPOSITORY", "MENDLINE_REVIEW_TOKEN"):
        ci.delenv(name, raising=False)
    assert main(["review", "--repo", str(repo), *args]) == 2
    assert says in capsys.readouterr().err


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://ci:hunter2@127.0.0.1:9", "no user or password in the URL"),
        ("file:///etc/passwd", "expected http(s)://"),
    ],
)
def test_a_dashboard_url_with_a_password_or_not_http_is_refused(
    repo: Path, ci: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str, says: str
) -> None:
    with pytest.raises(SystemExit) as refused:
        main(["review", "--repo", str(repo), "--dashboard", url])
    err = capsys.readouterr().err
    assert refused.value.code == 2 and says in err and "hunter2" not in err


class _Stdin(io.TextIOWrapper):
    """Standard input holding ``text`` (its ``buffer`` is what --diff - reads)."""

    def __init__(self, text: str) -> None:
        super().__init__(io.BytesIO(text.encode()), encoding="utf-8")


def test_a_file_too_large_to_read_is_listed_and_the_rest_reviewed(
    tmp_path: Path, ci: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("# shop\n")
    commit_all(repo, "base")
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "generated.py").write_text("VALUE = 1\n" * 300_000)  # 3 MB
    (repo / "handlers.py").write_text(HANDLER)
    commit_all(repo, "handlers and a generated module")
    data = tmp_path / "review.json"
    assert _review(repo, "--json-file", str(data), "--no-production") == 0
    review = json.loads(data.read_text())
    assert {s["path"]: s["reason"] for s in review["skipped"]} == {
        "generated.py": "larger than 2 MiB"
    }
    assert {c["path"] for c in review["comments"]} == {"handlers.py"}
