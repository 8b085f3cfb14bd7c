"""Health checks in PostgreSQL: the registry synced from the checks file, the schedule that
monitors claim slots from, each check's state, its results and rollups, and its issue and
triggers when it goes down, comes back or flaps."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
from pydantic import ValidationError

from mendline.analyzers.health import (
    Judgement,
    bucket_of,
    cadence,
    check_target,
    counted_seconds,
    downtime_title,
    first_slot,
    judge,
    next_slot,
    stored_conditions,
    stored_error,
    stored_text,
    trigger_details,
)
from mendline.schemas.checks import (
    Check,
    CheckResult,
    CheckState,
    CheckStatus,
    HeartbeatCheck,
    Transition,
)
from mendline.schemas.errors import ConfigError, NotFound
from mendline.schemas.event import LEVEL_RANK
from mendline.schemas.people import SYSTEM_ACTOR, AuditEntry
from mendline.schemas.redaction import redact_url
from mendline.sinks.postgres._audit import append_audit
from mendline.sinks.postgres._errors import translating
from mendline.sinks.postgres._health_reads import HealthReads
from mendline.sinks.postgres._store import TRIGGERS_CHANNEL

if TYPE_CHECKING:
    _Conn = asyncpg.Connection[Any] | asyncpg.pool.PoolConnectionProxy[Any]

__all__ = ["DueSlot", "HealthStore", "PruneResult", "RecordOutcome", "SyncResult"]

# Taken by the transaction that syncs the checks file: two monitors starting at once take
# turns, the second finding everything in place.
_SYNC_LOCK = 0x6D6C636865636B73  # "mlchecks"
# Taken by the transaction that prunes: one monitor prunes at a time, the others skip.
_PRUNE_LOCK = 0x6D6C7072756E6572  # "mlpruner"
# The keys of a stored heartbeat definition that say which check-ins judging it needs.
_HEARTBEAT_SCHEDULE = ("kind", "every", "cron", "timezone", "grace", "max_runtime")
# Where a heartbeat is judged until (of mendline.checks c and check_state s): its newest
# judged slot, or its restore if later (NULL: nothing judged yet, nothing expected before
# its first run).
_JUDGED_UNTIL = """CASE WHEN s.last_result_at IS NOT NULL
                        THEN greatest(s.last_result_at, c.restored_at) END"""
_TRIGGER_KINDS: dict[Transition, str] = {
    "down": "health_down",
    "recovered": "health_recovered",
    "flapping": "health_flapping",
}


@dataclass(frozen=True)
class SyncResult:
    """What syncing the checks file did, by check name."""

    added: tuple[str, ...] = ()
    #: Their definition changed; state and history kept.
    changed: tuple[str, ...] = ()
    #: Changed or restored with a new interval: their next slot is on the new grid.
    rescheduled: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    #: No longer in the file: kept, not run.
    retired: tuple[str, ...] = ()
    #: Back in the file after being retired.
    restored: tuple[str, ...] = ()


@dataclass(frozen=True)
class DueSlot:
    """A slot a monitor holds the lease of: run ``check`` for ``scheduled_at``. ``attempt``
    counts the claims of this slot (2 and more: a monitor before did not finish it)."""

    check: str
    scheduled_at: datetime
    attempt: int


@dataclass(frozen=True)
class RecordOutcome:
    """What recording a result did. ``stored`` False: the slot's result was there already
    and nothing changed. ``judged`` False: stored but older than the last result judged, so
    it moved nothing. ``trigger_id`` is the trigger made (None: none)."""

    stored: bool
    judged: bool
    status: CheckStatus | None = None
    transition: Transition | None = None
    reasons: tuple[str, ...] = ()
    issue_id: int | None = None
    trigger_id: int | None = None


@dataclass(frozen=True)
class PruneResult:
    """What pruning removed (with ``dry_run``: would remove): day partitions of results,
    and rollup rows. ``skipped``: another prune was running, this one did nothing."""

    partitions: tuple[str, ...]
    rollups: int
    skipped: bool = False
    dry_run: bool = False


@dataclass(frozen=True)
class _Definition:
    check: Check
    text: str
    digest: str

    @classmethod
    def of(cls, check: Check) -> _Definition:
        """The check as stored: its secrets filtered (a URL's or bootstrap's password, a
        secret query parameter), the hash too (a hash of a known text with a password in
        it gives the password away to a guesser)."""
        stored = _redacted(check.model_dump(mode="json"))
        text = json.dumps(stored, sort_keys=True, separators=(",", ":"))
        return cls(check, text, hashlib.sha256(text.encode()).hexdigest())


def _redacted(value: Any) -> Any:
    """``value`` (JSON) with ``redact_url`` applied to each string in it."""
    if isinstance(value, str):
        return redact_url(value)
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    return value


@translating
class HealthStore(HealthReads):
    """The monitor's reads and writes, over a connection pool; and the dashboard's reads
    (HealthReads)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._partitions_until: date | None = None

    async def close(self) -> None:
        """Close the pool; idempotent."""
        await self.pool.close()

    async def ensure_partitions(self, today: date | None = None) -> None:
        """Make sure the daily result partitions exist from ``today`` to two days ahead."""
        today = today or datetime.now(UTC).date()
        await self.pool.execute("SELECT mendline.ensure_check_results_partitions($1, 3)", today)
        self._partitions_until = today + timedelta(days=2)

    # -- the registry ----------------------------------------------------------------------

    async def sync_checks(self, checks: Sequence[Check], now: datetime | None = None) -> SyncResult:
        """Make the registry the checks file's: new names added (a probed check's first slot
        within one interval, at its own offset), changed ones updated with their state and
        history kept (on a new grid when the interval changed), names gone retired (kept),
        retired names back restored. An unchanged check keeps its schedule and state.
        ``now``: the database's clock unless given (the one slots are claimed by)."""
        seen: dict[str, list[str]] = {k: [] for k in SyncResult.__dataclass_fields__}
        async with self.pool.acquire() as conn, conn.transaction(isolation="read_committed"):
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _SYNC_LOCK)
            now = now or await conn.fetchval("SELECT now()")
            rows = {
                r["name"]: r
                for r in await conn.fetch(
                    """SELECT name, kind, definition_hash, interval_seconds, retired_at,
                              environment, tags::text AS tags
                       FROM mendline.checks FOR UPDATE"""
                )
            }
            for check in checks:
                definition = _Definition.of(check)
                old = rows.get(check.name)
                if old is None:
                    seen["added"].append(check.name)
                elif old["retired_at"] is not None:
                    seen["restored"].append(check.name)
                elif old["definition_hash"] != definition.digest:
                    seen["changed"].append(check.name)
                    if old["environment"] != check.environment:
                        await self._let_go(
                            conn,
                            old,
                            f"check moved from environment {old['environment']!r}"
                            f" to {check.environment!r}",
                            now,
                        )
                else:
                    seen["unchanged"].append(check.name)
                    continue
                await self._upsert_check(conn, definition, now)
                regrid = old is None or (
                    old["retired_at"] is not None or old["interval_seconds"] != check.interval
                )
                if await self._schedule(conn, check, now, regrid) and old is not None:
                    seen["rescheduled"].append(check.name)
            names = {c.name for c in checks}
            gone = sorted(n for n, r in rows.items() if n not in names and r["retired_at"] is None)
            for name in gone:
                await self._let_go(conn, rows[name], "check retired: no longer in the file", now)
            await conn.execute(
                "UPDATE mendline.checks SET retired_at = $2 WHERE name = ANY($1::text[])",
                gone,
                now,
            )
            seen["retired"] = gone
        return SyncResult(**{k: tuple(v) for k, v in seen.items()})

    async def _let_go(self, conn: _Conn, row: Any, reason: str, now: datetime) -> None:
        """The check of ``row`` (as stored) is no longer watched as it was: retired, or
        moved to another environment (its issue is another). Down or flapping, it is told
        up as a recovery is (its issue resolved, a health_recovered trigger: the alert stage
        resolves its incidents, a flapping one's too, whose issue may be resolved already),
        with ``reason``; its state is unknown again and its flapping forgotten, so that a
        check that comes back still failing is told down anew, and one that comes back is
        not muted by the changes before."""
        was = await conn.fetchrow(
            """SELECT flapping FROM mendline.check_state
               WHERE check_name = $1 AND (status = 'down' OR flapping) FOR UPDATE""",
            row["name"],
        )
        if was is None:
            return
        await conn.execute(
            """UPDATE mendline.check_state SET status = 'unknown', since = $2, failures = 0,
                   successes = 0, changes = '{}', flapping = false, version = version + 1,
                   updated_at = now()
               WHERE check_name = $1""",
            row["name"],
            now,
        )
        issue = await conn.fetchrow(
            """WITH resolved AS (
                   UPDATE mendline.issues SET status = 'resolved', resolved_at = now(),
                       resolution = 'now', resolved_by = 'mendline', substatus = NULL,
                       updated_at = now()
                   WHERE primary_hash = $1 AND status = 'unresolved' RETURNING id)
               SELECT id, true AS resolved FROM resolved
               UNION ALL
               SELECT id, false FROM mendline.issues WHERE primary_hash = $1
               ORDER BY resolved DESC LIMIT 1""",
            _issue_hash_of(row["name"], row["environment"]),
        )
        if issue is not None and issue["resolved"]:
            await _audit_resolved(conn, issue["id"], reason)
        # Down and resolved by hand already: its own trigger ended the incidents. Flapping,
        # the incidents its flapping trigger opened are still to end.
        if issue is None or not (issue["resolved"] or was["flapping"]):
            return
        issue_id = issue["id"]
        at = now.astimezone(UTC).isoformat()
        details = {
            "check": row["name"],
            "check_kind": row["kind"],
            "status": "unknown",
            "reasons": [reason],
            "scheduled_at": at,
        }
        tags = {**json.loads(row["tags"]), "check": row["name"], "check_kind": row["kind"]}
        await conn.execute(
            """INSERT INTO mendline.triggers
                   (issue_id, kind, dedup_key, details, environment, tags)
               VALUES ($1, 'health_recovered', $2, $3::jsonb, $4, $5::json)
               ON CONFLICT (dedup_key) DO NOTHING""",
            issue_id,
            f"health:{row['name']}:{row['environment']}:health_recovered:let-go:{at}",
            json.dumps(details),
            row["environment"],
            json.dumps(tags),
        )
        await conn.execute("SELECT pg_notify($1, '')", TRIGGERS_CHANNEL)

    async def _upsert_check(self, conn: _Conn, definition: _Definition, now: datetime) -> None:
        check = definition.check
        await conn.execute(
            """INSERT INTO mendline.checks AS c
                   (name, kind, definition, definition_hash, environment, service, tags,
                    severity, interval_seconds, created_at, updated_at)
               VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7::jsonb, $8, $9, $10, $10)
               ON CONFLICT (name) DO UPDATE SET
                   kind = EXCLUDED.kind, definition = EXCLUDED.definition,
                   definition_hash = EXCLUDED.definition_hash,
                   environment = EXCLUDED.environment, service = EXCLUDED.service,
                   tags = EXCLUDED.tags, severity = EXCLUDED.severity,
                   interval_seconds = EXCLUDED.interval_seconds, updated_at = $10,
                   restored_at = CASE WHEN c.retired_at IS NOT NULL THEN $10
                                      ELSE c.restored_at END,
                   retired_at = NULL""",
            check.name,
            check.kind,
            definition.text,
            definition.digest,
            check.environment,
            check.labels_service,
            json.dumps(check.tags),
            check.severity,
            check.interval,
            now,
        )
        await conn.execute(
            "INSERT INTO mendline.check_state (check_name) VALUES ($1) ON CONFLICT DO NOTHING",
            check.name,
        )

    async def _schedule(self, conn: _Conn, check: Check, now: datetime, regrid: bool) -> bool:
        """Give a probed check its schedule row (a heartbeat none); with ``regrid``, its next
        slot on the grid of its interval. True when its next slot was set."""
        if check.kind == "heartbeat":
            await conn.execute(
                "DELETE FROM mendline.check_schedule WHERE check_name = $1", check.name
            )
            return False
        slot = first_slot(check.name, check.interval, now)
        status = await conn.execute(
            """INSERT INTO mendline.check_schedule AS s (check_name, next_due) VALUES ($1, $2)
               ON CONFLICT (check_name) DO UPDATE SET next_due = EXCLUDED.next_due
               WHERE $3""",
            check.name,
            slot,
            regrid,
        )
        return status.endswith(" 1")

    # -- the schedule ----------------------------------------------------------------------

    async def claim_due(
        self, owner: str, lease: float, limit: int, *, now: datetime | None = None
    ) -> list[DueSlot]:
        """Take up to ``limit`` due slots of probed checks for ``lease`` seconds (``now``:
        the database's clock unless given). SKIP LOCKED and the lease make each slot run
        once across any number of monitors; a slot whose lease ran out (its monitor was
        killed) is claimed again, the same ``scheduled_at``, its ``attempt`` one more."""
        rows = await self.pool.fetch(
            """WITH due AS (
                   SELECT s.check_name FROM mendline.check_schedule s
                   JOIN mendline.checks c ON c.name = s.check_name
                   WHERE c.retired_at IS NULL AND c.kind <> 'heartbeat'
                     AND s.next_due <= coalesce($4::timestamptz, now())
                     AND (s.lease_until IS NULL
                          OR s.lease_until <= coalesce($4::timestamptz, now()))
                   ORDER BY s.next_due, s.check_name LIMIT $1
                   FOR UPDATE OF s SKIP LOCKED)
               UPDATE mendline.check_schedule s
               SET owner = $2,
                   lease_until = coalesce($4::timestamptz, now()) + make_interval(secs => $3),
                   attempts = CASE WHEN s.slot_at = s.next_due THEN s.attempts + 1 ELSE 1 END,
                   slot_at = s.next_due
               FROM due WHERE s.check_name = due.check_name
               RETURNING s.check_name, s.slot_at, s.attempts""",
            limit,
            owner,
            lease,
            now,
        )
        slots = [DueSlot(r["check_name"], r["slot_at"], r["attempts"]) for r in rows]
        return sorted(slots, key=lambda s: (s.scheduled_at, s.check))

    async def renew(self, owner: str, checks: Sequence[str], lease: float) -> None:
        """Extend the lease of the slots this owner still holds (a long check)."""
        await self.pool.execute(
            """UPDATE mendline.check_schedule
               SET lease_until = now() + make_interval(secs => $3)
               WHERE check_name = ANY($1::text[]) AND owner = $2 AND lease_until IS NOT NULL""",
            list(checks),
            owner,
            lease,
        )

    # -- results -----------------------------------------------------------------------------

    async def record(
        self,
        result: CheckResult,
        check: Check,
        owner: str,
        *,
        in_maintenance: bool,
        now: datetime | None = None,
    ) -> RecordOutcome:
        """Record a result of ``check`` in one transaction: the result (once per slot: if
        the slot's result is there, nothing else changes), the check's new state as
        analyzers.health.judge decides it (written only over the state it was judged from),
        its next slot after ``max(scheduled_at, now)`` with the slot's lease released, the
        rollups, and on a transition its issue (opened, reopened or resolved) and trigger,
        the alert stage told. A heartbeat's result goes the same way, without a schedule.
        ``now``: the database's clock unless given (the one slots are claimed by: a monitor
        whose clock is ahead would skip slots, one behind would run past slots at once)."""
        if result.check != check.name:
            raise ValueError(f"a result of {result.check!r} recorded as {check.name!r}'s")
        at = result.scheduled_at
        if self._partitions_until is None or at.astimezone(UTC).date() > self._partitions_until:
            today = (now or datetime.now(UTC)).astimezone(UTC).date()
            await self.ensure_partitions(max(today, at.astimezone(UTC).date()))
        async with self.pool.acquire() as conn, conn.transaction(isolation="read_committed"):
            if not await self._insert_result(conn, result, owner, in_maintenance):
                return RecordOutcome(stored=False, judged=False)
            row = await conn.fetchrow(
                """SELECT *, now() AS database_now FROM mendline.check_state
                   WHERE check_name = $1 FOR UPDATE""",
                check.name,
            )
            if row is None:
                raise NotFound(
                    f"no check {check.name!r} is registered", hint="sync the checks file first"
                )
            if check.kind != "heartbeat":
                await self._advance(conn, check, at, now or row["database_now"])
            previous = row["last_result_at"]
            if previous is not None and at <= previous:
                await self._roll_up(conn, check, result, in_maintenance, 0.0, down=False)
                return RecordOutcome(True, False, row["status"], reasons=("older than judged",))
            judged = judge(
                _state(row),
                result.success,
                at,
                failure_threshold=check.failure_threshold,
                success_threshold=check.success_threshold,
                flap_threshold=check.flap_threshold,
                flap_window=check.flap_window,
                in_maintenance=in_maintenance,
            )
            await self._write_state(conn, row, judged.state, result)
            seconds = 0.0 if in_maintenance else counted_seconds(previous, at, cadence(check))
            down = judged.state.status == "down"
            await self._roll_up(conn, check, result, in_maintenance, seconds, down=down)
            issue_id, trigger_id = row["issue_id"], None
            if judged.transition is not None:
                issue_id, trigger_id = await self._tell(conn, check, result, judged, issue_id)
            return RecordOutcome(
                True,
                True,
                judged.state.status,
                judged.transition,
                judged.reasons,
                issue_id,
                trigger_id,
            )

    async def _insert_result(
        self, conn: _Conn, result: CheckResult, owner: str, in_maintenance: bool
    ) -> bool:
        stored = await conn.fetchval(
            """INSERT INTO mendline.check_results_raw
                   (check_name, scheduled_at, started_at, duration, success, maintenance,
                    conditions, timings, error, error_kind, owner)
               VALUES ($1, $2, $3, $4, $5, $6, $7::json, $8::json, $9, $10, $11)
               ON CONFLICT (check_name, scheduled_at) DO NOTHING RETURNING true""",
            result.check,
            result.scheduled_at,
            result.started_at,
            result.duration,
            result.success,
            in_maintenance,
            json.dumps(stored_conditions(result)),
            json.dumps(result.timings),
            stored_error(result),
            result.error_kind,
            stored_text(owner, 200),
        )
        return bool(stored)

    async def _advance(self, conn: _Conn, check: Check, at: datetime, now: datetime) -> None:
        """The slot ``at`` is done: the schedule moves past it (unless it moved already) and
        the slot's lease is released, whoever held it (its result is in)."""
        await conn.execute(
            """UPDATE mendline.check_schedule SET
                   next_due = CASE WHEN next_due <= $2 THEN $3 ELSE next_due END,
                   owner = CASE WHEN slot_at = $2 THEN NULL ELSE owner END,
                   lease_until = CASE WHEN slot_at = $2 THEN NULL ELSE lease_until END
               WHERE check_name = $1""",
            check.name,
            at,
            next_slot(at, check.interval, now),
        )

    async def _write_state(
        self, conn: _Conn, row: Any, state: CheckState, result: CheckResult
    ) -> None:
        # Compare-and-set on version: written only over the state it was judged from.
        written = await conn.fetchval(
            """UPDATE mendline.check_state SET
                   status = $3, since = $4, failures = $5, successes = $6, changes = $7,
                   flapping = $8, last_result_at = $9, last_success = $10, last_error = $11,
                   version = version + 1, updated_at = now()
               WHERE check_name = $1 AND version = $2 RETURNING version""",
            row["check_name"],
            row["version"],
            state.status,
            state.since,
            state.failures,
            state.successes,
            list(state.changes),
            state.flapping,
            result.scheduled_at,
            result.success,
            stored_error(result),
        )
        if written is None:  # pragma: no cover - the row is locked FOR UPDATE
            raise RuntimeError(f"the state of {row['check_name']!r} changed under its lock")

    async def _roll_up(
        self,
        conn: _Conn,
        check: Check,
        result: CheckResult,
        in_maintenance: bool,
        seconds: float,
        *,
        down: bool,
    ) -> None:
        """Add the result to its minute, hour and day (see 0011_health.sql)."""
        at = result.scheduled_at.astimezone(UTC)
        minute = at.replace(second=0, microsecond=0)
        buckets = [minute, minute.replace(minute=0), minute.replace(hour=0, minute=0)]
        answered = not in_maintenance and result.error_kind is None
        ms = result.response_time * 1000
        await conn.execute(
            """INSERT INTO mendline.check_rollups AS r
                   (check_name, width, bucket, count, failures, maintenance_count,
                    observed_seconds, downtime_seconds, response_count, response_sum_ms,
                    histogram)
               SELECT $1, u.w, u.b, 1, $4, $5, $6, $7, $8, $9,
                      CASE WHEN u.w <> 'minute' AND $10::int IS NOT NULL
                           THEN array_fill(1, ARRAY[1], ARRAY[$10::int + 1]) END
               FROM unnest($2::text[], $3::timestamptz[]) AS u(w, b)
               ON CONFLICT (check_name, width, bucket) DO UPDATE SET
                   count = r.count + 1,
                   failures = r.failures + EXCLUDED.failures,
                   maintenance_count = r.maintenance_count + EXCLUDED.maintenance_count,
                   observed_seconds = r.observed_seconds + EXCLUDED.observed_seconds,
                   downtime_seconds = r.downtime_seconds + EXCLUDED.downtime_seconds,
                   response_count = r.response_count + EXCLUDED.response_count,
                   response_sum_ms = r.response_sum_ms + EXCLUDED.response_sum_ms,
                   histogram = mendline.histogram_add(r.histogram, EXCLUDED.histogram)""",
            check.name,
            ["minute", "hour", "day"],
            buckets,
            int(not result.success and not in_maintenance),
            int(in_maintenance),
            seconds,
            seconds if down else 0.0,
            int(answered),
            ms if answered else 0.0,
            bucket_of(ms) if answered else None,
        )

    async def _tell(
        self,
        conn: _Conn,
        check: Check,
        result: CheckResult,
        judged: Judgement,
        issue_id: int | None,
    ) -> tuple[int | None, int | None]:
        """The issue and trigger of a transition: down opens (or reopens) the check's issue,
        recovered resolves it, flapping keeps it as it is. Nothing to tell of a recovery
        that was never told down."""
        transition = judged.transition
        assert transition is not None
        if transition == "recovered":
            recovered = await conn.fetchrow(
                """WITH old AS (
                       SELECT id, status FROM mendline.issues WHERE primary_hash = $1 FOR UPDATE)
                   UPDATE mendline.issues i SET
                       status = CASE WHEN i.status = 'unresolved' THEN 'resolved' ELSE i.status END,
                       resolved_at = CASE WHEN i.status = 'unresolved' THEN now()
                                          ELSE i.resolved_at END,
                       resolution = CASE WHEN i.status = 'unresolved' THEN 'now'
                                         ELSE i.resolution END,
                       resolved_by = CASE WHEN i.status = 'unresolved' THEN 'mendline'
                                          ELSE i.resolved_by END,
                       substatus = CASE WHEN i.status = 'unresolved' THEN NULL
                                        ELSE i.substatus END,
                       updated_at = now()
                   FROM old WHERE i.id = old.id RETURNING i.id, old.status AS was""",
                _issue_hash(check),
            )
            if recovered is None:
                return None, None
            issue_id = recovered["id"]
            if recovered["was"] == "unresolved":
                await _audit_resolved(conn, issue_id, f"check {check.name} recovered")
        else:
            issue_id = await self._open_issue(conn, check, result, judged, transition == "down")
        await conn.execute(
            "UPDATE mendline.check_state SET issue_id = $2 WHERE check_name = $1",
            check.name,
            issue_id,
        )
        trigger_id = await conn.fetchval(
            """INSERT INTO mendline.triggers
                   (issue_id, kind, dedup_key, details, environment, tags)
               VALUES ($1, $2, $3, $4::jsonb, $5, $6::json)
               ON CONFLICT (dedup_key) DO NOTHING RETURNING id""",
            issue_id,
            _TRIGGER_KINDS[transition],
            ":".join(
                (
                    "health",
                    check.name,
                    check.environment,
                    _TRIGGER_KINDS[transition],
                    result.scheduled_at.astimezone(UTC).isoformat(),
                )
            ),
            json.dumps(trigger_details(check, result, judged)),
            check.environment,
            json.dumps({**check.tags, "check": check.name, "check_kind": check.kind}),
        )
        if trigger_id is not None:
            await conn.execute("SELECT pg_notify($1, '')", TRIGGERS_CHANNEL)
        return issue_id, trigger_id

    async def _open_issue(
        self, conn: _Conn, check: Check, result: CheckResult, judged: Judgement, down: bool
    ) -> int:
        """The check's issue, created when missing; with ``down``, titled from this result
        and reopened if it was resolved."""
        title = downtime_title(check, result, judged.state.failures)
        if not down:
            title = f"Flapping: {check.name}"
        issue_id: int = await conn.fetchval(
            """INSERT INTO mendline.issues AS i
                   (service, primary_hash, title, culprit, level, level_rank, first_seen,
                    last_seen, times_seen, environments, kind)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $7, 1, ARRAY[$8], 'health')
               ON CONFLICT (primary_hash) DO UPDATE SET
                   title = CASE WHEN $9 THEN EXCLUDED.title ELSE i.title END,
                   service = EXCLUDED.service, culprit = EXCLUDED.culprit,
                   level = EXCLUDED.level, level_rank = EXCLUDED.level_rank,
                   last_seen = greatest(i.last_seen, EXCLUDED.last_seen),
                   times_seen = i.times_seen + CASE WHEN $9 THEN 1 ELSE 0 END,
                   status = CASE WHEN $9 AND i.status = 'resolved' THEN 'unresolved'
                                 ELSE i.status END,
                   regressed_at = CASE WHEN $9 AND i.status = 'resolved' THEN now()
                                       ELSE i.regressed_at END,
                   regressions = i.regressions
                                 + CASE WHEN $9 AND i.status = 'resolved' THEN 1 ELSE 0 END,
                   substatus = CASE WHEN $9 AND i.status = 'resolved' THEN 'regressed'
                                    ELSE i.substatus END,
                   resolution = CASE WHEN $9 AND i.status = 'resolved' THEN NULL
                                     ELSE i.resolution END,
                   resolved_by = CASE WHEN $9 AND i.status = 'resolved' THEN NULL
                                      ELSE i.resolved_by END,
                   updated_at = now()
               RETURNING id""",
            check.labels_service,
            _issue_hash(check),
            stored_text(title, 500),
            stored_text(check_target(check), 500),
            check.severity,
            LEVEL_RANK[check.severity],
            result.scheduled_at,
            check.environment,
            down,
        )
        return issue_id

    # -- reads -------------------------------------------------------------------------------

    async def state(self, name: str) -> CheckState | None:
        """Where the check stands (None: not registered)."""
        row = await self.pool.fetchrow(
            "SELECT * FROM mendline.check_state WHERE check_name = $1", name
        )
        return None if row is None else _state(row)

    async def heartbeat_judged_until(self, name: str) -> datetime | None:
        """The slot of the newest result judged for the check (None: none yet), or when the
        check was restored if that is later (the time it was retired is not judged): a
        heartbeat monitor judges the slots after it."""
        judged: datetime | None = await self.pool.fetchval(
            f"""SELECT {_JUDGED_UNTIL} FROM mendline.checks c
                JOIN mendline.check_state s ON s.check_name = c.name WHERE c.name = $1""",
            name,
        )
        return judged

    async def heartbeats(self) -> dict[str, tuple[HeartbeatCheck | None, datetime | None]]:
        """The heartbeat checks of the registry (not retired), by name: each one's schedule
        as stored (None: it no longer reads as one) and where it is judged until, as
        ``heartbeat_judged_until`` says (None: nothing judged yet)."""
        rows = await self.pool.fetch(
            f"""SELECT c.name, c.definition::text AS definition,
                      {_JUDGED_UNTIL} AS last_result_at
               FROM mendline.checks c
               LEFT JOIN mendline.check_state s ON s.check_name = c.name
               WHERE c.kind = 'heartbeat' AND c.retired_at IS NULL"""
        )
        found: dict[str, tuple[HeartbeatCheck | None, datetime | None]] = {}
        for row in rows:
            stored = json.loads(row["definition"])
            try:
                # Only what its schedule is made of: the rest may not read as it was written.
                check = HeartbeatCheck.model_validate(
                    {key: stored.get(key) for key in _HEARTBEAT_SCHEDULE} | {"name": row["name"]}
                )
            except ValidationError:
                check = None
            found[row["name"]] = (check, row["last_result_at"])
        return found

    # -- retention ---------------------------------------------------------------------------

    async def prune(
        self,
        now: datetime | None = None,
        raw_days: int = 7,
        rollup_days: int = 400,
        *,
        dry_run: bool = False,
    ) -> PruneResult:
        """Drop the day partitions of results older than ``raw_days`` (and such results in
        the default partition), minute rollups as old, and hour and day rollups older than
        ``rollup_days`` (``now``: the database's clock unless given). With ``dry_run``, only
        say what would go. One prune at a time across every monitor: while another runs,
        this one does nothing (``skipped``)."""
        if raw_days < 1 or rollup_days < 1:
            raise ConfigError(f"retention must be at least 1 day, not {min(raw_days, rollup_days)}")
        async with self.pool.acquire() as conn, conn.transaction(isolation="read_committed"):
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _PRUNE_LOCK):
                return PruneResult((), 0, skipped=True)
            # Dropping a partition waits for the readers of the results, and the writers
            # queue behind it: give up rather than hold up the monitors (next time, then).
            await conn.execute("SET LOCAL lock_timeout = '10s'")
            today = (now or await conn.fetchval("SELECT now()")).astimezone(UTC).date()
            raw_cutoff = _midnight(today - timedelta(days=raw_days))
            rollup_cutoff = _midnight(today - timedelta(days=rollup_days))
            names = [
                r["relname"]
                for r in await conn.fetch(
                    """SELECT c.relname FROM pg_inherits i
                       JOIN pg_class c ON c.oid = i.inhrelid
                       WHERE i.inhparent = 'mendline.check_results_raw'::regclass
                         AND c.relname ~ '^check_results_raw_[0-9]{8}$'
                       ORDER BY c.relname"""
                )
            ]
            old = [n for n in names if _midnight(_day_of(n)) < raw_cutoff]
            # The rollups past their retention are counted, and deleted unless dry run.
            rollups: int = await conn.fetchval(
                """WITH old AS (
                       SELECT check_name, width, bucket FROM mendline.check_rollups
                       WHERE (width = 'minute' AND bucket < $1) OR bucket < $2),
                   gone AS (
                       DELETE FROM mendline.check_rollups r USING old o
                       WHERE NOT $3 AND r.check_name = o.check_name
                         AND r.width = o.width AND r.bucket = o.bucket)
                   SELECT count(*) FROM old""",
                raw_cutoff,
                rollup_cutoff,
                dry_run,
            )
            if dry_run:
                return PruneResult(tuple(old), rollups, dry_run=True)
            for name in old:
                # As the table's owner: a role that owns nothing may run the monitor.
                await conn.execute("SELECT mendline.drop_daily_partition($1)", name)
            await conn.execute(
                "DELETE FROM mendline.check_results_raw_default WHERE scheduled_at < $1",
                raw_cutoff,
            )
        return PruneResult(tuple(old), rollups)


def _state(row: Any) -> CheckState:
    return CheckState(
        row["status"],
        row["since"],
        row["failures"],
        row["successes"],
        tuple(row["changes"]),
        row["flapping"],
    )


def _issue_hash(check: Check) -> str:
    return _issue_hash_of(check.name, check.environment)


def _issue_hash_of(name: str, environment: str) -> str:
    return f"health:{name}:{environment}"


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _day_of(partition: str) -> date:
    return datetime.strptime(partition.rsplit("_", 1)[1], "%Y%m%d").date()


async def _audit_resolved(conn: _Conn, issue_id: int, reason: str) -> None:
    """The audit row of a health issue the monitor resolved, in the change's transaction."""
    entry = AuditEntry(
        actor=SYSTEM_ACTOR,
        action="issue.resolve",
        target=f"issue:{issue_id}",
        before={"status": "unresolved"},
        after={"status": "resolved", "reason": reason},
        origin="monitor",
    )
    await append_audit(conn, entry)
