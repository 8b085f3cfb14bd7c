"""The production context a code review reads from PostgreSQL, read only: the open and
lately resolved issues with in-app frames in the files a diff changes, and the learned
review rules in effect."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

from mendline.schemas.review import FrameRef, IssueRecord, LearnedRule
from mendline.sinks.postgres._errors import translated, translating

if TYPE_CHECKING:
    from mendline.schemas.settings import Settings

__all__ = ["MOST_ISSUES", "PostgresProductionSource", "connect_production"]

#: The most issues one review reads, the most recently seen first.
MOST_ISSUES = 300

# Each issue's latest event (events_by_issue), its in-app frames in order (the chain root
# cause first, each exception's frames outermost first): those in a file named one of $1,
# and the innermost of all whatever its file (the culprit: last), found in SQL so that only
# the matching issues' few frames leave the database. The issues are read in last-seen order
# and the scan stops at the $3rd match. A payload whose exceptions or frames are not arrays
# has no frames.
_ISSUES = """
SELECT i.id, i.title, i.status, i.culprit, i.times_seen, i.last_seen, i.resolved_at,
       (SELECT coalesce(sum(c.count), 0)::bigint FROM mendline.issue_counts c
        WHERE c.issue_id = i.id AND c.minute > now() - interval '7 days') AS events_7d,
       f.root_cause, f.verdict, f.fix_patch, fr.frames
FROM (SELECT i.* FROM mendline.issues i
      WHERE i.status IN ('unresolved', 'ignored')
         OR (i.status = 'resolved' AND i.resolved_at > now() - make_interval(days => $2))
      ORDER BY i.last_seen DESC, i.id DESC) AS i
CROSS JOIN LATERAL (
    SELECT e.payload FROM mendline.events e WHERE e.issue_id = i.id
    ORDER BY e.received_at DESC, e.event_id DESC LIMIT 1) AS latest
CROSS JOIN LATERAL (
    SELECT json_agg(json_build_object(
               'filename', a.frame ->> 'filename', 'module', a.frame ->> 'module',
               'function', a.frame ->> 'function', 'lineno', a.frame -> 'lineno',
               'context_line', a.frame ->> 'context_line') ORDER BY a.n, a.m)
               FILTER (WHERE a.named OR a.innermost) AS frames,
           coalesce(bool_or(a.named), false) AS named
    FROM (SELECT fr.frame, x.n, fr.m,
                 regexp_replace(fr.frame ->> 'filename', '^.*[/\\\\]', '') = ANY ($1::text[])
                     AS named,
                 row_number() OVER (ORDER BY x.n DESC, fr.m DESC) = 1 AS innermost
          FROM json_array_elements(CASE WHEN json_typeof(latest.payload -> 'exceptions') = 'array'
                                   THEN latest.payload -> 'exceptions' END)
               WITH ORDINALITY AS x(exc, n)
          CROSS JOIN json_array_elements(CASE WHEN json_typeof(x.exc -> 'frames') = 'array'
                                         THEN x.exc -> 'frames' END)
               WITH ORDINALITY AS fr(frame, m)
          WHERE json_typeof(fr.frame) = 'object' AND fr.frame ->> 'in_app' = 'true'
            AND json_typeof(fr.frame -> 'filename') = 'string'
            AND json_typeof(fr.frame -> 'function') = 'string') AS a
) AS fr
LEFT JOIN LATERAL (
    SELECT f.root_cause, f.verdict, f.fix_patch FROM mendline.findings f
    WHERE f.issue_id = i.id ORDER BY f.id DESC LIMIT 1) AS f ON true
WHERE fr.named
ORDER BY i.last_seen DESC, i.id DESC
LIMIT $3
"""

_RULES = """
SELECT id, shape, example, title, issue_id, finding_id, created_at, disabled_at, disabled_by, fix
FROM mendline.learned_review_rules WHERE active ORDER BY id
"""


@translating
class PostgresProductionSource:
    """``schemas.review.ProductionSource`` on an asyncpg pool: every read in a READ ONLY
    transaction, so a role with SELECT on schema ``mendline`` is enough. ``link_template``
    (``Settings.issue_link_template``, with ``{id}``) makes each issue's and rule's link.
    Driver errors come out as the error tree's (DatabaseUnavailable, RejectedData)."""

    def __init__(self, pool: asyncpg.Pool, link_template: str | None = None) -> None:
        self.pool = pool
        self.link_template = link_template

    async def issues(
        self, file_names: Sequence[str], *, resolved_within_days: int
    ) -> list[IssueRecord]:
        """The issues not merged, unresolved or ignored or resolved within
        ``resolved_within_days`` days, whose latest stored event has an in-app frame in a
        file whose base name is one of ``file_names``; at most ``MOST_ISSUES``, the most
        recently seen first. Their frames are those in-app frames, and the innermost in-app
        frame of the event whatever its file (last), in the event's order."""
        names = sorted({name for name in file_names if name})
        if not names:
            return []
        days = max(0, resolved_within_days)
        async with self.pool.acquire() as conn, conn.transaction(readonly=True):
            rows = await conn.fetch(_ISSUES, names, days, MOST_ISSUES)
        return [self._issue(row) for row in rows]

    async def learned_rules(self) -> list[LearnedRule]:
        """The learned review rules that are not disabled, oldest first."""
        async with self.pool.acquire() as conn, conn.transaction(readonly=True):
            rows = await conn.fetch(_RULES)
        return [
            LearnedRule(
                number=row["id"],
                shape=row["shape"],
                example=row["example"],
                title=row["title"],
                issue_id=row["issue_id"],
                finding_id=row["finding_id"],
                created_at=row["created_at"],
                disabled_at=row["disabled_at"],
                disabled_by=row["disabled_by"],
                link=self._link(row["issue_id"]),
                fix=row["fix"],
            )
            for row in rows
        ]

    async def close(self) -> None:
        """Close the pool."""
        await self.pool.close()

    def _link(self, issue_id: int) -> str | None:
        return self.link_template.format(id=issue_id) if self.link_template else None

    def _issue(self, row: asyncpg.Record) -> IssueRecord:
        frames: list[dict[str, Any]] = json.loads(row["frames"]) if row["frames"] else []
        return IssueRecord(
            issue_id=row["id"],
            title=row["title"],
            status=row["status"],
            culprit=row["culprit"],
            events_7d=row["events_7d"],
            times_seen=row["times_seen"],
            last_seen=row["last_seen"],
            resolved_at=row["resolved_at"] if row["status"] == "resolved" else None,
            root_cause=row["root_cause"],
            verdict=row["verdict"],
            patch=row["fix_patch"],
            frames=tuple(_frame(frame) for frame in frames),
            link=self._link(row["id"]),
        )


def _frame(frame: dict[str, Any]) -> FrameRef:
    lineno = frame.get("lineno")
    return FrameRef(
        filename=frame["filename"],
        module=frame.get("module"),
        function=frame["function"],
        lineno=lineno if type(lineno) is int else None,
        context_line=frame.get("context_line"),
    )


async def connect_production(settings: Settings, size: int = 2) -> PostgresProductionSource:
    """A PostgresProductionSource on a new pool of ``settings.database_url``, read only and
    without migrating (a review changes nothing); ``close()`` it after. DatabaseUnavailable
    when the database cannot be reached."""
    with translated():
        pool = await asyncpg.create_pool(
            settings.database_url.get_secret_value(),
            min_size=1,
            max_size=size,
            command_timeout=60,
            server_settings={"default_transaction_read_only": "on"},
        )
    return PostgresProductionSource(pool, settings.issue_link_template)
