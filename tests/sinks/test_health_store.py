"""The health checks' store against a real PostgreSQL: the registry synced from the file, slots
claimed once across monitors, leases that run out, one result per slot, the state's
compare-and-set, issues and triggers on transitions, rollups, partitions and the views."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pydantic import TypeAdapter

from mendline.analyzers.health import (
    RELATIVE_ERROR,
    bucket_of,
    histogram,
    judge,
    merge_histograms,
    quantile,
)
from mendline.devstack import EmbeddedPostgres
from mendline.schemas.alert import ENDS_INCIDENT as ALERT_KINDS_ENDING_INCIDENTS
from mendline.schemas.checks import Check, CheckResult, CheckState
from mendline.schemas.errors import ConfigError, NotFound
from mendline.sinks.postgres import (
    TRIGGERS_CHANNEL,
    AlertStore,
    Delivered,
    HealthStore,
    RecordOutcome,
    migrated_pool,
)
from mendline.sinks.routing import load_routes

pytestmark = pytest.mark.integration
CHECK: TypeAdapter[Check] = TypeAdapter(Check)
# Yesterday at noon: slots in the past, so the database's clock finds them due.
README = Path(__file__).resolve().parents[2] / "README.md"
T0 = (datetime.now(UTC) - timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0)


def check(name: str = "payments-api", **fields: Any) -> Check:
    definition = {"kind": "http", "url": f"https://{name}.example.com/health", "interval": 60}
    return CHECK.validate_python({"name": name, **definition, **fields})


def result(
    c: Check,
    at: datetime,
    success: bool,
    *,
    response: float = 0.05,
    status: int | None = None,
    error_kind: str | None = None,
) -> CheckResult:
    observed = str(status or (200 if success else 503))
    return CheckResult.model_validate(
        {
            "check": c.name,
            "kind": c.kind,
            "scheduled_at": at,
            "started_at": at,
            "duration": response,
            "success": success,
            "conditions": [
                {"condition": "[STATUS] == 200", "success": success, "observed": observed}
            ],
            "timings": {"total": response},
            "error": "no answer" if error_kind else None,
            "error_kind": error_kind,
        }
    )


@pytest.fixture
async def pool(fresh_db_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await migrated_pool(fresh_db_url, 4)
    yield pool
    await pool.close()


@pytest.fixture
async def store(pool: asyncpg.Pool) -> HealthStore:
    health = HealthStore(pool)
    await health.ensure_partitions()
    return health


async def run(
    store: HealthStore, c: Check, marks: str, start: datetime = T0, owner: str = "m1"
) -> list[RecordOutcome]:
    """Record results one interval apart: '+' success, '-' failure, 'm' failure in a
    maintenance window."""
    outcomes = []
    for i, mark in enumerate(marks):
        at = start + timedelta(seconds=i * c.interval)
        outcome = await store.record(
            result(c, at, mark == "+"), c, owner, in_maintenance=mark == "m"
        )
        outcomes.append(outcome)
    return outcomes


async def triggers(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return list(await pool.fetch("SELECT * FROM mendline.triggers ORDER BY id"))


# -- the registry ----------------------------------------------------------------------------


async def test_sync_keeps_unchanged_checks_and_retires_what_left_the_file(
    store: HealthStore, pool: asyncpg.Pool
) -> None:
    a, b = check("a"), check("b")
    first = await store.sync_checks([a, b], T0)
    assert first.added == ("a", "b")
    await run(store, a, "---")
    before = await pool.fetchrow("SELECT * FROM mendline.check_state WHERE check_name = 'a'")
    due_a = await pool.fetchval("SELECT next_due FROM mendline.check_schedule WHERE check_name='a'")
    b2, c = check("b", interval=120, failure_threshold=5), check("c")
    second = await store.sync_checks([a, b2, c], T0 + timedelta(hours=1))
    assert (second.unchanged, second.changed, second.rescheduled, second.added) == (
        ("a",),
        ("b",),
        ("b",),
        ("c",),
    )
    after = await pool.fetchrow("SELECT * FROM mendline.check_state WHERE check_name = 'a'")
    assert after == before and after["status"] == "down"
    assert (
        await pool.fetchval("SELECT next_due FROM mendline.check_schedule WHERE check_name='a'")
        == due_a
    )
    assert (
        await pool.fetchval("SELECT interval_seconds FROM mendline.checks WHERE name = 'b'") == 120
    )
    third = await store.sync_checks([b2], T0 + timedelta(hours=2))
    assert third.retired == ("a", "c")
    names = [r["name"] for r in await pool.fetch("SELECT name FROM mendline.check_status")]
    assert names == ["b"]
    claimed = await store.claim_due("m1", 30, 10, now=T0 + timedelta(days=1))
    assert [slot.check for slot in claimed] == ["b"]  # retired checks are not run
    fourth = await store.sync_checks([a, b2], T0 + timedelta(hours=3))
    assert fourth.restored == ("a",)
    restored = await pool.fetchrow("SELECT * FROM mendline.check_state WHERE check_name = 'a'")
    # Retired while down, it was let go (its issue resolved): it starts anew, history kept.
    assert restored["status"] == "unknown" and restored["failures"] == 0
    assert await pool.fetchval("SELECT count(*) FROM mendline.check_results_raw") == 3


async def test_retiring_a_down_check_resolves_its_issue_with_a_recovery_trigger(
    store: HealthStore, pool: asyncpg.Pool
) -> None:
    down, up = check("down", tags={"team": "pay"}), check("up")
    await store.sync_checks([down, up], T0)
    await run(store, down, "---")
    await run(store, up, "+++")
    retired_at = T0 + timedelta(hours=1)
    assert (await store.sync_checks([], retired_at)).retired == ("down", "up")
    rows = await triggers(pool)
    assert [(r["kind"], json.loads(r["tags"])["check"]) for r in rows] == [
        ("health_down", "down"),
        ("health_recovered", "down"),  # none for the check that was up
    ]
    told = rows[1]
    assert told["kind"] in ALERT_KINDS_ENDING_INCIDENTS
    assert told["issue_id"] == rows[0]["issue_id"] and told["environment"] == "production"
    assert json.loads(told["tags"]) == {"team": "pay", "check": "down", "check_kind": "http"}
    details = json.loads(told["details"])
    assert details["reasons"] == ["check retired: no longer in the file"]
    assert details["scheduled_at"] == retired_at.isoformat()
    issue = await pool.fetchrow("SELECT * FROM mendline.issues WHERE id = $1", told["issue_id"])
    assert issue["status"] == "resolved" and issue["resolved_at"] is not None
    audited = await pool.fetch("SELECT actor_name, action, target, after FROM mendline.audit_log")
    assert [(r["actor_name"], r["action"], r["target"]) for r in audited] == [
        ("mendline", "issue.resolve", f"issue:{issue['id']}")
    ]
    assert json.loads(audited[0]["after"])["reason"] == "check retired: no longer in the file"
    # Syncing again tells nothing more; back in the file and failing, it is down anew.
    await store.sync_checks([], retired_at + timedelta(minutes=1))
    assert len(await triggers(pool)) == 2
    await store.sync_checks([down], retired_at + timedelta(minutes=2))
    await run(store, down, "---", start=retired_at + timedelta(minutes=3))
    assert [r["kind"] for r in await triggers(pool)][2:] == ["health_down"]
    issue = await pool.fetchrow("SELECT * FROM mendline.issues WHERE id = $1", told["issue_id"])
    assert issue["status"] == "unresolved"


async def test_a_down_check_moved_to_another_environment_resolves_the_old_issue(
    store: HealthStore, pool: asyncpg.Pool
) -> None:
    c = check()
    await store.sync_checks([c], T0)
    await run(store, c, "---")
    moved = check(environment="staging")
    assert (await store.sync_checks([moved], T0 + timedelta(hours=1))).changed == (c.name,)
    rows = await triggers(pool)
    assert [(r["kind"], r["environment"]) for r in rows] == [
        ("health_down", "production"),
        ("health_recovered", "production"),
    ]
    assert json.loads(rows[1]["details"])["reasons"] == [
        "check moved from environment 'production' to 'staging'"
    ]
    await run(store, moved, "---", start=T0 + timedelta(hours=2))
    issues = await pool.fetch("SELECT primary_hash, status FROM mendline.issues ORDER BY id")
    assert [(i["primary_hash"], i["status"]) for i in issues] == [
        (f"health:{c.name}:production", "resolved"),
        (f"health:{c.name}:staging", "unresolved"),
    ]


# A pager told of flapping only: what ends its incident is routed to it as it was told.
FLAPPING_PAGES = """
[receivers.pager]
type = "pagerduty"
routing_key_env = "TEST_PD_KEY"

