"""The remediation store on the real PostgreSQL with the real audit trail: a run from its
request to its escalation, each change audited in its transaction and the chain intact; only
an approver approves; of concurrent starts on one target exactly one wins; a dead worker's
slot is taken over; recent runs are what a cooldown is decided on; an approved run waits for
its guardrails; of workers asking for a run at once, one decides and the others see it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from mendline.schemas.errors import IllegalTransition, PermissionDenied, RemediationNotFound
from mendline.schemas.fixpolicy import Remediation
from mendline.schemas.people import SYSTEM_ACTOR, Actor, AuditEntry
from mendline.schemas.redaction import FILTERED
from mendline.schemas.remediation import RemediationOutcome, RemediationRun
from mendline.schemas.settings import load_settings
from mendline.sinks.postgres import (
    AUDIT_OUTPUT_LIMIT,
    AuditStore,
    RemediationStore,
    append_audit,
    connect_audit,
    connect_remediations,
)
from mendline.sinks.remediation import run_command
from tests.db_helpers import query

pytestmark = pytest.mark.integration
ANN = Actor(name="ann", role="approver", auth="token", user_id=2, token_id="mlt_0a0b0c0d")
OWNER = "monitor test:1"


@pytest.fixture
async def store(fresh_db_url: str) -> AsyncIterator[RemediationStore]:
    settings = load_settings(database_url=fresh_db_url)
    remediations = await connect_remediations(settings, origin="monitor test:1", size=8)
    try:
        yield remediations
    finally:
        await remediations.close()


@pytest.fixture
async def audit(fresh_db_url: str, store: RemediationStore) -> AsyncIterator[AuditStore]:
    trail = await connect_audit(load_settings(database_url=fresh_db_url))
    try:
        yield trail
    finally:
        await trail.close()


def outcome(result: str = "ok", output: str = "restarted\n") -> RemediationOutcome:
    return RemediationOutcome.model_validate(
        {
            "result": result,
            "kind": "command",
            "ran": "systemctl restart api",
            "detail": "exited with status 0",
            "exit_code": 0,
            "output": output,
            "seconds": 0.5,
        }
    )


async def approved(
    store: RemediationStore, target: str = "check:api", name: str = "restart"
) -> RemediationRun:
    return await store.request(
        SYSTEM_ACTOR, name, target, f"{target} is down", ["policy lets it run"], False
    )


async def test_a_run_from_request_to_escalation_each_change_audited_and_chained(
    store: RemediationStore, audit: AuditStore, fresh_db_url: str
) -> None:
    requested = await store.request(
        SYSTEM_ACTOR, "restart-api", "check:api", "check api is down", ["needs approval"], True
    )
    assert (requested.state, requested.requested_by, requested.approved_by) == (
        "requested",
        "mendline",
        None,
    )
    approval = await store.approve(ANN, requested.id)
    assert (approval.state, approval.approved_by) == ("approved", "ann")
    started = await store.start(requested.id, OWNER, lease=60)
    assert started is not None and (started.state, started.owner) == ("running", OWNER)
    assert await store.running("check:api") == started

    ran = await run_command(["echo", "api restarted"], timeout=30)
    finished = await store.finish(requested.id, ran)
    assert finished.state == "succeeded" and finished.outcome == ran
    assert await store.running("check:api") is None
    not_helped = await store.record_verification(requested.id, helped=False)
    assert (not_helped.state, not_helped.verified) == ("not_helped", False)
    escalated = await store.record_escalation(requested.id)
    assert escalated.escalated_at is not None
    assert await store.record_escalation(requested.id) == escalated  # once: no second row
    assert await store.get(requested.id) == escalated
    assert await store.list() == [escalated]

    rows = list(reversed(await audit.list(target=f"remediation:{requested.id}")))
    assert [(r.action, r.actor.name, r.origin) for r in rows] == [
        ("remediation.request", "mendline", "monitor test:1"),
        ("remediation.approve", "ann", "monitor test:1"),
        ("remediation.start", "mendline", "monitor test:1"),
        ("remediation.finish", "mendline", "monitor test:1"),
        ("remediation.verify", "mendline", "monitor test:1"),
        ("remediation.escalate", "mendline", "monitor test:1"),
    ]
    assert rows[0].after is not None and rows[0].after["reasons"] == ["needs approval"]
    assert rows[1].actor.token_id == "mlt_0a0b0c0d"
    finish = rows[3].after
    assert finish is not None and finish["output"] == "api restarted\n"
    assert finish["outcome"]["result"] == "ok" and "output" not in finish["outcome"]
    check = await audit.verify()
    assert (check.intact, check.rows) == (True, 6)

    (shown,) = await query(fresh_db_url, "SELECT * FROM mendline.remediations")
    assert (shown["state"], shown["result"], shown["exit_code"], shown["verified"]) == (
        "not_helped",
        "ok",
        0,
        False,
    )
    assert shown["output"] == "api restarted\n" and shown["took"] >= timedelta(0)


async def test_the_audit_row_keeps_a_trimmed_output_and_the_run_all_of_it(
    store: RemediationStore, audit: AuditStore
) -> None:
    run = await approved(store)
    await store.start(run.id, OWNER)
    long = "".join(f"line {n:06d}\n" for n in range(20000))
    finished = await store.finish(run.id, outcome("failed", long))
    assert finished.state == "failed" and finished.outcome is not None
    assert finished.outcome.output == long
    (row,) = await audit.list(action="remediation.finish")
    assert row.after is not None
    kept = row.after["output"]
    assert kept.startswith("line 000000\n") and kept.endswith("line 019999\n")
    assert AUDIT_OUTPUT_LIMIT < len(kept) < AUDIT_OUTPUT_LIMIT + 100


@pytest.mark.parametrize("role", ["viewer", "responder"])
async def test_only_an_approver_approves(
    store: RemediationStore, audit: AuditStore, role: str
) -> None:
    run = await store.request(SYSTEM_ACTOR, "restart", "check:api", "down", [], True)
    someone = Actor(name="eve", role=role, auth="token")  # type: ignore[arg-type]
    for change in (
        store.approve(someone, run.id),
        store.decline(someone, run.id, "no"),
        store.request(someone, "restart", "check:api", "by hand", [], False),
        store.refuse(someone, "restart", "check:api", "by hand", []),
    ):
        with pytest.raises(PermissionDenied, match=rf"eve \({role}\) may not remediation.run"):
            await change
    assert (await store.get(run.id)).state == "requested"
    assert [r.action for r in await audit.list()] == ["remediation.request"]


async def test_of_concurrent_starts_on_one_target_exactly_one_wins(
    store: RemediationStore,
) -> None:
    runs = [await approved(store, name=f"restart-{n}") for n in range(6)]
    other = await approved(store, target="check:db")
    started = await asyncio.gather(*(store.start(r.id, f"worker {r.id}") for r in runs))
    winners = [s for s in started if s is not None]
    assert len(winners) == 1 and await store.running("check:api") == winners[0]
    losers = [r.id for r, s in zip(runs, started, strict=True) if s is None]
    assert {(await store.get(i)).state for i in losers} == {"approved"}  # left as they were
    assert await store.start(other.id, OWNER) is not None  # another target: its own slot

    # The same run started by two workers at once: one of them starts it.
    again = await asyncio.gather(store.start(losers[0], "a"), store.start(losers[0], "b"))
    assert again == [None, None]  # the target is still held by the winner
    await store.finish(winners[0].id, outcome())
    again = await asyncio.gather(store.start(losers[0], "a"), store.start(losers[0], "b"))
    assert sorted(s is None for s in again) == [False, True]
    assert (await store.get(losers[0])).state == "running"


async def test_a_dead_worker_s_slot_is_taken_over_once_its_lease_ran_out(
    store: RemediationStore, audit: AuditStore
) -> None:
    first, second = await approved(store), await approved(store)
    # A lease of no time: it has run out by the next transaction.
    assert await store.start(first.id, "monitor gone:1", lease=0) is not None
    assert await store.start(second.id, OWNER) is not None
    given_up = await store.get(first.id)
    assert given_up.state == "failed" and given_up.finished_at is not None
    assert given_up.reasons[-1].startswith("abandoned: its worker monitor gone:1 did not finish")
    with pytest.raises(IllegalTransition, match="that is failed cannot become succeeded"):
        await store.finish(first.id, outcome())
    actions = [r.action for r in await audit.list(target=f"remediation:{first.id}")]
    assert actions[0] == "remediation.abandon"
    assert (await audit.verify()).intact


async def test_recent_runs_are_what_a_cooldown_is_decided_on(store: RemediationStore) -> None:
    done = await approved(store)
    await store.start(done.id, OWNER)
    done = await store.finish(done.id, outcome())
    assert done.finished_at is not None
    waiting = await store.request(SYSTEM_ACTOR, "restart", "check:api", "down", [], True)
    await approved(store, target="check:db")
    await approved(store, name="clear-cache")
    refused = await store.refuse(SYSTEM_ACTOR, "restart", "check:api", "down", ["cooldown"])

    since = done.finished_at - timedelta(minutes=10)
    recent = await store.recent_runs("restart", "check:api", since)
    assert [r.id for r in recent] == [refused.id, waiting.id, done.id]  # newest first
    # A cooldown of 10 minutes: the last run that ran finished within it.
    ran = [r for r in recent if r.started_at is not None]
    assert ran == [done] and ran[0].finished_at is not None and ran[0].finished_at >= since

    later = done.finished_at + timedelta(hours=1)
    assert [r.id for r in await store.recent_runs("restart", "check:api", later)] == [waiting.id]
    assert refused.state == "refused" and refused.reasons == ["cooldown"]


async def test_wrong_moves_and_unknown_runs_are_clear_errors(store: RemediationStore) -> None:
    run = await store.request(SYSTEM_ACTOR, "restart", "check:api", "down", [], True)
    with pytest.raises(IllegalTransition, match="that is requested cannot become running"):
        await store.start(run.id, OWNER)
    with pytest.raises(IllegalTransition, match="that is requested cannot become succeeded"):
        await store.finish(run.id, outcome())
    with pytest.raises(IllegalTransition, match="that is requested cannot be verified"):
        await store.record_verification(run.id, helped=True)
    declined = await store.decline(ANN, run.id, "not at peak time")
    assert declined.state == "refused" and declined.reasons == ["declined by ann: not at peak time"]
    with pytest.raises(IllegalTransition, match="that is refused cannot become approved"):
        await store.approve(ANN, run.id)
    for call in (
        store.get(999),
        store.approve(ANN, 999),
        store.start(999, OWNER),
        store.finish(999, outcome()),
    ):
        with pytest.raises(RemediationNotFound, match="there is no remediation run 999"):
            await call

    dry = await approved(store)
    await store.start(dry.id, OWNER)
    dry_outcome = await run_command(["true"], 30, dry_run=True)
    assert (await store.finish(dry.id, dry_outcome)).state == "dry_run"
    helped = await approved(store)
    await store.start(helped.id, OWNER)
    await store.finish(helped.id, outcome())
    verified = await store.record_verification(helped.id, helped=True)
    assert (verified.state, verified.verified) == ("succeeded", True)
    with pytest.raises(IllegalTransition, match="verified already"):
        await store.record_verification(helped.id, helped=False)


async def test_a_change_whose_audit_row_fails_is_not_made(fresh_db_url: str) -> None:
    async def fail_on_approve(conn: asyncpg.Connection[Any], entry: AuditEntry) -> None:
        await append_audit(conn, entry)
        if entry.action == "remediation.approve":
            raise RuntimeError("the audit trail failed")

    settings = load_settings(database_url=fresh_db_url)
    store = await connect_remediations(settings, audit=fail_on_approve)
    try:
        run = await store.request(SYSTEM_ACTOR, "restart", "check:api", "down", [], True)
        with pytest.raises(RuntimeError):
            await store.approve(ANN, run.id)
        assert (await store.get(run.id)).state == "requested"
    finally:
        await store.close()
    rows = await query(fresh_db_url, "SELECT action FROM mendline.audit_log")
    assert [r["action"] for r in rows] == ["remediation.request"]


async def test_secrets_never_reach_the_run_s_row_through_the_runner(
    store: RemediationStore, fresh_db_url: str
) -> None:
    run = await approved(store)
    await store.start(run.id, OWNER)
    printed = await run_command(["echo", "password=hunter2hunter2"], timeout=30)
    await store.finish(run.id, printed)
    rows = await query(fresh_db_url, "SELECT output FROM mendline.remediation_runs")
    assert rows[0]["output"] == f"password={FILTERED}\n"
    trail = await query(fresh_db_url, "SELECT after::text AS after FROM mendline.audit_log")
    assert not [r for r in trail if "hunter2" in r["after"]]


def remediation(**fields: object) -> Remediation:
    return Remediation.model_validate(
        {
            "name": "restart",
            "when": {"check": "api"},
            "command": ["systemctl", "restart", "api"],
            "target": "check:api",
            **fields,
        }
    )


async def test_an_approved_run_waits_for_its_guardrails_to_start(store: RemediationStore) -> None:
    ran = await approved(store)
    await store.start(ran.id, OWNER)
    ran = await store.finish(ran.id, outcome())
    waiting = await store.request(SYSTEM_ACTOR, "restart", "check:api", "down", [], True)
    waiting = await store.approve(ANN, waiting.id)
    assert ran.started_at is not None
    cooldown = remediation(cooldown="10m")
    assert await store.start(waiting.id, OWNER, remediation=cooldown) is None
    assert (await store.get(waiting.id)).state == "approved"
    later = ran.started_at + timedelta(minutes=11)
    started = await store.start(waiting.id, OWNER, remediation=cooldown, now=later)
    assert started is not None and started.state == "running"


async def test_of_workers_asking_at_once_one_decides_and_the_others_see_it(
    store: RemediationStore, audit: AuditStore
) -> None:
    auto = remediation(requires_approval=False)
    down_since = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    asked = await asyncio.gather(
        *(
            store.ask(SYSTEM_ACTOR, auto, "check:api", down_since, "api is down", f"w{n}", lease=60)
            for n in range(5)
        )
    )
    assert sorted(a.step for a in asked) == ["none"] * 4 + ["start"]
    (winner,) = [a for a in asked if a.started]
    assert winner.run is not None and winner.run.subject == "check:api"
    assert (winner.run.verdict, winner.run.episode_at) == ("run", down_since)
    assert all("is running" in a.why for a in asked if a is not winner)
    assert [r.id for r in await store.list()] == [winner.run.id]
    actions = [r.action for r in reversed(await audit.list())]
    assert actions == ["remediation.request", "remediation.start"]
    # Escalated: a remediation_failed trigger would go on the check's issue; without one,
    # it is recorded, with no trigger.
    await store.finish(winner.run.id, outcome("failed"))
    escalated = await store.record_escalation(winner.run.id)
    assert escalated.escalated_at is not None
    (row,) = await audit.list(action="remediation.escalate")
    assert row.after == {"escalated": True, "issue_id": None, "trigger_id": None}
