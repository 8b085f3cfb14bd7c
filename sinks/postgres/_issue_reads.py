"""Reading issues and their events: filtered, sorted, keyset-paged lists, one issue's header
with its trend, finding and comments, and its events; read only."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from mendline.schemas.errors import EventNotFound, IssueNotFound
from mendline.schemas.issue_query import (
    ISSUE_SORTS,
    TAB_COUNT_LIMIT,
    EventCursor,
    IssueCursor,
    IssueQuery,
)
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
# r: an issue's events of the last hour and of the hour before it, from its per-minute
# counts. Lateral (one issue's, through the counts' primary key) where only the page's rows
# need it; one pass over the last two hours' counts, joined, where every matching issue is
# sorted by it.
_RECENT_SUMS = """sum(c.count) FILTER (WHERE c.minute > now() - interval '1 hour')::bigint
        AS events_1h,
    sum(c.count) FILTER (WHERE c.minute <= now() - interval '1 hour')::bigint AS events_before
    FROM mendline.issue_counts c WHERE c.minute > now() - interval '2 hours'"""
_RECENT_OF_ROW = f"""LEFT JOIN LATERAL (SELECT {_RECENT_SUMS} AND c.issue_id = i.id) r ON true"""
_RECENT_OF_ALL = f"""LEFT JOIN (SELECT c.issue_id, {_RECENT_SUMS} GROUP BY c.issue_id) r
    ON r.issue_id = i.id"""
# The sorts by recent events (see ISSUE_SORTS): the last hour, and it against the hour before.
_R_EVENTS_1H = "coalesce(r.events_1h, 0)"
_R_TREND = "(coalesce(r.events_1h, 0) - coalesce(r.events_before, 0))"
# Each sort's key, the type of its cursor value, and whether every matching issue's recent
# counts are summed to sort by it; every order descending, the id last.
_SORT_KEYS = {
    "last_seen": ("i.last_seen", "timestamptz", False),
    "first_seen": ("i.first_seen", "timestamptz", False),
    "events": ("i.times_seen", "bigint", False),
    "events_1h": (_R_EVENTS_1H, "bigint", True),
    "trend": (_R_TREND, "bigint", True),
}
# The filters a list and its tabs' counts share: $1 service, $2 environment, $3 release,
# $4 text (an ILIKE pattern), $5 assignee, $6 first seen since, $7 last seen since, $8 the
# tags (a jsonb object one stored event's tags contain). The tags' test is a plain AND (not
# "$8 IS NULL OR ..."), in a statement of its own, so that the planner reads the candidate
# issues' stored events by issue (no index of every event's tags: see 0025).
_FILTERS = """($1::text IS NULL OR i.service = $1)
  AND ($2::text IS NULL OR $2 = ANY (i.environments))
  AND ($3::text IS NULL OR i.first_release = $3 OR i.last_release = $3
       OR EXISTS (SELECT 1 FROM mendline.events e WHERE e.issue_id = i.id AND e.release = $3))
  AND ($4::text IS NULL OR i.title ILIKE $4 OR i.culprit ILIKE $4)
  AND ($5::text IS NULL OR i.assignee = $5)
  AND ($6::timestamptz IS NULL OR i.first_seen >= $6)
  AND ($7::timestamptz IS NULL OR i.last_seen >= $7)
  AND {tags}"""
_TAGS = {
    False: "$8::jsonb IS NULL",
    True: """EXISTS (SELECT 1 FROM mendline.events e WHERE e.issue_id = i.id
                 AND (e.payload -> 'tags')::jsonb @> $8::jsonb)""",
}
# $9/$10 the status and substatus; $11/$12 the cursor's value and id; $13 the page size.
# Backward (a "previous" link): the rows before the cursor, nearest first. The page's ids
# are chosen first, from the columns filtered and sorted on alone (without filters, from
# an index of 0025 only), then its rows are read whole, with their recent counts.
_LIST = """
SELECT {columns}, coalesce(r.events_1h, 0) AS events_1h,
       (coalesce(r.events_1h, 0) - coalesce(r.events_before, 0)) AS trend,
       k.sort_value