[[routes]]
match = { kind = "health_flapping" }
receivers = ["pager"]
group_wait = "0s"
"""


async def test_retiring_a_flapping_check_resolves_its_incident_and_forgets_the_flapping(
    store: HealthStore, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    c = check(failure_threshold=1, success_threshold=1, flap_threshold=3, flap_window="1h")
    await store.sync_checks([c], T0)
    await run(store, c, "+-+-")
    assert [r["kind"] for r in await triggers(pool)] == [
        "health_down",
        "health_recovered",
        "health_flapping",
    ]
    (tmp_path / "routes.toml").write_text(FLAPPING_PAGES)
    table = load_routes(tmp_path / "routes.toml")
    alerts = AlertStore(pool)
    await alerts.route_pending(table)
    paged = await alerts.claim_due("w1", 30)
    assert [(d.receiver, d.alert.kind) for d in paged] == [("pager", "health_flapping")]
    await alerts.mark([Delivered(tuple(paged), {"dedup_key": "pd-1"})], "w1")
    issue_id = paged[0].issue_id
    assert await pool.fetchval("SELECT status FROM mendline.issues WHERE id = $1", issue_id) == (
        "resolved"  # its recovery resolved it; flapping did not reopen it
    )

    retired_at = T0 + timedelta(hours=1)
    assert (await store.sync_checks([], retired_at)).retired == (c.name,)
    rows = await triggers(pool)
    assert [r["kind"] for r in rows][3:] == ["health_recovered"]
    assert rows[3]["issue_id"] == issue_id
    details = json.loads(rows[3]["details"])
    assert details["reasons"] == ["check retired: no longer in the file"]
    state = await pool.fetchrow("SELECT * FROM mendline.check_state WHERE check_name = $1", c.name)
    assert (state["status"], state["flapping"], list(state["changes"])) == ("unknown", False, [])
    # The pager told of the flapping is told it is over: PagerDuty resolves the incident.
    await alerts.route_pending(table)
    ending = await alerts.claim_due("w1", 30)
    assert [(d.receiver, d.alert.kind, d.issue_id) for d in ending] == [
        ("pager", "health_recovered", issue_id)
    ]
    assert ending[0].alert.kind in ALERT_KINDS_ENDING_INCIDENTS
    # Back in the file soon after, it is not muted: going down is told at once.
    await store.sync_checks([c], retired_at + timedelta(minutes=1))
    back = await run(store, c, "+-", start=retired_at + timedelta(minutes=2))
    assert back[1].transition == "down"
    # Retired again while up and settled: nothing to let go.
    await run(store, c, "+", start=retired_at + timedelta(minutes=4))
    told = len(await triggers(pool))
    await store.sync_checks([], retired_at + timedelta(minutes=5))
    state = await pool.fetchrow("SELECT * FROM mendline.check_state WHERE check_name = $1", c.name)
    assert len(await triggers(pool)) == told and state["status"] == "up"


async def test_a_flapping_check_moved_to_another_environment_lets_the_old_one_go(
    store: HealthStore, pool: asyncpg.Pool
) -> None:
    c = check(failure_threshold=1, success_threshold=1, flap_threshold=3, flap_window="1h")
    await store.sync_checks([c], T0)
    await run(store, c, "+-+-+")  # flapping, up
    moved = check(
        environment="staging",
        failure_threshold=1,
        success_threshold=1,
        flap_threshold=3,
        flap_window="1h",
    )
    assert (await store.sync_checks([moved], T0 + timedelta(hours=1))).changed == (c.name,)
    rows = await triggers(pool)
    assert [(r["kind"], r["environment"]) for r in rows][3:] == [("health_recovered", "production")]
    state = await store.state(c.name)
    assert state is not None and (state.status, state.flapping, state.changes) == (
        "unknown",
        False,
        (),
    )


async def test_the_stored_definition_keeps_no_secret_of_a_url_or_bootstrap(
    store: HealthStore, pool: asyncpg.Pool
) -> None:
    api = check("api", url="https://bob:hunter22@api.internal/health?api_key=SEKRETKEY&v=2")
    kafka = CHECK.validate_python(
        {"name": "k", "kind": "kafka", "bootstrap": "svc:kpass1234@broker:9092,b2:9092"}
    )
    await store.sync_checks([api, kafka], T0)
    stored = {
        r["name"]: json.loads(r["definition"])
        for r in await pool.fetch("SELECT name, definition FROM mendline.checks")
    }
    assert (
        stored["api"]["url"] == "https://bob:[Filtered]@api.internal/health?api_key=[Filtered]&v=2"
    )
    assert stored["k"]["bootstrap"] == "svc:[Filtered]@broker:9092,b2:9092"
    everything = str(await pool.fetch("SELECT * FROM mendline.checks"))
    for secret in ("hunter22", "SEKRETKEY", "kpass1234"):
        assert secret not in everything
    # The rest is stored as written, and an unchanged check is still unchanged.
    assert stored["api"]["interval"] == 60 and stored["k"]["kind"] == "kafka"
    assert (await store.sync_checks([api, kafka], T0)).unchanged == ("api", "k")


async def test_new_checks_start_spread_within_their_interval(store: HealthStore) -> None:
    checks = [check(f"c{i}", interval=300) for i in range(20)]
    await store.sync_checks(checks, T0)
    slots = await store.claim_due("m1", 30, 100, now=T0 + timedelta(seconds=300))
    starts = {s.scheduled_at for s in slots}
    assert len(slots) == 20 and len(starts) == 20
    assert all(T0 < s <= T0 + timedelta(seconds=300) for s in starts)


async def test_heartbeats_are_registered_with_a_state_but_never_claimed(
    store: HealthStore,
) -> None:
    beat = CHECK.validate_python({"name": "nightly", "kind": "heartbeat", "every": "1h"})
    await store.sync_checks([beat], T0)
    assert await store.claim_due("m1", 30, 10, now=T0 + timedelta(days=2)) == []
    assert await store.heartbeat_judged_until("nightly") is None
    slot = T0 + timedelta(hours=1)
    missed = CheckResult(
        check="nightly",
        kind="heartbeat",
        scheduled_at=slot,
        started_at=slot,
        duration=0,
        success=False,
        error="no check-in by 13:05",
        error_kind="missed",
    )
    outcome = await store.record(missed, beat, "m1", in_maintenance=False)
    assert (outcome.transition, outcome.status) == ("down", "down")
    assert await store.heartbeat_judged_until("nightly") == slot


async def test_a_restored_heartbeat_is_judged_from_its_restore_not_its_retired_time(
    store: HealthStore,
) -> None:
    beat = CHECK.validate_python({"name": "daily", "kind": "heartbeat", "every": "1d"})
    other = CHECK.validate_python({"name": "hourly", "kind": "heartbeat", "every": "1h"})
    judged = datetime(2026, 11, 1, 3, tzinfo=UTC)
    await store.sync_checks([beat, other], judged - timedelta(days=1))
    await store.record(heartbeat(beat, judged), beat, "m1", in_maintenance=False)
    await store.record(heartbeat(other, judged), other, "m1", in_maintenance=False)
    await store.sync_checks([other], judged + timedelta(hours=2))  # daily retired
    restored_at = datetime(2026, 12, 5, 9, tzinfo=UTC)
    assert (await store.sync_checks([beat, other], restored_at)).restored == ("daily",)
    assert await store.heartbeat_judged_until("daily") == restored_at
    found = await store.heartbeats()
    assert found["daily"][1] == restored_at  # pruning keeps the check-ins judging needs
    # One never retired keeps its place; so does the restored one once judged past it.
    assert await store.heartbeat_judged_until("hourly") == judged
    assert found["hourly"][1] == judged
    later = restored_at + timedelta(days=1)
    await store.record(heartbeat(beat, later), beat, "m1", in_maintenance=False)
    assert await store.heartbeat_judged_until("daily") == later
    # Synced again unchanged, it is not restored anew.
    await store.sync_checks([beat, other], later + timedelta(hours=1))
    assert await store.heartbeat_judged_until("daily") == later


async def test_a_restored_heartbeat_never_judged_still_waits_for_its_first_run(
    store: HealthStore,
) -> None:
    beat = CHECK.validate_python({"name": "daily", "kind": "heartbeat", "every": "1d"})
    await store.sync_checks([beat], T0)
    await store.sync_checks([], T0 + timedelta(hours=1))
    await store.sync_checks([beat], T0 + timedelta(days=1))
    assert await store.heartbeat_judged_until("daily") is None
    assert (await store.heartbeats())["daily"][1] is None


async def test_a_result_of_an_unknown_check_is_refused_and_not_kept(
    store: HealthStore, pool: asyncpg.Pool
) -> None:
    c = check("ghost")
    with pytest.raises(NotFound):
        await store.record(result(c, T0, True), c, "m1", in_maintenance=False)
    assert await pool.fetchval("SELECT count(*) FROM mendline.check_results_raw") == 0


# -- the schedule -----------------------------------------------------------------------------


async def test_each_due_slot_is_claimed_once_by_two_monitors(fresh_db_url: str) -> None:
    pools = [await migrated_pool(fresh_db_url, 3) for _ in range(2)]
    try:
        stores = [HealthStore(p) for p in pools]
        await stores[0].sync_checks([check(f"c{i}") for i in range(60)], T0)

        async def claim_all(store: HealthStore, owner: str) -> list[tuple[str, datetime]]:
            taken = []
            while slots := await store.claim_due(owner, 60, 4):
                taken.extend((s.check, s.scheduled_at) for s in slots)
                await asyncio.sleep(0)
            return taken

        one, two = await asyncio.gather(claim_all(stores[0], "m1"), claim_all(stores[1], "m2"))
        assert len(one) + len(two) == 60
        assert len(set(one) | set(two)) == 60
        assert one and two  # both took part
    finally:
        for p in pools:
            await p.close()


async def test_a_killed_monitors_slot_is_claimed_again_and_stored_once(
    store: HealthStore, pool: asyncpg.Pool
) -> None:
    c = check()
    await store.sync_checks([c], T0)
    t = T0 + timedelta(minutes=2)
    [first] = await store.claim_due("m1", 30, 10, now=t)
    assert first.attempt == 1
    assert await store.claim_due("m2", 30, 10, now=t + timedelta(seconds=10)) == []
    [again] = await store.claim_due("m2", 30, 10, now=t + timedelta(seconds=31))
    assert (again.check, again.scheduled_at, again.attempt) == (c.name, first.scheduled_at, 2)
    # m1 was only slow: both record the slot.
    late = await store.record(result(c, first.scheduled_at, False), c, "m1", in_maintenance=False)
    dup = await store.record(result(c, again.scheduled_at, True), c, "m2", in_maintenance=False)
    assert (late.stored, dup.stored) == (True, False)
    rows = await pool.fetch("SELECT owner, success FROM mendline.check_results_raw")
    assert [(r["owner"], r["success"]) for r in rows] == [("m1", False)]
    state = await store.state(c.name)
    assert state is not None and state.failures == 1
    schedule = await pool.fetchrow("SELECT * FROM mendline.check_schedule")
    assert schedule["next_due"] > datetime.now(UTC) - timedelta(seconds=5)
    assert schedule["lease_until"] is None and schedule["owner"] is None


async def test_a_monitor_down_for_an_hour_runs_the_check_once(
    store: HealthStore, pool: asyncpg.Pool
) -> None:
    c = check(interval=300)
    await store.sync_checks([c], T0)
    [slot] = await store.claim_due("m1", 30, 10, now=T0 + timedelta(hours=1))
    back = slot.scheduled_at + timedelta(hours=1, seconds=1)
    await store.record(result(c, slot.scheduled_at, True), c, "m1", in_maintenance=False, now=back)
    due = await pool.fetchval("SELECT next_due FROM mendline.check_schedule")
    assert back < due <= back + timedelta(seconds=300)
    assert (due - slot.scheduled_at).total_seconds() % 300 == 0  # on the check's grid
    [next_one] = await store.claim_due("m1", 30, 10, now=due)
    assert next_one.scheduled_at == due
    assert await store.claim_due("m2", 30, 10, now=due + timedelta(seconds=10)) == []


async def test_the_schedule_follows_the_databases_clock_not_the_monitors(
    postgres_factory: Callable[..., EmbeddedPostgres], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database whose clock is two hours behind the monitor's (libfaketime in its
    processes): slots are claimed by the database's clock, so they are set by it too."""
    libfaketime = pytest.importorskip("libfaketime")
    _, preload = libfaketime.get_reload_information()
    with monkeypatch.context() as env:  # only the server's processes get the fake clock
        for name, value in {**preload, "FAKETIME": "-2h"}.items():
            env.setenv(name, value)
        server = postgres_factory()
    pool = await migrated_pool(server.url, 2)
    try:
        store = HealthStore(pool)
        await store.ensure_partitions()
        database_now = await pool.fetchval("SELECT now()")
        assert datetime.now(UTC) - database_now > timedelta(hours=1, minutes=59)
        c = check(interval=60)
        await store.sync_checks([c])
        first = await pool.fetchval("SELECT next_due FROM mendline.check_schedule")
        assert database_now < first <= database_now + timedelta(seconds=61)  # not 2 h on
        [slot] = await store.claim_due("m1", 30, 10, now=first)
        await store.record(result(c, slot.scheduled_at, True), c, "m1", in_maintenance=False)
        # The next slot is the next on the grid, not the first after the monitor's clock.
        after = await pool.fetchval("SELECT next_due FROM mendline.check_schedule")
        assert after == slot.scheduled_at + timedelta(seconds=60)
    finally:
        await pool.close()


