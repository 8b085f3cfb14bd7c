"""Sampling against a real PostgreSQL: of one issue's events in an hour the first are stored
whole, then a reservoir sample, and every event is counted whichever rows were kept; what
read event rows to count (an ignore's rate, an unmerge) stays exact."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import asyncpg
import pytest

from mendline.schemas.errors import EventNotFound
from mendline.schemas.issue import IgnoreCondition
from mendline.schemas.prepared import BatchResult
from mendline.schemas.settings import load_settings
from mendline.sinks.postgres import (
    IssueActions,
    IssueReads,
    Store,
    connect_store,
    migrate,
)
from tests.db_helpers import EVENT_AT, RESPONDER, migrate_before, prepared_event

pytestmark = pytest.mark.integration

A = "a" * 32
B = "b" * 32


async def sampling_store(url: str, full: int, sample: int) -> Store:
    store = await connect_store(
        load_settings(
            database_url=url,
            frequency_threshold=0,
            events_full_per_hour=full,
            events_sample_per_hour=sample,
        )
    )
    store.sampling.seed(20261206)
    return store


async def rows(db: asyncpg.Connection, fingerprint: str = A) -> list[asyncpg.Record]:
    return list(
        await db.fetch(
            """SELECT e.event_id, e.release, e.environment, v.sampled
               FROM mendline.events e JOIN mendline.issue_events v USING (event_id)
               WHERE e.fingerprint = $1""",
            fingerprint,
        )
    )


async def issue_ids(db: asyncpg.Connection) -> dict[str, int]:
    """Each issue's id, by the fingerprint that made it."""
    rows = await db.fetch("SELECT id, primary_hash FROM mendline.issues")
    return {r["primary_hash"]: r["id"] for r in rows}


async def test_a_flood_of_one_issue_stores_the_first_and_a_sample_and_counts_every_event(
    fresh_db_url: str, db: asyncpg.Connection
) -> None:
    store = await sampling_store(fresh_db_url, full=5, sample=3)
    results: list[BatchResult] = []
    try:
        for n in range(10):
            batch = [
                prepared_event(A, at=EVENT_AT + timedelta(seconds=n, milliseconds=k))
                for k in range(20)
            ]
            results.append(await store.write(batch))
        stored = await rows(db)
        assert len(stored) == 8  # 5 whole, 3 sampled
        assert sorted(r["sampled"] for r in stored) == [False] * 5 + [True] * 3
        assert sum(r.stored for r in results) == 200
        assert sum(r.sampled_out for r in results) == 192
        issue = await db.fetchrow("SELECT id, times_seen FROM mendline.issues")
        assert issue["times_seen"] == 200
        for table in ("issue_counts", "fingerprint_counts"):
            assert await db.fetchval(f"SELECT sum(count) FROM mendline.{table}") == 200
        hour = await db.fetchrow("SELECT received, stored FROM mendline.issue_sampling")
        assert (hour["received"], hour["stored"]) == (200, 8)
        # A release and an environment not stored yet this hour are stored whole, however
        # many came before: every release an issue had stays findable by its events.
        await store.write(
            [prepared_event(A, release="2.0"), prepared_event(A, environment="staging")]
        )
        await store.write([prepared_event(A, release="2.0") for _ in range(5)])
    finally:
        await store.close()
    stored = await rows(db)
    assert len(stored) == 10
    assert {(r["release"], r["environment"]) for r in stored if not r["sampled"]} == {
        ("1.0", "production"),
        ("2.0", "production"),
        ("1.0", "staging"),
    }
    assert await db.fetchval("SELECT times_seen FROM mendline.issues") == 207
    assert await db.fetchval("SELECT environments FROM mendline.issues") == [
        "production",
        "staging",
    ]