FROM (SELECT i.id, {key} AS sort_value
      FROM mendline.issues i {recent}
      WHERE ($9 = 'all' AND i.status <> 'merged' OR i.status = $9)
        AND ($10::text IS NULL OR i.substatus = $10)
        AND {filters}
        AND ($11::{type} IS NULL OR ({key}, i.id) {beyond} ($11::{type}, $12::bigint))
      ORDER BY {key} {order}, i.id {order}
      LIMIT $13) AS k
JOIN mendline.issues i ON i.id = k.id
{recent_of_row}
ORDER BY k.sort_value {order}, k.id {order}
"""
# One statement per sort, direction and use of tags, made once from fixed parts: no text
# from a caller is ever formatted in.
_LIST_SQL = {
    (sort, backward, tags): _LIST.format(
        columns=_COLUMNS,
        key=key,
        type=type_,
        recent=_RECENT_OF_ALL if all_recent else "",
        recent_of_row=_RECENT_OF_ROW,
        filters=_FILTERS.format(tags=_TAGS[tags]),
        beyond=">" if backward else "<",
        order="ASC" if backward else "DESC",
    )
    for sort, (key, type_, all_recent) in _SORT_KEYS.items()
    for backward in (False, True)
    for tags in (False, True)
}
assert {sort for sort, _, _ in _LIST_SQL} == set(ISSUE_SORTS)
# What each tab of the dashboard would list with the same filters: unresolved (regressed and
# escalating among them), ignored, resolved. Each counted up to one more than the limit, so
# that a count costs no more than a few pages whatever the number of issues.
_TABS = {
    "unresolved": "i.status = 'unresolved'",
    "regressed": "i.status = 'unresolved' AND i.substatus = 'regressed'",
    "escalating": "i.status = 'unresolved' AND i.substatus = 'escalating'",
    "ignored": "i.status = 'ignored'",
    "resolved": "i.status = 'resolved'",
}
_TAB_COUNT = """(SELECT count(*) FROM (SELECT FROM mendline.issues i
    WHERE {tab} AND {filters} LIMIT {limit}) AS t) AS {name}"""
_TAB_COUNTS_SQL = {
    tags: "SELECT "
    + ",\n".join(
        _TAB_COUNT.format(
            tab=tab, filters=_FILTERS.format(tags=_TAGS[tags]), limit=TAB_COUNT_LIMIT + 1, name=name
        )
        for name, tab in _TABS.items()
    )
    for tags in _TAGS
}

_HEADER = f"""
SELECT {_COLUMNS}, i.hosts, i.resolution, i.resolution_note, i.resolved_at,
       i.resolved_in_release, i.resolved_by, i.ignored_at, i.ignored_by, i.ignore_until,
       i.ignore_until_seen, i.ignore_per_hour, i.merged_into, i.merged_at, i.regressions,
       i.regressed_at, {_EVENTS_1H} AS events_1h
FROM mendline.issues i WHERE i.id = $1
"""
# The last $2 hours of receipt, hour by hour, the current hour last; hours without events 0.
_TREND = """
SELECT h.hour, coalesce(sum(c.count), 0)::bigint AS events
FROM generate_series(date_trunc('hour', now()) - make_interval(hours => $2 - 1),
                     date_trunc('hour', now()), interval '1 hour') AS h(hour)
LEFT JOIN mendline.issue_counts c
       ON c.issue_id = $1 AND c.minute >= h.hour AND c.minute < h.hour + interval '1 hour'
GROUP BY h.hour ORDER BY h.hour
"""
# The same hours for many issues at once: each issue's counts of each hour (by how many
# hours ago, 0 the current one), for the hours that have any.
_SPARKLINES = """
SELECT c.issue_id,
       (extract(epoch FROM date_trunc('hour', now()) - date_trunc('hour', c.minute))
        / 3600)::int AS hours_ago,
       sum(c.count)::bigint AS events
FROM mendline.issue_counts c
WHERE c.issue_id = ANY ($1::bigint[])
  AND c.minute >= date_trunc('hour', now()) - make_interval(hours => $2 - 1)
