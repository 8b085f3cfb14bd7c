"""Pruning the heartbeat check-ins against a real PostgreSQL: the old ones go, the recent and
those a heartbeat still needs stay, a dry run only counts, and two prunes at once do not fail."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from mendline.schemas.checkin import PreparedCheckIn
from mendline.schemas.checks import CheckIn
from mendline.sinks.postgres import CheckinStore, migrated_pool

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
async def store(fresh_db_url: str) -> AsyncIterator[CheckinStore]:
    checkins = CheckinStore(await migrated_pool(fresh_db_url, 3))
    yield checkins
    await checkins.close()


def checkin(name: str, days_ago: float) -> PreparedCheckIn:
    at = NOW - timedelta(days=days_ago)
    sent = CheckIn(schema_version=1, checkin_id=uuid.uuid4(), check=name, status="ok", timestamp=at)
    return PreparedCheckIn(sent, at, False, b"{}")


async def kept(store: CheckinStore) -> list[tuple[str, float]]:
    rows = await store.pool.fetch(
        "SELECT check_name, timestamp FROM mendline.checkins ORDER BY check_name, timestamp DESC"
    )
    return [(r["check_name"], round((NOW - r["timestamp"]) / timedelta(days=1))) for r in rows]


async def test_old_checkins_go_and_those_a_heartbeat_needs_stay(store: CheckinStore) -> None:
    await store.store(
        [
            *(checkin("daily", days) for days in (1, 6, 8, 30)),
            *(checkin("weekly", days) for days in (3, 10, 17)),
            *(checkin("new-job", days) for days in (9, 20)),
        ]
    )
    cutoff = NOW - timedelta(days=7)
    keep = {"weekly": NOW - timedelta(days=11), "new-job": None}
    counted = await store.prune(cutoff, keep=keep, dry_run=True)
    assert counted == 3 and len(await kept(store)) == 9  # a dry run removes nothing
    assert await store.prune(cutoff, keep=keep) == 3
    assert await kept(store) == [
        ("daily", 1),
        ("daily", 6),
        ("new-job", 9),  # never judged yet: all of its check-ins are kept
        ("new-job", 20),
        ("weekly", 3),
        ("weekly", 10),  # older than the retention, but still needed to judge it
    ]
    assert await store.prune(cutoff, keep=keep) == 0
    assert await store.prune(cutoff) == 3  # nothing kept: the old ones of every check go


async def test_two_prunes_at_once_do_not_fail_and_remove_each_checkin_once(
    store: CheckinStore, fresh_db_url: str
) -> None:
    await store.store([checkin(f"job-{n}", 10 + n % 5) for n in range(200)])
    other = CheckinStore(await migrated_pool(fresh_db_url, 2))
    try:
        cutoff = NOW - timedelta(days=7)
        pruned = await asyncio.gather(*(s.prune(cutoff) for s in (store, other, store, other)))
    finally:
        await other.close()
    # Each prune removed its share (None: it found another under way and left it to it).
    assert sum(n for n in pruned if n is not None) == 200
    assert await kept(store) == []