# -- state, issues and triggers -------------------------------------------------------------


async def test_down_then_up_opens_then_resolves_the_issue_with_one_trigger_each(
    store: HealthStore, pool: asyncpg.Pool, fresh_db_url: str
) -> None:
    c = check(failure_threshold=3, success_threshold=2, tags={"team": "pay"}, severity="critical")
    await store.sync_checks([c], T0)
    listener = await asyncpg.connect(fresh_db_url)
    told: list[str] = []
    await listener.add_listener(TRIGGERS_CHANNEL, lambda *args: told.append(args[2]))
    try:
        outcomes = await run(store, c, "+---+-++")
        await asyncio.sleep(0.2)
    finally:
        await listener.close()
    assert [o.transition for o in outcomes] == [
        None,
        None,
        None,
        "down",
        None,
        None,
        None,
        "recovered",
    ]
    rows = await triggers(pool)
    assert [r["kind"] for r in rows] == ["health_down", "health_recovered"]
    assert len(told) == 2
    down = rows[0]
    assert down["environment"] == "production"
    assert json.loads(down["tags"]) == {"team": "pay", "check": c.name, "check_kind": "http"}
    details = json.loads(down["details"])
    assert details["status"] == "down" and details["failures"] == 3
    assert details["target"] == "https://payments-api.example.com/health"
    assert details["conditions"] == [
        {"condition": "[STATUS] == 200", "success": False, "observed": "503"}
    ]
    assert details["scheduled_at"] == (T0 + timedelta(minutes=3)).isoformat()
    assert details["reasons"] and details["timings"] == {"total": 0.05}
    assert down["dedup_key"] == f"health:{c.name}:production:health_down:{details['scheduled_at']}"
    issue = await pool.fetchrow("SELECT * FROM mendline.issues")
    assert (issue["kind"], issue["status"], issue["level"]) == ("health", "resolved", "critical")
    assert issue["title"] == "Downtime: payments-api (HTTP 503, 3 checks in a row)"
    assert issue["primary_hash"] == "health:payments-api:production"
    assert issue["resolved_at"] is not None
    assert {r["issue_id"] for r in rows} == {issue["id"]}
    status = await pool.fetchrow("SELECT * FROM mendline.check_status")
    assert (status["status"], status["issue_id"], status["last_success"]) == (
        "up",
        issue["id"],
        True,
    )
    audited = await pool.fetch(
        "SELECT actor_name, actor_auth, action, target, after FROM mendline.audit_log"
    )
    assert [(r["actor_name"], r["actor_auth"], r["action"], r["target"]) for r in audited] == [
        ("mendline", "system", "issue.resolve", f"issue:{issue['id']}")
    ]
    assert json.loads(audited[0]["after"]) == {
        "status": "resolved",
        "reason": f"check {c.name} recovered",
    }


