"""The health checks' read side, for the dashboard: every check where it stands with its last
result and check-in, the daily rollups (uptime, response-time histograms), the hourly
percentiles, recent results and check-ins. Read only, through the public views where they
compute what is shown."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError

from mendline.analyzers.health import check_target
from mendline.analyzers.metrics import DayCounts
from mendline.schemas.checks import Check, Maintenance
from mendline.sinks.postgres._errors import translating

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "CheckCheckin",
    "CheckSummary",
    "HealthReads",
    "HourlyResponse",
    "StoredResult",
]

_CHECK: TypeAdapter[Check] = TypeAdapter(Check)
_WINDOWS: TypeAdapter[list[Maintenance]] = TypeAdapter(list[Maintenance])

# Each check of the file (mendline.check_status), with its definition, its newest result's
# response time and conditions (by its key: one index lookup), and for a heartbeat its newest
# check-in.
_SUMMARIES = """
SELECT v.name, v.kind, v.service, v.environment, v.severity, v.interval_seconds, v.status,
       v.since, v.flapping, v.failures, v.successes, v.last_result_at, v.last_success,
       v.last_error, v.issue_id, v.next_due, c.definition::text AS definition,
       r.response_ms, r.conditions,
       k."timestamp" AS checkin_at, k.status AS checkin_status
FROM mendline.check_status v
JOIN mendline.checks c ON c.name = v.name
LEFT JOIN LATERAL (
    SELECT (x.timings ->> 'total')::float8 * 1000 AS response_ms, x.conditions::text AS conditions
    FROM mendline.check_results_raw x
    WHERE x.check_name = v.name AND x.scheduled_at = v.last_result_at) r ON true
LEFT JOIN LATERAL (
    SELECT k."timestamp", k.status FROM mendline.checkins k
    WHERE v.kind = 'heartbeat' AND k.check_name = v.name
    ORDER BY k."timestamp" DESC LIMIT 1) k ON true
WHERE ($1::text IS NULL OR v.name = $1)
ORDER BY v.name
"""

# The day rollups since $1 (of check $2, or all): a histogram is sparse, its lower bound
# says where it starts.
_DAYS = """
SELECT check_name, (bucket AT TIME ZONE 'UTC')::date AS day, count, failures,
       maintenance_count, observed_seconds, downtime_seconds, response_count,
       array_lower(histogram, 1) AS low, histogram
FROM mendline.check_rollups
WHERE width = 'day' AND bucket >= $1 AND ($2::text IS NULL OR check_name = $2)
"""

_HOURLY = """
SELECT hour, results, failures, response_count AS responses, mean_ms, p50_ms, p95_ms, p99_ms
FROM mendline.response_time_hourly
WHERE check_name = $1 AND hour >= $2
ORDER BY hour
"""

_RESULTS = """
SELECT scheduled_at, duration_ms::float8 AS duration_ms, response_ms::float8 AS response_ms,
       success, maintenance, error, error_kind, conditions::text AS conditions, owner
FROM mendline.check_results
WHERE check_name = $1
ORDER BY scheduled_at DESC LIMIT $2
"""

_CHECKINS = """
SELECT "timestamp", received_at, status, run_id, duration, message, host, clamped
FROM mendline.checkins_recent
WHERE check_name = $1
LIMIT $2
"""


@dataclass(frozen=True)
class CheckSummary:
    """One check of the file: where it stands (``status`` as judged: unknown, up, down;
    ``flapping``), since when, its last result, what it looks at, its maintenance windows,
    and for a heartbeat its newest check-in. ``last_response_ms``: the newest result's
    response time (a heartbeat's: its run time), None without an answer."""

    name: str
    kind: str
    service: str
    environment: str
    severity: str
    interval_seconds: float
    status: str
    since: datetime | None
    flapping: bool
    failures: int
    successes: int
    last_result_at: datetime | None
    last_success: bool | None
    last_error: str | None
    issue_id: int | None
    next_due: datetime | None
    target: str | None
    maintenance: tuple[Maintenance, ...]
    last_response_ms: float | None
    last_conditions: tuple[dict[str, Any], ...]
    last_checkin_at: datetime | None
    last_checkin_status: str | None


@dataclass(frozen=True)
class HourlyResponse:
    """One check's hour: results, failures, response times' mean and percentiles in ms
    (``mendline.response_time_hourly``: within 4.4 %)."""

    hour: datetime
    results: int
    failures: int
    responses: int
    mean_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True)
class StoredResult:
    """One kept result (``mendline.check_results``) with the value each condition read."""

    scheduled_at: datetime
    duration_ms: float
    response_ms: float | None
    success: bool
    maintenance: bool
    error: str | None
    error_kind: str | None
    conditions: tuple[dict[str, Any], ...]
    owner: str | None


