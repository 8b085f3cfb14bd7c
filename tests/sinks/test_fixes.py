"""The fix store on the real PostgreSQL: each move checked by check_transition and audited in
its transaction (the real, chained audit trail), approvals and the two-person rule, one open
fix per finding, leases taken over and given up on, deployed fixes verified or regressed by
their issue's events, and the public views' figures on a known data set."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from mendline.analyzers.grouping.scrubbing import Scrubber
from mendline.ingest import prepare_record
from mendline.schemas.errors import (
    FindingNotFound,
    FixNotFound,
    IllegalTransition,
    PermissionDenied,
    RejectedData,
)
from mendline.schemas.fix import CommandOutcome, Delivery, PolicyDecision, Verification
from mendline.schemas.people import SYSTEM_ACTOR, Actor
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
from tests.db_helpers import patch_finding
from tests.integration.event_factory import encode, make_event

pytestmark = pytest.mark.integration

PATCH = "--- a/app/orders.py\n+++ b/app/orders.py\n@@ -1 +1 @@\n-int(q)\n+int(q or 0)\n"
MAPPED = PATCH.replace("app/", "src/app/")
ALICE = Actor(name="alice", role="approver", auth="token", user_id=1, token_id="mlt_ab12cd34")
BOB = Actor(name="bob", role="approver", auth="local")
ASK = PolicyDecision(
    verdict="approval",
    reasons=["changes app/orders.py, which needs a person"],
    approvals_needed=1,
    repository="shop",
    mapped_patch=MAPPED,
)
TWO = ASK.model_copy(update={"approvals_needed": 2})
AUTO = PolicyDecision(verdict="auto", reasons=["a one-line change under app/"], repository="shop")
DENY = PolicyDecision(verdict="deny", reasons=["the finding has a risk: shell_command"])
DELIVERY = Delivery(mode="branch", branch="mendline/fix-1-1", commit="a" * 40)
REVERT = Delivery(mode="branch", branch="mendline/fix-1-1", commit="b" * 40)
PASSED = Verification(
    passed=True, commands=[CommandOutcome(argv=["pytest", "-q"], exit_code=0, seconds=1.5)]
)
FAILED = Verification(
    passed=False, commands=[CommandOutcome(argv=["pytest", "-q"], exit_code=1, seconds=2.0)]
)


@dataclass
class World:
    """A fresh database with its stores: events, findings, fixes and the audit trail."""

    url: str
    events: Store
    findings: FindingStore
    fixes: FixStore
    audit: AuditStore

    async def event(self, issue: int, release: str | None, service: str = "api") -> int:
        """Store one event of issue number ``issue`` on ``release``; the issue's id."""
        doc = make_event(issue, service=service) | {"release": release}
        prepared = prepare_record(encode(doc), Scrubber())
        await self.events.write([prepared])
        issue_id = await self.fixes.pool.fetchval(
            "SELECT issue_id FROM mendline.fingerprints WHERE hash = $1", prepared.fingerprint
        )
        return int(issue_id)

    async def finding(
        self, issue: int, release: str = "1.0", patch: str | None = PATCH, **fields: Any
    ) -> int:
        """A finding with ``patch`` of a new issue (number ``issue``, one event); its id."""
        issue_id = await self.event(issue, release)
        finding = patch_finding(patch, **fields)
        return await self.findings.save(finding, issue_id=issue_id, cache_key=f"{issue}@{release}")

    async def ready(self, issue: int, decision: PolicyDecision = AUTO) -> int:
        """A fix of a new issue's finding, claimed by ``w`` and applied; its id."""
        fix = await self.fixes.propose(SYSTEM_ACTOR, await self.finding(issue), decision)
        if decision.verdict == "approval":
            await self.fixes.approve(ALICE, fix.id)
        [claimed] = await self.fixes.claim("w", 60, 1)
        assert (await self.fixes.finish_applied("w", claimed.id, DELIVERY, PASSED)).done
        return fix.id

    async def trail(self, target: str) -> list[tuple[str, str, Any, Any]]:
        """The audit rows of ``target``, oldest first: actor, action, before, after."""
        rows = await self.audit.list(target=target)
        return [(r.actor.name, r.action, r.before, r.after) for r in reversed(rows)]

    async def expire(self, fix_id: int) -> None:
        """Let the fix's lease run out, as a killed worker's does."""
        await self.fixes.pool.execute(
            """UPDATE mendline.fix_jobs SET lease_until = now() - interval '1 minute'
               WHERE id = $1""",
            fix_id,
        )


