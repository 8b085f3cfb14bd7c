"""Reading issues and their events: filtered, sorted, keyset-paged lists, one issue's header
with its trend, finding and comments, and its events; read only."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from mendline.schemas.errors import EventNotFound, IssueNotFound
from mendline.schemas.issue_query import ISSUE_SORTS, EventCursor, IssueCursor, IssueQuery
from mendline.sinks.postgres._errors import translating

if TYPE_CHECKING:
    import asyncpg

    _Reader = asyncpg.Pool | asyncpg.Connection[Any]

__all__ = ["EventPage", "IssuePage", "IssueReads"]

_COLUMNS = """i.id, i.service, i.title, i.culprit, i.level, i.status, i.substatus, i.assignee,
    i.times_seen, i.first_seen, i.last_seen, i.first_release, i.last_release, i.environments"""
# Events of the last hour of receipt, from the per-minute counts (their primary key).
_EVENTS_1H = """(SELECT coalesce(sum(c.count), 0)::bigint FROM mendline.issue_counts c
    WHERE c.issue_id = i.id AND c.minute > now() - interval '1 hour')"""
# Each sort's key and the type of its cursor value; every one descending, the id last.
_SORT_KEYS = {
    "last_seen": ("i.last_seen", "timestamptz"),
    "first_seen": ("i.first_seen", "timestamptz"),
    "events": ("i.times_seen", "bigint"),
    "events_1h": (_EVENTS_1H, "bigint"),
}
# $6/$7: the tags' names and values, which one stored event must carry together.
_LIST = """
SELECT {columns}, {events_1h} AS events_1h, {key} AS sort_value
FROM mendline.issues i
WHERE ($1 = 'all' AND i.status <> 'merged' OR i.status = $1)
  AND ($2::text IS NULL OR i.substatus = $2)
  AND ($3::text IS NULL OR i.service = $3)
  AND ($4::text IS NULL OR $4 = ANY (i.environments))
  AND ($5::text IS NULL OR i.first_release = $5 OR i.last_release = $5
       OR EXISTS (SELECT 1 FROM mendline.events e WHERE e.issue_id = i.id AND e.release = $5))
  AND (cardinality($6::text[]) = 0 OR EXISTS (
       SELECT 1 FROM mendline.events e
       WHERE e.issue_id = i.id
         AND NOT EXISTS (SELECT 1 FROM unnest($6::text[], $7::text[]) AS t(name, value)
                         WHERE (e.payload -> 'tags' ->> t.name) IS DISTINCT FROM t.value)))
  AND ($8::text IS NULL OR i.title ILIKE $8 OR i.culprit ILIKE $8)
  AND ($9::text IS NULL OR i.assignee = $9)
  AND ($10::timestamptz IS NULL OR i.first_seen >= $10)
  AND ($11::timestamptz IS NULL OR i.last_seen >= $11)
  AND ($12::{type} IS NULL OR ({key}, i.id) < ($12::{type}, $13::bigint))
ORDER BY {key} DESC, i.id DESC
LIMIT $14
"""
# One query per sort, made once from fixed parts: no text from a caller is ever formatted in.
_LIST_SQL = {
    sort: _LIST.format(columns=_COLUMNS, events_1h=_EVENTS_1H, key=key, type=type_)
    for sort, (key, type_) in _SORT_KEYS.items()
}
assert set(_LIST_SQL) == set(ISSUE_SORTS)

_HEADER = f"""
SELECT {_COLUMNS}, i.hosts, i.resolution, i.resolution_note, i.resolved_at,
       i.resolved_in_release, i.resolved_by, i.ignored_at, i.ignored_by, i.ignore_until,
       i.ignore_until_seen, i.ignore_per_hour, i.merged_into, i.merged_at, i.regressions,
       i.regressed_at, {_EVENTS_1H} AS events_1h
FROM mendline.issues i WHERE i.id = $1
"""
# The last 24 hours of receipt, hour by hour, the current hour last; hours without events 0.
_TREND = """
SELECT h.hour, coalesce(sum(c.count), 0)::bigint AS events
FROM generate_series(date_trunc('hour', now()) - interval '23 hours',
                     date_trunc('hour', now()), interval '1 hour') AS h(hour)
