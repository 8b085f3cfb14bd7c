"""The issue workflow where it meets concurrency and counting: batches racing merges and
unmerges, the release cache and rolled-back batches, what merging does to an ignore, one alert
an escalation (found by the independent review of issue 15)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from mendline.analyzers.grouping.scrubbing import Scrubber
from mendline.ingest import prepare_record
from mendline.schemas.issue import IgnoreCondition
from mendline.schemas.people import Actor
from mendline.schemas.settings import Settings, load_settings
from mendline.sinks.postgres import IssueActions, connect_store
from tests.db_helpers import issue_actions, query
from tests.integration.event_factory import encode
from tests.integration.stage_helpers import ingest, issue_events

pytestmark = pytest.mark.integration

RITA = Actor(name="rita", role="responder", auth="local")


@pytest.fixture
def settings(fresh_db_url: str) -> Settings:
    return load_settings(database_url=fresh_db_url, frequency_threshold=3)


@pytest.fixture
async def actions(settings: Settings) -> AsyncIterator[IssueActions]:
    await ingest(settings, issue_events(range(1), per_issue=1, release="1.0.0"))  # issue 1
    async with issue_actions(settings.database_url.get_secret_value()) as actions:
        yield actions


async def _counts(settings: Settings, issue_id: int) -> tuple[int, int, int]:
    """times_seen, stored events, per-minute counts."""
    (row,) = await query(
        settings.database_url.get_secret_value(),
        """SELECT times_seen,
                  (SELECT count(*) FROM mendline.events e WHERE e.issue_id = i.id),
                  (SELECT coalesce(sum(count), 0) FROM mendline.issue_counts c
                   WHERE c.issue_id = i.id)
           FROM mendline.issues i WHERE id = $1""",
        issue_id,
    )
    return int(row[0]), int(row[1]), int(row[2])


async def test_a_batch_that_started_before_a_merge_is_given_back_by_unmerge(
    settings: Settings, actions: IssueActions
) -> None:
    """A consumer batch takes its ``now`` before the merge's transaction starts and is
    stored after it commits (it waited for a pool connection, a lock, or was retried after
    _MergedMeanwhile with the same ``now``). Its events carry received_at < merged_at, so
    unmerge does not count them as after the merge: the source loses them from times_seen
    and the target keeps them, with no events behind them."""
    url = settings.database_url.get_secret_value()
    await ingest(settings, issue_events(range(1, 2), per_issue=3))  # issue 2, 3 events
    late = issue_events(range(1, 2), per_issue=2)  # issue 2's code, in flight
    blocker = await asyncpg.connect(url)
    store = await connect_store(settings)
    try:
        # Hold one of the batch's event ids uncommitted: the batch takes its `now`, then
        # waits in _new_events, before it reads the fingerprints.
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute(
            "INSERT INTO mendline.event_ids (event_id, received_at) VALUES ($1::uuid, now())",
            late[0]["event_id"],
        )
        batch = [prepare_record(encode(e), Scrubber()) for e in late]
        writing = asyncio.create_task(store.write(batch))
        await asyncio.sleep(0.5)
        await actions.merge(RITA, 1, 2)  # starts after the batch's now, commits first
        await tx.rollback()
        await asyncio.wait_for(writing, 10)
    finally:
        await blocker.close()
        await store.close()
    assert (await _counts(settings, 1))[0] == 6  # 1 + 3 + 2, all on the target
    await actions.unmerge(RITA, 2)
    source, target = await _counts(settings, 2), await _counts(settings, 1)
    assert source == (5, 5, 5), f"source times_seen/stored/counted {source}"
    assert target == (1, 1, 1), f"target times_seen/stored/counted {target}"


async def test_unmerge_does_not_leave_the_old_resolution_or_ignore_behind(
    settings: Settings, actions: IssueActions
) -> None:
    await ingest(settings, issue_events(range(1, 2), per_issue=1, release="1.0.0"))  # issue 2
    await actions.resolve(RITA, 2, in_next_release=True)
    await actions.merge(RITA, 1, 2)
    await actions.unmerge(RITA, 2)
    (row,) = await query(
        settings.database_url.get_secret_value(),
        """SELECT status, resolution, resolved_in_release, resolved_by
           FROM mendline.issue_states WHERE id = 2""",
    )
    assert tuple(row) == ("unresolved", None, None, None)


async def test_next_release_waits_for_the_release_after_the_services_newest(
    settings: Settings, actions: IssueActions
) -> None:
    """Sentry's "resolve in next release" waits for the release after the project's most
    recent one. Here the baseline is the issue's own last release: an issue last seen in
    1.0.0 on a service already running 1.3.0 regresses on the next 1.3.0 event, which
    cannot contain the fix."""
    await ingest(settings, issue_events(range(1, 2), per_issue=1, release="1.3.0"))  # deployed
    await actions.resolve(RITA, 1, in_next_release=True)
    await ingest(settings, issue_events(range(1), per_issue=1, release="1.3.0"))
    (row,) = await query(
        settings.database_url.get_secret_value(),
        "SELECT status FROM mendline.issues WHERE id = 1",
    )
    assert row[0] == "resolved"


async def test_an_escalation_is_one_alert_not_also_a_spike(
    settings: Settings, actions: IssueActions
) -> None:
    await actions.ignore(RITA, 1, IgnoreCondition(per_hour=5))
    await ingest(settings, issue_events(range(1), per_issue=5))
    rows = await query(
        settings.database_url.get_secret_value(),
        "SELECT kind FROM mendline.triggers WHERE issue_id = 1 ORDER BY id",
    )
    assert [r[0] for r in rows] == ["new_issue", "escalating"]


async def test_a_rate_ignore_counts_the_events_after_it(
    settings: Settings, actions: IssueActions
) -> None:
    """Ignored "until 10 an hour" in the middle of a burst of 10: one more event is not
    10 events since the ignore."""
    await ingest(settings, issue_events(range(1), per_issue=9))
    await actions.ignore(RITA, 1, IgnoreCondition(per_hour=10))
    await ingest(settings, issue_events(range(1), per_issue=1))
    (row,) = await query(
        settings.database_url.get_secret_value(),
        "SELECT status FROM mendline.issues WHERE id = 1",
    )
    assert row[0] == "ignored"


async def test_merging_into_an_ignored_issue_does_not_end_its_ignore(
    settings: Settings, actions: IssueActions
) -> None:
    """Ignored until 10 more events; a merge adds 50 old events to times_seen, and the next
    single event ends the ignore."""
    await ingest(settings, issue_events(range(1, 2), per_issue=50))  # issue 2
    await actions.ignore(RITA, 1, IgnoreCondition(events=10))
    await actions.merge(RITA, 1, 2)
    await ingest(settings, issue_events(range(1), per_issue=1))
    rows: list[Any] = await query(
        settings.database_url.get_secret_value(),
        "SELECT status FROM mendline.issues WHERE id = 1",
    )
    assert rows[0][0] == "ignored"


async def test_a_release_recorded_in_a_batch_that_failed_is_recorded_again(
    settings: Settings,
) -> None:
    """_record_releases adds to the process's cache before the transaction commits: any
    failure after it (an outage mid-batch, or a deadlock/serialization retry inside
    Store.write's own loop) leaves the release unrecorded for the life of the process."""
    store = await connect_store(settings)
    try:
        batch = [
            prepare_record(encode(e), Scrubber())
            for e in issue_events(range(1), per_issue=1, release="build-a3")
        ]
        async with store.pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            await store._record_releases(conn, batch, batch[0].timestamp)
            await tx.rollback()  # what any later failure in the batch does
        await store.write(batch)  # the same batch, again
    finally:
        await store.close()
    rows = await query(
        settings.database_url.get_secret_value(), "SELECT release FROM mendline.releases"
    )
    assert [r[0] for r in rows] == ["build-a3"]


async def test_a_batch_racing_an_unmerge_lands_on_the_unmerged_issue(
    settings: Settings, actions: IssueActions
) -> None:
    """The fingerprint recheck in _lock_issues, which no shipped test exercises."""
    from mendline.sinks.postgres._merges import unmerge

    url = settings.database_url.get_secret_value()
    await ingest(settings, issue_events(range(1, 2), per_issue=3))  # issue 2
    await actions.merge(RITA, 1, 2)
    conn = await asyncpg.connect(url)
    store = await connect_store(settings)
    try:
        tx = conn.transaction()
        await tx.start()
        await unmerge(conn, 2, "rita")  # holds issues 1 and 2, fingerprints moved, uncommitted
        batch = [prepare_record(encode(e), Scrubber()) for e in issue_events(range(1, 2), 2)]
        writing = asyncio.create_task(store.write(batch))
        await asyncio.sleep(0.5)  # read the old fingerprint (-> 1), waits for issue 1
        await tx.commit()
        await asyncio.wait_for(writing, 10)
    finally:
        await conn.close()
        await store.close()
    assert await _counts(settings, 2) == (5, 5, 5)
    assert await _counts(settings, 1) == (1, 1, 1)


async def test_a_health_checks_issue_is_not_merged_nor_ignored_until_a_condition(
    settings: Settings, actions: IssueActions
) -> None:
    from mendline.schemas.errors import ConfigError

    await query(
        settings.database_url.get_secret_value(),
        """INSERT INTO mendline.issues (service, primary_hash, title, level, level_rank,
               first_seen, last_seen, kind)
           VALUES ('api', 'health:x', 'check x is down', 'error', 4, now(), now(), 'health')""",
    )
    with pytest.raises(ConfigError, match="health check's"):
        await actions.merge(RITA, 2, 1)
    with pytest.raises(ConfigError, match="health check's"):
        await actions.ignore(RITA, 2, IgnoreCondition(events=3))
    assert await actions.ignore(RITA, 2) is True  # forever: its check's alerts stop