@pytest.fixture
async def world(fresh_db_url: str) -> AsyncIterator[World]:
    settings = load_settings(database_url=fresh_db_url, frequency_threshold=0)
    events = await connect_store(settings)
    findings = await connect_findings(settings, 2)
    fixes = await connect_fixes(settings, origin="test", size=4)
    audit = await connect_audit(settings)
    try:
        yield World(fresh_db_url, events, findings, fixes, audit)
    finally:
        for store in (events, findings, fixes, audit):
            await store.pool.close()


async def test_a_fix_goes_from_proposed_to_verified_each_move_audited(world: World) -> None:
    fix = await world.fixes.propose(SYSTEM_ACTOR, await world.finding(1), ASK)
    assert (fix.state, fix.patch, fix.mapped_patch, fix.repository) == (
        "proposed",
        PATCH,
        MAPPED,
        "shop",
    )
    assert (fix.decision, fix.approvals_needed, fix.requested_by, fix.requested_auth) == (
        ASK,
        1,
        "mendline",
        "system",
    )
    approved = await world.fixes.approve(ALICE, fix.id, "the default is right")
    assert (approved.state, approved.approvals) == ("approved", ("alice",))
    [claimed] = await world.fixes.claim("worker-1", 60, 10)
    assert (claimed.id, claimed.state, claimed.owner, claimed.attempts) == (
        fix.id,
        "applying",
        "worker-1",
        1,
    )
    finished = await world.fixes.finish_applied("worker-1", fix.id, DELIVERY, PASSED)
    assert finished.done
    assert (finished.fix.state, finished.fix.delivery, finished.fix.verification) == (
        "applied",
        DELIVERY,
        PASSED,
    )
    deployed = await world.fixes.deployed(ALICE, fix.id, "1.1.0")
    assert (deployed.state, deployed.release) == ("deployed", "1.1.0")
    await world.event(99, "1.1.0")  # the release runs: another issue's event came from it
    [verified] = await world.fixes.settle_deployed(0)
    assert (verified.id, verified.state, verified.verified_at is not None) == (
        fix.id,
        "verified",
        True,
    )
    assert await world.fixes.get(fix.id) == verified

    trail = await world.trail(f"fix:{fix.id}")
    assert [(actor, action) for actor, action, _, _ in trail] == [
        ("mendline", "fix.propose"),
        ("alice", "fix.approve"),
        ("mendline", "fix.apply"),
        ("mendline", "fix.applied"),
        ("alice", "fix.deployed"),
        ("mendline", "fix.verify"),
    ]
    assert trail[0][2:] == (
        None,
        {
            "state": "proposed",
            "finding_id": fix.finding_id,
            "issue_id": fix.issue_id,
            "verdict": "approval",
            "reasons": ASK.reasons,
            "approvals_needed": 1,
            "repository": "shop",
        },
    )
    before, after = trail[1][2:]
    assert before == {"state": "proposed", "approvals": [], "approved_at": None}
    assert (after["state"], after["approvals"], after["note"]) == (
        "approved",
        ["alice"],
        "the default is right",
    )
    before, after = trail[2][2:]
    assert (before["state"], before["owner"], before["attempts"]) == ("approved", None, 0)
    assert (after["state"], after["owner"], after["attempts"]) == ("applying", "worker-1", 1)
    assert after["approvers"] == ["alice"]
    assert trail[3][3]["delivery"] == DELIVERY.model_dump(mode="json")
    assert (trail[4][2], {k: trail[4][3][k] for k in ("state", "release")}) == (
        {"state": "applied", "release": None, "deployed_at": None},
        {"state": "deployed", "release": "1.1.0"},
    )

    issue = await world.fixes.pool.fetchrow(
        "SELECT status, resolution_note FROM mendline.issues WHERE id = $1", fix.issue_id
    )
    assert issue["status"] == "resolved"
    assert f"fix {fix.id}" in issue["resolution_note"] and "1.1.0" in issue["resolution_note"]
    kinds = await world.fixes.pool.fetch(
        "SELECT kind FROM mendline.triggers WHERE issue_id = $1 ORDER BY id", fix.issue_id
    )
    assert [r["kind"] for r in kinds] == ["new_issue", "resolved"]
    assert await world.trail(f"issue:{fix.issue_id}") == [
        (
            "mendline",
            "issue.resolve",
            {"status": "unresolved", "resolution": None, "resolution_note": None},
            {
                "status": "resolved",
                "resolution": "fix",
                "resolution_note": issue["resolution_note"],
            },
        )
    ]
    assert (await world.audit.verify()).intact