LEFT JOIN mendline.issue_counts c
       ON c.issue_id = $1 AND c.minute >= h.hour AND c.minute < h.hour + interval '1 hour'
GROUP BY h.hour ORDER BY h.hour
"""
# confidence is a real: as numeric first, 0.834 stays 0.834 rather than 0.8339999914...
_FINDING = """
SELECT finding_id, analyser, model, category, severity,
       confidence::numeric::float8 AS confidence, root_cause, suggested_fix,
       fix_kind, risks, verdict, analysed_at
FROM mendline.issue_findings WHERE issue_id = $1
"""
_COMMENTS = """
SELECT id, author, body, created_at, count(*) OVER () AS total
FROM mendline.issue_comments WHERE issue_id = $1 ORDER BY id DESC LIMIT $2
"""
_EVENT_SUMMARY = """e.event_id, e.issue_id, e.received_at, e."timestamp", e.environment,
    e.release, e.host, e.level, e.message,
    e.payload -> 'exceptions' -> -1 ->> 'type' AS exception_type,
    e.payload -> 'exceptions' -> -1 ->> 'value' AS exception_value"""
_EVENTS = f"""
SELECT {_EVENT_SUMMARY} FROM mendline.events e
WHERE e.issue_id = $1
  AND ($2::timestamptz IS NULL OR (e.received_at, e.event_id) < ($2::timestamptz, $3::uuid))
