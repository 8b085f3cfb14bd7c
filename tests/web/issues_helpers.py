"""Issues for the dashboard's issue tests, stored the consumer's way: events made with the
event factory, each issue its own call site, hostile text where a test asks for it; and what
the pages show of them, read back out of their HTML."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import asyncpg

from mendline.schemas.finding import Evidence
from mendline.schemas.fix import PolicyDecision
from mendline.schemas.people import SYSTEM_ACTOR
from mendline.sinks.postgres import FindingStore, FixStore, IssueActions, append_audit
from tests.db_helpers import RESPONDER, patch_finding, query, store_events
from tests.integration.event_factory import make_event

#: A message and a tag value that would run script if a page put them in unescaped.
HOSTILE_MESSAGE = "<script>alert(1)</script>"
HOSTILE_TAG = '"><img src=x onerror=alert(1)>'

NOW = datetime.now(UTC).replace(microsecond=0)


def event(issue: int, minutes_ago: float = 5, **fields: Any) -> dict[str, Any]:
    """An event of issue number ``issue`` (its own call site), ``minutes_ago`` by the app's
    clock, in production and release 1.0, with the fields given over it."""
    doc = make_event(issue)
    doc["timestamp"] = (NOW - timedelta(minutes=minutes_ago)).isoformat().replace("+00:00", "Z")
    doc["environment"] = "production"
    doc["release"] = "1.0"
    doc["tags"] = {"region": "eu"}
    doc["exceptions"][0]["value"] = f"bad quantity in order {issue}"
    doc.update(fields)
    return doc


def hostile_event(issue: int) -> dict[str, Any]:
    """An event whose message, exception value and a tag carry markup and script."""
    doc = event(issue, message=HOSTILE_MESSAGE, tags={"region": "eu", "evil": HOSTILE_TAG})
    doc["exceptions"][0]["value"] = HOSTILE_MESSAGE
    doc["context"] = {"note": HOSTILE_TAG, "password": "hunter2hunter2"}
    return doc


async def seed_issues(url: str, count: int, *, service: str = "api") -> list[int]:
    """``count`` issues of one event each (one batch each, so their ids are in order),
    the first seen longest ago; their ids."""
    batches = [[event(n, minutes_ago=count - n + 1, service=service)] for n in range(1, count + 1)]
    await store_events(url, *batches)
    return await issue_ids(url)


async def issue_ids(url: str) -> list[int]:
    """Every issue's id, in order."""
    conn = await asyncpg.connect(url)
    try:
        return [r["id"] for r in await conn.fetch("SELECT id FROM mendline.issues ORDER BY id")]
    finally:
        await conn.close()


async def execute(url: str, sql: str) -> None:
    """The statements ``sql`` on a connection of its own."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def audit_rows(url: str, action: str) -> list[asyncpg.Record]:
    """The audit rows of ``action``, oldest first."""
    return await query(
        url,
        "SELECT actor_name, actor_role, action, target, before::text, after::text, origin"
        " FROM mendline.audit_log WHERE action = $1 ORDER BY id",
        action,
    )


def random_event_id() -> str:
    return uuid.uuid4().hex


class _Rows(HTMLParser):
    """The issue rows of a list page (``data-testid="issue-row"``): their ids, and each
    one's sparkline values (its bars' titles)."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[int] = []
        self.sparks: dict[int, list[int]] = {}
        self._in_title = False
        self._current: int | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "tr" and found.get("data-testid") == "issue-row":
            self._current = int(found["data-issue-id"] or 0)
            self.ids.append(self._current)
            self.sparks[self._current] = []
        elif tag == "title" and self._current is not None:
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag == "tr":
            self._current = None

    def handle_data(self, data: str) -> None:
        if self._in_title and self._current is not None:
            self.sparks[self._current].append(int(data.replace(",", "")))


def rows_of(html: str) -> tuple[list[int], dict[int, list[int]]]:
    """The issue ids of a list page's rows, in order, and each one's sparkline values."""
    parser = _Rows()
    parser.feed(html)
    return parser.ids, parser.sparks


