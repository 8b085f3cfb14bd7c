"""The monitor's pruning against a real PostgreSQL: the results' old days, their rollups and
the old check-ins go, what is recent and what a heartbeat still needs stays, a dry run only
says so, and a running monitor prunes shortly after it starts and says what it removed."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter

from mendline.analyzers.health import CheckSet
from mendline.schemas.checkin import PreparedCheckIn
from mendline.schemas.checks import Check, CheckIn, CheckResult
from mendline.schemas.settings import Settings, load_settings
from mendline.sinks.postgres import (
    CheckinStore,
    HealthStore,
    PruneResult,
    connect_checkins,
    connect_health,
)
from mendline.stages.monitor import MonitorWorker, Pruned, prune_health

pytestmark = pytest.mark.integration
CHECK: TypeAdapter[Check] = TypeAdapter(Check)
NOW = datetime.now(UTC).replace(microsecond=0)
OLD_DAY = (NOW - timedelta(days=10)).replace(hour=12, minute=0, second=0)
API = CHECK.validate_python({"name": "api", "kind": "tcp", "host": "db", "port": 1, "interval": 60})
WEEKLY = CHECK.validate_python(
    {"name": "weekly", "kind": "heartbeat", "every": "7d", "grace": "1h"}
)
FRESH = CHECK.validate_python({"name": "fresh", "kind": "heartbeat", "every": "1h"})


@pytest.fixture
def settings(fresh_db_url: str) -> Settings:
    return load_settings(database_url=fresh_db_url, check_results_retention_days=7)


@pytest.fixture
async def stores(settings: Settings) -> AsyncIterator[tuple[HealthStore, CheckinStore]]:
    """The stores, holding old and recent results, rollups and check-ins."""
    health = await connect_health(settings, 2)
    checkins = await connect_checkins(settings, 2)
    await health.sync_checks([API, WEEKLY, FRESH], OLD_DAY - timedelta(days=1))
    await health.ensure_partitions(OLD_DAY.date())
    for at in (OLD_DAY, NOW - timedelta(hours=1)):
        await health.record(result(API, at), API, "m1", in_maintenance=False)
    # The weekly job was judged six days ago: its check-ins of the week before count still.
    await health.record(result(WEEKLY, NOW - timedelta(days=6)), WEEKLY, "m1", in_maintenance=False)
    await checkins.store(
        [
            checkin("weekly", 12),
            checkin("weekly", 20),
            checkin("fresh", 15),  # never judged yet: kept
            checkin("gone-job", 10),
            checkin("gone-job", 2),
        ]
    )
    yield health, checkins
    await health.close()
    await checkins.close()


def result(check: Check, at: datetime) -> CheckResult:
    fields: dict[str, Any] = {"started_at": at, "duration": 0.01, "success": True}
    return CheckResult(check=check.name, kind=check.kind, scheduled_at=at, **fields)


def checkin(name: str, days_ago: float) -> PreparedCheckIn:
    at = NOW - timedelta(days=days_ago)
    sent = CheckIn(schema_version=1, checkin_id=uuid.uuid4(), check=name, status="ok", timestamp=at)
    return PreparedCheckIn(sent, at, False, b"{}")


async def left(health: HealthStore) -> dict[str, Any]:
    pool = health.pool
    return {
        "results": await pool.fetchval("SELECT count(*) FROM mendline.check_results_raw"),
        "old partition": await pool.fetchval(
            "SELECT to_regclass($1) IS NOT NULL", f"mendline.check_results_raw_{OLD_DAY:%Y%m%d}"
        ),
        "old minutes": await pool.fetchval(
            "SELECT count(*) FROM mendline.check_rollups WHERE width = 'minute' AND bucket < $1",
            NOW - timedelta(days=8),
        ),
        "old hours and days": await pool.fetchval(
            "SELECT count(*) FROM mendline.check_rollups WHERE width <> 'minute' AND bucket < $1",
            NOW - timedelta(days=8),
        ),
        "checkins": sorted(
            (r["check_name"], round((NOW - r["timestamp"]) / timedelta(days=1)))
            for r in await pool.fetch("SELECT check_name, timestamp FROM mendline.checkins")
        ),
    }


async def test_prune_removes_what_is_past_the_retention_and_keeps_what_heartbeats_need(
    settings: Settings, stores: tuple[HealthStore, CheckinStore]
) -> None:
    health, checkins = stores
    before = await left(health)
    assert before["old partition"] and before["old minutes"] == 1
    dry = await prune_health(settings, health, checkins, dry_run=True)
    assert await left(health) == before
    assert dry.checkins == 2 and dry.results.rollups == 1
    assert dry.describe().startswith("would remove 3 day(s) of results (")
    pruned = await prune_health(settings, health, checkins)
    assert (pruned.results.partitions, pruned.results.rollups, pruned.checkins) == (
        dry.results.partitions,
        1,
        2,
    )
    assert f"{OLD_DAY:%Y-%m-%d}" in pruned.describe()
    assert pruned.describe().endswith("; removed 2 check-in(s) older than 7 days")
    assert await left(health) == {
        "results": 2,  # the recent ones
        "old partition": False,
        "old minutes": 0,
        "old hours and days": 2,  # kept for 400 days
        "checkins": [("fresh", 15), ("gone-job", 2), ("weekly", 12)],
    }


async def test_a_monitor_prunes_after_it_starts_and_says_what_it_removed(
    settings: Settings,
    stores: tuple[HealthStore, CheckinStore],
    caplog: pytest.LogCaptureFixture,
) -> None:
    health, checkins = stores
    worker = MonitorWorker(settings, health, checkins, CheckSet((), "none", {}))
    stop = asyncio.Event()
    caplog.set_level(logging.INFO, "mendline.monitor")
    pruning = asyncio.create_task(worker.prune_daily(stop, first=0.0, every=3600.0))
    try:
        for _ in range(200):
            if not (await left(health))["old partition"]:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(pruning, 10)
    assert (await left(health))["checkins"] == [("fresh", 15), ("gone-job", 2), ("weekly", 12)]
    said = [r.getMessage() for r in caplog.records if "pruned" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("mendline: health data pruned: removed 3 day(s)")


def test_a_prune_that_found_another_under_way_says_it_was_skipped() -> None:
    pruned = Pruned(PruneResult((), 0, skipped=True), None, 7, 400)
    assert pruned.describe() == (
        "results skipped (another prune was running); check-ins skipped (another prune was running)"
    )
