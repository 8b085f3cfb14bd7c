"""A live stream ends when the credentials it was opened with no longer hold: a logout, a
revoked token, a disabled user (asked again every HEARTBEAT, here made short)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from mendline.schemas.people import SYSTEM_ACTOR
from mendline.sinks.postgres import PeopleStore, append_audit
from mendline.web import _live
from tests.web.live_helpers import listen_pid
from tests.web.web_helpers import ServedWeb

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def short_heartbeat(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_live, "HEARTBEAT", 0.3)


async def ended(stream: httpx.Response) -> bool:
    """Whether the server ends ``stream`` (within 10 s: a few heartbeats)."""
    try:
        async with asyncio.timeout(10):
            async for _ in stream.aiter_lines():
                pass
    except TimeoutError:
        return False
    return True


async def test_a_stream_ends_when_its_session_is_logged_out(web: ServedWeb) -> None:
    await listen_pid(web.database_url)
    async with (
        web.logged_in("viewer") as (browser, csrf),
        browser.stream("GET", "/live", params={"topic": "issues"}, timeout=30) as stream,
    ):
        assert stream.status_code == 200
        assert (await browser.post("/logout", headers={"X-CSRF-Token": csrf})).status_code == 303
        assert await ended(stream)


async def test_a_stream_ends_when_its_user_is_disabled(web: ServedWeb) -> None:
    await listen_pid(web.database_url)
    async with (
        web.client("viewer") as client,
        client.stream("GET", "/live", params={"topic": "issues"}, timeout=30) as stream,
    ):
        assert stream.status_code == 200
        people = PeopleStore(web.pool, append_audit, origin="test")
        await people.disable_user(SYSTEM_ACTOR, "viewer")
        assert await ended(stream)


async def test_a_stream_of_a_user_still_allowed_goes_on(web: ServedWeb) -> None:
    await listen_pid(web.database_url)
    async with (
        web.client("viewer") as client,
        client.stream("GET", "/live", params={"topic": "issues"}, timeout=30) as stream,
    ):
        pings = 0
        async with asyncio.timeout(10):
            async for line in stream.aiter_lines():
                pings += line == ": ping"
                if pings == 3:  # three heartbeats, each after asking again
                    break
        assert pings == 3


async def test_one_user_holds_at_most_their_share_of_streams(
    web: ServedWeb, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_live, "STREAMS_PER_USER", 2)
    await listen_pid(web.database_url)
    async with (
        web.client("viewer") as client,
        web.client("responder") as other,
        client.stream("GET", "/live", params={"topic": "issues"}, timeout=30) as one,
        client.stream("GET", "/live", params={"topic": "issues"}, timeout=30) as two,
    ):
        assert (one.status_code, two.status_code) == (200, 200)
        third = await client.get("/live", params={"topic": "issues"})
        assert third.status_code == 429 and third.headers["Retry-After"] == "30"
        async with other.stream("GET", "/live", params={"topic": "issues"}) as theirs:
            assert theirs.status_code == 200  # another user's share is their own
