"""What an interrupted fix leaves behind: a worker killed with kill -9 mid-verification,
then cleanup_stale; a cancelled apply cleaning up after itself."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mendline.analyzers.rootcause._patches import diff
from mendline.sinks.forges import CleanupReport, DeliveryPlan, apply_fix, cleanup_stale
from tests.git_helpers import (
    apply_in,
    change,
    checkout,
    git,
    make_repo,
    plan_with_tests,
    snapshot,
)

ROOT = Path(__file__).resolve().parents[2]
PATCH = diff("calc/core.py", 9, "    return table[key]", "    return table.get(key)")


def _sleeper(mark: Path) -> tuple[str, ...]:
    """A test command that says it started (its pid in ``mark``), then hangs."""
    code = (
        "import os, pathlib, time; "
        f"pathlib.Path({str(mark)!r}).write_text(str(os.getpid())); time.sleep(120)"
    )
    return (sys.executable, "-c", code)


def _wait_for(mark: Path, worker: subprocess.Popen[bytes] | None = None) -> int:
    deadline = time.monotonic() + 60
    while not (mark.exists() and mark.read_text()):
        assert time.monotonic() < deadline, "the verification never started"
        assert worker is None or worker.poll() is None, "the worker ended before verifying"
        time.sleep(0.05)
    return int(mark.read_text())


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


# A heal worker applying the fix, its test command the sleeper: argv is repo, where, mark.
WORKER = """
import asyncio, sys
from pathlib import Path
from mendline.sinks.forges import DeliveryPlan, apply_fix
from tests.git_helpers import change, checkout, plan_with_tests
from tests.sinks.test_forges_cleanup import PATCH, _sleeper

repo, where, mark = (Path(arg) for arg in sys.argv[1:4])
plan = plan_with_tests(test_command=_sleeper(mark))
fix = change(PATCH)
asyncio.run(apply_fix(checkout(repo, where), fix, verify_plan=plan, delivery=DeliveryPlan()))
"""


def test_a_worker_killed_mid_apply_leaves_what_cleanup_stale_removes(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    git(repo, "branch", "feature")
    git(repo, "branch", "mendline/notes")  # named mendline/..., but not a fix's
    git(repo, "branch", "mendline/fix-9-9")  # a live fix the store keeps
    before = snapshot(repo)
    mark = tmp_path / "started"
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(repo), str(tmp_path), str(mark)],
        cwd=ROOT,
    )
    try:
        sleeper = _wait_for(mark, worker)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        _kill_group(sleeper)  # its own session: kill -9 of the worker spared it
    finally:
        worker.kill()
    left = tmp_path / "work" / "mendline-fix-1-2"
    assert left.is_dir() and "mendline/fix-1-2" in git(repo, "branch", "--list")

    report = asyncio.run(cleanup_stale(repo, tmp_path / "work", {"mendline/fix-9-9"}))

    assert report.worktrees == (str(left),) and report.branches == ("mendline/fix-1-2",)
    assert not left.exists()
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    branches = git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/").split()
    assert branches == ["feature", "main", "mendline/fix-9-9", "mendline/notes"]
    assert snapshot(repo) == before


async def test_an_interrupted_attempt_of_the_same_fix_is_replaced(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    left = tmp_path / "work" / "mendline-fix-1-2"
    left.parent.mkdir()
    git(repo, "worktree", "add", "-q", "-b", "mendline/fix-1-2", str(left), "main")
    (left / "calc" / "core.py").write_text("half written")

    outcome = await apply_in(repo, tmp_path, PATCH)

    assert outcome.result == "applied" and not left.exists()
    assert "table.get(key)" in git(repo, "show", "mendline/fix-1-2:calc/core.py")


async def test_cleanup_leaves_a_fix_branch_the_user_checked_out(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    git(repo, "checkout", "-q", "-b", "mendline/fix-5-5")
    before = snapshot(repo)

    report = await cleanup_stale(repo, tmp_path / "work", set())

    assert report.branches == () and report.worktrees == ()
    assert snapshot(repo) == before


async def test_a_cancelled_apply_removes_its_worktree_branch_and_commands(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    before = snapshot(repo)
    mark = tmp_path / "started"
    task = asyncio.create_task(
        apply_fix(
            checkout(repo, tmp_path),
            change(PATCH),
            verify_plan=plan_with_tests(test_command=_sleeper(mark)),
            delivery=DeliveryPlan(),
        )
    )
    pid = await asyncio.to_thread(_wait_for, mark)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the test command was killed and reaped
    assert not (tmp_path / "work" / "mendline-fix-1-2").exists()
    assert git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/") == "main"
    assert snapshot(repo) == before


async def test_cleanup_leaves_another_repositorys_worktree_under_the_shared_work_root(
    tmp_path: Path,
) -> None:
    ours, theirs = make_repo(tmp_path / "ours"), make_repo(tmp_path / "theirs")
    work = tmp_path / "work"
    work.mkdir()
    # The other repository's fix being applied right now, in the work root both share.
    busy = work / "mendline-fix-7-8"
    git(theirs, "worktree", "add", "-q", "-b", "mendline/fix-7-8", str(busy), "main")
    half = work / "mendline-fix-7-9"  # a folder being made, no .git link yet: not known
    half.mkdir()
    # Our own worktree git forgot (its record removed by hand), left by a crash.
    forgotten = work / "mendline-fix-1-2"
    git(ours, "worktree", "add", "-q", "-b", "mendline/fix-1-2", str(forgotten), "main")
    shutil.rmtree(ours / ".git" / "worktrees" / forgotten.name)

    report = await cleanup_stale(ours, work, set())

    assert (busy / "calc" / "core.py").is_file() and half.is_dir()
    assert str(busy) in git(theirs, "worktree", "list", "--porcelain")
    assert "mendline/fix-7-8" in git(theirs, "branch", "--list")
    assert report.worktrees == (str(forgotten),) and not forgotten.exists()
    assert report.branches == ("mendline/fix-1-2",)


async def test_a_user_worktree_whose_folder_is_missing_is_never_pruned(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    away = tmp_path / "on-a-usb-stick"
    git(repo, "worktree", "add", "-q", "-b", "feature", str(away), "main")
    moved = tmp_path / "unplugged"
    away.rename(moved)  # the disk is unplugged for now: git's record stays

    report = await cleanup_stale(repo, tmp_path / "work", set())
    outcome = await apply_in(repo, tmp_path, PATCH)

    assert report == CleanupReport() and outcome.result == "applied"
    assert f"worktree {away}" in git(repo, "worktree", "list", "--porcelain")
    moved.rename(away)  # plugged in again: still the user's worktree, on its branch
    assert git(away, "symbolic-ref", "HEAD") == "refs/heads/feature"
