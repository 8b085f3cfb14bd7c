"""Applying a fix in a worktree of its own: real repositories, real pytest runs; the user's
checkout never touched, a patch placed only where it fits, refusals with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from mendline.analyzers.rootcause._patches import diff
from mendline.schemas.errors import ConfigError, ForgeError
from mendline.sinks.forges import Checkout, DeliveryPlan, apply_fix
from tests.git_helpers import (
    CORE,
    apply_in,
    blob,
    change,
    checkout,
    commit_all,
    git,
    make_repo,
    plan_with_tests,
    snapshot,
)

BRANCH = "mendline/fix-1-2"
LOOKUP = "    return table[key]"
GET = "    return table.get(key)"


def _branches(repo: Path) -> list[str]:
    return git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/").split()


def _worktrees(repo: Path) -> int:
    return git(repo, "worktree", "list", "--porcelain").count("worktree ")


async def test_a_heuristic_one_line_patch_is_applied_verified_and_committed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    # The user has work in progress: a staged change and an edited file.
    (repo / "notes.txt").write_text("mine\n")
    git(repo, "add", "notes.txt")
    (repo / "calc" / "core.py").write_text(CORE + "\n# editing\n")
    before = snapshot(repo)
    base = before.head

    outcome = await apply_in(repo, tmp_path, diff("calc/core.py", 9, LOOKUP, GET))

    assert outcome.result == "applied", outcome.reason
    assert outcome.verification is not None and outcome.verification.passed
    ran = [command.argv for command in outcome.verification.commands]
    assert ran[0][1:] == ["-m", "py_compile", "./calc/core.py"]
    assert ran[-1][1:] == ["-m", "pytest"]
    assert "3 passed" in outcome.verification.commands[-1].output
    delivery = outcome.delivery
    assert delivery is not None and (delivery.mode, delivery.branch) == ("branch", BRANCH)
    assert git(repo, "rev-parse", BRANCH) == delivery.commit
    assert git(repo, "rev-parse", f"{BRANCH}^") == base
    assert git(repo, "show", f"{BRANCH}:calc/core.py") == CORE.replace(LOOKUP, GET).strip()
    message = git(repo, "log", "-1", "--format=%an <%ae>%n%B", BRANCH)
    assert message.startswith("mendline <mendline@localhost>\nmendline: fix KeyError: 'a'")
    trailers = git(repo, "log", "-1", "--format=%(trailers:only,unfold)", BRANCH).splitlines()
    assert trailers == [
        "Mendline-Issue: 1",
        "Mendline-Finding: 3",
        "Mendline-Fix: 2",
        "Approved-by: alice",
    ]
    assert snapshot(repo) == before  # files, index, HEAD, status: as the user left them
    assert _worktrees(repo) == 1 and not (tmp_path / "work" / "mendline-fix-1-2").exists()


async def test_a_patch_that_breaks_the_tests_fails_and_leaves_nothing(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    before = snapshot(repo)
    broken = diff("calc/core.py", 5, "    return sum(prices)", "    return sum(prices) + 1")

    outcome = await apply_in(repo, tmp_path, broken)

    assert (outcome.result, outcome.code) == ("failed", "verification_failed")
    assert outcome.reason is not None and "pytest exited 1" in outcome.reason
    assert outcome.verification is not None and not outcome.verification.passed
    assert "1 failed" in outcome.verification.commands[-1].output
    assert _branches(repo) == ["main"] and _worktrees(repo) == 1
    assert not (tmp_path / "work" / "mendline-fix-1-2").exists()
    assert snapshot(repo) == before


async def test_a_line_that_moved_is_patched_at_the_one_place_it_is_now(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    core = repo / "calc" / "core.py"
    core.write_text(CORE.replace('"""\n', '"""\n\nimport math\nimport os\n', 1))
    commit_all(repo, "imports")

    # Made when the line was line 9; it is line 12 now.
    outcome = await apply_in(repo, tmp_path, diff("calc/core.py", 9, LOOKUP, GET))

    assert outcome.result == "applied", outcome.reason
    shown = git(repo, "show", "--format=", BRANCH)
    assert "@@ -9,7 +9,7 @@" in shown and f"-{LOOKUP}\n+{GET}" in shown


@pytest.mark.parametrize(
    ("edit", "code", "says"),
    [
        # Two functions with the line, and the patch's line number no longer right.
        (
            lambda core: core.replace(
                "def ratio", "def other(table, key):\n    return table[key]\n\n\ndef ratio"
            ).replace('"""\n', '"""\n\nimport os\n', 1),
            "ambiguous",
            "are at lines 11, 15: which is not clear",
        ),
        # The line itself changed since the finding.
        (
            lambda core: core.replace(LOOKUP, "    return table[key.lower()]"),
            "not_found",
            "calc/core.py: hunk 1 (at line 9): its lines (from 'return table[key]') are not in",
        ),
    ],
)
async def test_a_patch_that_does_not_fit_one_place_is_refused_with_the_reason(
    tmp_path: Path, edit: object, code: str, says: str
) -> None:
    repo = make_repo(tmp_path)
    core = repo / "calc" / "core.py"
    core.write_text(edit(core.read_text()))  # type: ignore[operator]
    commit_all(repo, "moved on")
    before = snapshot(repo)

    outcome = await apply_in(repo, tmp_path, diff("calc/core.py", 9, LOOKUP, GET))

    assert (outcome.result, outcome.code) == ("refused", code)
    assert outcome.reason is not None and says in outcome.reason
    assert outcome.verification is None and outcome.delivery is None
    assert _branches(repo) == ["main"] and _worktrees(repo) == 1
    assert snapshot(repo) == before


async def test_a_git_diff_merges_three_ways_when_its_context_changed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    core = repo / "calc" / "core.py"
    core.write_text(CORE.replace(LOOKUP, GET))
    made = git(repo, "diff")  # with its index line: the blobs it was made between
    git(repo, "checkout", "--", "calc/core.py")
    # A context line of that diff changes: placing it by its lines fails, a merge does not.
    core.write_text(CORE.replace("def ratio(a, b):", "def ratio(a, b):  # a over b"))
    commit_all(repo, "comment")

    outcome = await apply_in(repo, tmp_path, made)

    assert outcome.result == "applied", outcome.reason
    assert git(repo, "show", f"{BRANCH}:calc/core.py").count("# a over b") == 1
    assert GET in git(repo, "show", f"{BRANCH}:calc/core.py")


async def test_a_three_way_merge_that_conflicts_is_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    core = repo / "calc" / "core.py"
    core.write_text(CORE.replace(LOOKUP, GET))
    made = git(repo, "diff")
    core.write_text(CORE.replace(LOOKUP, "    return table[str(key)]"))
    commit_all(repo, "someone else fixed it their way")
    before = snapshot(repo)

    outcome = await apply_in(repo, tmp_path, made)

    assert (outcome.result, outcome.code) == ("refused", "conflict")
    assert outcome.reason is not None and "calc/core.py" in outcome.reason
    assert _branches(repo) == ["main"] and snapshot(repo) == before


@pytest.mark.parametrize(
    ("patch", "code"),
    [
        ("no diff at all\n", "invalid_patch"),
        (diff("../outside.py", 1, "a", "b"), "unsafe_path"),
        (diff("calc/missing.py", 1, "a", "b"), "missing"),
    ],
)
async def test_what_is_no_applicable_patch_is_refused(
    tmp_path: Path, patch: str, code: str
) -> None:
    repo = make_repo(tmp_path)
    outcome = await apply_in(repo, tmp_path, patch)
    assert (outcome.result, outcome.code) == ("refused", code)
    assert _branches(repo) == ["main"]


@pytest.mark.parametrize(
    ("options", "code"),
    [
        ({"git": "/nowhere/git"}, "git_missing"),
        ({"base": "no-such-branch"}, "config"),
    ],
)
async def test_what_is_no_patchs_fault_is_raised_not_refused(
    tmp_path: Path, options: dict[str, str], code: str
) -> None:
    repo = make_repo(tmp_path)
    with pytest.raises(ForgeError) as failed:
        await apply_fix(
            checkout(repo, tmp_path, **options),
            change(diff("calc/core.py", 9, LOOKUP, GET)),
            verify_plan=plan_with_tests(),
            delivery=DeliveryPlan(),
        )
    assert (failed.value.code, failed.value.retriable) == (code, False)
    assert _branches(repo) == ["main"]


def test_the_work_root_must_be_outside_the_repository(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must be outside"):
        Checkout(path=tmp_path / "repo", work_root=tmp_path / "repo" / ".work")
    with pytest.raises(ConfigError, match="name <email>"):
        Checkout(path=tmp_path / "repo", work_root=tmp_path / "work", author="nobody")


async def test_files_are_made_deleted_and_keep_their_line_endings(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    (repo / "crlf.txt").write_bytes(b"one\r\ntwo\r\nthree")  # CRLF, no newline at its end
    (repo / "gone.txt").write_text("a\nb\n")
    commit_all(repo, "more files")
    patch = (
        "--- /dev/null\n+++ b/calc/new.py\n@@ -0,0 +1 @@\n+X = 1\n"
        "--- a/gone.txt\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-a\n-b\n"
        "--- a/crlf.txt\n+++ b/crlf.txt\n@@ -3 +3 @@\n-three\n+THREE\n"
        "--- a/crlf.txt\n+++ b/crlf.txt\n@@ -1 +1 @@\n-one\n+ONE\n"  # the same file again
    )

    outcome = await apply_in(repo, tmp_path, patch)

    assert outcome.result == "applied", outcome.reason
    assert outcome.verification is not None
    assert outcome.verification.commands[0].argv[-1] == "./calc/new.py"  # compiled
    tree = git(repo, "ls-tree", "-r", "--name-only", BRANCH).split()
    assert "calc/new.py" in tree and "gone.txt" not in tree
    assert blob(repo, f"{BRANCH}:crlf.txt") == b"ONE\r\ntwo\r\nTHREE"
