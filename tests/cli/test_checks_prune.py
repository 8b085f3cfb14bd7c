"""``mendline checks prune [--dry-run]`` against a real PostgreSQL: what would go, then what
went, for people and as JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import TypeAdapter

from mendline.schemas.checks import Check, CheckResult
from mendline.schemas.settings import load_settings
from mendline.sinks.postgres import connect_health
from tests.cli_helpers import cli, json_object
from tests.db_helpers import query

pytestmark = pytest.mark.integration
OLD_DAY = (datetime.now(UTC) - timedelta(days=30)).replace(hour=12, minute=0, second=0)
API = TypeAdapter(Check).validate_python({"name": "api", "kind": "tcp", "host": "db", "port": 1})


async def old_partitions(url: str) -> list[str]:
    rows = await query(
        url,
        """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = 'mendline.check_results_raw'::regclass
             AND c.relname < $1 AND c.relname ~ '[0-9]{8}$' ORDER BY 1""",
        f"check_results_raw_{datetime.now(UTC) - timedelta(days=8):%Y%m%d}",
    )
    return [r["relname"] for r in rows]


async def test_prune_says_what_it_would_remove_then_removes_it(fresh_db_url: str) -> None:
    health = await connect_health(load_settings(database_url=fresh_db_url), 1)
    try:
        await health.sync_checks([API], OLD_DAY)
        await health.ensure_partitions(OLD_DAY.date())
        done = CheckResult(
            check="api",
            kind="tcp",
            scheduled_at=OLD_DAY,
            started_at=OLD_DAY,
            duration=0.01,
            success=True,
        )
        await health.record(done, API, "m1", in_maintenance=False)
    finally:
        await health.close()
    old = await old_partitions(fresh_db_url)
    assert len(old) == 3
    env = {"MENDLINE_DATABASE_URL": fresh_db_url}

    dry = await cli("checks", "prune", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith(f"would remove 3 day(s) of results ({OLD_DAY:%Y-%m-%d}, ")
    assert "1 rollup row(s)" in dry.stdout and dry.stdout.endswith(
        "; would remove 0 check-in(s) older than 7 days\n"
    )
    assert await old_partitions(fresh_db_url) == old

    pruned = json_object(await cli("checks", "prune", "--json", env=env))
    assert pruned == {
        "dry_run": False,
        "results_skipped": False,
        "partitions": old,
        "rollups": 1,
        "checkins": 0,
        "results_retention_days": 7,
        "rollups_retention_days": 400,
    }
    assert await old_partitions(fresh_db_url) == []
    again = await cli("checks", "prune", env=env)
    assert again.stdout.startswith("removed 0 day(s) of results (none)")