GROUP BY 1, 2
"""
_DELIVERIES = """
SELECT d.id, d.receiver, d.kind, d.severity, d.mode, d.status, d.attempts, d.last_error,
       d.created_at, d.due_at, d.delivered_at, d.digest_of, d.reasons,
       count(*) OVER () AS total
FROM mendline.deliveries d WHERE d.issue_id = $1
ORDER BY d.id DESC LIMIT $2
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
    e.release, e.host, e.level, e.message, e.count, e.sample_slot IS NOT NULL AS sampled,
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
    e.environment, e.release, e.host, e.level, e.message, e.fingerprint, e.count,
    e.sample_slot IS NOT NULL AS sampled, e.payload"""
# An id received (its time of receipt kept) whose event is not stored: sampled out, pruned.
_RECEIVED = """
SELECT d.received_at FROM mendline.event_ids d
WHERE d.event_id = $1 AND NOT EXISTS (
    SELECT FROM mendline.events e WHERE e.received_at = d.received_at AND e.event_id = $1)
"""
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
# The events received just before and just after one (by receipt, the id breaking ties).
_NEIGHBOURS = """
SELECT (SELECT e.event_id FROM mendline.events e
        WHERE e.issue_id = $1 AND (e.received_at, e.event_id) < ($2::timestamptz, $3::uuid)
        ORDER BY e.received_at DESC, e.event_id DESC LIMIT 1) AS older,
       (SELECT e.event_id FROM mendline.events e
        WHERE e.issue_id = $1 AND (e.received_at, e.event_id) > ($2::timestamptz, $3::uuid)
        ORDER BY e.received_at, e.event_id LIMIT 1) AS newer