@dataclass(frozen=True)
class CheckCheckin:
    """One check-in of a heartbeat (``mendline.checkins_recent``)."""

    timestamp: datetime
    received_at: datetime
    status: str
    run_id: str | None
    duration: float | None
    message: str | None
    host: str | None
    clamped: bool


@translating
class HealthReads:
    """The health checks' reads (HealthStore has them)."""

    pool: asyncpg.Pool

    async def summaries(self, name: str | None = None) -> list[CheckSummary]:
        """Every check of the file (or the one called ``name``), by name."""
        return [_summary(row) for row in await self.pool.fetch(_SUMMARIES, name)]

    async def day_rollups(self, since: datetime, name: str | None = None) -> list[DayCounts]:
        """The daily rollups from ``since`` (a UTC midnight), of check ``name`` or all."""
        return [_day(row) for row in await self.pool.fetch(_DAYS, since, name)]

    async def hourly_responses(self, name: str, since: datetime) -> list[HourlyResponse]:
        """The check's hours from ``since``, oldest first; hours without results are absent."""
        rows = await self.pool.fetch(_HOURLY, name, since)
        return [HourlyResponse(**dict(row)) for row in rows]

    async def recent_results(self, name: str, limit: int = 50) -> list[StoredResult]:
        """The check's newest ``limit`` results kept, newest first."""
        rows = await self.pool.fetch(_RESULTS, name, limit)
        return [
            StoredResult(**{**dict(row), "conditions": _conditions(row["conditions"])})
            for row in rows
        ]

    async def recent_checkins(self, name: str, limit: int = 20) -> list[CheckCheckin]:
        """The heartbeat's newest ``limit`` check-ins of the last seven days, newest first."""
        rows = await self.pool.fetch(_CHECKINS, name, limit)
        return [CheckCheckin(**dict(row)) for row in rows]


def _summary(row: Any) -> CheckSummary:
    target, windows = _read_definition(row["definition"])
    return CheckSummary(
        name=row["name"],
        kind=row["kind"],
        service=row["service"],
        environment=row["environment"],
        severity=row["severity"],
        interval_seconds=row["interval_seconds"],
        status=row["status"],
        since=row["since"],
        flapping=row["flapping"],
        failures=row["failures"],
        successes=row["successes"],
        last_result_at=row["last_result_at"],
        last_success=row["last_success"],
        last_error=row["last_error"],
        issue_id=row["issue_id"],
        next_due=row["next_due"],
        target=target,
        maintenance=windows,
        last_response_ms=row["response_ms"],
        last_conditions=_conditions(row["conditions"]),
        last_checkin_at=row["checkin_at"],
        last_checkin_status=row["checkin_status"],
    )


@functools.lru_cache(maxsize=4096)
def _read_definition(text: str) -> tuple[str | None, tuple[Maintenance, ...]]:
    """What a stored definition (JSON, secrets filtered) looks at, and its maintenance
    windows; None and its windows alone when it no longer reads as a check (an older
    release's). Kept per text: a definition changes only when the checks file does."""
    definition = json.loads(text)
    windows = [_as_written(w) for w in definition.get("maintenance") or []]
    definition["maintenance"] = windows
    try:
        check = _CHECK.validate_python(definition)
    except ValidationError:
        try:
            return None, tuple(_WINDOWS.validate_python(windows))
        except ValidationError:
            return None, ()
    return check_target(check), tuple(check.maintenance)


def _as_written(window: Any) -> Any:
    """A stored window as the checks file has it: its ``at`` is stored as JSON writes a time
    ("02:30:00"), the file says "02:30"."""
    if isinstance(window, dict) and isinstance(window.get("at"), str):
        return {**window, "at": window["at"][:5]}
    return window


def _conditions(text: str | None) -> tuple[dict[str, Any], ...]:
    if not text:
        return ()
    found = json.loads(text)
    return tuple(c for c in found if isinstance(c, dict)) if isinstance(found, list) else ()


def _day(row: Any) -> DayCounts:
    # A stored histogram's element k + 1 counts bucket k; its lower bound says where it
    # starts (see 0011_health.sql).
    low, counts = row["low"], row["histogram"]
    return DayCounts(
        check=row["check_name"],
        day=row["day"],
        results=row["count"],
        failures=row["failures"],
        maintenance=row["maintenance_count"],
        observed_seconds=row["observed_seconds"],
        downtime_seconds=row["downtime_seconds"],
        responses=row["response_count"],
        first_bucket=low - 1 if low is not None else 0,
        buckets=tuple(c or 0 for c in counts) if counts else (),
    )