ORDER BY e.received_at DESC, e.event_id DESC
LIMIT $4
"""
_EVENT_COLUMNS = """e.event_id, e.issue_id, e.received_at, e."timestamp", e.service,
    e.environment, e.release, e.host, e.level, e.message, e.fingerprint, e.payload"""
# event_ids holds each event's time of receipt: it picks the one partition to look in.
_EVENT = f"""
SELECT {_EVENT_COLUMNS}
FROM mendline.event_ids d
JOIN mendline.events e ON e.received_at = d.received_at AND e.event_id = d.event_id
WHERE d.event_id = $1 AND ($2::bigint IS NULL OR e.issue_id = $2)
"""
_FIRST_EVENT = f"""
SELECT {_EVENT_COLUMNS} FROM mendline.events e WHERE e.issue_id = $1
ORDER BY e.received_at, e.event_id LIMIT 1
"""
_LATEST_EVENT = f"""
SELECT {_EVENT_COLUMNS} FROM mendline.events e WHERE e.issue_id = $1
ORDER BY e.received_at DESC, e.event_id DESC LIMIT 1
"""


@dataclass(frozen=True)
class IssuePage:
    """A page of issues (each a dict of the ``issues list`` columns, ``events_1h`` and
    ``sort_value`` included) and the cursor of the next page (None: this is the last)."""

    issues: list[dict[str, Any]]
    next_cursor: str | None


@dataclass(frozen=True)
class EventPage:
    """A page of an issue's events, newest first (each a dict: ids, times, environment,
    release, host, level, message and the raised exception's ``exception_type`` and
    ``exception_value``), and the cursor of the next page (None: this is the last)."""

    events: list[dict[str, Any]]
    next_cursor: str | None


@translating
class IssueReads:
    """What the CLI and the dashboard read of issues and events, on an asyncpg pool or
    connection; nothing here writes.

    Rows come back as dicts of plain values (an event's ``payload`` decoded to a dict, its
    ``event_id`` as 32 hexadecimal digits, as in the ErrorEvent). A missing issue is
    IssueNotFound, a missing event EventNotFound; driver errors come out as the error tree's.
    """

    def __init__(self, reader: _Reader) -> None:
        self._db = reader

    async def issues(self, query: IssueQuery) -> IssuePage:
        """The issues ``query`` asks for, a page of them, in its sort (descending, the id
        breaking ties), from its cursor.

        Cost: the status, service, time, assignee and text filters read the issues alone; a
        ``release`` that is neither the first nor the last, and every ``tags`` filter, scan
        each candidate issue's stored events (through its events index, but every event's
        payload). Sorting by ``events_1h`` sums the last hour's per-minute counts of every
        matching issue before the page is cut.
        """
        status, substatus = query.status_filter
        cursor = query.cursor
        rows = await self._db.fetch(
            _LIST_SQL[query.sort],
            status,
            substatus,
            query.service,
            query.environment,
            query.release,
            [name for name, _ in query.tags],
            [value for _, value in query.tags],
            query.text_pattern,
            query.assignee,
            query.first_seen_since,
            query.last_seen_since,
            cursor.value if cursor else None,
            cursor.id if cursor else None,
            query.limit + 1,  # one more: whether a next page exists
        )
        issues = [dict(r) for r in rows[: query.limit]]
        next_cursor = None
        if len(rows) > query.limit:
            last = issues[-1]
            next_cursor = IssueCursor(
                sort=query.sort, value=last["sort_value"], id=last["id"]
            ).token()
        return IssuePage(issues, next_cursor)

    async def header(self, issue_id: int) -> dict[str, Any]:
        """One issue's every column (the workflow's included) and its ``events_1h``;
        IssueNotFound when there is none."""
        row = await self._db.fetchrow(_HEADER, issue_id)
        if row is None:
            raise IssueNotFound(f"there is no issue {issue_id}")
        return dict(row)

    async def trend(self, issue_id: int) -> list[tuple[datetime, int]]:
        """The issue's events per hour of receipt over the last 24 hours, oldest hour first,
        the current hour last; an hour without events is 0."""
        rows = await self._db.fetch(_TREND, issue_id)
        return [(r["hour"], r["events"]) for r in rows]

    async def finding(self, issue_id: int) -> dict[str, Any] | None:
        """The issue's newest finding (``mendline.issue_findings``), or None."""
        row = await self._db.fetchrow(_FINDING, issue_id)
        return dict(row) if row else None

    async def comments(self, issue_id: int, limit: int = 5) -> tuple[list[dict[str, Any]], int]:
        """The issue's newest ``limit`` comments, newest last, and how many it has."""
        rows = await self._db.fetch(_COMMENTS, issue_id, limit)
        total = rows[0]["total"] if rows else 0
        shown = [{k: r[k] for k in ("id", "author", "body", "created_at")} for r in rows]
        return shown[::-1], total

    async def events(
        self, issue_id: int, limit: int = 20, cursor: EventCursor | None = None
    ) -> EventPage:
        """A page of the issue's stored events, newest first, from ``cursor``; the issue's
        existence is not checked (see ``header``)."""
        rows = await self._db.fetch(
            _EVENTS,
            issue_id,
            cursor.received_at if cursor else None,
            uuid.UUID(cursor.event_id) if cursor else None,
            limit + 1,
        )
        events = [_plain(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = events[-1]
            next_cursor = EventCursor(
                received_at=last["received_at"], event_id=last["event_id"]
            ).token()
        return EventPage(events, next_cursor)

    async def event(self, event_id: str, issue_id: int | None = None) -> dict[str, Any]:
        """The stored event ``event_id`` (with its ``payload`` decoded), of ``issue_id`` when
        given; EventNotFound when there is none (or an id that is not a UUID)."""
        try:
            key = uuid.UUID(event_id)
        except ValueError:
            raise EventNotFound(f"{event_id[:60]!r} is not an event id (a UUID)") from None
        row = await self._db.fetchrow(_EVENT, key, issue_id)
        if row is None:
            of = f" of issue {issue_id}" if issue_id is not None else ""
            raise EventNotFound(f"there is no stored event {key.hex}{of}")
        return _plain(row)

    async def edge_event(self, issue_id: int, which: Literal["first", "latest"]) -> dict[str, Any]:
        """The issue's first or latest stored event (by receipt); EventNotFound when it has
        none stored (pruned, or merged away)."""
        row = await self._db.fetchrow(_FIRST_EVENT if which == "first" else _LATEST_EVENT, issue_id)
        if row is None:
            raise EventNotFound(f"issue {issue_id} has no stored events")
        return _plain(row)


def _plain(row: asyncpg.Record) -> dict[str, Any]:
    """A row as a dict: the event id as hex, the payload (json text, or a codec's value)
    decoded."""
    out = dict(row)
    if isinstance(out.get("event_id"), uuid.UUID):
        out["event_id"] = out["event_id"].hex
    payload = out.get("payload")
    if isinstance(payload, str | bytes):
        out["payload"] = json.loads(payload)
    return out
