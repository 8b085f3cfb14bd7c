"""Operations people run on the store: ignoring, resolving and merging issues, pruning old
events."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import asyncpg

from mendline.schemas.errors import ConfigError, IssueNotFound
from mendline.sinks.postgres._store import TRIGGERS_CHANNEL

__all__ = ["IssueNotFound", "ignore_issue", "merge_issues", "prune_events", "resolve_issue"]


async def merge_issues(conn: asyncpg.Connection, target: int, source: int) -> None:
    """Merge issue ``source`` into ``target``: its fingerprints, events and counts move, and
    later events of either fingerprint count on ``target``."""
    if target == source:
        raise IssueNotFound(f"cannot merge issue {target} into itself")
    async with conn.transaction():
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
        await conn.execute(
            """INSERT INTO mendline.issue_counts (issue_id, minute, count)
               SELECT $1, minute, count FROM mendline.issue_counts WHERE issue_id = $2
               ON CONFLICT (issue_id, minute)
               DO UPDATE SET count = issue_counts.count + EXCLUDED.count""",
            target,
            source,
        )
        await conn.execute("DELETE FROM mendline.issue_counts WHERE issue_id = $1", source)
        await conn.execute(
            """UPDATE mendline.issues AS t SET
                   times_seen = t.times_seen + s.times_seen,
                   first_release = CASE WHEN s.first_seen < t.first_seen
                                        THEN s.first_release ELSE t.first_release END,
                   first_seen = least(t.first_seen, s.first_seen),
                   last_release = CASE WHEN s.last_seen > t.last_seen
                                       THEN s.last_release ELSE t.last_release END,
                   last_seen = greatest(t.last_seen, s.last_seen),
                   level = CASE WHEN s.level_rank > t.level_rank THEN s.level ELSE t.level END,
                   level_rank = greatest(t.level_rank, s.level_rank),
                   environments = ARRAY(SELECT DISTINCT unnest(t.environments || s.environments)
                                        ORDER BY 1),
                   hosts = ARRAY(SELECT DISTINCT unnest(t.hosts || s.hosts) ORDER BY 1 LIMIT 100),
                   updated_at = now()
               FROM mendline.issues AS s
               WHERE t.id = $1 AND s.id = $2""",
            target,
            source,
        )
        await conn.execute(
            """UPDATE mendline.issues SET status = 'merged', merged_into = $1, updated_at = now()
               WHERE id = $2""",
            target,
            source,
        )


async def ignore_issue(conn: asyncpg.Connection, issue_id: int) -> None:
    """Stop alerting on an issue: its events are still stored and counted, but raise no alert
    (no frequency spike, and only a resolved issue regresses). IssueNotFound if no issue has
    that id, or it was merged."""
    status = await conn.execute(
        """UPDATE mendline.issues SET status = 'ignored', updated_at = now()
           WHERE id = $1 AND status <> 'merged'""",
        issue_id,
    )
    if status == "UPDATE 0":
        raise IssueNotFound(f"there is no issue {issue_id} (or it was merged)")


async def resolve_issue(conn: asyncpg.Connection, issue_id: int, note: str | None) -> None:
    """Mark an issue resolved, with an optional note on what fixed it: a later event reopens
    it as a regression, similar issues are analysed with the note in view, and a `resolved`
    trigger (same transaction) lets the alert stage resolve what it paged about."""
    async with conn.transaction():
        was = await conn.fetchval(
            "SELECT status FROM mendline.issues WHERE id = $1 FOR UPDATE", issue_id
        )
        if was is None or was == "merged":
            raise IssueNotFound(f"there is no issue {issue_id} (or it was merged)")
        resolved_at = await conn.fetchval(
            """UPDATE mendline.issues SET status = 'resolved',
                   resolved_at = CASE WHEN status = 'resolved' THEN resolved_at ELSE now() END,
                   resolution_note = coalesce($2, resolution_note), updated_at = now()
               WHERE id = $1 RETURNING resolved_at""",
            issue_id,
            note,
        )
        if was == "resolved":
            return  # a new note, perhaps; nothing to announce again
        await conn.execute(
            """INSERT INTO mendline.triggers (issue_id, kind, dedup_key)
               VALUES ($1, 'resolved', $2) ON CONFLICT (dedup_key) DO NOTHING""",
            issue_id,
            f"resolved:{issue_id}:{resolved_at.isoformat()}",
        )
        await conn.execute("SELECT pg_notify($1, '')", TRIGGERS_CHANNEL)


async def prune_events(
    conn: asyncpg.Connection, retention_days: int, now: datetime | None = None
) -> list[str]:
    """Drop the daily event partitions older than the retention, with their event ids and
    per-minute counts; returns the dropped partitions' names."""
    if retention_days < 1:
        raise ConfigError(f"the retention must be at least 1 day, not {retention_days}")
    cutoff: date = ((now or datetime.now(UTC)) - timedelta(days=retention_days)).date()
    names = [
        r["relname"]
        for r in await conn.fetch(
            """SELECT c.relname FROM pg_inherits i
               JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = 'mendline.events'::regclass
                 AND c.relname ~ '^events_[0-9]{8}$'
               ORDER BY c.relname"""
        )
    ]
    old = [n for n in names if datetime.strptime(n[7:], "%Y%m%d").date() < cutoff]
    async with conn.transaction():
        for name in old:
            # The name comes from the catalogue and matched ^events_[0-9]{8}$ above.
            await conn.execute(f'DROP TABLE mendline."{name}"')
        cutoff_ts = datetime(cutoff.year, cutoff.month, cutoff.day, tzinfo=UTC)
        await conn.execute("DELETE FROM mendline.events_default WHERE received_at < $1", cutoff_ts)
        await conn.execute("DELETE FROM mendline.event_ids WHERE received_at < $1", cutoff_ts)
        await conn.execute("DELETE FROM mendline.issue_counts WHERE minute < $1", cutoff_ts)
    return old