async def test_the_reservoir_replaces_its_events_and_keeps_its_size(
    fresh_db_url: str, db: asyncpg.Connection
) -> None:
    store = await sampling_store(fresh_db_url, full=1, sample=2)
    offered: list[str] = []
    try:
        await store.write([prepared_event(A)])
        first = {r["event_id"].hex for r in await rows(db)}
        for _ in range(60):
            batch = [prepared_event(A), prepared_event(A)]
            offered += [e.event_id for e in batch]
            await store.write(batch)
            assert len(await rows(db)) == 3  # one whole, two sampled, after every batch
    finally:
        await store.close()
    sampled = {r["event_id"].hex for r in await rows(db) if r["sampled"]}
    whole = {r["event_id"].hex for r in await rows(db) if not r["sampled"]}
    assert whole == first
    assert sampled <= set(offered)
    # The seeded draw replaced the first two offered: a later event holds a slot.
    assert sampled != set(offered[:2])
    slots = await db.fetch("SELECT sample_slot FROM mendline.events WHERE sample_slot >= 0")
    assert sorted(r["sample_slot"] for r in slots) == [0, 1]
    assert await db.fetchval("SELECT times_seen FROM mendline.issues") == 121


async def test_a_replayed_batch_counts_nothing_again_whatever_was_sampled(
    fresh_db_url: str, db: asyncpg.Connection
) -> None:
    store = await sampling_store(fresh_db_url, full=2, sample=1)
    batch = [prepared_event(A) for _ in range(10)]
    try:
        first = await store.write(batch)
        again = await store.write(batch)
    finally:
        await store.close()
    assert (first.stored, first.sampled_out) == (10, 7)
    assert (again.stored, again.duplicates, again.sampled_out) == (0, 10, 0)
    assert await db.fetchval("SELECT times_seen FROM mendline.issues") == 10
    assert await db.fetchval("SELECT received FROM mendline.event_samples") == 10
    assert len(await rows(db)) == 3


async def test_an_ignore_per_hour_counts_the_events_sampling_left_out(
    fresh_db_url: str, db: asyncpg.Connection, actions: IssueActions
) -> None:
    store = await sampling_store(fresh_db_url, full=1, sample=0)
    try:
        # A burst before the ignore does not end it: 40 in the minute it is made in.
        await store.write([prepared_event(A) for _ in range(40)])
        issue_id = await db.fetchval("SELECT id FROM mendline.issues")
        await actions.ignore(RESPONDER, issue_id, IgnoreCondition(per_hour=30))
        await store.write([dataclasses.replace(prepared_event(A), count=10) for _ in range(2)])
        assert await db.fetchval("SELECT status FROM mendline.issues") == "ignored"
        await store.write([prepared_event(A) for _ in range(10)])
        assert await db.fetchval("SELECT status FROM mendline.issues") == "unresolved"
    finally:
        await store.close()
    assert len(await rows(db)) == 1  # one row stored: the counts came from the tallies
    assert await db.fetchval("SELECT times_seen FROM mendline.issues") == 70


async def test_unmerge_gives_back_every_occurrence_of_sampled_events(
    fresh_db_url: str, db: asyncpg.Connection, actions: IssueActions
) -> None:
    store = await sampling_store(fresh_db_url, full=2, sample=1)
    last = EVENT_AT + timedelta(minutes=3)
    try:
        await store.write(
            [prepared_event(A) for _ in range(30)] + [prepared_event(B) for _ in range(30)]
        )
        ids = await issue_ids(db)
        await actions.merge(RESPONDER, ids[A], ids[B])
        # After the merge: b's events go to a, and the newest is b's, of release 3.0.
        await store.write(
            [prepared_event(B) for _ in range(19)] + [prepared_event(B, at=last, release="3.0")]
        )
        merged = await db.fetchval("SELECT times_seen FROM mendline.issues WHERE id = $1", ids[A])
        assert merged == 80
        await actions.unmerge(RESPONDER, ids[B])
    finally:
        await store.close()
    back = await db.fetchrow(
        "SELECT times_seen, last_seen, last_release FROM mendline.issues WHERE id = $1", ids[B]
    )
    assert (back["times_seen"], back["last_seen"], back["last_release"]) == (50, last, "3.0")
    counts = {
        r["issue_id"]: r["n"]
        for r in await db.fetch(
            "SELECT issue_id, sum(count) AS n FROM mendline.issue_counts GROUP BY issue_id"
        )
    }
    assert counts == {ids[A]: 30, ids[B]: 50}
    assert await db.fetchval("SELECT times_seen FROM mendline.issues WHERE id = $1", ids[A]) == 30
    # b's stored events went back with it; a sample stays marked as one, in no reservoir
    # (a slot is its issue's).
    moved = await rows(db, B)
    assert any(r["sampled"] for r in moved) and any(not r["sampled"] for r in moved)
    slots = await db.fetch(
        "SELECT DISTINCT sample_slot FROM mendline.events WHERE fingerprint = $1", B
    )
    assert {r["sample_slot"] for r in slots} <= {None, -1}
    assert (
        await db.fetchval(
            "SELECT count(*) FROM mendline.events WHERE fingerprint = $1 AND issue_id <> $2",
            B,
            ids[B],
        )
        == 0
    )


