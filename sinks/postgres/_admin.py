"""What people (and mendline's workers) do to issues, findings and stored events: ignore,
resolve and merge issues, mark findings, prune old events; each one authorized and audited."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import asyncpg

from mendline.analyzers.audit import changed_fields
from mendline.analyzers.policy.people import authorize
from mendline.schemas.errors import ConfigError, FindingNotFound, IssueNotFound
from mendline.schemas.people import Actor
from mendline.sinks.postgres._audit import AuditedStore
from mendline.sinks.postgres._errors import translating
from mendline.sinks.postgres._store import TRIGGERS_CHANNEL

if TYPE_CHECKING:
    _Conn = asyncpg.Connection[Any] | asyncpg.pool.PoolConnectionProxy[Any]

__all__ = ["IssueActions", "IssueNotFound"]

_MERGE_COUNTS = """
INSERT INTO mendline.issue_counts (issue_id, minute, count)
SELECT $1, minute, count FROM mendline.issue_counts WHERE issue_id = $2
ON CONFLICT (issue_id, minute) DO UPDATE SET count = issue_counts.count + EXCLUDED.count
"""

_MERGE_ISSUE = """
UPDATE mendline.issues AS t SET
    times_seen = t.times_seen + s.times_seen,
    first_release = CASE WHEN s.first_seen < t.first_seen
                         THEN s.first_release ELSE t.first_release END,
    first_seen = least(t.first_seen, s.first_seen),
    last_release = CASE WHEN s.last_seen > t.last_seen
                        THEN s.last_release ELSE t.last_release END,
    last_seen = greatest(t.last_seen, s.last_seen),
    level = CASE WHEN s.level_rank > t.level_rank THEN s.level ELSE t.level END,
    level_rank = greatest(t.level_rank, s.level_rank),
    environments = ARRAY(SELECT DISTINCT unnest(t.environments || s.environments) ORDER BY 1),
    hosts = ARRAY(SELECT DISTINCT unnest(t.hosts || s.hosts) ORDER BY 1 LIMIT 100),
    updated_at = now()