"""


@dataclass(frozen=True)
class IssuePage:
    """A page of issues (each a dict of the ``issues list`` columns, ``events_1h``,
    ``trend`` and ``sort_value`` included), the cursor of the next page (None: this is the
    last) and of the previous one (None: this is the first)."""

    issues: list[dict[str, Any]]
    next_cursor: str | None
    prev_cursor: str | None = None


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
        breaking ties), from its cursor. A backward cursor gives the page before it; when
        fewer than a page's rows are left before it, the first page.

        Cost: the page's ids are chosen from the issues alone (from an index of 0025 only,
        without filters), then its rows read whole. The status, service, time, assignee and
        text filters read the issues alone; a ``release`` that is neither the first nor the
        last reads the stored events of that release; ``tags`` read the candidate issues'
        stored events (no index of every event's tags: see 0025). Sorting by ``events_1h``
        or ``trend`` sums the last two hours' per-minute counts of every issue before the
        page is cut; the other sorts stop at the page's last row.
        """
        tags = query.tag_filter
        if tags is None:  # one tag asked for with two values: no event carries both
            return IssuePage([], None)
        cursor = query.cursor
        backward = cursor is not None and cursor.backward
        rows = await self._db.fetch(
            _LIST_SQL[query.sort, backward, bool(tags)],
            *self._filters(query, tags),
            *query.status_filter,
            cursor.value if cursor else None,
            cursor.id if cursor else None,
            query.limit + 1,  # one more: whether a page exists beyond this one
        )
        more = len(rows) > query.limit
        issues = [dict(r) for r in rows[: query.limit]]
        if backward:
            if not more:  # back at the start: the first page, whole
                return await self.issues(query.model_copy(update={"cursor": None}))
            issues.reverse()
        next_cursor = prev_cursor = None
        if issues and (more or backward):
            next_cursor = _cursor(query, issues[-1], backward=False)
        if issues and (cursor is not None):
            prev_cursor = _cursor(query, issues[0], backward=True)
        return IssuePage(issues, next_cursor, prev_cursor)

    async def tab_counts(self, query: IssueQuery) -> dict[str, int]:
        """How many issues each tab of the dashboard holds with ``query``'s filters (its
        status, sort and cursor aside): ``unresolved`` (``regressed`` and ``escalating``
        among them), ``ignored`` and ``resolved``."""
        tags = query.tag_filter
        if tags is None:
            return dict.fromkeys(
                ("unresolved", "regressed", "escalating", "ignored", "resolved"), 0
            )
        row = await self._db.fetchrow(_TAB_COUNTS_SQL[bool(tags)], *self._filters(query, tags))
        assert row is not None
        return dict(row)

    @staticmethod
    def _filters(query: IssueQuery, tags: dict[str, str]) -> tuple[Any, ...]:
        """The parameters $1 to $8 of the shared filters (``_FILTERS``)."""
        return (
            query.service,
            query.environment,
            query.release,
            query.text_pattern,
            query.assignee,
            query.first_seen_since,
            query.last_seen_since,
            json.dumps(tags) if tags else None,
        )

    async def sparklines(self, issue_ids: Sequence[int], hours: int = 24) -> dict[int, list[int]]:
        """Each issue's events per hour of receipt over the last ``hours`` hours, oldest
        first, the current hour last (as ``trend`` gives them), in one query for all."""
        lines = {issue_id: [0] * hours for issue_id in issue_ids}
        rows = await self._db.fetch(_SPARKLINES, list(lines), hours)
        for row in rows:
            slot = hours - 1 - row["hours_ago"]
            if 0 <= slot < hours:  # a minute ahead of the database's clock is left out
                lines[row["issue_id"]][slot] += row["events"]
        return lines

    async def header(self, issue_id: int) -> dict[str, Any]:
        """One issue's every column (the workflow's included) and its ``events_1h``;
        IssueNotFound when there is none."""
        row = await self._db.fetchrow(_HEADER, issue_id)
        if row is None:
            raise IssueNotFound(f"there is no issue {issue_id}")
        return dict(row)

    async def trend(self, issue_id: int, hours: int = 24) -> list[tuple[datetime, int]]:
        """The issue's events per hour of receipt over the last ``hours`` hours, oldest hour
        first, the current hour last; an hour without events is 0."""
        rows = await self._db.fetch(_TREND, issue_id, hours)
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

    async def deliveries(self, issue_id: int, limit: int = 20) -> tuple[list[dict[str, Any]], int]:
        """The issue's newest ``limit`` alert deliveries, newest first (receiver, kind,
        severity, mode, status, attempts, last error, times, the digest it went in and the
        reasons of its decision), and how many it has."""
        rows = await self._db.fetch(_DELIVERIES, issue_id, limit)
        total = rows[0]["total"] if rows else 0
        return [{k: v for k, v in r.items() if k != "total"} for r in rows], total

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
            received = await self._db.fetchval(_RECEIVED, key)
            if received is not None:
                raise EventNotFound(
                    f"event {key.hex}{of} is not stored: it was received at"
                    f" {received:%Y-%m-%d %H:%M:%S %Z} and counted in its issue, but"
                    " sampling left it out (or it was pruned, or merged elsewhere)"
                )
            raise EventNotFound(f"there is no stored event {key.hex}{of}")
        return _plain(row)

    async def edge_event(self, issue_id: int, which: Literal["first", "latest"]) -> dict[str, Any]:
        """The issue's first or latest stored event (by receipt); EventNotFound when it has
        none stored (pruned, or merged away)."""
        row = await self._db.fetchrow(_FIRST_EVENT if which == "first" else _LATEST_EVENT, issue_id)
        if row is None:
            raise EventNotFound(f"issue {issue_id} has no stored events")
        return _plain(row)

    async def neighbours(self, event: dict[str, Any]) -> tuple[str | None, str | None]:
        """The ids of the events of ``event``'s issue received just before and just after
        it (None at either end), for "previous" and "next"."""
        row = await self._db.fetchrow(
            _NEIGHBOURS, event["issue_id"], event["received_at"], uuid.UUID(event["event_id"])
        )
        assert row is not None
        older, newer = row["older"], row["newer"]
        return (older.hex if older else None, newer.hex if newer else None)


def _cursor(query: IssueQuery, row: dict[str, Any], *, backward: bool) -> str:
    """The cursor at ``row`` of a page of ``query``: after it, or (``backward``) before it."""
    return IssueCursor(
        sort=query.sort, value=row["sort_value"], id=row["id"], backward=backward
    ).token()


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