async def test_unmerge_gives_back_the_environments_of_sampled_out_events(
    fresh_db_url: str, db: asyncpg.Connection, actions: IssueActions
) -> None:
    # The holder had stored ("1.0", "staging") already: b's own first of it is stored too.
    store = await sampling_store(fresh_db_url, full=1, sample=0)
    try:
        await store.write([prepared_event(A), prepared_event(A, environment="staging")])
        await store.write([prepared_event(B)])
        ids = await issue_ids(db)
        await actions.merge(RESPONDER, ids[A], ids[B])
        await store.write([prepared_event(B, environment="staging") for _ in range(3)])
        await actions.unmerge(RESPONDER, ids[B])
    finally:
        await store.close()
    back = await db.fetchrow(
        "SELECT times_seen, environments FROM mendline.issues WHERE id = $1", ids[B]
    )
    assert (back["times_seen"], back["environments"]) == (4, ["production", "staging"])


async def test_concurrent_stores_on_one_issue_count_exactly_and_keep_the_tally(
    fresh_db_url: str, db: asyncpg.Connection
) -> None:
    stores = [await sampling_store(fresh_db_url, full=5, sample=3) for _ in range(3)]
    for n, store in enumerate(stores):
        store.sampling.seed(n)
    try:
        await stores[0].write([prepared_event(A)])  # the issue exists
        batches = [[prepared_event(A, release=f"1.{k % 2}") for k in range(20)] for _ in range(30)]
        await asyncio.gather(*(stores[i % 3].write(b) for i, b in enumerate(batches)))
    finally:
        for store in stores:
            await store.close()
    for table in ("issue_counts", "fingerprint_counts"):
        assert await db.fetchval(f"SELECT sum(count) FROM mendline.{table}") == 601
    assert await db.fetchval("SELECT times_seen FROM mendline.issues") == 601
    tally = await db.fetch("SELECT received, kept, sampled FROM mendline.event_samples")
    assert sum(r["received"] for r in tally) == 601
    stored = await db.fetchval("SELECT count(*) FROM mendline.events")
    assert sum(r["kept"] + r["sampled"] for r in tally) == stored
    slots = await db.fetch(
        """SELECT date_trunc('hour', received_at) AS hour, sample_slot, count(*) AS n
           FROM mendline.events WHERE sample_slot IS NOT NULL GROUP BY 1, 2"""
    )
    assert slots and all(r["n"] == 1 for r in slots)  # each slot held by one event


async def test_a_merge_into_a_rate_ignored_issue_does_not_count_what_came_before_the_ignore(
    fresh_db_url: str, db: asyncpg.Connection, actions: IssueActions
) -> None:
    store = await sampling_store(fresh_db_url, full=1, sample=0)
    try:
        await store.write(
            [prepared_event(A) for _ in range(5)] + [prepared_event(B) for _ in range(40)]
        )
        ids = await issue_ids(db)
        await actions.ignore(RESPONDER, ids[A], IgnoreCondition(per_hour=30))
        # Whoever sets ignored_at (an older mendline too), a trigger notes the minute's count.
        assert (
            await db.fetchval(
                "SELECT ignore_minute_seen FROM mendline.issues WHERE id = $1", ids[A]
            )
            == 5
        )
        await actions.merge(RESPONDER, ids[A], ids[B])  # b's 40 came before the ignore
        await store.write([prepared_event(A)])
        assert await db.fetchval("SELECT status FROM mendline.issues WHERE id = $1", ids[A]) == (
            "ignored"
        )
        await store.write([prepared_event(B) for _ in range(29)])
        assert await db.fetchval("SELECT status FROM mendline.issues WHERE id = $1", ids[A]) == (
            "unresolved"
        )
    finally:
        await store.close()


