"""Fixes for the dashboard's tests, made as mendline makes them: a finding with a patch of a new
issue, proposed through the fix store with a policy decision (the fix policy's own, for the
tests that apply one in a real git repository), and carried along its life by the store's
moves; a fix policy file naming a real repository."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg

from mendline.analyzers.policy import load_policy
from mendline.schemas.fix import CommandOutcome, Delivery, PolicyDecision, Verification
from mendline.schemas.people import Actor
from mendline.sinks.postgres import FindingStore, FixStore, StoredFix, append_audit
from mendline.stages.heal import policy_decision
from tests.db_helpers import finding_of_new_issue

#: Text from an event or a model that must come out of every page as text.
HOSTILE = "<script>alert(1)</script>"

#: A patch of the tests' ``calc`` package (tests/git_helpers.py): lookup() made safe.
PATCH = (
    "--- a/calc/core.py\n+++ b/calc/core.py\n@@ -9 +9 @@\n"
    "-    return table[key]\n+    return table.get(key)\n"
)
#: The policy asks one person: what the fixes page shows as the reason.
ASK = PolicyDecision(
    verdict="approval",
    reasons=["fix kind guard is not one of [auto] kinds (style, formatting, import)"],
    approvals_needed=1,
    repository="calc",
    mapped_patch=PATCH,
)
#: The responder who asks for fixes.
RITA = Actor(name="responder", role="responder", auth="local")


@asynccontextmanager
async def fix_store(url: str) -> AsyncIterator[FixStore]:
    """The fix store of ``url`` (its moves audited from origin ``test``), on a pool of its own."""
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    try:
        yield FixStore(pool, append_audit, origin="test")
    finally:
        await pool.close()


async def proposed_fix(
    url: str,
    issue: int = 1,
    decision: PolicyDecision = ASK,
    patch: str = PATCH,
    **finding: Any,
) -> StoredFix:
    """A fix of a new issue's finding (``issue`` numbers its call site) with ``patch``, as
    the responder proposed it and the policy decided (``decision``)."""
    finding_id = await finding_of_new_issue(url, issue, patch, fix_kind="guard", **finding)
    async with fix_store(url) as fixes:
        return await fixes.propose(RITA, finding_id, decision)


async def delivered_fix(
    url: str,
    delivery: Delivery,
    verification: Verification,
    issue: int = 1,
    decision: PolicyDecision = ASK,
    **finding: Any,
) -> StoredFix:
    """A fix approved, claimed by a worker and finished applied with ``delivery`` and
    ``verification`` (nothing of it in git: what the store records is what is shown)."""
    fix = await proposed_fix(url, issue, decision, **finding)
    approver = Actor(name="approver", role="approver", auth="local")
    async with fix_store(url) as fixes:
        await fixes.approve(approver, fix.id)
        [claimed] = await fixes.claim("worker", 60, 1)
        handover = await fixes.finish_applied("worker", claimed.id, delivery, verification)
        assert handover.done
        return handover.fix


def passed(output: str = "3 passed") -> Verification:
    """A verification whose one command, pytest, passed with ``output``."""
    command = CommandOutcome(argv=["pytest", "-q"], exit_code=0, seconds=1.25, output=output)
    return Verification(passed=True, commands=[command])


# A verification that waits for the file ``go-on`` (touching ``started`` as it begins), then
# runs the package's tests: an apply caught in the middle.
WAITS = """
import pathlib, subprocess, sys, time
started, go_on = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
started.touch()
while not go_on.exists():
    time.sleep(0.05)
sys.exit(subprocess.call([sys.executable, "-m", "pytest"]))
"""


def policy_file(where: Path, repo: Path, test: Sequence[str] | None = None) -> Path:
    """A fix policy naming ``repo`` as ``calc`` (every frame path maps to its root), verified
    by ``test`` (default: its own pytest suite)."""
    argv = test or (sys.executable, "-m", "pytest")
    policy = where / "fixes.toml"
    policy.write_text(
        "[[repositories]]\n"
        'name = "calc"\n'
        f"path = {json.dumps(str(repo))}\n"
        f"test = [{', '.join(json.dumps(arg) for arg in argv)}]\n"
        "[[repositories.mappings]]\n"
        'stack_root = ""\n'
        'source_root = ""\n'
    )
    return policy


async def proposed_by_policy(url: str, policy: Path, issue: int = 1) -> StoredFix:
    """A fix of a new issue's ``PATCH`` finding, proposed as ``mendline fix propose`` does:
    the fix policy in ``policy`` decides."""
    finding_id = await finding_of_new_issue(url, issue, PATCH, fix_kind="guard")
    async with fix_store(url) as fixes:
        stored = await FindingStore(fixes.pool).get(finding_id)
        decision = await policy_decision(load_policy(policy), stored.finding, fixes)
        return await fixes.propose(RITA, finding_id, decision)


async def fix_now(url: str, fix_id: int) -> StoredFix:
    """The fix as stored now."""
    async with fix_store(url) as fixes:
        return await fixes.get(fix_id)
