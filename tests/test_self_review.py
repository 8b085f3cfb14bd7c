"""mendline reviews its own code as its own CI does (.github/workflows/review.yml): every
Python line of the repository, as a pull request adding it all, with the workflow's own
command line; nothing is flagged at warning or above. The sample shop, which the workflow
leaves out, is the other half: its bugs are the demo's failures, and the review finds them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from mendline.analyzers.review import review_files, source_lines
from mendline.cli import main
from mendline.schemas.review import ChangedFile
from tests.git_helpers import commit_all, git
from tests.test_review_workflows import review_commands

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "review.yml"
#: What the repository's Python is in: the program, its packages, its tests and benchmarks.
FOLDERS = ("mendline", "ingest", "analyzers", "sinks", "schemas", "tests", "bench")
SAMPLE_APP = "mendline/sample_app"


def _python_files() -> list[Path]:
    """Every Python file of the repository (the linked packages once, under their folders)."""
    found: list[Path] = []
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if (
                relative.parts[0] == "mendline"
                and (ROOT / relative.parts[0]).joinpath(relative.parts[1]).is_symlink()
            ):
                continue  # mendline/sinks is sinks/: reviewed there
            found.append(relative)
    return found


def _workflow_argv() -> list[str]:
    """The `mendline review` command line of the repository's own workflow."""
    job = next(iter(yaml.safe_load(WORKFLOW.read_text())["jobs"].values()))
    (argv,) = [a for s in job["steps"] for a in review_commands(s.get("run", ""))]
    return argv


def test_the_repository_passes_its_own_review_as_its_workflow_runs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("# mendline\n")
    base = commit_all(repo, "nothing yet")
    files = _python_files()
    for relative in files:
        (repo / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / relative, repo / relative)
    commit_all(repo, "all of mendline")
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.delenv("MENDLINE_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    argv = _workflow_argv()
    assert "--fail-on" in argv and "--no-production" in argv

    status = main([*argv, "--repo", str(repo), "--base", base, "--json-file", "review.json"])

    out = capsys.readouterr().out
    review = json.loads((tmp_path / "review.json").read_text())
    flagged = [f"{c['path']}:{c['line']} {c['rule_id']} {c['code']}" for c in review["comments"]]
    assert flagged == [] and status == 0
    assert "::warning" not in out and "::error" not in out
    skipped = {s["path"]: s["reason"] for s in review["skipped"]}
    sample = {str(f) for f in files if str(f).startswith(SAMPLE_APP)}
    assert sample and {skipped[p] for p in sample} == {"excluded (mendline/sample_app/*)"}
    reviewed = {str(f) for f in files} - set(skipped)
    assert len(reviewed) > 400 and "analyzers/review/_rules.py" in reviewed
    sarif = json.loads((tmp_path / "mendline-review.sarif").read_text())
    assert sarif["runs"][0]["results"] == []
    assert "mendline review" in summary.read_text()


#: The sample shop's bugs the demo fails on, as the review must report them: the file, the
#: text of the line, the rule.
DEMO_BUGS = [
    ("shop.py", 'return {"sku": str(item["sku"]), "qty": int(item["qty"])}', "MR101"),
    ("shop.py", 'return {"name": user.name, "email": user.email}', "MR104"),
    ("shop.py", 'return float(response.json()["price"])', "MR101"),
    ("shop.py", 'return str(response.json()["reservation_id"])', "MR102"),
    ("web.py", 'day = parse_day(request.query["day"])', "MR102"),
    ("web.py", 'user_id = int(request.query["user_id"])', "MR101"),
    ("web.py", 'postcode = request.query["postcode"]', "MR102"),
]


async def test_the_sample_shops_bugs_are_what_the_review_finds() -> None:
    paths = sorted((ROOT / SAMPLE_APP).glob("*.py"))
    contents = {f"{SAMPLE_APP}/{p.name}": p.read_text() for p in paths}
    files = [
        ChangedFile(path, None, "added", frozenset(range(1, len(source_lines(text)) + 1)))
        for path, text in contents.items()
    ]
    review = await review_files(files, contents)
    found = {(c.path.rsplit("/", 1)[1], c.code, c.rule_id) for c in review.comments}
    assert set(DEMO_BUGS) <= found
    # Only the kinds of failure the shop is written to have.
    assert {c.rule_id for c in review.comments} == {"MR101", "MR102", "MR104"}