async def test_down_after_a_resolve_reopens_the_same_issue(
    store: HealthStore, pool: asyncpg.Pool
) -> None:
    c = check(failure_threshold=2, success_threshold=1)
    await store.sync_checks([c], T0)
    await run(store, c, "+--+--")
    rows = await triggers(pool)
    assert [r["kind"] for r in rows] == ["health_down", "health_recovered", "health_down"]
    issue = await pool.fetchrow("SELECT * FROM mendline.issues")
    assert (issue["status"], issue["regressions"], issue["times_seen"]) == ("unresolved", 1, 2)
    assert await pool.fetchval("SELECT count(*) FROM mendline.issues") == 1


async def test_two_monitors_recording_one_slot_make_one_transition(
    fresh_db_url: str,
) -> None:
    pools = [await migrated_pool(fresh_db_url, 2) for _ in range(2)]
    try:
        stores = [HealthStore(p) for p in pools]
        c = check(failure_threshold=1, success_threshold=1)
        await stores[0].sync_checks([c], T0)
        await run(stores[0], c, "+")  # up
        for i in range(1, 21):
            at = T0 + timedelta(minutes=i)
            success = i % 2 == 0  # alternating: each slot is a transition
            outcomes = await asyncio.gather(
                stores[0].record(result(c, at, success), c, "m1", in_maintenance=False),
                # The same outcome (two monitors saw the same service): whoever wins the
                # slot, the stored results alternate, so the transitions below are known.
                stores[1].record(result(c, at, success), c, "m2", in_maintenance=False),
            )
            assert sorted(o.stored for o in outcomes) == [False, True]
        rows = await pools[0].fetch("SELECT kind FROM mendline.triggers ORDER BY id")
        results = await pools[0].fetch(
            "SELECT success FROM mendline.check_results_raw ORDER BY scheduled_at"
        )
        assert len(results) == 21
        # The triggers are those of the stored results, whoever won each slot: judged once.
        state, told = CheckState(), []
        for i, row in enumerate(results):
            judged = judge(
                state,
                row["success"],
                T0 + timedelta(minutes=i),
                failure_threshold=1,
                success_threshold=1,
                flap_threshold=c.flap_threshold,
                flap_window=c.flap_window,
            )
            state = judged.state
            if judged.transition:
                told.append(f"health_{judged.transition}")
        assert [r["kind"] for r in rows] == told
        assert "health_down" in told and "health_flapping" in told
    finally:
        for p in pools:
            await p.close()