async def test_no_sampling_stores_every_event(fresh_db_url: str, db: asyncpg.Connection) -> None:
    store = await sampling_store(fresh_db_url, full=0, sample=3)
    try:
        result = await store.write([prepared_event(A) for _ in range(250)])
    finally:
        await store.close()
    assert (result.stored, result.sampled_out) == (250, 0)
    assert len(await rows(db)) == 250
    assert await db.fetchval("SELECT count(*) FROM mendline.event_samples") == 0


def test_the_shipped_defaults_keep_a_hundred_whole_and_ten_sampled_an_hour() -> None:
    settings = load_settings()
    assert (settings.events_full_per_hour, settings.events_sample_per_hour) == (100, 10)


async def test_the_upgrade_counts_the_events_stored_before_it(empty_db_url: str) -> None:
    conn = await asyncpg.connect(empty_db_url)
    try:
        # As mendline left it before sampling: every event stored, counted by its rows.
        await migrate_before(conn, "0029")
        issue = await conn.fetchval(
            """INSERT INTO mendline.issues (service, primary_hash, title, level, level_rank,
                                            first_seen, last_seen, times_seen, status,
                                            ignored_at, ignore_per_hour)
               VALUES ('api', $1, 'ValueError', 'error', 3, $2, $2, 4, 'ignored', $3, 10)
               RETURNING id""",
            A,
            EVENT_AT,
            EVENT_AT + timedelta(seconds=50),
        )
        for n, count in enumerate((1, 2, 1)):
            await conn.execute(
                """INSERT INTO mendline.events (event_id, issue_id, received_at, "timestamp",
                       service, environment, release, level, message, fingerprint, payload,
                       count)
                   VALUES (gen_random_uuid(), $1, $2, $2, 'api', 'production', $3, 'error',
                           'm', $4, '{}', $5)""",
                issue,
                EVENT_AT + timedelta(seconds=40 * n),
                f"1.{n}",
                A,
                count,
            )
        assert (await migrate(conn))[:2] == ["0029_sampling", "0030_ignore_minute"]
        minutes = await conn.fetch(
            "SELECT minute, count, last_seen, last_release FROM mendline.fingerprint_counts"
            " ORDER BY minute"
        )
        assert [tuple(r) for r in minutes] == [
            (EVENT_AT, 3, EVENT_AT + timedelta(seconds=40), "1.1"),
            (EVENT_AT + timedelta(minutes=1), 1, EVENT_AT + timedelta(seconds=80), "1.2"),
        ]
        # The ignore made at :50 had seen the minute's first two events (3 occurrences).
        assert await conn.fetchval("SELECT ignore_minute_seen FROM mendline.issues") == 3
    finally:
        await conn.close()


async def test_reads_say_what_an_event_stands_for_and_an_event_sampled_out(
    fresh_db_url: str, db: asyncpg.Connection
) -> None:
    store = await sampling_store(fresh_db_url, full=1, sample=1)
    rolled = dataclasses.replace(prepared_event(A, at=EVENT_AT), count=40)
    later = [prepared_event(A, at=EVENT_AT + timedelta(seconds=n)) for n in range(1, 30)]
    try:
        await store.write([rolled, *later])
    finally:
        await store.close()
    pool = await asyncpg.create_pool(fresh_db_url, min_size=1, max_size=1)
    try:
        reads = IssueReads(pool)
        (issue_id,) = (await issue_ids(db)).values()
        page = await reads.events(issue_id, 10)
        shown = {e["event_id"]: (e["count"], e["sampled"]) for e in page.events}
        assert shown.pop(rolled.event_id) == (40, False)
        assert list(shown.values()) == [(1, True)]  # the reservoir's one
        assert (await reads.event(rolled.event_id))["count"] == 40
        left_out = next(e for e in later if e.event_id not in shown)
        with pytest.raises(EventNotFound, match=r"received at .* sampling left it out"):
            await reads.event(left_out.event_id)
        with pytest.raises(EventNotFound, match="there is no stored event"):
            await reads.event("c" * 32)
    finally:
        await pool.close()
