"""Real git repositories for the forge tests: a small Python package with real pytest
tests, a bare remote, and git run with an identity given in its environment."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from mendline.schemas.finding import Evidence, Finding
from mendline.sinks.forges import (
    ApplyOutcome,
    Checkout,
    DeliveryPlan,
    FixChange,
    VerifyPlan,
    apply_fix,
)

#: Who the tests' own commits are by (never the global config).
IDENTITY = {
    "GIT_AUTHOR_NAME": "Dev Person",
    "GIT_AUTHOR_EMAIL": "dev@example.test",
    "GIT_COMMITTER_NAME": "Dev Person",
    "GIT_COMMITTER_EMAIL": "dev@example.test",
}

CORE = '''"""Small arithmetic for the tests."""


def total(prices):
    return sum(prices)


def lookup(table, key):
    return table[key]


def ratio(a, b):
    return a / b
'''

TESTS = """from calc.core import lookup, ratio, total


def test_total():
    assert total([1, 2]) == 3


def test_lookup():
    assert lookup({"a": 1}, "a") == 1


def test_ratio():
    assert ratio(6, 3) == 2
"""


def git(repo: Path, *args: str, check: bool = True) -> str:
    """``git args`` in ``repo`` as the tests' person; its stdout, stripped."""
    done = subprocess.run(
        ["git", *args],
        cwd=repo,
        env={**os.environ, **IDENTITY},
        capture_output=True,
        text=True,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout.strip()


def blob(repo: Path, spec: str) -> bytes:
    """The bytes of a file in a commit (``rev:path``), line endings and all."""
    return subprocess.run(
        ["git", "cat-file", "blob", spec], cwd=repo, capture_output=True, check=True
    ).stdout


def commit_all(repo: Path, message: str) -> str:
    """Commit every change in ``repo``; the new commit's id."""
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def make_repo(where: Path) -> Path:
    """A repository on ``main`` holding the package ``calc`` and its passing tests."""
    repo = where / "repo"
    (repo / "calc").mkdir(parents=True)
    (repo / "tests").mkdir()
    (repo / "calc" / "__init__.py").write_text("")
    (repo / "calc" / "core.py").write_text(CORE)
    (repo / "tests" / "test_core.py").write_text(TESTS)
    (repo / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider -q\n")
    (repo / ".gitignore").write_text("__pycache__/\n")
    git(repo, "init", "-q", "-b", "main")
    commit_all(repo, "calc")
    return repo


def bare_remote(repo: Path, where: Path) -> Path:
    """A bare repository on disk, ``origin`` of ``repo``, holding its main."""
    bare = where / "remote.git"
    git(where, "init", "-q", "--bare", "-b", "main", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "-q", "origin", "main")
    return bare


@dataclass(frozen=True)
class Snapshot:
    """The user's checkout as they left it: HEAD, branch, status, index and files."""

    head: str
    branch: str
    status: str
    index: str
    files: dict[str, str]


def snapshot(repo: Path) -> Snapshot:
    """What must not change when mendline works on ``repo``."""
    files = {
        str(path.relative_to(repo)): path.read_text()
        for path in sorted(repo.rglob("*"))
        if path.is_file() and ".git" not in path.parts and "__pycache__" not in path.parts
    }
    return Snapshot(
        git(repo, "rev-parse", "HEAD"),
        git(repo, "symbolic-ref", "HEAD"),
        git(repo, "status", "--porcelain=v1", "--untracked-files=all"),
        git(repo, "ls-files", "--stage"),
        files,
    )


def plan_with_tests(**changes: object) -> VerifyPlan:
    """Verification with the package's own pytest suite as the test command."""
    options: dict[str, object] = {"test_command": (sys.executable, "-m", "pytest"), "timeout": 120}
    options.update(changes)
    return VerifyPlan(**options)  # type: ignore[arg-type]


def checkout(repo: Path, where: Path, **changes: object) -> Checkout:
    """The repository with its work root next to it (outside it)."""
    return Checkout(path=repo, work_root=where / "work", **changes)  # type: ignore[arg-type]


def finding(**changes: object) -> Finding:
    """A heuristic finding about calc.core.lookup."""
    fields: dict[str, object] = {
        "root_cause": "lookup() reads table[key] and the key is not always there.",
        "confidence": 0.9,
        "category": "missing_key_or_attribute",
        "severity": "medium",
        "suggested_fix": "Use table.get(key).",
        "evidence": [
            Evidence(
                location="calc.core.lookup (calc/core.py:9)",
                line="return table[key]",
                note="raises",
            )
        ],
        "analyser": "heuristic",
    }
    fields.update(changes)
    return Finding.model_validate(fields)


def change(patch: str, **changes: object) -> FixChange:
    """Fix 2 of issue 1, from finding 3, approved by alice."""
    fields: dict[str, object] = {
        "issue_id": 1,
        "fix_id": 2,
        "finding_id": 3,
        "patch": patch,
        "issue_title": "KeyError: 'a'",
        "finding": finding(),
        "approvers": ("alice",),
    }
    fields.update(changes)
    return FixChange(**fields)  # type: ignore[arg-type]


async def apply_in(
    repo: Path, where: Path, patch: str, delivery: DeliveryPlan | None = None
) -> ApplyOutcome:
    """``patch`` applied as fix 2 of issue 1, verified with the package's tests, delivered
    as ``delivery`` says (by default: kept as its branch)."""
    return await apply_fix(
        checkout(repo, where),
        change(patch),
        verify_plan=plan_with_tests(),
        delivery=delivery or DeliveryPlan(),
    )
