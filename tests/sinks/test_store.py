"""The store against a real PostgreSQL: idempotent batches, issues, triggers, merge, prune
(their audit rows are tested in test_actions)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from mendline.schemas.finding import FALLBACK_CODES, FallbackCode, Finding
from mendline.schemas.issue import IgnoreCondition
from mendline.schemas.people import SYSTEM_ACTOR
from mendline.schemas.prepared import PreparedEvent
from mendline.schemas.settings import Settings, load_settings
from mendline.sinks.postgres import (
    IssueActions,
    IssueNotFound,
    Store,
    available_migrations,
    connect_findings,
    connect_store,
    migrate,
)
from tests.db_helpers import EVENT_AT, RESPONDER, migrate_before, prepared_event

pytestmark = pytest.mark.integration
T0 = EVENT_AT


@pytest.fixture
def settings(fresh_db_url: str) -> Settings:
    return load_settings(database_url=fresh_db_url, frequency_threshold=0)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    store = await connect_store(settings)
    yield store
    await store.close()


async def test_the_queues_partial_indexes_cover_the_kinds_their_queries_take(
    settings: Settings,
) -> None:
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        await migrate(conn)
        defs = await conn.fetch(
            """SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'mendline'
               AND indexname IN ('triggers_to_analyse', 'triggers_to_follow')"""
        )
    finally:
        await conn.close()
    assert len(defs) == 2
    for row in defs:
        assert all(kind in row["indexdef"] for kind in ("new_issue", "regression", "health_down"))


async def test_migrations_are_idempotent_and_safe_when_run_at_once(empty_db_url: str) -> None:
    url = empty_db_url
    conns = [await asyncpg.connect(url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        applied = [v for r in results for v in r]
        # each applied exactly once
        shipped = [version for version, _ in available_migrations()]
        assert sorted(applied) == shipped
        assert shipped[:4] == ["0001_core", "0002_views", "0003_findings", "0004_alerts"]
        assert await migrate(conns[0]) == []
        count = await conns[0].fetchval("SELECT count(*) FROM mendline.schema_migrations")
        assert count == len(shipped)
    finally:
        for c in conns:
            await c.close()


async def test_a_redelivered_batch_changes_nothing(store: Store, db: asyncpg.Connection) -> None:
    batch = [prepared_event(at=T0 + timedelta(seconds=i)) for i in range(10)]
    first = await store.write(batch)
    assert (first.stored, first.duplicates, first.new_issues) == (10, 0, 1)
    again = await store.write(batch + batch[:3])
    assert (again.stored, again.duplicates, again.new_issues, again.triggers) == (0, 13, 0, 0)
    assert await db.fetchval("SELECT count(*) FROM mendline.events") == 10
    assert await db.fetchval("SELECT times_seen FROM mendline.issues") == 10
    assert await db.fetchval("SELECT count(*) FROM mendline.triggers") == 1


def hashed(base: PreparedEvent, content_hash: str | None) -> PreparedEvent:
    """``base`` with ``content_hash``: the same event_id with that content."""
    return dataclasses.replace(base, content_hash=content_hash)


async def test_an_event_id_again_with_other_content_is_a_conflict_not_a_duplicate(
    store: Store, db: asyncpg.Connection
) -> None:
    one, two = prepared_event(), prepared_event(at=T0 + timedelta(seconds=1))
    first = await store.write([hashed(one, "a" * 64), hashed(two, "b" * 64)])
    assert (first.stored, first.duplicates, first.conflicts) == (2, 0, [])
    replay, forged = hashed(one, "a" * 64), hashed(two, "c" * 64)
    again = await store.write([replay, forged])
    assert (again.stored, again.duplicates) == (0, 1)
    assert again.conflicts == [(forged, "b" * 64)]
    assert await db.fetchval("SELECT times_seen FROM mendline.issues") == 2
    stored = await db.fetchval(
        "SELECT content_hash FROM mendline.event_ids WHERE event_id = $1", uuid.UUID(two.event_id)
    )
    assert stored == "b" * 64  # the conflict changed nothing


async def test_in_one_batch_the_first_of_an_event_id_wins(
    store: Store, db: asyncpg.Connection
) -> None:
    base = prepared_event()
    first, copy, other = hashed(base, "a" * 64), hashed(base, "a" * 64), hashed(base, "d" * 64)
    result = await store.write([first, other, copy])
    assert (result.stored, result.duplicates, result.conflicts) == (1, 1, [(other, "a" * 64)])
    assert await db.fetchval("SELECT times_seen FROM mendline.issues") == 1


async def test_an_event_id_stored_without_a_hash_takes_any_replay_as_a_duplicate(
    store: Store, db: asyncpg.Connection
) -> None:
    old = prepared_event()
    await store.write([hashed(old, None)])  # as stored before migration 0007
    assert await db.fetchval("SELECT content_hash FROM mendline.event_ids") is None
    again = await store.write([hashed(old, "e" * 64)])
    assert (again.stored, again.duplicates, again.conflicts) == (0, 1, [])


async def test_issue_aggregates(store: Store, db: asyncpg.Connection) -> None:
    await store.write(
        [
            prepared_event(
                at=T0 + timedelta(minutes=5), level="warning", release="1.1", host="web-2"
            ),
            prepared_event(at=T0, level="error", release="1.0", environment="staging"),
        ]
    )
    await store.write(
        [prepared_event(at=T0 + timedelta(minutes=9), level="critical", release="1.2")]
    )
    await store.write([prepared_event(at=T0 - timedelta(minutes=1), level="info", release="0.9")])
    issue = await db.fetchrow("SELECT * FROM mendline.issues")
    assert issue["times_seen"] == 4
    assert issue["first_seen"] == T0 - timedelta(minutes=1)
    assert issue["last_seen"] == T0 + timedelta(minutes=9)
    assert (issue["first_release"], issue["last_release"]) == ("0.9", "1.2")
    assert issue["level"] == "critical"
    assert issue["environments"] == ["production", "staging"]
    assert issue["hosts"] == ["web-1", "web-2"]
    assert (issue["title"], issue["culprit"]) == ("ValueError: bad quantity", "app.orders.parse")


async def test_an_issue_a_batch_creates_is_written_whole_at_once(
    store: Store, db: asyncpg.Connection
) -> None:
    # A new issue is inserted with what its batch adds (not inserted, then updated): the same
    # row as an issue the batch found, fingerprint and trigger included.
    events = [
        dataclasses.replace(
            prepared_event(at=T0 + timedelta(minutes=5), release="1.1", host="web-2"),
            count=3,
            tags={"region": "eu-west-1"},
        ),
        prepared_event(at=T0, level="critical", release="1.0", environment="staging", host=None),
    ]
    await store.write(events)
    issue = await db.fetchrow("SELECT * FROM mendline.issues")
    assert issue["times_seen"] == 4
    assert (issue["first_seen"], issue["last_seen"]) == (T0, T0 + timedelta(minutes=5))
    assert (issue["first_release"], issue["last_release"]) == ("1.0", "1.1")
    assert (issue["level"], issue["level_rank"]) == ("critical", 4)
    assert issue["environments"] == ["production", "staging"]
    assert issue["hosts"] == ["web-2"]
    assert await db.fetchval("SELECT times_seen FROM mendline.fingerprints") == 4
    assert await db.fetchval("SELECT sum(count) FROM mendline.issue_counts") == 4
    trigger = await db.fetchrow("SELECT kind, environment, tags::text FROM mendline.triggers")
    # The newest of the batch's events (its last) gives the trigger its environment and tags.
    assert (trigger["kind"], trigger["environment"], trigger["tags"]) == (
        "new_issue",
        "staging",
        "{}",
    )
    await store.write([events[0]])  # a replay changes nothing
    await store.write([prepared_event(at=T0 + timedelta(minutes=9), release="1.2")])
    issue = await db.fetchrow("SELECT * FROM mendline.issues")
    assert (issue["times_seen"], issue["last_release"]) == (5, "1.2")
    assert await db.fetchval("SELECT times_seen FROM mendline.fingerprints") == 5


async def test_texts_holding_any_character_stay_whole_in_an_issues_lists(
    store: Store, db: asyncpg.Connection
) -> None:
    # An event's environment, host and grouping components are its own (attacker's) text:
    # no character, a unit separator or a JSON quote included, splits or changes them.
    odd = 'eu\x1fstaging "q" \\ \u2028'
    first = dataclasses.replace(
        prepared_event(at=T0, environment=odd, host=f"web\x1f{odd}"),
        components=(f"Value\x1fError {odd}", "app.orders.parse"),
    )
    await store.write([first])
    await store.write([prepared_event(at=T0 + timedelta(minutes=1), environment="b\x1fa")])
    issue = await db.fetchrow("SELECT environments, hosts FROM mendline.issues")
    assert issue["environments"] == sorted([odd, "b\x1fa"])
    assert issue["hosts"] == sorted(["web-1", f"web\x1f{odd}"])
    components = await db.fetchval("SELECT components FROM mendline.fingerprints")
    assert components == [f"Value\x1fError {odd}", "app.orders.parse"]


async def test_a_trigger_carries_its_newest_events_tags(
    store: Store, db: asyncpg.Connection
) -> None:
    tagged = dataclasses.replace(prepared_event(), tags={"region": "eu", "q": 'a"\\\u2028'})
    await store.write([tagged])
    tags = await db.fetchval("SELECT tags FROM mendline.triggers")
    assert json.loads(tags) == {"region": "eu", "q": 'a"\\\u2028'}


async def test_the_same_event_object_twice_in_a_batch_counts_once(
    store: Store, db: asyncpg.Connection
) -> None:
    event = dataclasses.replace(prepared_event(), count=5)
    result = await store.write([event, event])
    assert (result.stored, result.duplicates) == (1, 1)
    assert await db.fetchval("SELECT times_seen FROM mendline.issues") == 5


async def test_a_new_event_on_a_resolved_issue_is_a_regression_once(
    store: Store, db: asyncpg.Connection
) -> None:
    await store.write([prepared_event()])
    await db.execute("UPDATE mendline.issues SET status = 'resolved', resolved_at = now()")
    regressing = [prepared_event(), prepared_event()]
    result = await store.write(regressing)
    assert result.regressions == 1 and result.triggers == 1
    await store.write(regressing)  # a replay
    issue = await db.fetchrow("SELECT status, regressions, regressed_at FROM mendline.issues")
    assert issue["status"] == "unresolved" and issue["regressions"] == 1
    kinds = [r["kind"] for r in await db.fetch("SELECT kind FROM mendline.triggers ORDER BY id")]
    assert kinds == ["new_issue", "regression"]


async def test_frequency_triggers_once_per_window(
    fresh_db_url: str, db: asyncpg.Connection
) -> None:
    store = await connect_store(
        load_settings(database_url=fresh_db_url, frequency_threshold=5, frequency_window_minutes=5)
    )
    try:
        await store.write([prepared_event() for _ in range(4)])
        assert (
            await db.fetchval("SELECT count(*) FROM mendline.triggers WHERE kind = 'frequency'")
            == 0
        )
        await store.write([prepared_event()])
        await store.write([prepared_event() for _ in range(20)])
        rows = await db.fetch("SELECT details FROM mendline.triggers WHERE kind = 'frequency'")
    finally:
        await store.close()
    assert len(rows) == 1
    assert '"threshold": 5' in rows[0]["details"]


async def test_concurrent_writers_create_one_issue_per_fingerprint(
    settings: Settings, db: asyncpg.Connection
) -> None:
    stores = [await connect_store(settings) for _ in range(3)]
    fingerprints = [f"{i:032x}" for i in range(20)]
    try:
        batches = [
            [prepared_event(f) for f in fingerprints for _ in range(5)] for _ in range(3 * 4)
        ]
        await asyncio.gather(*(stores[i % 3].write(b) for i, b in enumerate(batches)))
    finally:
        for s in stores:
            await s.close()
    assert await db.fetchval("SELECT count(*) FROM mendline.issues") == 20
    assert set(await db.fetch("SELECT DISTINCT times_seen FROM mendline.issues")) == {(60,)}
    assert await db.fetchval("SELECT count(*) FROM mendline.triggers") == 20


async def test_merge_moves_everything_and_later_events_follow(
    store: Store, db: asyncpg.Connection, actions: IssueActions
) -> None:
    await store.write(
        [
            prepared_event("a" * 32),
            prepared_event("a" * 32),
            prepared_event("b" * 32, release="2.0"),
        ]
    )
    ids = {
        r["primary_hash"][0]: r["id"]
        for r in await db.fetch("SELECT id, primary_hash FROM mendline.issues")
    }
    await actions.merge(RESPONDER, ids["a"], ids["b"])
    await store.write([prepared_event("b" * 32), prepared_event("a" * 32)])
    target = await db.fetchrow("SELECT * FROM mendline.issues WHERE id = $1", ids["a"])
    source = await db.fetchrow("SELECT * FROM mendline.issues WHERE id = $1", ids["b"])
    assert target["times_seen"] == 5
    assert (source["status"], source["merged_into"]) == ("merged", ids["a"])
    assert (
        await db.fetchval("SELECT count(*) FROM mendline.events WHERE issue_id = $1", ids["a"]) == 5
    )
    with pytest.raises(IssueNotFound):
        await actions.merge(RESPONDER, ids["a"], ids["b"])
    with pytest.raises(IssueNotFound):
        await actions.merge(RESPONDER, ids["a"], 999_999)


async def test_an_ignored_issue_counts_its_events_but_alerts_on_none(
    fresh_db_url: str, db: asyncpg.Connection, actions: IssueActions
) -> None:
    store = await connect_store(load_settings(database_url=fresh_db_url, frequency_threshold=3))
    try:
        await store.write(
            [prepared_event("a" * 32), prepared_event("b" * 32), prepared_event("c" * 32)]
        )
        ids = {
            r["primary_hash"][0]: r["id"]
            for r in await db.fetch("SELECT id, primary_hash FROM mendline.issues")
        }
        await actions.ignore(RESPONDER, ids["a"])
        await actions.merge(RESPONDER, ids["b"], ids["c"])
        await store.write([prepared_event(f) for f in ("a" * 32, "b" * 32) for _ in range(5)])
    finally:
        await store.close()
    issues = {
        r["id"]: (r["status"], r["times_seen"])
        for r in await db.fetch("SELECT id, status, times_seen FROM mendline.issues")
    }
    assert issues[ids["a"]] == ("ignored", 6)
    assert issues[ids["b"]] == ("unresolved", 7)
    spikes = await db.fetch("SELECT issue_id FROM mendline.triggers WHERE kind = 'frequency'")
    assert [r["issue_id"] for r in spikes] == [ids["b"]]
    for missing in (ids["c"], 999_999):  # merged, and never there
        with pytest.raises(IssueNotFound, match=f"there is no issue {missing} "):
            await actions.ignore(RESPONDER, missing)
    assert issues[ids["c"]][0] == "merged"


async def test_a_rolled_up_event_counts_every_occurrence_it_stands_for(
    fresh_db_url: str, db: asyncpg.Connection, actions: IssueActions
) -> None:
    store = await connect_store(
        load_settings(database_url=fresh_db_url, frequency_threshold=50, frequency_window_minutes=5)
    )
    first = T0 - timedelta(seconds=4)
    storm = dataclasses.replace(prepared_event("a" * 32), count=40, first_timestamp=first, lost=7)
    try:
        result = await store.write([storm, prepared_event("a" * 32), prepared_event("b" * 32)])
        assert result.lost == 7
        await store.write([storm])  # a replay counts nothing again
        assert (
            await db.fetchval("SELECT count(*) FROM mendline.triggers WHERE kind = 'frequency'")
            == 0
        )
        await store.write([dataclasses.replace(prepared_event("a" * 32), count=9)])
    finally:
        await store.close()
    issue = await db.fetchrow("SELECT * FROM mendline.issues WHERE primary_hash = $1", "a" * 32)
    assert issue["times_seen"] == 50 and issue["first_seen"] == first
    minutes = await db.fetchval(
        "SELECT sum(count) FROM mendline.issue_counts WHERE issue_id = $1", issue["id"]
    )
    assert minutes == 50
    fingerprint = await db.fetchval(
        "SELECT times_seen FROM mendline.fingerprints WHERE hash = $1", "a" * 32
    )
    assert fingerprint == 50
    spikes = await db.fetch("SELECT issue_id FROM mendline.triggers WHERE kind = 'frequency'")
    assert [r["issue_id"] for r in spikes] == [issue["id"]]  # the 50th occurrence is the spike
    counts = await db.fetch(
        "SELECT count FROM mendline.issue_events WHERE issue_id = $1 ORDER BY count", issue["id"]
    )
    assert [r["count"] for r in counts] == [1, 9, 40]
    lost = await db.fetch("SELECT service, host, lost FROM mendline.lost_events")
    assert [tuple(r) for r in lost] == [("api", "web-1", 7)]
    # An unmerge gives back the occurrences, not the rows.
    other = await db.fetchval("SELECT id FROM mendline.issues WHERE primary_hash = $1", "b" * 32)
    await actions.merge(RESPONDER, other, issue["id"])
    assert await db.fetchval("SELECT times_seen FROM mendline.issues WHERE id = $1", other) == 51
    await actions.unmerge(RESPONDER, issue["id"])
    back = await db.fetchval(
        "SELECT sum(count) FROM mendline.issue_counts WHERE issue_id = $1", issue["id"]
    )
    assert back == 50


async def test_an_ignore_until_n_per_hour_counts_occurrences(
    store: Store, db: asyncpg.Connection, actions: IssueActions
) -> None:
    await store.write([prepared_event()])
    issue_id = await db.fetchval("SELECT id FROM mendline.issues")
    await actions.ignore(RESPONDER, issue_id, IgnoreCondition(per_hour=30))
    await store.write([dataclasses.replace(prepared_event(), count=10)])
    assert await db.fetchval("SELECT status FROM mendline.issues") == "ignored"
    await store.write([dataclasses.replace(prepared_event(), count=25)])
    assert await db.fetchval("SELECT status FROM mendline.issues") == "unresolved"


async def test_prune_drops_old_days_only(
    store: Store, db: asyncpg.Connection, actions: IssueActions
) -> None:
    now = datetime.now(UTC)
    await store.ensure_partitions((now - timedelta(days=40)).date())
    await store.write([prepared_event()])
    old = (now - timedelta(days=40)).replace(hour=12)
    await db.execute(
        "INSERT INTO mendline.event_ids (event_id, received_at) VALUES ($1, $2)", uuid.uuid4(), old
    )
    dropped = await actions.prune_events(SYSTEM_ACTOR, retention_days=30, now=now)
    assert dropped and all(name < f"events_{(now - timedelta(days=30)):%Y%m%d}" for name in dropped)
    assert await db.fetchval("SELECT count(*) FROM mendline.events") == 1
    assert await db.fetchval("SELECT count(*) FROM mendline.event_ids") == 1


async def test_the_public_views(store: Store, db: asyncpg.Connection) -> None:
    await store.write(
        [
            prepared_event("a" * 32),
            prepared_event("a" * 32),
            prepared_event("b" * 32, service="billing"),
        ]
    )
    open_issues = await db.fetch(
        "SELECT service, times_seen FROM mendline.open_issues ORDER BY service"
    )
    assert [tuple(r) for r in open_issues] == [("api", 2), ("billing", 1)]
    issue_id = await db.fetchval("SELECT id FROM mendline.issues WHERE service = 'api'")
    recent = await db.fetch(
        "SELECT message, context FROM mendline.issue_events"
        " WHERE issue_id = $1 ORDER BY received_at DESC",
        issue_id,
    )
    assert len(recent) == 2 and recent[0]["message"] == "order_failed"
    rate = await db.fetch("SELECT service, events FROM mendline.error_rate_hourly ORDER BY service")
    assert [tuple(r) for r in rate] == [("api", 2), ("billing", 1)]
    daily = await db.fetch(
        "SELECT service, new_issues FROM mendline.issue_activity_daily ORDER BY service"
    )
    assert [tuple(r) for r in daily] == [("api", 1), ("billing", 1)]


# -- findings' fallback codes ------------------------------------------------------------

ISSUE_FINDINGS_COLUMNS = [  # a public interface: it only grows, at the end
    "issue_id", "service", "title", "culprit", "status", "times_seen", "last_seen",
    "finding_id", "analyser", "model", "category", "severity", "confidence", "root_cause",
    "suggested_fix", "fix_kind", "fix_patch", "fallback_reason", "cached_from", "verdict",
    "verdict_note", "analysed_at", "fallback_code", "risks",
]  # fmt: skip


def heuristic_finding() -> Finding:
    return Finding(
        analyser="heuristic",
        rule="fallback",
        root_cause="the quantity is not a number",
        confidence=0.5,
        category="bad_input",
        severity="medium",
        suggested_fix="validate it",
    )


async def test_a_finding_keeps_its_fallback_code_and_the_view_shows_it_last(
    store: Store, db: asyncpg.Connection, settings: Settings
) -> None:
    await store.write([prepared_event("a" * 32), prepared_event("b" * 32)])
    findings = await connect_findings(settings, 2)
    try:
        fell_back = heuristic_finding().as_fallback("llm_timeout", "the LLM call timed out")
        first = await findings.save(fell_back, issue_id=1, cache_key="a@1.0")
        second = await findings.save(heuristic_finding(), issue_id=2, cache_key="b@1.0")
        assert (await findings.get(first)).finding.fallback_code == "llm_timeout"
        assert (await findings.get(first)).finding.fallback_reason == "the LLM call timed out"
        assert (await findings.get(second)).finding.fallback_code is None
    finally:
        await findings.pool.close()
    columns = await db.prepare("SELECT * FROM mendline.issue_findings")
    assert [a.name for a in columns.get_attributes()] == ISSUE_FINDINGS_COLUMNS
    rows = await db.fetch(
        "SELECT issue_id, fallback_code FROM mendline.issue_findings ORDER BY issue_id"
    )
    assert [tuple(r) for r in rows] == [(1, "llm_timeout"), (2, None)]


async def test_a_finding_keeps_its_risks_and_the_view_shows_them(
    store: Store, db: asyncpg.Connection, settings: Settings
) -> None:
    await store.write([prepared_event("a" * 32), prepared_event("b" * 32)])
    findings = await connect_findings(settings, 2)
    try:
        risky = heuristic_finding().model_copy(update={"risks": ["pipe_to_shell", "fetches_url"]})
        first = await findings.save(risky, issue_id=1, cache_key="a@1.0")
        second = await findings.save(heuristic_finding(), issue_id=2, cache_key="b@1.0")
        assert (await findings.get(first)).finding.risks == ["pipe_to_shell", "fetches_url"]
        assert (await findings.get(second)).finding.risks == []
    finally:
        await findings.pool.close()
    rows = await db.fetch("SELECT issue_id, risks FROM mendline.issue_findings ORDER BY issue_id")
    assert [tuple(r) for r in rows] == [(1, ["pipe_to_shell", "fetches_url"]), (2, [])]


async def test_the_database_takes_exactly_the_fallback_codes(
    store: Store, db: asyncpg.Connection
) -> None:
    definition = await db.fetchval(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conname = 'findings_fallback_code_check'"
    )
    assert set(re.findall(r"'(\w+)'", definition)) == set(FALLBACK_CODES)
    await store.write([prepared_event()])
    insert = """INSERT INTO mendline.findings (issue_id, cache_key, analyser, root_cause,
                    confidence, category, severity, suggested_fix, fallback_code, fallback_reason)
                VALUES (1, 'k', 'heuristic', 'c', 0.5, 'unknown', 'low', 'f', $1, $2)"""
    for code, reason in (("llm_timeout", None), ("gremlins", "why")):
        with pytest.raises(asyncpg.CheckViolationError):
            await db.execute(insert, code, reason)
    await db.execute(insert, "llm_timeout", "why")
    # A reason without a code (an older mendline's write) is given the code its words mean.
    given = await db.fetchval(insert + " RETURNING fallback_code", None, "why")
    assert given == "unexpected_error"


# Every form of fallback_reason mendline wrote before fallback_code existed.
LEGACY_REASONS: list[tuple[str, FallbackCode]] = [
    ("the daily LLM budget is spent (1100 of 1000 tokens)", "budget_spent"),
    ("the daily LLM budget is spent ($0.0200 of $0.0100)", "budget_spent"),
    ("the LLM circuit breaker is open after repeated failures", "breaker_open"),
    (
        "the LLM call failed: cannot reach the LLM endpoint: ConnectError('refused')",
        "llm_unreachable",
    ),
    ("the LLM call failed: the LLM call timed out (ReadTimeout)", "llm_timeout"),
    ("the LLM call failed: the LLM endpoint answered HTTP 500: oops", "llm_http_error"),
    ("the LLM call failed: the LLM endpoint answered HTTP 429", "llm_http_error"),
    (
        "the LLM call failed: the LLM endpoint answered 200 without a chat completion",
        "llm_bad_response",
    ),
    ("the LLM's answer was invalid twice: severity: Input should be 'low'", "invalid_answer"),
    ("the LLM analysis failed: KeyError", "unexpected_error"),
    ("claimed 6 times without finishing", "abandoned_claim"),
    ("the finding could not be stored: value too long", "unstorable"),
]


async def test_findings_stored_before_the_codes_get_theirs(empty_db_url: str) -> None:
    conn = await asyncpg.connect(empty_db_url)
    try:
        # As an older mendline left it: the migrations before 0005 applied, and findings
        # with reasons only.
        await migrate_before(conn, "0005")
        await conn.execute(
            """INSERT INTO mendline.issues (service, primary_hash, title, level, level_rank,
                                            first_seen, last_seen)
               VALUES ('api', 'h', 'ValueError', 'error', 3, now(), now())"""
        )
        legacy_insert = """INSERT INTO mendline.findings (issue_id, cache_key, analyser,
                root_cause, confidence, category, severity, suggested_fix, fallback_reason)
            VALUES (1, 'k', 'heuristic', 'c', 0.5, 'unknown', 'low', 'f', $1)"""
        for reason, _ in [*LEGACY_REASONS, (None, None)]:
            await conn.execute(legacy_insert, reason)
        applied = await migrate(conn)
        assert applied == [v for v, _ in available_migrations() if v >= "0005"]
        assert applied[0] == "0005_fallback_code"
        rows = await conn.fetch("SELECT fallback_code FROM mendline.findings ORDER BY id")
        assert [r["fallback_code"] for r in rows] == [code for _, code in LEGACY_REASONS] + [None]
        # A mendline from before, still running while an upgrade rolls out, writes reasons
        # without codes: each is given its code, and the constraints hold.
        for reason, _ in LEGACY_REASONS:
            await conn.execute(legacy_insert, reason)
        rows = await conn.fetch(
            "SELECT fallback_code FROM mendline.findings WHERE id > $1 ORDER BY id",
            len(LEGACY_REASONS) + 1,
        )
        assert [r["fallback_code"] for r in rows] == [code for _, code in LEGACY_REASONS]
    finally:
        await conn.close()