async def test_flapping_is_told_once(store: HealthStore, pool: asyncpg.Pool) -> None:
    c = check(failure_threshold=1, success_threshold=1, flap_threshold=3, flap_window="1h")
    await store.sync_checks([c], T0)
    await run(store, c, "+-+-+-+-")
    kinds = [r["kind"] for r in await triggers(pool)]
    assert kinds == ["health_down", "health_recovered", "health_flapping"]


# -- rollups, views and retention ---------------------------------------------------------------


async def test_uptime_counts_maintenance_apart_and_downtime_by_time(
    store: HealthStore, pool: asyncpg.Pool
) -> None:
    c = check(failure_threshold=3, success_threshold=2)
    await store.sync_checks([c], T0)
    await run(store, c, "---++mmm++")
    day = await pool.fetchrow("SELECT * FROM mendline.uptime_daily")
    assert (day["results"], day["failures"], day["maintenance_results"]) == (10, 3, 3)
    assert day["availability"] == pytest.approx(4 / 7)  # maintenance left out
    # Down after the 3rd and 4th results: 2 minutes of 7 observed (maintenance not observed).
    assert day["downtime_seconds"] == 120 and day["observed_seconds"] == 7 * 60
    assert day["availability_by_time"] == pytest.approx(1 - 120 / 420)
    assert day["day"] == T0.date()


