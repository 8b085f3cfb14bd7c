"""Rolling a fix back with a revert commit, never rewriting history: on a branch from the
base when the base holds the fix, on the fix's own branch when it is not merged yet."""

from __future__ import annotations

from pathlib import Path

from mendline.analyzers.rootcause._patches import diff
from mendline.sinks.forges import ApplyOutcome, DeliveryPlan, RevertChange, revert
from tests.git_helpers import (
    CORE,
    apply_in,
    bare_remote,
    checkout,
    commit_all,
    git,
    make_repo,
    plan_with_tests,
    snapshot,
)

FIX = "mendline/fix-1-2"
REVERT = "mendline/revert-1-2"
PATCH = diff("calc/core.py", 9, "    return table[key]", "    return table.get(key)")


async def _fixed(repo: Path, tmp_path: Path, delivery: DeliveryPlan | None = None) -> str:
    outcome = await apply_in(repo, tmp_path, PATCH, delivery)
    assert outcome.delivery is not None, outcome.reason
    return outcome.delivery.commit


def _undo(commit: str) -> RevertChange:
    return RevertChange(
        issue_id=1,
        fix_id=2,
        commit=commit,
        reason="Error rate went up after the fix @oncall #5",
        issue_title="KeyError: 'a'",
        approvers=("bob",),
    )


async def _revert(repo: Path, tmp_path: Path, commit: str, **plan: object) -> ApplyOutcome:
    return await revert(
        checkout(repo, tmp_path),
        _undo(commit),
        delivery=DeliveryPlan(**plan),  # type: ignore[arg-type]
        verify_plan=plan_with_tests(),
    )


async def test_a_merged_fix_is_reverted_on_a_branch_from_the_base(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    commit = await _fixed(repo, tmp_path)
    git(repo, "merge", "-q", "--no-ff", "-m", "merge the fix", FIX)
    base = git(repo, "rev-parse", "main")
    before = snapshot(repo)

    outcome = await _revert(repo, tmp_path, commit)

    assert outcome.result == "applied", outcome.reason
    assert outcome.verification is not None and outcome.verification.passed
    assert outcome.delivery is not None and outcome.delivery.branch == REVERT
    assert git(repo, "rev-parse", f"{REVERT}^") == base
    assert git(repo, "show", f"{REVERT}:calc/core.py") == CORE.strip()
    message = git(repo, "log", "-1", "--format=%B", REVERT)
    assert f"This reverts commit {commit}." in message
    assert "Mendline-Fix: 2" in message and "Approved-by: bob" in message
    assert "@\u200boncall" in message and "#\u200b5" in message
    assert git(repo, "rev-parse", FIX) == commit  # the fix's history as it was
    assert snapshot(repo) == before


async def test_a_fix_squashed_into_the_base_counts_as_merged(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    commit = await _fixed(repo, tmp_path)
    git(repo, "cherry-pick", commit)  # the same change, another commit

    outcome = await _revert(repo, tmp_path, commit)

    assert outcome.delivery is not None and outcome.delivery.branch == REVERT
    assert git(repo, "show", f"{REVERT}:calc/core.py") == CORE.strip()


async def test_a_fix_not_merged_is_reverted_on_top_of_its_branch_and_pushed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    bare = bare_remote(repo, tmp_path)
    commit = await _fixed(repo, tmp_path, DeliveryPlan(mode="push"))

    outcome = await _revert(repo, tmp_path, commit, mode="push")

    assert outcome.delivery is not None and outcome.delivery.branch == FIX
    assert git(repo, "rev-parse", f"{FIX}^") == commit  # on top: nothing rewritten
    assert git(bare, "rev-parse", FIX) == outcome.delivery.commit  # a fast-forward
    assert git(repo, "show", f"{FIX}:calc/core.py") == CORE.strip()
    assert REVERT not in git(repo, "branch", "--list")


async def test_a_revert_that_conflicts_is_refused_and_leaves_the_branches(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    commit = await _fixed(repo, tmp_path)
    git(repo, "merge", "-q", "--ff-only", FIX)
    core = repo / "calc" / "core.py"
    core.write_text(core.read_text().replace("table.get(key)", "table.get(key, 0)"))
    commit_all(repo, "a later change on the same line")
    before = snapshot(repo)

    outcome = await _revert(repo, tmp_path, commit)

    assert (outcome.result, outcome.code) == ("refused", "conflict")
    assert outcome.reason is not None and "calc/core.py" in outcome.reason
    assert REVERT not in git(repo, "branch", "--list") and git(repo, "rev-parse", FIX) == commit
    assert snapshot(repo) == before


async def test_a_revert_that_fails_verification_puts_the_fix_branch_back(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    commit = await _fixed(repo, tmp_path)
    tests = repo / "tests" / "test_core.py"
    # Not merged: reverting on the fix branch, whose tests now need the fix.
    git(repo, "checkout", "-q", FIX)
    tests.write_text(
        tests.read_text() + "\n\ndef test_missing():\n    assert lookup({}, 'x') is None\n"
    )
    fixed_tip = commit_all(repo, "a test that needs the fix")
    git(repo, "checkout", "-q", "main")

    outcome = await _revert(repo, tmp_path, commit)

    assert (outcome.result, outcome.code) == ("failed", "verification_failed")
    assert git(repo, "rev-parse", FIX) == fixed_tip


async def test_a_revert_delivered_as_a_patch_file_keeps_the_fixs_file(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    patches = tmp_path / "patches"
    commit = await _fixed(repo, tmp_path, DeliveryPlan(mode="patch", patch_dir=patches))
    fixed = _read(patches / "mendline-fix-1-2.patch")
    assert "+    return table.get(key)" in fixed

    outcome = await _revert(repo, tmp_path, commit, mode="patch", patch_dir=patches)

    assert outcome.delivery is not None and outcome.delivery.patch_path is not None
    made = outcome.delivery.commit
    assert Path(outcome.delivery.patch_path) == patches / f"mendline-revert-1-2-{made[:12]}.patch"
    assert _read(patches / "mendline-fix-1-2.patch") == fixed
    assert "-    return table.get(key)" in _read(Path(outcome.delivery.patch_path))


def _read(path: Path) -> str:
    return path.read_text()
