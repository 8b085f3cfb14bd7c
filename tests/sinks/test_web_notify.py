"""What the dashboard hears on mendline_web (0024's triggers): one notification a statement,
ids only, capped; a check's state changes told, its steady results not; and what a payload
may be parsed into."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from mendline.sinks.postgres import WEB_CHANNEL, Change, migrated_pool, parse_change
from tests.db_helpers import RESPONDER, finding_of_new_issue, issue_actions, store_events
from tests.integration.event_factory import make_event

pytestmark = pytest.mark.integration

_MARK = "mark"


class Heard:
    """The payloads told on mendline_web, read up to a marker this test sends itself: a
    listener gets notifications in the order their transactions committed, so once the
    marker is there, everything committed before it is too."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._payloads: asyncio.Queue[str] = asyncio.Queue()

    def on_notify(self, *args: Any) -> None:
        self._payloads.put_nowait(args[3])

    async def since_last(self) -> list[dict[str, Any]]:
        """What was told since the last call (as JSON objects)."""
        await self._conn.execute("SELECT pg_notify($1, $2)", WEB_CHANNEL, _MARK)
        told = []
        async with asyncio.timeout(10):
            while (payload := await self._payloads.get()) != _MARK:
                told.append(json.loads(payload))
        return told


@asynccontextmanager
async def heard(url: str) -> AsyncIterator[Heard]:
    pool = await migrated_pool(url, 1)
    await pool.close()
    conn = await asyncpg.connect(url)
    listening = Heard(conn)
    await conn.add_listener(WEB_CHANNEL, listening.on_notify)
    try:
        yield listening
    finally:
        await conn.close()


async def test_a_batch_tells_its_issues_once(fresh_db_url: str) -> None:
    async with heard(fresh_db_url) as told:
        # three new issues: inserted whole (never updated in the batch that makes them)
        await store_events(fresh_db_url, [make_event(i, n) for i in range(3) for n in range(4)])
        (new,) = await told.since_last()
        assert new["t"] == "issue" and new["ids"] == [1, 2, 3]
        # ten events of two of them: one UPDATE, one notification
        await store_events(fresh_db_url, [make_event(i, n) for i in (0, 2) for n in range(5)])
        (seen,) = await told.since_last()
        assert seen["t"] == "issue" and len(seen["ids"]) == 2
        # a new issue and an old one: the INSERT tells the new one, the UPDATE the old one
        await store_events(fresh_db_url, [make_event(0, 9), make_event(7)])
        inserted, updated = sorted(n["ids"] for n in await told.since_last())[::-1]
        assert inserted == [4] and len(updated) == 1 and updated[0] in new["ids"]


async def test_more_than_a_hundred_issues_are_told_as_many(fresh_db_url: str) -> None:
    async with heard(fresh_db_url) as told:
        await store_events(fresh_db_url, [make_event(i) for i in range(101)])
        (many,) = await told.since_last()
    assert many == {"t": "issue", "ids": None}


async def test_findings_and_comments_tell_their_issues(fresh_db_url: str) -> None:
    async with heard(fresh_db_url) as told:
        finding = await finding_of_new_issue(fresh_db_url, 1, None)
        found = [n for n in await told.since_last() if n["t"] == "finding"]
        assert found == [{"t": "finding", "ids": [finding], "issues": [1]}]
        async with issue_actions(fresh_db_url) as actions:
            comment = await actions.comment(RESPONDER, 1, "seen it")
        kinds = {n["t"]: n for n in await told.since_last()}
    assert kinds["comment"] == {"t": "comment", "ids": [comment], "issues": [1]}
    assert kinds["audit"]["ids"] and "issue" not in kinds  # a comment changes no issue row


async def test_a_check_is_told_when_its_state_changes_not_at_every_result(
    fresh_db_url: str,
) -> None:
    async with heard(fresh_db_url) as told:
        conn = await asyncpg.connect(fresh_db_url)
        try:
            await conn.execute(
                """INSERT INTO mendline.checks (name, kind, definition, definition_hash,
                       environment, service, severity, interval_seconds)
                   VALUES ('api', 'http', '{}', '', 'production', 'api', 'high', 60);
                   INSERT INTO mendline.check_state (check_name) VALUES ('api')"""
            )
            assert await told.since_last() == [{"t": "check", "ids": ["api"]}]
            state = "UPDATE mendline.check_state SET {} WHERE check_name = 'api'"
            told_of = {
                "status = 'up', since = now(), last_success = true": True,
                "last_result_at = now(), successes = successes + 1": False,  # a result
                "failures = 1, last_success = false, last_error = 'no answer'": True,
                "failures = 2, last_result_at = now(), last_error = 'timed out'": False,
                "status = 'down', since = now()": True,
                "flapping = true": True,
            }
            for change, expected in told_of.items():
                await conn.execute(state.format(change))
                heard_now = await told.since_last()
                assert heard_now == ([{"t": "check", "ids": ["api"]}] if expected else []), change
        finally:
            await conn.close()


async def test_many_long_check_names_still_fit_a_notification(fresh_db_url: str) -> None:
    """NOTIFY refuses a payload of 8000 bytes or more, and the statement with it: 80 checks
    of the longest names, synced at once, are told as many."""
    async with heard(fresh_db_url) as told:
        conn = await asyncpg.connect(fresh_db_url)
        try:
            await conn.execute(
                """INSERT INTO mendline.checks (name, kind, definition, definition_hash,
                       environment, service, severity, interval_seconds)
                   SELECT repeat('c', 96) || lpad(i::text, 4, '0'), 'http', '{}', '',
                          'production', 'api', 'high', 60
                   FROM generate_series(1, 80) AS i"""
            )
            assert await conn.fetchval("SELECT count(*) FROM mendline.checks") == 80
        finally:
            await conn.close()
        assert await told.since_last() == [{"t": "check", "ids": None}]


@pytest.mark.parametrize(
    ("payload", "change"),
    [
        ('{"t": "issue", "ids": [1, 2]}', Change("issue", ("1", "2"), ())),
        ('{"t": "issue", "ids": null}', Change("issue", None, ())),
        ('{"t": "fix", "ids": [5], "issues": [3]}', Change("fix", ("5",), (3,))),
        ('{"t": "fix", "ids": [5], "issues": null}', Change("fix", ("5",), None)),
        ('{"t": "check", "ids": ["api.up", "a\\nevent: x"]}', Change("check", ("api.up",), ())),
        (
            '{"t": "issue", "ids": [1, "2", true, 0, 9223372036854775808]}',
            Change("issue", ("1",), ()),
        ),
        ('{"t": "issue", "ids": []}', None),
        ('{"t": "issue", "ids": ["x"]}', None),
        ('{"t": "issue", "ids": "1"}', None),
        ('{"t": "nothing", "ids": [1]}', None),
        ('{"t": ["issue"], "ids": [1]}', None),
        ("[1, 2]", None),
        ("not json", None),
        ("", None),
    ],
)
def test_a_payload_is_parsed_or_dropped(payload: str, change: Change | None) -> None:
    assert parse_change(payload) == change