async def test_hourly_percentiles_are_the_python_sketchs(
    store: HealthStore, pool: asyncpg.Pool
) -> None:
    c = check(interval=10)
    await store.sync_checks([c], T0)
    rng = random.Random(7)
    values = [rng.lognormvariate(4.5, 0.8) for _ in range(360)]  # ms, one hour at 10 s
    for i, ms in enumerate(values):
        at = T0 + timedelta(seconds=10 * i)
        await store.record(result(c, at, True, response=ms / 1000), c, "m1", in_maintenance=False)
    timeout = T0 + timedelta(seconds=3600 - 5)  # no answer: no response time
    await store.record(
        result(c, timeout, False, error_kind="timeout"), c, "m1", in_maintenance=False
    )
    row = await pool.fetchrow("SELECT * FROM mendline.response_time_hourly")
    assert (row["results"], row["failures"], row["response_count"]) == (361, 1, 360)
    expected = histogram(values)
    # Stored sparse: from the first bucket in use to the last.
    first = next(k for k, n in enumerate(expected) if n)
    last = max(k for k, n in enumerate(expected) if n)
    bounds = await pool.fetchrow(
        """SELECT array_lower(histogram, 1) AS lower, array_upper(histogram, 1) AS upper,
                  mendline.histogram_dense(histogram) AS dense
           FROM mendline.response_time_hourly"""
    )
    assert (bounds["lower"], bounds["upper"]) == (first + 1, last + 1)
    assert list(bounds["dense"]) == expected
    for column, q in (("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)):
        assert row[column] == pytest.approx(quantile(expected, q), rel=1e-12)
    assert row["mean_ms"] == pytest.approx(sum(values) / len(values))
    merged = await pool.fetchval(
        """SELECT mendline.histogram_dense(mendline.histogram_merge(histogram))
           FROM mendline.check_rollups WHERE width = 'hour'"""
    )
    assert list(merged) == expected


async def test_check_results_view_reads_like_the_result(
    store: HealthStore, pool: asyncpg.Pool
) -> None:
    c = check()
    await store.sync_checks([c], T0)
    await store.record(
        result(c, T0, False, response=0.25, error_kind="timeout").model_copy(
            update={"error": "late\x00" + "x" * 5000}
        ),
        c,
        "monitor-1",
        in_maintenance=False,
    )
    row = await pool.fetchrow("SELECT * FROM mendline.check_results")
    assert (row["check_name"], row["kind"], row["success"], row["error_kind"]) == (
        c.name,
        "http",
        False,
        "timeout",
    )
    assert float(row["response_ms"]) == 250.0 and row["owner"] == "monitor-1"
    assert row["error"].startswith("late\ufffd") and len(row["error"]) <= 2000


def readme_queries() -> list[str]:
    """The statements of the SQL block in the README's "Storage and SQL" section."""
    section = README.read_text().split("### Storage and SQL", 1)[1]
    block = section.split("```sql", 1)[1].split("```", 1)[0]
    return [sql.strip() for sql in block.split(";") if sql.strip()]


async def test_the_readme_queries_run(store: HealthStore, pool: asyncpg.Pool) -> None:
    fast, slow = check("api-fast"), check("api-slow")
    await store.sync_checks([fast, slow], T0)
    for i in range(30):
        at = T0 + timedelta(minutes=i)
        await store.record(result(fast, at, True, response=0.02), fast, "m1", in_maintenance=False)
        await store.record(
            result(slow, at, i % 10 != 0, response=0.9), slow, "m1", in_maintenance=False
        )
    uptime, breached, down = [await pool.fetch(sql) for sql in readme_queries()]
    assert [(r["check_name"], float(r["uptime_pct"])) for r in uptime] == [
        ("api-slow", 90.0),
        ("api-fast", 100.0),
    ]
    assert [r["check_name"] for r in breached] == ["api-slow"]
    assert breached[0]["p95_ms"] == pytest.approx(900, rel=RELATIVE_ERROR)
    assert down == []  # single failures: never down


async def with_old_results(store: HealthStore) -> datetime:
    """Two results of a check ten days ago (their day partition and the two after made)
    and two at T0; the old day."""
    c = check()
    await store.sync_checks([c], T0)
    old_day = T0 - timedelta(days=10)
    await store.ensure_partitions(old_day.date())  # 10, 9 and 8 days ago
    await run(store, c, "+-", start=old_day)
    await run(store, c, "+-", start=T0)
    return old_day


async def test_prune_drops_old_result_days_and_rollups(
    store: HealthStore, pool: asyncpg.Pool
) -> None:
    old_day = await with_old_results(store)
    names = {
        r["relname"]
        for r in await pool.fetch(
            """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = 'mendline.check_results_raw'::regclass"""
        )
    }
    assert f"check_results_raw_{old_day:%Y%m%d}" in names
    now = T0 + timedelta(days=1)
    pruned = await store.prune(now, raw_days=7, rollup_days=400)
    assert f"check_results_raw_{old_day:%Y%m%d}" in pruned.partitions
    assert await pool.fetchval("SELECT count(*) FROM mendline.check_results_raw") == 2
    widths = await pool.fetch(
        "SELECT width, count(*) AS n FROM mendline.check_rollups WHERE bucket < $1 GROUP BY 1",
        T0 - timedelta(days=7),
    )
    assert {r["width"]: r["n"] for r in widths} == {"hour": 1, "day": 1}
    again = await store.prune(now, raw_days=7, rollup_days=5)
    assert again.partitions == () and again.rollups == 2
    with pytest.raises(ConfigError):
        await store.prune(now, raw_days=0)


async def test_a_dry_run_prune_counts_what_would_go_and_removes_nothing(
    store: HealthStore, pool: asyncpg.Pool
) -> None:
    old_day = await with_old_results(store)
    now = T0 + timedelta(days=1)
    before = await pool.fetchval("SELECT count(*) FROM mendline.check_rollups")
    dry = await store.prune(now, raw_days=7, rollup_days=400, dry_run=True)
    assert dry.dry_run and f"check_results_raw_{old_day:%Y%m%d}" in dry.partitions
    assert await pool.fetchval("SELECT count(*) FROM mendline.check_rollups") == before
    assert await pool.fetchval("SELECT count(*) FROM mendline.check_results_raw") == 4
    done = await store.prune(now, raw_days=7, rollup_days=400)
    assert (done.partitions, done.rollups, done.dry_run) == (dry.partitions, dry.rollups, False)
    assert dry.rollups == 2  # the two old minutes; their hour and day stay for 400 days


async def test_two_prunes_at_once_do_not_fail_and_one_does_the_work(
    store: HealthStore, pool: asyncpg.Pool, fresh_db_url: str
) -> None:
    old_day = await with_old_results(store)
    other = HealthStore(await migrated_pool(fresh_db_url, 2))
    reader = await asyncpg.connect(fresh_db_url)
    try:
        # A reader of the results holds the first prune at its DROP: the second comes while
        # the first is under way.
        reading = reader.transaction()
        await reading.start()
        await reader.execute("LOCK TABLE mendline.check_results_raw IN ACCESS SHARE MODE")
        first = asyncio.create_task(store.prune(T0, raw_days=7))
        for _ in range(400):
            waiting = await pool.fetchval(
                """SELECT count(*) FROM pg_stat_activity
                   WHERE wait_event_type = 'Lock'
                     AND query LIKE 'SELECT mendline.drop_daily_partition%'"""
            )
            if waiting:
                break
            await asyncio.sleep(0.05)
        second = await other.prune(T0, raw_days=7)
        await reading.rollback()
        done = await first
    finally:
        await reader.close()
        await other.close()
    assert second.skipped and second.partitions == ()
    assert not done.skipped
    assert done.partitions == tuple(
        f"check_results_raw_{old_day + timedelta(days=n):%Y%m%d}" for n in range(3)
    )
    assert (await store.prune(T0, raw_days=7)).partitions == ()


async def test_the_registered_heartbeats_read_back_with_where_they_were_judged(
    store: HealthStore,
) -> None:
    weekly = CHECK.validate_python(
        {
            "name": "weekly",
            "kind": "heartbeat",
            "cron": "0 3 * * mon",
            "timezone": "Europe/Paris",
            "grace": "1h",
            "max_runtime": "2h",
            "maintenance": [{"at": "02:00", "duration": "1h"}],
        }
    )
    hourly = CHECK.validate_python({"name": "hourly", "kind": "heartbeat", "every": "1h"})
    await store.sync_checks([weekly, hourly, check("api")], T0)
    await store.record(heartbeat(weekly, T0), weekly, "m1", in_maintenance=False)
    found = await store.heartbeats()
    assert sorted(found) == ["hourly", "weekly"]
    stored, judged = found["weekly"]
    assert judged == T0
    assert stored is not None
    assert (stored.cron, stored.timezone, stored.grace, stored.max_runtime) == (
        "0 3 * * mon",
        "Europe/Paris",
        3600,
        7200,
    )
    assert found["hourly"][1] is None and found["hourly"][0] is not None
    await store.sync_checks([hourly], T0)
    assert sorted(await store.heartbeats()) == ["hourly"]  # retired: not watched


def heartbeat(c: Check, at: datetime) -> CheckResult:
    return CheckResult.model_validate(
        {
            "check": c.name,
            "kind": "heartbeat",
            "scheduled_at": at,
            "started_at": at,
            "duration": 0,
            "success": True,
        }
    )


async def test_a_slot_far_ahead_gets_its_day_partition(
    store: HealthStore, pool: asyncpg.Pool
) -> None:
    c = check()
    await store.sync_checks([c], T0)
    ahead = datetime.now(UTC) + timedelta(days=5)
    await store.record(result(c, ahead, True), c, "m1", in_maintenance=False)
    where = await pool.fetchval("SELECT tableoid::regclass::text FROM mendline.check_results_raw")
    assert where == f"mendline.check_results_raw_{ahead:%Y%m%d}"


async def test_sql_histograms_merge_and_read_like_the_python_sketch(pool: asyncpg.Pool) -> None:
    rng = random.Random(3)
    for _ in range(20):
        a = [rng.lognormvariate(rng.uniform(0, 9), 0.4) for _ in range(rng.randint(1, 50))]
        b = [rng.lognormvariate(rng.uniform(0, 9), 0.4) for _ in range(rng.randint(1, 50))]
        row = await pool.fetchrow(
            """WITH h AS (
                   SELECT mendline.histogram_merge(array_fill(1, ARRAY[1], ARRAY[k + 1])) AS x,
                          g
                   FROM unnest($1::int[], $2::int[]) AS u(k, g) GROUP BY g),
               m AS (SELECT mendline.histogram_merge(x ORDER BY g) AS x FROM h)
               SELECT mendline.histogram_dense(x) AS dense,
                      mendline.histogram_quantile(x, 0.5) AS p50,
                      mendline.histogram_quantile(x, 0.99) AS p99
               FROM m""",
            [bucket_of(v) for v in a + b],
            [0] * len(a) + [1] * len(b),
        )
        expected = merge_histograms(histogram(a), histogram(b))
        assert list(row["dense"]) == expected
        assert row["p50"] == pytest.approx(quantile(expected, 0.5), rel=1e-12)
        assert row["p99"] == pytest.approx(quantile(expected, 0.99), rel=1e-12)


async def test_a_result_older_than_the_last_judged_is_kept_but_moves_nothing(
    store: HealthStore, pool: asyncpg.Pool
) -> None:
    c = check(failure_threshold=1)
    await store.sync_checks([c], T0)
    await run(store, c, "+", start=T0 + timedelta(minutes=5))
    late = await store.record(result(c, T0, False), c, "m1", in_maintenance=False)
    assert (late.stored, late.judged, late.status, late.transition) == (True, False, "up", None)
    state = await store.state(c.name)
    assert state is not None and (state.status, state.failures) == ("up", 0)
    assert await pool.fetchval("SELECT count(*) FROM mendline.check_results_raw") == 2
    assert await pool.fetchval("SELECT count(*) FROM mendline.triggers") == 0