FROM mendline.issues AS s
WHERE t.id = $1 AND s.id = $2
"""

# The daily partitions of mendline.events, by name (events_YYYYMMDD).
_EVENT_PARTITIONS = """
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'mendline.events'::regclass AND c.relname ~ '^events_[0-9]{8}$'
ORDER BY c.relname
"""

# What is kept per event outside the daily partitions, older than $1 deleted.
_PRUNE_ROWS = {
    "events_default": "DELETE FROM mendline.events_default WHERE received_at < $1",
    "event_ids": "DELETE FROM mendline.event_ids WHERE received_at < $1",
    "issue_counts": "DELETE FROM mendline.issue_counts WHERE minute < $1",
}


@translating
class IssueActions(AuditedStore):
    """The actions that change issues, findings and the stored events: one method an action,
    which the CLI, the dashboard and mendline's workers (as ``SYSTEM_ACTOR``) all call. Each
    authorizes its actor, changes and writes one audit row (its action, its target such as
    ``issue:12``, the fields that changed before and after, ``origin``) in one transaction: a
    refusal changes nothing and writes no row, and an action that would change nothing
    writes none either.

    Refusals come out as PermissionDenied, IssueNotFound, FindingNotFound or ConfigError;
    database failures as DatabaseUnavailable or RejectedData."""

    async def ignore(self, actor: Actor, issue_id: int) -> bool:
        """Stop alerting on an issue: its events are still stored and counted, but raise no
        alert (no frequency spike, and only a resolved issue regresses). Whether it changed
        (False: ignored already). IssueNotFound if no issue has that id, or it was merged."""
        authorize(actor, "issue.ignore")
        async with self._changing() as conn:
            status, _ = await _locked_issue(conn, issue_id)
            if status == "ignored":
                return False
            await conn.execute(
                """UPDATE mendline.issues SET status = 'ignored', updated_at = now()
                   WHERE id = $1""",
                issue_id,
            )
            await self._record(
                conn,
                actor,
                "issue.ignore",
                f"issue:{issue_id}",
                {"status": status},
                {"status": "ignored"},
            )
        return True

    async def resolve(self, actor: Actor, issue_id: int, note: str | None = None) -> bool:
        """Mark an issue resolved, with an optional note on what fixed it (None or "" keeps
        the note it has): a later event reopens it as a regression, similar issues are analysed
        with the note in view, and a `resolved` trigger (same transaction) lets the alert
        stage resolve what it paged about. Whether it changed (False: resolved already, with
        that note). IssueNotFound if no issue has that id, or it was merged."""
        authorize(actor, "issue.resolve")
        async with self._changing() as conn:
            return await self.resolve_within(conn, actor, issue_id, note)

    async def resolve_within(
        self, conn: _Conn, actor: Actor, issue_id: int, note: str | None = None
    ) -> bool:
        """``resolve``, in the caller's transaction on ``conn``, for a change of another store
        that resolves an issue with it (a fix verified in production); the caller has
        authorized ``actor``."""
        status, was_note = await _locked_issue(conn, issue_id)
        change = changed_fields(
            {"status": status, "resolution_note": was_note},
            {"status": "resolved", "resolution_note": note or was_note},
        )
        if change is None:
            return False
        resolved_at = await conn.fetchval(
            """UPDATE mendline.issues SET status = 'resolved',
                   resolved_at = CASE WHEN status = 'resolved' THEN resolved_at ELSE now() END,
                   resolution_note = coalesce($2, resolution_note), updated_at = now()
               WHERE id = $1 RETURNING resolved_at""",
            issue_id,
            note or None,
        )
        if status != "resolved":  # a new note is nothing to announce again
            await conn.execute(
                """INSERT INTO mendline.triggers (issue_id, kind, dedup_key)
                   VALUES ($1, 'resolved', $2) ON CONFLICT (dedup_key) DO NOTHING""",
                issue_id,
                f"resolved:{issue_id}:{resolved_at.isoformat()}",
            )
            await conn.execute("SELECT pg_notify($1, '')", TRIGGERS_CHANNEL)
        await self._record(conn, actor, "issue.resolve", f"issue:{issue_id}", *change)
        return True

    async def merge(self, actor: Actor, target: int, source: int) -> None:
        """Merge issue ``source`` into ``target``: its fingerprints, events and counts move,
        and later events of either fingerprint count on ``target``. The audit row is on
        ``source`` and says into which issue (``merged_into``). IssueNotFound if either is
        missing or merged, or they are one."""
        authorize(actor, "issue.merge")
        if target == source:
            raise IssueNotFound(f"cannot merge issue {target} into itself")
        async with self._changing() as conn:
            rows = {
                r["id"]: r
                for r in await conn.fetch(
                    "SELECT id, status, merged_into FROM mendline.issues"
                    " WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE",
                    [target, source],
                )
            }
            for issue_id in (target, source):
                if issue_id not in rows:
                    raise IssueNotFound(f"there is no issue {issue_id}")
                if rows[issue_id]["status"] == "merged":
                    raise IssueNotFound(
                        f"issue {issue_id} was merged into {rows[issue_id]['merged_into']} already"
                    )
            await conn.execute(
                "UPDATE mendline.fingerprints SET issue_id = $1 WHERE issue_id = $2", target, source
            )
            await conn.execute(
                "UPDATE mendline.events SET issue_id = $1 WHERE issue_id = $2", target, source
            )
            await conn.execute(_MERGE_COUNTS, target, source)
            await conn.execute("DELETE FROM mendline.issue_counts WHERE issue_id = $1", source)
            await conn.execute(_MERGE_ISSUE, target, source)
            await conn.execute(
                """UPDATE mendline.issues SET status = 'merged', merged_into = $1,
                       updated_at = now()
                   WHERE id = $2""",
                target,
                source,
            )
            await self._record(
                conn,
                actor,
                "issue.merge",
                f"issue:{source}",
                {"status": rows[source]["status"], "merged_into": None},
                {"status": "merged", "merged_into": target},
            )

    async def mark_finding(
        self,
        actor: Actor,
        finding_id: int,
        verdict: Literal["right", "wrong"],
        note: str | None = None,
    ) -> bool:
        """Record a person's verdict on a finding (and on the one it was served from: the
        same answer, named ``also_marked`` on the audit row); later similar issues are
        analysed with it, and one marked wrong is never served again. Whether it changed
        (False: it had that verdict and note). FindingNotFound if there is no such finding."""
        authorize(actor, "finding.mark")
        async with self._changing() as conn:
            return await self.mark_finding_within(conn, actor, finding_id, verdict, note)

    async def mark_finding_within(
        self,
        conn: _Conn,
        actor: Actor,
        finding_id: int,
        verdict: Literal["right", "wrong"],
        note: str | None = None,
    ) -> bool:
        """``mark_finding``, in the caller's transaction on ``conn``, for a change of another
        store that judges a finding with it (a fix that regressed); the caller has
        authorized ``actor``."""
        was = await conn.fetchrow(
            """SELECT verdict, verdict_note, cached_from FROM mendline.findings
               WHERE id = $1 FOR UPDATE""",
            finding_id,
        )
        if was is None:
            raise FindingNotFound(f"there is no finding {finding_id}")
        change = changed_fields(
            {"verdict": was["verdict"], "verdict_note": was["verdict_note"]},
            {"verdict": verdict, "verdict_note": note},
        )
        if change is None:
            return False
        await conn.execute(
            """UPDATE mendline.findings SET verdict = $2, verdict_note = $3,
                   verdict_at = now()
               WHERE id = $1 OR id = $4""",
            finding_id,
            verdict,
            note,
            was["cached_from"],
        )
        before, after = change
        if was["cached_from"] is not None:
            after["also_marked"] = f"finding:{was['cached_from']}"
        await self._record(conn, actor, "finding.mark", f"finding:{finding_id}", before, after)
        return True

    async def prune_events(
        self, actor: Actor, retention_days: int, now: datetime | None = None
    ) -> list[str]:
        """Drop the daily event partitions older than the retention, with their event ids and
        per-minute counts; returns the dropped partitions' names. The audit row (on
        ``events``) names them and counts the rows deleted besides; a prune that removes
        nothing writes none."""
        authorize(actor, "events.prune")
        if retention_days < 1:
            raise ConfigError(f"the retention must be at least 1 day, not {retention_days}")
        cutoff: date = ((now or datetime.now(UTC)) - timedelta(days=retention_days)).date()
        cutoff_at = datetime(cutoff.year, cutoff.month, cutoff.day, tzinfo=UTC)
        async with self._changing() as conn:
            names = [r["relname"] for r in await conn.fetch(_EVENT_PARTITIONS)]
            old = [n for n in names if datetime.strptime(n[7:], "%Y%m%d").date() < cutoff]
            for name in old:
                # As the tables' owner (the app's role may not own them): see 0020.
                await conn.execute("SELECT mendline.drop_daily_partition($1)", name)
            deleted = {}
            for table, statement in _PRUNE_ROWS.items():
                status = await conn.execute(statement, cutoff_at)  # "DELETE <count>"
                deleted[table] = int(status.rsplit(" ", 1)[1])
            if old or any(deleted.values()):
                after = {
                    "retention_days": retention_days,
                    "older_than": cutoff.isoformat(),
                    "dropped_partitions": old,
                    "rows_deleted": deleted,
                }
                await self._record(conn, actor, "events.prune", "events", None, after)
        return old


async def _locked_issue(conn: _Conn, issue_id: int) -> tuple[str, str | None]:
    """The issue's status and resolution note, its row locked; IssueNotFound when it is
    missing or merged."""
    row = await conn.fetchrow(
        "SELECT status, resolution_note FROM mendline.issues WHERE id = $1 FOR UPDATE", issue_id
    )
    if row is None or row["status"] == "merged":
        raise IssueNotFound(f"there is no issue {issue_id} (or it was merged)")
    return row["status"], row["resolution_note"]
