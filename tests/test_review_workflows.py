"""The CI set-ups shipped for `mendline review` (docs/ci/, and this repository's own
workflow) are valid YAML whose `mendline review` lines the command line takes, with the
permissions and history each needs."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from mendline.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
GITHUB = [ROOT / "docs" / "ci" / "github-actions-review.yml", ROOT / ".github/workflows/review.yml"]
GITLAB = ROOT / "docs" / "ci" / "gitlab-ci-review.yml"


def review_commands(script: str) -> list[list[str]]:
    """The `mendline review` command lines of a shell script (folded lines joined)."""
    words = shlex.split(script.replace("\n", " "))
    found: list[list[str]] = []
    for i, word in enumerate(words):
        if word == "mendline" and words[i + 1 : i + 2] == ["review"]:
            found.append(words[i + 1 :])
    return found


def _parsed(argv: list[str]) -> Any:
    return build_parser().parse_args(argv)


@pytest.mark.parametrize("path", GITHUB, ids=lambda p: p.name)
def test_github_workflows(path: Path) -> None:
    workflow = yaml.safe_load(path.read_text())
    (job,) = workflow["jobs"].values()
    checkout = next(
        s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/checkout")
    )
    assert checkout["with"]["fetch-depth"] == 0  # the merge base must be in the clone
    runs = [
        review_commands(s["run"]) for s in job["steps"] if "mendline review" in s.get("run", "")
    ]
    (commands,) = runs
    (argv,) = commands
    args = _parsed(argv)
    assert args.run.__name__ == "run_review"
    if args.post == "github":
        assert workflow["permissions"]["pull-requests"] == "write"
    if args.sarif:
        upload = next(s for s in job["steps"] if "upload-sarif" in str(s.get("uses", "")))
        assert upload["with"]["sarif_file"] == args.sarif
        assert workflow["permissions"]["security-events"] == "write"


def test_gitlab_job() -> None:
    (job,) = yaml.safe_load(GITLAB.read_text()).values()
    assert job["variables"]["GIT_DEPTH"] == "0"
    assert job["rules"][0]["if"] == '$CI_PIPELINE_SOURCE == "merge_request_event"'
    commands = [c for line in job["script"] for c in review_commands(line)]
    (argv,) = commands
    args = _parsed(argv)
    assert args.post == "gitlab"
    assert set(job["artifacts"]["paths"]) == {args.markdown, args.json_file}