async def test_illegal_moves_are_refused_and_change_nothing(world: World) -> None:
    fix = await world.fixes.propose(SYSTEM_ACTOR, await world.finding(1), ASK)
    rows = len(await world.audit.list())
    refused = [
        world.fixes.deployed(ALICE, fix.id, "1.1.0"),
        world.fixes.rollback(ALICE, fix.id, REVERT),
    ]
    for move in refused:
        with pytest.raises(IllegalTransition, match="a fix that is proposed cannot become") as e:
            await move
        assert e.value.current == "proposed"
    finished = await world.fixes.finish_applied("w", fix.id, DELIVERY, PASSED)
    assert (finished.done, finished.reason) == (
        False,
        f"fix {fix.id} is proposed now, not applying",
    )
    assert await world.fixes.get(fix.id) == fix
    assert len(await world.audit.list()) == rows

    rejected = await world.fixes.reject(BOB, fix.id, "it patches the wrong function")
    assert (rejected.state, rejected.rejected_by, rejected.rejected_reason) == (
        "rejected",
        "bob",
        "it patches the wrong function",
    )
    for move in (
        world.fixes.approve(ALICE, fix.id),
        world.fixes.reject(ALICE, fix.id, "again"),
        world.fixes.claim_one(ALICE, "cli", fix.id, 60),
    ):
        with pytest.raises(IllegalTransition, match="it can become nothing: it is final"):
            await move
    assert await world.fixes.get(fix.id) == rejected
    assert len(await world.audit.list()) == rows + 1
    with pytest.raises(FixNotFound, match="there is no fix 999"):
        await world.fixes.approve(ALICE, 999)
    with pytest.raises(FixNotFound):
        await world.fixes.get(999)
    assert (await world.audit.verify()).intact


@pytest.mark.parametrize("role", ["viewer", "responder"])
async def test_a_viewer_or_responder_may_not_approve_reject_or_apply(
    world: World, role: str
) -> None:
    fix = await world.fixes.propose(SYSTEM_ACTOR, await world.finding(1), ASK)
    eve = Actor(name="eve", role=role, auth="token")  # type: ignore[arg-type]
    for move in (
        world.fixes.approve(eve, fix.id),
        world.fixes.reject(eve, fix.id, "no"),
        world.fixes.claim_one(eve, "cli", fix.id, 60),
        world.fixes.deployed(eve, fix.id, "1.1.0"),
        world.fixes.rollback(eve, fix.id, REVERT),
    ):
        with pytest.raises(PermissionDenied, match="it needs the role approver"):
            await move
    assert await world.fixes.get(fix.id) == fix
    assert [action for _, action, _, _ in await world.trail(f"fix:{fix.id}")] == ["fix.propose"]


async def test_two_approvals_need_two_people_and_the_requester_is_at_most_one(
    world: World,
) -> None:
    carol = Actor(name="carol", role="approver", auth="token", user_id=7)
    fix = await world.fixes.propose(carol, await world.finding(1), TWO)
    assert (fix.approvals_needed, fix.requested_by, fix.requested_auth) == (2, "carol", "token")
    once = await world.fixes.approve(carol, fix.id)
    assert (once.state, once.approvals) == ("proposed", ("carol",))
    with pytest.raises(RejectedData, match=r"carol approved fix \d+ already; it needs 1 more"):
        await world.fixes.approve(carol, fix.id)
    with pytest.raises(IllegalTransition, match=r"needs 2 approval\(s\) .* \(has 1: carol\)"):
        await world.fixes.claim_one(carol, "cli", fix.id, 60)
    assert await world.fixes.claim("w", 60, 10) == []
    twice = await world.fixes.approve(BOB, fix.id, "checked the test")
    assert (twice.state, twice.approvals) == ("approved", ("carol", "bob"))
    trail = await world.trail(f"fix:{fix.id}")
    assert [(actor, action, before) for actor, action, before, _ in trail[1:2]] == [
        ("carol", "fix.approve", {"approvals": []})
    ]
    assert trail[1][3] == {"approvals": ["carol"]}
    assert (trail[2][0], trail[2][2]) == (
        "bob",
        {"state": "proposed", "approvals": ["carol"], "approved_at": None},
    )
    approvers = await world.fixes.pool.fetch(
        "SELECT approver, user_id, note FROM mendline.fix_approvals WHERE fix_id = $1 ORDER BY id",
        fix.id,
    )
    assert [tuple(r) for r in approvers] == [("carol", 7, None), ("bob", None, "checked the test")]


