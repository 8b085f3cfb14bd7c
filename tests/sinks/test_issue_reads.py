"""IssueReads on the real PostgreSQL, over issues stored the consumer's way: every filter,
every sort, keyset pages that neither skip nor repeat rows with equal sort values, an issue's
header, trend, comments and events, and what is not there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from mendline.schemas.errors import ConfigError, EventNotFound, IssueNotFound
from mendline.schemas.issue_query import (
    ISSUE_SORTS,
    TAB_COUNT_LIMIT,
    EventCursor,
    IssueCursor,
    IssueQuery,
)
from mendline.sinks.postgres import IssueReads
from tests.db_helpers import query, store_events
from tests.integration.event_factory import make_event

NOW = datetime.now(UTC).replace(microsecond=0)


def event(issue: int, minutes_ago: int, **fields: Any) -> dict[str, Any]:
    """An event of issue number ``issue`` (its own call site) at ``minutes_ago``."""
    doc = make_event(issue)
    doc["timestamp"] = (NOW - timedelta(minutes=minutes_ago)).isoformat().replace("+00:00", "Z")
    doc["environment"] = "production"
    doc["release"] = "1.0"
    doc["tags"] = {}
    doc["exceptions"][0]["value"] = f"issue {issue}"
    doc.update(fields)
    return doc


def titled(doc: dict[str, Any], value: str) -> dict[str, Any]:
    doc["exceptions"][0]["value"] = value
    return doc


async def seed(url: str) -> None:
    """Issues 1 to 8, one batch each (so their ids are their numbers), then their workflow
    states as the issue actions would set them."""
    await store_events(
        url,
        [
            titled(event(1, 50, release="1.0", tags={"region": "eu"}), "50% off_sale"),
            event(1, 30, release="1.5", tags={"region": "eu", "plan": "pro"}),
            event(1, 10, release="2.0"),
        ],
        [event(2, 10, environment="staging", tags={"region": "us"}, service="shop")],
        [
            titled(event(3, 40, service="billing", tags={"region": "eu"}), "50 percent offXsale"),
            event(3, 20, service="billing", tags={"plan": "pro"}),
        ],
        [event(4, 60)],
        [event(5, 5), event(5, 4)],
        [event(6, 70)],
        [event(7, 3)],
        [event(8, 2)],
    )
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """UPDATE mendline.issues SET status = 'resolved', resolution = 'now' WHERE id = 4;
               UPDATE mendline.issues SET substatus = 'regressed', assignee = 'user:ada'
               WHERE id = 5;
               UPDATE mendline.issues SET status = 'ignored' WHERE id = 6;
               UPDATE mendline.issues SET substatus = 'escalating', assignee = 'team:core'
               WHERE id = 7;
               UPDATE mendline.issues SET status = 'merged', merged_into = 1 WHERE id = 8;
               -- issue 1's events were counted two hours ago: none in the last hour
               UPDATE mendline.issue_counts SET minute = date_trunc('minute', now())
                      - interval '2 hours' WHERE issue_id = 1;"""
        )
    finally:
        await conn.close()


@pytest.fixture
async def reads(fresh_db_url: str) -> Any:
    await seed(fresh_db_url)
    pool = await asyncpg.create_pool(fresh_db_url, min_size=1, max_size=2)
    try:
        yield IssueReads(pool)
    finally:
        await pool.close()


async def ids(reads: IssueReads, **asked: Any) -> list[int]:
    page = await reads.issues(IssueQuery(**asked))
    assert page.next_cursor is None
    return [row["id"] for row in page.issues]


@pytest.mark.parametrize(
    ("asked", "expected"),
    [
        # status (merged never, but by id), with unresolved ones' substatuses
        ({}, [7, 5, 2, 1, 3]),  # unresolved, last seen first: 2 and 1 tie, higher id first
        ({"status": "regressed"}, [5]),
        ({"status": "escalating"}, [7]),
        ({"status": "resolved"}, [4]),
        ({"status": "ignored"}, [6]),
        ({"status": "all"}, [7, 5, 2, 1, 3, 4, 6]),
        ({"status": "all", "service": "billing"}, [3]),
        ({"status": "all", "environment": "staging"}, [2]),
        # the first or last release, or any stored event's (1.5 is issue 1's middle one)
        ({"release": "2.0"}, [1]),
        ({"release": "1.5"}, [1]),
        ({"release": "1.0", "status": "all", "service": "shop"}, [2]),
        ({"release": "9.9"}, []),
        # tags: one stored event carries them all
        ({"tags": (("region", "eu"),)}, [1, 3]),
        ({"tags": (("region", "eu"), ("plan", "pro"))}, [1]),
        ({"tags": (("plan", "pro"),)}, [1, 3]),
        ({"tags": (("region", "us"),)}, [2]),
        ({"tags": (("region", "EU"),)}, []),
        # text: title or culprit, any case, % and _ only themselves
        ({"text": "50% OFF_sale"}, [1]),
        ({"text": "ISSUE 2"}, [2]),
        ({"text": "handler_3"}, [3]),  # the culprit: app.module9.handler_3
        ({"text": "%"}, [1]),
        ({"assignee": "user:ada"}, [5]),
        ({"assignee": "ada"}, [5]),  # a bare name is a user
        ({"assignee": "team:core"}, [7]),
        ({"first_seen_since": NOW - timedelta(minutes=15)}, [7, 5, 2]),
        ({"last_seen_since": NOW - timedelta(minutes=12)}, [7, 5, 2, 1]),
        ({"last_seen_since": NOW - timedelta(minutes=12), "service": "api"}, [7, 5, 1]),
    ],
)
async def test_every_filter_narrows_the_list(
    reads: IssueReads, asked: dict[str, Any], expected: list[int]
) -> None:
    assert await ids(reads, **asked) == expected


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("last_seen", [7, 5, 2, 1, 3, 4, 6]),  # 2 and 1 last seen at once: the higher id first
        ("first_seen", [7, 5, 2, 3, 1, 4, 6]),
        ("events", [1, 5, 3, 7, 6, 4, 2]),  # 3, 2, 2, then the ones by id
        ("events_1h", [5, 3, 7, 6, 4, 2, 1]),  # issue 1's events are two hours old
        ("trend", [5, 3, 7, 6, 4, 2, 1]),  # none had events in the hour before the last
    ],
)
async def test_each_sort_orders_descending_with_the_id_breaking_ties(
    reads: IssueReads, sort: str, expected: list[int]
) -> None:
    page = await reads.issues(IssueQuery(status="all", sort=sort))  # type: ignore[arg-type]
    assert [row["id"] for row in page.issues] == expected
    by_id = {row["id"]: row for row in page.issues}
    assert (by_id[1]["times_seen"], by_id[1]["events_1h"]) == (3, 0)
    assert (by_id[5]["times_seen"], by_id[5]["events_1h"]) == (2, 2)


@pytest.mark.parametrize("sort", ISSUE_SORTS)
@pytest.mark.parametrize("size", [1, 2, 3])
async def test_pages_walk_the_whole_list_once_whatever_the_ties(
    reads: IssueReads, sort: str, size: int
) -> None:
    whole = await ids(reads, status="all", sort=sort)
    walked: list[int] = []
    pages: list[list[int]] = []
    cursor = None
    for _ in range(10):
        page = await reads.issues(
            IssueQuery(
                status="all",
                sort=sort,  # type: ignore[arg-type]
                limit=size,
                cursor=IssueCursor.parse(cursor) if cursor else None,
            )
        )
        assert len(page.issues) <= size
        walked += [row["id"] for row in page.issues]
        pages.append([row["id"] for row in page.issues])
        cursor = page.next_cursor
        if cursor is None:
            break
    assert walked == whole
    # Back from the last page, by each page's backward cursor: the same pages, reversed;
    # the first page whole (and no cursor before it) however many rows were left.
    back = []
    previous = page.prev_cursor
    while previous is not None:
        page = await reads.issues(
            IssueQuery(status="all", sort=sort, limit=size, cursor=IssueCursor.parse(previous))  # type: ignore[arg-type]
        )
        back.append([row["id"] for row in page.issues])
        previous = page.prev_cursor
    assert back == pages[-2::-1]


async def test_a_page_keeps_its_filters_and_a_cursor_of_another_sort_is_refused(
    reads: IssueReads,
) -> None:
    first = await reads.issues(IssueQuery(service="api", limit=2))
    assert [row["id"] for row in first.issues] == [7, 5]
    assert first.next_cursor is not None
    cursor = IssueCursor.parse(first.next_cursor)
    rest = await reads.issues(IssueQuery(service="api", limit=2, cursor=cursor))
    assert [row["id"] for row in rest.issues] == [1]
    assert rest.next_cursor is None
    with pytest.raises(ValueError, match="sorted by last_seen, not by events"):
        IssueQuery(sort="events", cursor=cursor)
    for bad in (
        "nonsense",
        "",
        first.next_cursor[:-3],
        EventCursor(received_at=NOW, event_id="0" * 32).token(),
    ):
        with pytest.raises(ConfigError, match="is not a cursor of issues"):
            IssueCursor.parse(bad)


async def test_the_header_trend_finding_and_comments_of_one_issue(
    reads: IssueReads, fresh_db_url: str
) -> None:
    header = await reads.header(5)
    assert (header["status"], header["substatus"], header["assignee"]) == (
        "unresolved",
        "regressed",
        "user:ada",
    )
    assert header["times_seen"] == 2 and header["events_1h"] == 2
    trend = await reads.trend(5)
    assert len(trend) == 24
    assert [n for _, n in trend] == [0] * 23 + [2]
    moved = [n for _, n in await reads.trend(1)]
    assert sum(moved) == 3 and moved[-1] == 0 and moved.count(0) == 23
    assert await reads.finding(5) is None
    assert await reads.comments(5) == ([], 0)
    await query(
        fresh_db_url,
        """INSERT INTO mendline.issue_comments (issue_id, author, body)
           SELECT 5, 'user:ada', 'note ' || n FROM generate_series(1, 7) AS n""",
    )
    shown, total = await reads.comments(5, 3)
    assert total == 7 and [c["body"] for c in shown] == ["note 5", "note 6", "note 7"]
    with pytest.raises(IssueNotFound, match="there is no issue 99"):
        await reads.header(99)


async def test_events_page_newest_first_and_one_event_is_found_by_its_id(
    reads: IssueReads,
) -> None:
    whole = await reads.events(1, limit=10)
    assert whole.next_cursor is None and len(whole.events) == 3
    keys = [(e["received_at"], e["event_id"]) for e in whole.events]
    assert keys == sorted(keys, reverse=True)
    walked = []
    cursor = None
    for _ in range(5):
        page = await reads.events(1, 1, EventCursor.parse(cursor) if cursor else None)
        walked += [e["event_id"] for e in page.events]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert walked == [e["event_id"] for e in whole.events]
    assert {e["exception_type"] for e in whole.events} == {"ValueError"}

    latest = await reads.edge_event(1, "latest")
    first = await reads.edge_event(1, "first")
    assert latest["event_id"] == whole.events[0]["event_id"]
    assert first["event_id"] == whole.events[-1]["event_id"]
    one = await reads.event(first["event_id"])
    assert one["payload"]["event_id"] == first["event_id"] and one["issue_id"] == 1
    assert (await reads.event(first["event_id"], 1))["event_id"] == first["event_id"]
    with pytest.raises(EventNotFound, match="of issue 2"):
        await reads.event(first["event_id"], 2)
    with pytest.raises(EventNotFound, match=r"there is no stored event 0{32}$"):
        await reads.event("0" * 32)
    with pytest.raises(EventNotFound, match="is not an event id"):
        await reads.event("not-an-id")
    assert (await reads.events(99)).events == []
    with pytest.raises(EventNotFound, match="issue 99 has no stored events"):
        await reads.edge_event(99, "latest")


async def test_trend_is_the_last_hour_against_the_hour_before(
    reads: IssueReads, fresh_db_url: str
) -> None:
    await query(
        fresh_db_url,
        """INSERT INTO mendline.issue_counts (issue_id, minute, count) VALUES
               (2, date_trunc('minute', now()) - interval '70 minutes', 9),
               (3, date_trunc('minute', now()) - interval '90 minutes', 1),
               (6, date_trunc('minute', now()) - interval '3 hours', 50)""",
    )
    page = await reads.issues(IssueQuery(status="all", sort="trend"))
    trends = {row["id"]: row["trend"] for row in page.issues}
    assert trends == {5: 2, 7: 1, 6: 1, 4: 1, 1: 0, 3: 1, 2: -8}
    assert [row["id"] for row in page.issues] == [5, 7, 6, 4, 3, 1, 2]


async def test_tab_counts_count_each_tab_with_the_filters(
    reads: IssueReads, fresh_db_url: str
) -> None:
    assert await reads.tab_counts(IssueQuery()) == {
        "unresolved": 5,
        "regressed": 1,
        "escalating": 1,
        "ignored": 1,
        "resolved": 1,
    }
    api = await reads.tab_counts(IssueQuery(service="api", status="resolved", sort="events"))
    assert api == {"unresolved": 3, "regressed": 1, "escalating": 1, "ignored": 1, "resolved": 1}
    tagged = await reads.tab_counts(IssueQuery(tags=(("region", "eu"),)))
    assert tagged == {"unresolved": 2, "regressed": 0, "escalating": 0, "ignored": 0, "resolved": 0}
    nothing = await reads.tab_counts(IssueQuery(tags=(("region", "eu"), ("region", "us"))))
    assert set(nothing.values()) == {0}
    # Past the limit a tab says "more" (one above it) rather than counting on.
    await query(
        fresh_db_url,
        f"""INSERT INTO mendline.issues (service, primary_hash, title, level, level_rank,
                status, first_seen, last_seen)
            SELECT 'bulk', 'bulk-' || n, 'bulk issue', 'error', 3, 'ignored', now(), now()
            FROM generate_series(1, {TAB_COUNT_LIMIT + 5}) AS n""",
    )
    assert (await reads.tab_counts(IssueQuery()))["ignored"] == TAB_COUNT_LIMIT + 1
    assert (await reads.tab_counts(IssueQuery(service="bulk")))["ignored"] == TAB_COUNT_LIMIT + 1


async def test_sparklines_of_many_issues_are_their_trends(
    reads: IssueReads, fresh_db_url: str
) -> None:
    await query(
        fresh_db_url,
        """INSERT INTO mendline.issue_counts (issue_id, minute, count) VALUES
               (2, date_trunc('minute', now()) - interval '7 hours', 4),
               (2, date_trunc('minute', now()) - interval '30 hours', 8)""",
    )
    for _ in range(3):  # again if an hour began in between
        lines = await reads.sparklines([1, 2, 5, 99])
        trends = {i: [n for _, n in await reads.trend(i)] for i in (1, 2, 5, 99)}
        if lines == trends:
            break
    assert lines == trends
    assert sum(lines[2]) == 5 and lines[99] == [0] * 24
    week = await reads.sparklines([2], hours=48)
    assert len(week[2]) == 48 and sum(week[2]) == 13
    assert await reads.sparklines([]) == {}


async def test_an_issue_s_deliveries_and_an_event_s_neighbours(
    reads: IssueReads, fresh_db_url: str
) -> None:
    await query(
        fresh_db_url,
        """INSERT INTO mendline.deliveries (receiver, route_key, issue_id, kind, severity,
               status, due_at, attempts, last_error)
           SELECT 'hook-' || n, 'r', 1, 'new_issue', 'error', 'failed', now(), n, 'timeout'
           FROM generate_series(1, 3) AS n""",
    )
    shown, total = await reads.deliveries(1, 2)
    assert total == 3
    assert [(d["receiver"], d["status"], d["attempts"]) for d in shown] == [
        ("hook-3", "failed", 3),
        ("hook-2", "failed", 2),
    ]
    assert shown[0]["last_error"] == "timeout" and shown[0]["reasons"] == []
    assert await reads.deliveries(2) == ([], 0)
    events = (await reads.events(1)).events  # newest first
    ids = [e["event_id"] for e in events]
    assert await reads.neighbours(events[0]) == (ids[1], None)
    assert await reads.neighbours(events[1]) == (ids[2], ids[0])
    assert await reads.neighbours(events[2]) == (None, ids[1])


async def test_the_text_index_is_made_wherever_pg_trgm_was_installed(empty_db_url: str) -> None:
    # A DBA put pg_trgm in public before mendline first migrated: 0025 uses that one.
    await query(empty_db_url, "CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public")
    await store_events(empty_db_url, [event(1, 5)])  # migrates
    schemas = await query(
        empty_db_url,
        """SELECT DISTINCT n.nspname FROM pg_index i
           JOIN pg_opclass o ON o.oid = ANY (i.indclass::oid[])
           JOIN pg_namespace n ON n.oid = o.opcnamespace
           WHERE i.indexrelid = 'mendline.issues_text_trgm'::regclass""",
    )
    assert [row["nspname"] for row in schemas] == ["public"]
    conn = await asyncpg.connect(empty_db_url)
    try:
        found = await IssueReads(conn).issues(IssueQuery(text="ISSUE 1"))
    finally:
        await conn.close()
    assert [row["id"] for row in found.issues] == [1]
