"""Health checks: PostgreSQL bytes per check per day (results and rollups), at two intervals.

Run: .venv/bin/python bench/health_storage.py [--checks N]

For each interval (5 min: 30 N checks, 10 s: N checks), HTTP checks record a whole UTC day
of results through HealthStore.record (one result in fifty a failure, response times
log-normal around 60 ms), into a fresh database. Sizes are pg_total_relation_size (heap,
indexes, TOAST) after VACUUM FULL, less the empty tables', per check: the results (kept
MENDLINE_CHECK_RESULTS_RETENTION_DAYS, 7), the minute rollups (kept as long) and the hour and
day rollups (kept MENDLINE_CHECK_ROLLUPS_RETENTION_DAYS, 400); and a year's steady state.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from pydantic import TypeAdapter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mendline.devstack import EmbeddedPostgres  # noqa: E402
from mendline.schemas.checks import Check, CheckResult  # noqa: E402
from mendline.sinks.postgres import HealthStore, migrated_pool  # noqa: E402
from tests.db_helpers import fresh_database  # noqa: E402

RAW_DAYS, ROLLUP_DAYS = 7, 400


async def sizes(conn: asyncpg.Connection) -> tuple[int, int]:
    """Bytes of the results (all partitions) and of the rollups."""
    await conn.execute("VACUUM FULL")
    raw = await conn.fetchval(
        """SELECT sum(pg_total_relation_size(relid))::bigint
           FROM pg_partition_tree('mendline.check_results_raw') WHERE isleaf"""
    )
    rollups = await conn.fetchval("SELECT pg_total_relation_size('mendline.check_rollups')")
    return int(raw), int(rollups)


async def one_day(url: str, interval: float, checks: int) -> None:
    pool = await migrated_pool(url, checks + 1)
    store = HealthStore(pool)
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(1)
    await store.ensure_partitions(day.date() - timedelta(days=1))
    adapter: TypeAdapter[Check] = TypeAdapter(Check)
    defined = [
        adapter.validate_python(
            {
                "name": f"api-{i}",
                "kind": "http",
                "url": f"https://api-{i}.example.com/health",
                "interval": interval,
                "conditions": ["[STATUS] == 200", "[RESPONSE_TIME] < 500"],
            }
        )
        for i in range(checks)
    ]
    await store.sync_checks(defined, day)
    async with pool.acquire() as conn:
        empty_raw, empty_rollups = await sizes(conn)  # empty tables' pages, not per check

    async def record_day(check: Check, seed: int) -> None:
        rng = random.Random(seed)
        for n in range(int(86400 / interval)):
            at = day + timedelta(seconds=n * interval)
            ok = rng.random() > 0.02
            seconds = rng.lognormvariate(-2.8, 0.5)
            status = "200" if ok else "503"
            result = CheckResult.model_validate(
                {
                    "check": check.name,
                    "kind": "http",
                    "scheduled_at": at,
                    "started_at": at + timedelta(milliseconds=3),
                    "duration": seconds + 0.001,
                    "success": ok,
                    "conditions": [
                        {"condition": "[STATUS] == 200", "success": ok, "observed": status},
                        {
                            "condition": "[RESPONSE_TIME] < 500",
                            "success": True,
                            "observed": str(round(seconds * 1000)),
                        },
                    ],
                    "timings": {
                        "dns": 0.001,
                        "connect": 0.002,
                        "tls": 0.01,
                        "first_byte": seconds - 0.001,
                        "total": seconds,
                    },
                }
            )
            await store.record(result, check, "bench-monitor", in_maintenance=False)

    await asyncio.gather(*(record_day(c, i) for i, c in enumerate(defined)))
    async with pool.acquire() as conn:
        raw, rollups = await sizes(conn)
        await conn.execute("DELETE FROM mendline.check_rollups WHERE width = 'minute'")
        _, long_kept = await sizes(conn)
    await pool.close()
    minute = rollups - long_kept
    per = [x / checks for x in (raw - empty_raw, minute, long_kept - empty_rollups)]
    year = RAW_DAYS * (per[0] + per[1]) + min(ROLLUP_DAYS, 365) * per[2]
    print(
        f"interval {interval:>5g}s: {int(86400 / interval):>5} results/day; per check per day:"
        f" results {per[0] / 1024:8.1f} KiB, minute rollups {per[1] / 1024:7.1f} KiB,"
        f" hour+day rollups {per[2] / 1024:5.1f} KiB; a year kept (7 d results and minutes,"
        f" hours and days for a year): {year / 1024 / 1024:6.2f} MiB"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=3)
    args = parser.parse_args()
    with EmbeddedPostgres() as pg:
        # As many results at both intervals: the 5-minute checks are 30 times more.
        for interval, checks in ((300.0, 30 * args.checks), (10.0, args.checks)):
            async with fresh_database(pg.url) as url:
                await one_day(url, interval, checks)


if __name__ == "__main__":
    asyncio.run(main())
