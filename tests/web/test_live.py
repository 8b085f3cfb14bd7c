"""Live updates: what is stored reaches the streams that follow it, by topic; a reconnect gets
what it missed, or a refresh when that cannot be told; the stream survives a lost LISTEN
connection and ends when the dashboard stops."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import pytest

from mendline.schemas.errors import UsageError
from mendline.schemas.settings import load_settings
from mendline.sinks.postgres import Change
from mendline.web import WebDeps, build_app
from mendline.web._context import TEMPLATES
from mendline.web._hub import MAX_IDS, MAX_TOPICS, RING_SIZE, Hub, parse_topics, topics_of
from mendline.web._live import live_hub
from tests.db_helpers import query, store_events
from tests.integration.event_factory import make_event
from tests.web.live_helpers import listen_pid, live_stream
from tests.web.web_helpers import ServedWeb, served_web

pytestmark = pytest.mark.integration


async def issue_ids(url: str) -> list[int]:
    return [r["id"] for r in await query(url, "SELECT id FROM mendline.issues ORDER BY id")]


async def test_a_new_issue_reaches_a_stream_of_issues_pushed_at_once(web: ServedWeb) -> None:
    await listen_pid(web.database_url)
    async with live_stream(web, ["issues"]) as stream:
        hello = await stream.until("hello")
        assert hello.id is not None and hello.data == hello.id
        assert stream.retry is not None  # the browser's reconnect delay is set
        await store_events(web.database_url, [make_event(1, 0), make_event(1, 1)])
        # Pushed (no poll of ours in between); the wait is generous for a loaded machine:
        # bench figures, not tests, say how fast.
        event = await stream.next(timeout=10.0)
    (new,) = await issue_ids(web.database_url)
    assert (event.name, event.data) == ("issues", str(new))
    assert event.id is not None and event.id != hello.id


async def test_a_stream_of_one_issue_hears_of_that_issue_only(web: ServedWeb) -> None:
    await listen_pid(web.database_url)
    await store_events(web.database_url, [make_event(1)])
    (first,) = await issue_ids(web.database_url)
    async with live_stream(web, [f"issue-{first}"]) as stream:
        await stream.until("hello")
        await store_events(web.database_url, [make_event(2)])  # another issue: not told
        await store_events(web.database_url, [make_event(1, 5)])
        event = await stream.next()
    assert (event.name, event.data) == (f"issue-{first}", str(first))


async def test_a_reconnect_with_last_event_id_gets_only_what_it_missed(web: ServedWeb) -> None:
    await listen_pid(web.database_url)
    async with live_stream(web, ["issues", "audit"]) as stream:
        await stream.until("hello")
        await store_events(web.database_url, [make_event(1)])
        seen = (await stream.until("issues")).id
    await store_events(web.database_url, [make_event(2)])  # while it was away
    new = max(await issue_ids(web.database_url))
    async with live_stream(web, ["issues", "audit"], last_event_id=seen) as stream:
        batch = await stream.batch()
    assert [(e.name, e.data) for e in batch] == [("issues", str(new)), ("hello", batch[-1].id)]
    # the same with ?last_id= (how static/live.js asks, where no header can be set)
    async with live_stream(web, ["issues"], last_id=seen) as stream:
        assert [e.name for e in await stream.batch()] == ["issues", "hello"]


async def test_an_id_the_hub_cannot_place_gets_a_refresh_of_every_topic(web: ServedWeb) -> None:
    await listen_pid(web.database_url)
    for last in ("0badcafe-3", "garbage", "x-99999999999999999999"):
        async with live_stream(web, ["issues", "fix-7"], last_event_id=last) as stream:
            batch = await stream.batch()
        assert [(e.name, e.data) for e in batch[:2]] == [("issues", "*"), ("fix-7", "*")], last
        assert batch[-1].name == "hello"


async def test_an_unknown_topic_or_too_many_is_refused(web: ServedWeb) -> None:
    refused = [
        [("topic", "everything")],
        [("topic", "issue-0")],
        [("topic", "issue-x")],
        [("topic", "check-<script>")],
        [],
        [("topic", f"issue-{n}") for n in range(1, MAX_TOPICS + 2)],
    ]
    async with web.client("viewer") as client:
        for params in refused:
            response = await client.get("/live", params=params)
            assert response.status_code == 400, params
            assert "<script>" not in response.text


async def test_nobody_gets_401_not_a_login_page(web: ServedWeb) -> None:
    async with web.client() as client:
        response = await client.get(
            "/live", params={"topic": "issues"}, headers={"Accept": "text/event-stream"}
        )
    assert response.status_code == 401


async def test_a_lost_listen_connection_comes_back_and_every_stream_refreshes(
    web: ServedWeb,
) -> None:
    pid = await listen_pid(web.database_url)
    async with live_stream(web, ["issues", "audit"]) as stream:
        await stream.until("hello")
        conn = await asyncpg.connect(web.database_url)
        try:
            assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await conn.close()
        batch = await stream.batch(timeout=10)  # it listens again after half a second
        assert [(e.name, e.data) for e in batch] == [("issues", "*"), ("audit", "*")]
        assert await listen_pid(web.database_url) != pid
        await store_events(web.database_url, [make_event(1)])  # heard on the new connection
        assert (await stream.until("issues")).data == str(*await issue_ids(web.database_url))


async def test_stopping_the_dashboard_ends_its_open_streams(fresh_db_url: str) -> None:
    async with contextlib.AsyncExitStack() as serving:
        web = await serving.enter_async_context(served_web(fresh_db_url))
        await listen_pid(fresh_db_url)
        async with (
            live_stream(web, ["issues"]) as stream,
            live_stream(web, ["audit"], role="admin") as other,
        ):
            await stream.until("hello")
            await other.until("hello")
            # The app stops (its runner cleaned up) with both streams open: it does not wait
            # for them (without ending them, it would until their next heartbeat), it ends them.
            await asyncio.wait_for(serving.aclose(), 10)
            assert await stream.ended() and await other.ended()


def test_the_layout_names_the_stream_of_a_page_with_live_topics() -> None:
    app = build_app(WebDeps(settings=load_settings(), pool=None))  # type: ignore[arg-type]
    page = (
        app[TEMPLATES]
        .get_template("base.html")
        .render(
            csrf_token="",
            actor=None,
            path="/issues",
            read_only=False,
            may=lambda action: False,
            live_topics=["issues", "issue-3"],
        )
    )
    hub = live_hub(app)
    assert 'data-live="/live?topic=issues&amp;topic=issue-3"' in page
    assert f'data-live-since="{hub.last_id}"' in page
    assert "live.js" in page
    quiet = (
        app[TEMPLATES]
        .get_template("base.html")
        .render(csrf_token="", actor=None, path="/", read_only=False, may=lambda action: False)
    )
    assert "data-live" not in quiet


# -- the hub on its own: no database --------------------------------------------------------


def test_each_kind_of_change_tells_its_topics() -> None:
    cases = [
        (Change("issue", ("3", "4")), {"issues": {"3", "4"}, "issue-3": {"3"}, "issue-4": {"4"}}),
        (Change("issue", None), {"issues": None, "issue-*": None}),
        (Change("finding", ("9",), (3,)), {"findings": {"9"}, "issue-3": {"3"}}),
        (Change("fix", ("5",), (3,)), {"fixes": {"5"}, "fix-5": {"5"}, "issue-3": {"3"}}),
        (Change("fix", ("5",), None), {"fixes": {"5"}, "fix-5": {"5"}, "issue-*": None}),
        (Change("delivery", ("8",), (3,)), {"deliveries": {"8"}, "issue-3": {"3"}}),
        (Change("comment", ("1",), (3,)), {"issue-3": {"3"}}),
        (Change("audit", ("77",)), {"audit": {"77"}}),
        (Change("check", ("api.up",)), {"checks": {"api.up"}, "check-api.up": {"api.up"}}),
    ]
    for change, expected in cases:
        assert topics_of(change) == expected, change


def test_topics_are_known_names_only() -> None:
    assert parse_topics(["issues", "issue-42", "fix-1", "check-api.up", "issues"]) == (
        "issues",
        "issue-42",
        "fix-1",
        "check-api.up",
    )
    for bad in (["issue-"], ["issue-01"], ["check-.x"], ["audit\nevent: x"], ["*"], ["issue-*"]):
        with pytest.raises(UsageError):
            parse_topics(bad)


def _waiting(hub: Hub, topics: tuple[str, ...], since: str | None) -> dict[str, object]:
    client = hub.subscribe(topics, since)
    try:
        return {t: None if k is None else sorted(k) for t, k in client.take().items()}
    finally:
        hub.unsubscribe(client)


def test_a_hub_replays_what_it_keeps_and_refreshes_what_it_lost() -> None:
    hub = Hub("e")
    hub.publish({"issues": frozenset({"1"})})
    hub.publish({"audit": frozenset({"5"})})
    hub.publish({"issues": frozenset({"2"}), "issue-2": frozenset({"2"})})
    assert _waiting(hub, ("issues",), "e-1") == {"issues": ["2"]}
    assert _waiting(hub, ("issues", "issue-2"), "e-0") == {"issues": ["1", "2"], "issue-2": ["2"]}
    assert _waiting(hub, ("issues",), "e-3") == {}
    assert _waiting(hub, ("issues",), None) == {}
    assert _waiting(hub, ("issues",), "e-4") == {"issues": None}  # from the future
    assert _waiting(hub, ("issues",), "f-3") == {"issues": None}  # another process's
    for _ in range(RING_SIZE):
        hub.publish({"audit": frozenset({"6"})})
    assert _waiting(hub, ("issues",), "e-3") == {}  # everything after it is kept
    assert _waiting(hub, ("issues",), "e-2") == {"issues": None}  # 3 is no longer
    assert _waiting(hub, ("issues",), hub.last_id) == {}


def test_a_stream_merges_what_waits_and_many_ids_become_anything() -> None:
    hub = Hub("e")
    client = hub.subscribe(("issues", "issue-1", "issue-2", "checks"), None)
    hub.publish(topics_of(Change("issue", ("1",))))
    hub.publish(topics_of(Change("issue", ("3",))))
    assert client.take() == {"issues": {"1", "3"}, "issue-1": {"1"}}
    hub.publish(topics_of(Change("issue", None)))  # more than a trigger lists
    assert client.take() == {"issues": None, "issue-1": None, "issue-2": None}
    for n in range(MAX_IDS + 1):
        hub.publish({"checks": frozenset({f"c{n}"})})
    assert client.take() == {"checks": None}
    hub.refresh_all()
    assert set(client.take()) == {"issues", "issue-1", "issue-2", "checks"}
    hub.unsubscribe(client)
    hub.publish(topics_of(Change("issue", ("1",))))
    assert client.take() == {} and hub.streams == 0