async def test_a_finding_has_one_open_fix_and_a_new_one_once_that_is_final(world: World) -> None:
    finding_id = await world.finding(1)
    first = await world.fixes.propose(SYSTEM_ACTOR, finding_id, ASK)
    again = await world.fixes.propose(SYSTEM_ACTOR, finding_id, AUTO)
    assert (again.id, again.decision) == (first.id, ASK)
    other = await world.finding(2)
    a, b = await asyncio.gather(
        world.fixes.propose(SYSTEM_ACTOR, other, ASK),
        world.fixes.propose(SYSTEM_ACTOR, other, ASK),
    )
    assert a.id == b.id
    with pytest.raises(asyncpg.UniqueViolationError):
        await world.fixes.pool.execute(
            """INSERT INTO mendline.fix_jobs (finding_id, issue_id, patch, decision,
                   requested_by, requested_auth)
               SELECT finding_id, issue_id, patch, decision, 'x', 'local'
               FROM mendline.fix_jobs WHERE id = $1""",
            first.id,
        )
    await world.fixes.reject(ALICE, first.id, "not this way")
    fresh = await world.fixes.propose(SYSTEM_ACTOR, finding_id, AUTO)
    assert (fresh.id != first.id, fresh.state, fresh.decision.verdict) == (True, "proposed", "auto")
    proposals = await world.audit.list(action="fix.propose")
    assert sorted(int(r.target.split(":")[1]) for r in proposals) == sorted(
        {first.id, a.id, fresh.id}
    )


async def test_a_finding_without_a_patch_or_none_at_all_is_refused(world: World) -> None:
    no_patch = await world.finding(1, patch=None)
    with pytest.raises(FindingNotFound, match=f"finding {no_patch} has no patch"):
        await world.fixes.propose(SYSTEM_ACTOR, no_patch, AUTO)
    with pytest.raises(FindingNotFound, match="there is no finding 999"):
        await world.fixes.propose(SYSTEM_ACTOR, 999, AUTO)
    viewer = Actor(name="vic", role="viewer", auth="local")
    with pytest.raises(PermissionDenied):
        await world.fixes.propose(viewer, await world.finding(2), AUTO)
    assert await world.fixes.list() == []


async def test_a_denied_fix_is_stored_rejected_with_the_policys_reasons(world: World) -> None:
    fix = await world.fixes.propose(SYSTEM_ACTOR, await world.finding(1), DENY)
    assert (fix.state, fix.rejected_by, fix.rejected_reason, fix.approvals_needed) == (
        "rejected",
        "mendline",
        "the finding has a risk: shell_command",
        0,
    )
    trail = await world.trail(f"fix:{fix.id}")
    assert [(actor, action) for actor, action, _, _ in trail] == [
        ("mendline", "fix.propose"),
        ("mendline", "fix.reject"),
    ]
    assert trail[1][3]["rejected_reason"] == "the finding has a risk: shell_command"
    with pytest.raises(IllegalTransition, match=r"the fix policy denies it \(.*shell_command\)"):
        await world.fixes.approve(ALICE, fix.id)
    assert await world.fixes.claim("w", 60, 10) == []


async def test_auto_fixes_are_claimed_without_a_person_and_people_apply_one_by_hand(
    world: World,
) -> None:
    auto = await world.fixes.propose(SYSTEM_ACTOR, await world.finding(1), AUTO)
    asked = await world.fixes.propose(SYSTEM_ACTOR, await world.finding(2), ASK)
    [claimed] = await world.fixes.claim("w", 60, 10)
    assert (claimed.id, claimed.approvals) == (auto.id, ())
    applying = (await world.trail(f"fix:{auto.id}"))[1][3]
    assert (applying["verdict"], applying["reasons"]) == ("auto", AUTO.reasons)

    with pytest.raises(IllegalTransition, match=re.escape(ASK.reasons[0])):
        await world.fixes.claim_one(ALICE, "cli@alice", asked.id, 60)
    await world.fixes.approve(BOB, asked.id)
    mine = await world.fixes.claim_one(ALICE, "cli@alice", asked.id, 60)
    assert (mine.state, mine.owner) == ("applying", "cli@alice")
    with pytest.raises(IllegalTransition, match="is being applied by cli@alice"):
        await world.fixes.claim_one(BOB, "cli@bob", asked.id, 60)
    done = await world.fixes.finish_applied("cli@alice", asked.id, DELIVERY, PASSED, actor=ALICE)
    assert done.done
    assert [(a, act) for a, act, _, _ in await world.trail(f"fix:{asked.id}")][-2:] == [
        ("alice", "fix.apply"),
        ("alice", "fix.applied"),
    ]


