"""The check-ins store: batches of heartbeat check-ins, idempotent by checkin_id, and the
stream clock (the newest check-in timestamp consumed) the monitor judges missed runs by."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from mendline.schemas.checkin import PreparedCheckIn
from mendline.schemas.checks import CLOCK_CHECK, CheckIn
from mendline.schemas.prepared import BatchResult
from mendline.schemas.settings import Settings
from mendline.sinks.postgres._errors import translating
from mendline.sinks.postgres._migrate import migrated_pool

__all__ = ["ALL_ENVIRONMENTS", "CheckinStore", "connect_checkins"]

#: The stream clock's row for every environment at once.
ALL_ENVIRONMENTS = "*"

_INSERT = """
INSERT INTO mendline.checkins (
    checkin_id, check_name, status, run_id, environment, timestamp, sent_timestamp, clamped,
    duration, message, host, kafka_partition, kafka_offset)
SELECT * FROM unnest(
    $1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
    $7::timestamptz[], $8::boolean[], $9::float8[], $10::text[], $11::text[], $12::int[],
    $13::bigint[])
ON CONFLICT (checkin_id) DO NOTHING
RETURNING checkin_id
"""

# Never past the database's now(), the clock the schedule and the slots are judged by.
_ADVANCE_CLOCK = """
INSERT INTO mendline.checkin_clock (environment, newest)
SELECT environment, LEAST(newest, now())
FROM unnest($1::text[], $2::timestamptz[]) AS advanced (environment, newest)
ON CONFLICT (environment) DO UPDATE
SET newest = GREATEST(mendline.checkin_clock.newest, EXCLUDED.newest), updated_at = now()
"""

_CHECKINS_FOR = """
SELECT checkin_id, check_name, status, run_id, environment, timestamp, duration, message, host
FROM mendline.checkins
WHERE check_name = $1 AND timestamp >= $2 AND ($3::text IS NULL OR environment = $3)
ORDER BY timestamp, received_at
"""


@translating
class CheckinStore:
    """Writes the check-ins consumer's batches and answers the monitor's questions.

    Failures come out as DatabaseUnavailable (waiting can cure it) or RejectedData."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def close(self) -> None:
        """Close the pool; idempotent."""
        await self.pool.close()

    async def write(self, batch: list[PreparedCheckIn]) -> BatchResult:
        """``store``, under the name the consumer calls every sink by."""
        return await self.store(batch)

    async def store(self, batch: Sequence[PreparedCheckIn]) -> BatchResult:
        """Store the batch and advance the stream clock, in one transaction. A check-in whose
        checkin_id is stored already changes nothing (``duplicates``).

        The clock moves to a check-in's timestamp, but never past the database's ``now()``
        (the time of receipt, on the clock the slots are judged by, not on the consumer's
        host's): a check-in stamped by a host whose clock is a few minutes fast keeps its
        timestamp, yet must not make other checks' slots look due before they are."""
        if not batch:
            return BatchResult()
        # The monitor's clock ticks move the clock of all environments and are not kept.
        checkins = [item for item in batch if item.checkin.check != CLOCK_CHECK]
        columns = _columns(checkins)
        newest: dict[str, datetime] = {}
        for item in batch:
            tick = item.checkin.check == CLOCK_CHECK
            clocks = (ALL_ENVIRONMENTS,) if tick else (item.checkin.environment, ALL_ENVIRONMENTS)
            for environment in clocks:
                at = item.timestamp
                seen = newest.get(environment)
                if seen is None or at > seen:
                    newest[environment] = at
        order = sorted(newest)  # concurrent batches take the clock's rows in one order
        async with self.pool.acquire() as conn, conn.transaction():
            inserted = await conn.fetch(_INSERT, *columns) if checkins else []
            await conn.execute(_ADVANCE_CLOCK, order, [newest[e] for e in order])
        return BatchResult(stored=len(inserted), duplicates=len(checkins) - len(inserted))

    async def clock(self, environment: str | None = None) -> datetime | None:
        """The newest check-in timestamp consumed so far, of ``environment`` (of all when
        None); None before the first check-in."""
        value: datetime | None = await self.pool.fetchval(
            "SELECT newest FROM mendline.checkin_clock WHERE environment = $1",
            environment if environment is not None else ALL_ENVIRONMENTS,
        )
        return value

    async def checkins_for(
        self, check_name: str, since: datetime, environment: str | None = None
    ) -> list[CheckIn]:
        """The check's check-ins with a timestamp at or after ``since`` (of one environment,
        or all), oldest first, with the timestamps as stored (a clamped one is the record's)."""
        rows = await self.pool.fetch(_CHECKINS_FOR, check_name, since, environment)
        return [
            CheckIn(
                schema_version=1,
                checkin_id=row["checkin_id"],
                check=row["check_name"],
                status=row["status"],
                run_id=row["run_id"],
                environment=row["environment"],
                timestamp=row["timestamp"],
                duration=row["duration"],
                message=row["message"],
                host=row["host"],
            )
            for row in rows
        ]

    async def prune(
        self,
        older_than: datetime,
        *,
        keep: dict[str, datetime | None] | None = None,
        dry_run: bool = False,
    ) -> int | None:
        """Delete the check-ins with a timestamp before ``older_than`` (with ``dry_run``:
        count them), but those a heartbeat still needs: ``keep`` maps a check's name to
        the instant its check-ins are kept from (None: all of them). The number deleted;
        None when another prune of the check-ins was running (this one did nothing)."""
        wanted = keep or {}
        names = sorted(wanted)
        async with self.pool.acquire() as conn, conn.transaction():
            # "mlcheckp": one prune at a time across every monitor, the others skip.
            if not await conn.fetchval(
                "SELECT pg_try_advisory_xact_lock(x'6d6c636865636b70'::bigint)"
            ):
                return None
            # The check-ins past it are counted, and deleted unless it is a dry run.
            pruned: int = await conn.fetchval(
                """WITH old AS (
                       SELECT c.checkin_id FROM mendline.checkins c
                       WHERE c.timestamp < $1 AND NOT EXISTS (
                           SELECT 1 FROM unnest($2::text[], $3::timestamptz[]) AS k(name, since)
                           WHERE k.name = c.check_name
                             AND (k.since IS NULL OR c.timestamp >= k.since))),
                   gone AS (
                       DELETE FROM mendline.checkins
                       WHERE NOT $4 AND checkin_id IN (SELECT checkin_id FROM old))
                   SELECT count(*) FROM old""",
                older_than,
                names,
                [wanted[n] for n in names],
                dry_run,
            )
        return pruned


def _columns(batch: Sequence[PreparedCheckIn]) -> list[list[object]]:
    """The batch as the INSERT's thirteen arrays, one per column."""
    rows = [
        (
            item.checkin.checkin_id,
            item.checkin.check,
            item.checkin.status,
            item.checkin.run_id,
            item.checkin.environment,
            item.timestamp,
            item.checkin.timestamp if item.clamped else None,
            item.clamped,
            item.checkin.duration,
            item.checkin.message,
            item.checkin.host,
            item.partition,
            item.offset,
        )
        for item in batch
    ]
    return [list(column) for column in zip(*rows, strict=True)]


async def connect_checkins(settings: Settings, size: int = 4) -> CheckinStore:
    """A CheckinStore on a new pool of ``size`` connections, after applying pending
    migrations."""
    pool = await migrated_pool(settings.database_url.get_secret_value(), size)
    return CheckinStore(pool)