class _Element(HTMLParser):
    """The attributes of the first element with an ``id``."""

    def __init__(self, element_id: str) -> None:
        super().__init__()
        self.element_id = element_id
        self.found: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.found is None and dict(attrs).get("id") == self.element_id:
            self.found = dict(attrs) | {"tag": tag}


def element(html: str, element_id: str) -> dict[str, str | None] | None:
    """The attributes (and ``tag``) of the element with ``id`` in ``html``, unescaped;
    None when there is none."""
    parser = _Element(element_id)
    parser.feed(html)
    return parser.found


def link(html: str, element_id: str) -> str | None:
    """The ``href`` of the element with ``id``; None when there is none."""
    found = element(html, element_id)
    return None if found is None else found.get("href")


#: A patch with a hunk that removes a line reading like a file header, and markup in it.
PATCH = (
    "diff --git a/app/module9.py b/app/module9.py\n"
    "--- a/app/module9.py\n"
    "+++ b/app/module9.py\n"
    "@@ -1,3 +1,3 @@ def handler_1\n"
    " def handler_1(q):\n"
    "--- return int(q[1])  # <b>old</b>\n"
    "+    return int(q.get(1, 0))  # \u202e reversed\n"
    "     pass\n"
)


@dataclass
class IssuePageSeed:
    """What ``seed_issue_page`` stored: the issue, its events oldest first, its findings
    oldest first, its fix and its deliveries."""

    issue_id: int
    event_ids: list[str]
    finding_ids: list[int]
    fix_id: int
    delivery_ids: list[int]


async def seed_issue_page(url: str) -> IssuePageSeed:
    """Issue 1 with four events (one batch each, so received in order; the first with a
    library frame, a secret in its context and tags), two findings (the newest with
    evidence and ``PATCH``), a fix of the newest proposed, two alert deliveries (one failed
    three times) and a comment; issue 2 (another call site) with one event."""

    def with_library_frame(doc: dict[str, Any]) -> dict[str, Any]:
        frame = doc["exceptions"][0]["frames"][0]
        frame.update(in_app=False, filename="/usr/lib/python3.11/json/decoder.py")
        return doc

    first = with_library_frame(
        event(1, minutes_ago=30, tags={"region": "eu", "browser": "Firefox"})
    )
    first["context"] = {"order_id": 7, "password": "hunter2hunter2", "items": [1, 2]}
    later = [[with_library_frame(event(1, minutes_ago=m))] for m in (20, 10, 5)]
    await store_events(url, [first], *later)
    await store_events(url, [event(2, minutes_ago=5)])
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    try:
        findings = FindingStore(pool)
        older = await findings.save(
            patch_finding(None, category="unknown", confidence=0.4), issue_id=1, cache_key="a"
        )
        evidence = [
            Evidence(
                location="app.module9.handler_1 (module9.py:19)",
                line="int(q[1])",
                note="the quantity is not a number",
            )
        ]
        newest = await findings.save(
            patch_finding(PATCH, evidence=evidence), issue_id=1, cache_key="b"
        )
        fixes = FixStore(pool, append_audit, "test")
        decision = PolicyDecision(
            verdict="approval", reasons=["a person decides"], approvals_needed=1
        )
        fix = await fixes.propose(SYSTEM_ACTOR, newest, decision)
        deliveries = await pool.fetch(
            """INSERT INTO mendline.deliveries (receiver, route_key, issue_id, kind, severity,
                   status, due_at, attempts, last_error, delivered_at)
               VALUES ('slack-oncall', 'r', 1, 'new_issue', 'error', 'failed', now(), 3,
                       'http_error: 500 <b>down</b>', NULL),
                      ('email-team', 'r', 1, 'new_issue', 'error', 'delivered', now(), 1,
                       NULL, now())
               RETURNING id"""
        )
        await IssueActions(pool, append_audit, "test").comment(
            RESPONDER, 1, "looking <i>into</i> it"
        )
        events = await pool.fetch(
            "SELECT event_id FROM mendline.events WHERE issue_id = 1 ORDER BY received_at, event_id"
        )
    finally:
        await pool.close()
    return IssuePageSeed(
        issue_id=1,
        event_ids=[r["event_id"].hex for r in events],
        finding_ids=[older, newest],
        fix_id=fix.id,
        delivery_ids=[r["id"] for r in deliveries],
    )