async def test_two_workers_claiming_the_same_fix_at_once_one_gets_it(world: World) -> None:
    fix = await world.fixes.propose(SYSTEM_ACTOR, await world.finding(1), AUTO)
    got = await asyncio.gather(world.fixes.claim("a", 60, 5), world.fixes.claim("b", 60, 5))
    assert sorted(len(claims) for claims in got) == [0, 1]
    winner = "a" if got[0] else "b"
    assert (await world.fixes.get(fix.id)).owner == winner

    other = await world.fixes.propose(SYSTEM_ACTOR, await world.finding(2), AUTO)
    results = await asyncio.gather(
        world.fixes.claim_one(ALICE, "x", other.id, 60),
        world.fixes.claim_one(BOB, "y", other.id, 60),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["IllegalTransition", "StoredFix"]
    assert len([r for _, r, _, _ in await world.trail(f"fix:{other.id}")]) == 2


async def test_a_lease_that_ran_out_is_taken_over_and_the_old_owner_cannot_finish(
    world: World,
) -> None:
    fix = await world.fixes.propose(SYSTEM_ACTOR, await world.finding(1), AUTO)
    await world.fixes.claim("a", 60, 5)
    assert await world.fixes.claim("b", 60, 5) == []  # a's lease runs
    await world.expire(fix.id)  # a was killed mid-apply
    [taken] = await world.fixes.claim("b", 60, 5)
    assert (taken.owner, taken.attempts) == ("b", 2)
    assert await world.fixes.renew("a", [fix.id], 60) == []
    assert await world.fixes.renew("b", [fix.id], 60) == [fix.id]
    stale = await world.fixes.finish_applied("a", fix.id, DELIVERY, PASSED)
    assert (stale.done, stale.reason) == (
        False,
        f"fix {fix.id} was taken over by b: a's lease ran out",
    )
    assert stale.fix == await world.fixes.get(fix.id)
    failed = await world.fixes.finish_failed("b", fix.id, "pytest failed", FAILED)
    assert (failed.done, failed.fix.state, failed.fix.error, failed.fix.verification) == (
        True,
        "failed",
        "pytest failed",
        FAILED,
    )
    late = await world.fixes.finish_applied("b", fix.id, DELIVERY, PASSED)
    assert (late.done, late.reason) == (False, f"fix {fix.id} is failed now, not applying")
    trail = await world.trail(f"fix:{fix.id}")
    assert [(a, act) for a, act, _, _ in trail] == [
        ("mendline", "fix.propose"),
        ("mendline", "fix.apply"),
        ("mendline", "fix.apply"),
        ("mendline", "fix.fail"),
    ]
    assert (trail[2][2]["owner"], trail[2][3]["owner"], trail[2][3]["attempts"]) == ("a", "b", 2)
    with pytest.raises(ValueError, match="finish_failed"):
        await world.fixes.finish_applied("b", fix.id, DELIVERY, FAILED)


async def test_a_fix_whose_appliers_keep_dying_is_given_up(world: World) -> None:
    fix = await world.fixes.propose(SYSTEM_ACTOR, await world.finding(1), AUTO)
    for attempt in (1, 2, 3):
        [claimed] = await world.fixes.claim(f"w{attempt}", 60, 5, max_attempts=3)
        assert claimed.attempts == attempt
        await world.expire(fix.id)
    assert await world.fixes.claim("w4", 60, 5, max_attempts=3) == []
    given_up = await world.fixes.get(fix.id)
    assert (given_up.state, given_up.error) == ("failed", "gave up after 3 attempts")
    assert (await world.trail(f"fix:{fix.id}"))[-1][:2] == ("mendline", "fix.fail")


async def test_a_deployed_fix_regresses_on_an_event_of_its_release(world: World) -> None:
    fix_id = await world.ready(1)
    fix = await world.fixes.deployed(ALICE, fix_id, "1.1.0")
    assert await world.fixes.settle_deployed(3600) == []  # its window has not passed
    await world.event(1, "1.1.0")
    [regressed] = await world.fixes.settle_deployed(0)
    assert (regressed.id, regressed.state) == (fix_id, "regressed")
    assert regressed.error is not None and "of release 1.1.0" in regressed.error
    finding = await world.findings.get(fix.finding_id)
    assert finding.verdict == "wrong"
    assert finding.verdict_note == f"its fix {fix_id} regressed: {regressed.error}"
    assert [(a, act) for a, act, _, _ in await world.trail(f"finding:{fix.finding_id}")] == [
        ("mendline", "finding.mark")
    ]
    status = await world.fixes.pool.fetchval(
        "SELECT status FROM mendline.issues WHERE id = $1", fix.issue_id
    )
    assert status == "unresolved"
    rolled = await world.fixes.rollback(BOB, fix_id, REVERT)
    assert (rolled.state, rolled.rollback_delivery) == ("rolled_back", REVERT)
    assert (await world.audit.verify()).intact


async def test_a_later_release_counts_and_an_older_one_does_not(world: World) -> None:
    later = await world.ready(1)
    await world.fixes.deployed(ALICE, later, "2.0.0")
    await world.event(9, "2.0.0")  # another issue of the service: 2.0.0 is out
    await world.event(1, "2.1.0")  # the issue on a release first seen after it
    older = await world.ready(2)
    await world.fixes.deployed(ALICE, older, "2.0.0")
    await world.event(2, "1.0")  # an instance of the old release, still running
    settled = {fix.id: fix.state for fix in await world.fixes.settle_deployed(0)}
    assert settled == {later: "regressed", older: "verified"}


async def test_releases_after_are_the_services_releases_first_seen_after_applying(
    world: World,
) -> None:
    fix_id = await world.ready(1)  # its issue's event is on 1.0
    await world.event(2, "1.1")
    await world.event(3, "1.2")
    await world.event(1, "1.0")
    await world.event(4, "9.9", service="billing")
    assert await world.fixes.releases_after(fix_id) == ["1.1", "1.2"]
    pending = await world.fixes.propose(SYSTEM_ACTOR, await world.finding(5), ASK)
    assert await world.fixes.releases_after(pending.id) == []


async def test_fixes_are_listed_newest_first_by_state_issue_and_page(world: World) -> None:
    ids = [
        (await world.fixes.propose(SYSTEM_ACTOR, await world.finding(n), ASK)).id for n in (1, 2, 3)
    ]
    await world.fixes.reject(ALICE, ids[1], "no")
    assert [f.id for f in await world.fixes.list()] == ids[::-1]
    assert [f.id for f in await world.fixes.list(state="rejected")] == [ids[1]]
    first = await world.fixes.get(ids[0])
    assert await world.fixes.list(issue_id=first.issue_id) == [first]
    assert [f.id for f in await world.fixes.list(before_id=ids[2], limit=1)] == [ids[1]]
    assert first.branch == f"mendline/fix-{first.issue_id}-{first.id}"


DAY = datetime(2026, 3, 1, tzinfo=UTC)


async def _at(world: World, sql: str, *args: object) -> None:
    await world.fixes.pool.execute(sql, *args)


# The times a fix row may have, in the order of the insert's parameters $4 on.
_TIMES = [
    "created",
    "approved",
    "applied",
    "deployed",
    "verified",
    "regressed",
    "failed",
    "rolled_back",
]


async def _fix_row(
    world: World, finding_id: int, verdict: str, state: str, **times: datetime
) -> int:
    """A fix row as it stands after its life (the views read only the table)."""
    fix_id = await world.fixes.pool.fetchval(
        """INSERT INTO mendline.fix_jobs (finding_id, issue_id, state, patch, decision,
               requested_by, requested_auth, created_at, approved_at, applied_at,
               deployed_at, verified_at, regressed_at, failed_at, rolled_back_at)
           SELECT id, issue_id, $2, fix_patch, jsonb_build_object('verdict', $3::text),
                  'mendline', 'system', $4, $5, $6, $7, $8, $9, $10, $11
           FROM mendline.findings WHERE id = $1 RETURNING id""",
        finding_id,
        state,
        verdict,
        *(times.get(name) for name in _TIMES),
    )
    return int(fix_id)


async def test_the_views_figures_on_a_known_data_set(world: World) -> None:
    h = timedelta(hours=1)
    f = [await world.finding(n) for n in (1, 2, 3, 4)]
    issues = [(await world.findings.get(x)).issue_id for x in f]
    first_seen = [DAY, DAY, DAY - 24 * h, DAY]
    resolved = [DAY + 10 * h, DAY + 2 * h, DAY + 36 * h, DAY + 3 * h]
    statuses = ["resolved", "resolved", "resolved", "unresolved"]
    for issue_id, seen, at, status in zip(issues, first_seen, resolved, statuses, strict=True):
        await _at(
            world,
            """UPDATE mendline.issues SET first_seen = $2, resolved_at = $3, status = $4
               WHERE id = $1""",
            issue_id,
            seen,
            at,
            status,
        )
    automatic = await _fix_row(
        world, f[0], "auto", "verified", created=DAY + h, applied=DAY + 70 * h / 60,
        deployed=DAY + 2 * h, verified=DAY + 5 * h,
    )  # fmt: skip
    approved = await _fix_row(
        world, f[1], "approval", "rolled_back", created=DAY + h / 2, approved=DAY + h,
        applied=DAY + 1.5 * h, deployed=DAY + 2 * h, regressed=DAY + 3 * h,
        rolled_back=DAY + 25 * h,
    )  # fmt: skip
    await _fix_row(
        world, f[2], "approval", "failed", created=DAY, approved=DAY + h,
        failed=DAY + 26 * h,
    )  # fmt: skip
    await _fix_row(world, f[3], "auto", "proposed", created=DAY)
    await _at(
        world, "INSERT INTO mendline.fix_approvals (fix_id, approver) VALUES ($1, 'bob')", approved
    )

    rows = await world.fixes.pool.fetch(
        """SELECT id, state, automatic, approvals, time_to_approve, time_to_apply,
                  time_to_deploy, time_to_verify, time_to_fix
           FROM mendline.fixes WHERE id = ANY($1::bigint[]) ORDER BY id""",
        [automatic, approved],
    )
    assert [tuple(r) for r in rows] == [
        (automatic, "verified", True, 0, None, 10 * h / 60, h, 4 * h, 5 * h),
        (approved, "rolled_back", False, 1, h / 2, h, 1.5 * h, None, None),
    ]
    daily = await world.fixes.pool.fetch(
        """SELECT day, verified, regressed, failed, rolled_back, automatic, approved,
                  success_rate FROM mendline.fix_outcomes_daily ORDER BY day"""
    )
    assert [tuple(r) for r in daily] == [
        (DAY.date(), 1, 1, 0, 0, 1, 1, 0.5),
        ((DAY + 24 * h).date(), 0, 0, 1, 1, 0, 1, 0.0),
    ]
    recovery = await world.fixes.pool.fetch(
        """SELECT day, resolved, resolved_by_fixes, mttr_median, mttr_p90
           FROM mendline.recovery_daily ORDER BY day"""
    )
    assert [tuple(r) for r in recovery] == [
        (DAY.date(), 2, 1, 6 * h, 2 * h + 0.9 * 8 * h),
        ((DAY + 24 * h).date(), 1, 0, 60 * h, 60 * h),
    ]


async def test_finding_accuracy_is_per_analyser_and_counts_a_cached_finding_once(
    world: World,
) -> None:
    ids = [await world.finding(n) for n in (1, 2, 3, 4)]
    llm = await world.finding(5, analyser="llm", model="gpt")
    issue_id = (await world.findings.get(ids[1])).issue_id
    cached = await world.findings.save(
        (await world.findings.get(ids[1])).finding,
        issue_id=issue_id,
        cache_key="2@1.0",
        cached_from=ids[1],
    )
    verdicts = [(ids[0], "right"), (ids[1], "wrong"), (ids[3], "wrong"), (cached, "wrong")]
    for finding_id, verdict in [*verdicts, (llm, "right")]:
        await _at(
            world, "UPDATE mendline.findings SET verdict = $2 WHERE id = $1", finding_id, verdict
        )
    rows = await world.fixes.pool.fetch(
        """SELECT analyser, findings, judged, marked_right, marked_wrong, false_positive_rate
           FROM mendline.finding_accuracy ORDER BY analyser"""
    )
    assert [tuple(r) for r in rows] == [
        ("heuristic", 4, 3, 1, 2, pytest.approx(2 / 3)),
        ("llm", 1, 1, 1, 0, 0.0),
    ]


async def test_the_findings_to_propose_and_the_automatic_fixes_of_the_last_hour(
    world: World,
) -> None:
    first = await world.finding(1)
    without_patch = await world.finding(2, patch=None)
    wrong = await world.finding(3)
    await world.findings.pool.execute(
        "UPDATE mendline.findings SET verdict = 'wrong' WHERE id = $1", wrong
    )
    older = await world.finding(4, release="1.0")
    newer = await world.finding(4, release="2.0")  # the same issue, a newer finding
    assert await world.fixes.unproposed() == [first, newer]
    assert without_patch not in await world.fixes.unproposed() and older < newer

    denied = await world.fixes.propose(SYSTEM_ACTOR, first, DENY)
    assert denied.state == "rejected"
    assert await world.fixes.unproposed() == [newer]  # a final fix is not proposed again
    await world.fixes.propose(SYSTEM_ACTOR, newer, AUTO)
    assert await world.fixes.unproposed() == []

    assert await world.fixes.automatic_since("shop", 3600) == 0
    [claimed] = await world.fixes.claim("w", 60, 1)
    assert claimed.finding_id == newer
    assert await world.fixes.automatic_since("shop", 3600) == 1
    assert await world.fixes.automatic_since("other", 3600) == 0
    await world.ready(5, ASK)  # applied after approval: not automatic
    assert await world.fixes.automatic_since("shop", 3600) == 1


async def test_a_findings_open_fix_its_issues_title_and_a_fix_as_json(world: World) -> None:
    finding_id = await world.finding(1)
    assert await world.fixes.open_fix(finding_id) is None
    fix = await world.fixes.propose(ALICE, finding_id, ASK)
    assert await world.fixes.open_fix(finding_id) == fix
    title = await world.fixes.issue_title(fix.issue_id)
    assert title is not None and title.startswith("ValueError: ")
    assert await world.fixes.issue_title(999) is None

    shown = fix.as_json()
    assert (shown["id"], shown["state"], shown["branch"]) == (fix.id, "proposed", fix.branch)
    assert shown["created_at"] == fix.created_at.isoformat() and shown["approvals"] == []
    assert shown["decision"] == ASK.model_dump(mode="json", exclude={"mapped_patch"})
    assert shown["mapped_patch"] == MAPPED and shown["delivery"] is None

    await world.fixes.reject(ALICE, fix.id, "not this way")
    assert await world.fixes.open_fix(finding_id) is None


async def test_a_changed_fix_policy_is_noted_once_in_the_audit_trail(world: World) -> None:
    assert await world.fixes.record_policy("a" * 64, "/etc/mendline/fixes.toml")
    assert not await world.fixes.record_policy("a" * 64, "/etc/mendline/fixes.toml")
    started = await asyncio.gather(
        *(world.fixes.record_policy("b" * 64, "/etc/mendline/fixes.toml") for _ in range(3))
    )
    assert sorted(started) == [False, False, True]  # workers starting at once: one row
    assert [
        (actor, action, before and before["sha256"], after["sha256"])
        for actor, action, before, after in await world.trail("policy:fixes")
    ] == [
        ("mendline", "policy.change", None, "a" * 64),
        ("mendline", "policy.change", "a" * 64, "b" * 64),
    ]
    assert (await world.audit.verify()).intact


async def test_the_events_that_made_the_issue_do_not_regress_its_fix(world: World) -> None:
    fix_id = await world.ready(1)  # its issue was seen on 1.0 before the fix was applied
    await world.fixes.deployed(ALICE, fix_id, "1.0")
    [settled] = await world.fixes.settle_deployed(0)
    assert (settled.id, settled.state) == (fix_id, "verified")


async def test_a_fix_deployed_in_a_release_never_seen_is_not_verified(world: World) -> None:
    fix_id = await world.ready(1)
    await world.fixes.deployed(ALICE, fix_id, "9.9")  # nothing has come from 9.9 yet
    assert await world.fixes.settle_deployed(0) == []
    assert (await world.fixes.get(fix_id)).state == "deployed"
    await world.event(2, "9.9")  # another issue of the service, on 9.9: it runs
    [settled] = await world.fixes.settle_deployed(0)
    assert (settled.id, settled.state) == (fix_id, "verified")
