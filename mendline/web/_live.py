"""Live updates: ``GET /live``, the Server-Sent Events of the topics a page follows, from the
web process's hub (``_hub``), which its one LISTEN connection (sinks.postgres.ChangeFeed)
feeds; the hub started and stopped with the app.

A stream sends what waits for it (merged by topic) at most every COALESCE seconds, a comment
when nothing came for HEARTBEAT, and only a batch's last event carries an id. A client that
reconnects with ``Last-Event-ID`` (or ``?last_id=``: static/live.js asks so, also from when its
page was rendered) gets what it missed, or a refresh of every topic when the hub cannot tell;
a client whose socket takes no more is dropped, never waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextvars import ContextVar

from aiohttp import web

from mendline.sinks.postgres import ChangeFeed
from mendline.web._auth import still_allowed
from mendline.web._context import DEPS, TEMPLATES, actor_of, require
from mendline.web._hub import EVERYTHING, Hub, Subscription, parse_topics

__all__ = [
    "COALESCE",
    "HEARTBEAT",
    "RETRY_MS",
    "STREAMS_PER_USER",
    "live_hub",
    "readiness",
    "routes",
    "setup",
]

log = logging.getLogger("mendline.web")

routes = web.RouteTableDef()

#: Seconds a stream's events are gathered before they are sent (after its first batch).
COALESCE = 0.3
#: Seconds between comments that keep an idle stream (and the proxies on its way) open.
HEARTBEAT = 15.0
#: Milliseconds the browser waits before it reconnects (the ``retry:`` field).
RETRY_MS = 2000
# Seconds a write may wait for the client to read before it is dropped.
_WRITE_TIMEOUT = 10.0
#: Streams one user may hold open in one process (a page each): beyond it, 429, so that one
#: user cannot take every stream the process serves.
STREAMS_PER_USER = 20
_STREAMS = "live_streams_per_user"


_HUB = "live"
# The hub's newest id when the request being handled came in: a page rendered from rows read
# after it asks for what came after it, so that nothing between its queries and its stream
# opening is missed.
_PAGE_SINCE: ContextVar[str | None] = ContextVar("live_page_since", default=None)


def live_hub(app: web.Application) -> Hub:
    """The app's hub."""
    hub: Hub = app[DEPS].extras[_HUB]
    return hub


def readiness(app: web.Application) -> str | None:
    """None while the dashboard's live updates reach its pages; else why not."""
    return live_hub(app).waiting_for()


def setup(app: web.Application) -> None:
    """Give the app its hub: listening from startup, every stream ended as it shuts down
    (before the server waits for its handlers), the listening stopped at cleanup; and the
    ``live_since()`` of the page templates."""
    hub = Hub()
    app[DEPS].extras[_HUB] = hub
    app[DEPS].extras[_STREAMS] = Counter()
    app.middlewares.append(_page_since)
    app[TEMPLATES].globals["live_since"] = lambda: _PAGE_SINCE.get() or hub.last_id
    app.cleanup_ctx.append(_listening)
    app.on_shutdown.append(_closing)


async def _listening(app: web.Application) -> AsyncIterator[None]:
    hub = live_hub(app)
    url = app[DEPS].settings.database_url.get_secret_value()
    # Each time it listens (the first time too: a page rendered before missed nothing it
    # would not refresh anyway), every stream refreshes: notifications were lost meanwhile.
    feed = hub.feed = ChangeFeed(url, hub.change, hub.refresh_all)
    task = asyncio.create_task(feed.run(), name="mendline live feed")
    try:
        yield
    finally:
        hub.close()
        feed.stop()
        try:
            await asyncio.wait_for(task, 15)  # a connection attempt under way ends first
        except TimeoutError:
            log.warning("mendline: the dashboard's LISTEN connection did not close in time")


async def _closing(app: web.Application) -> None:
    live_hub(app).close()


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _page_since(request: web.Request, handler: _Handler) -> web.StreamResponse:
    token = _PAGE_SINCE.set(live_hub(request.app).last_id)
    try:
        return await handler(request)
    finally:
        _PAGE_SINCE.reset(token)


@routes.get("/live")
async def live(request: web.Request) -> web.StreamResponse:
    """The Server-Sent Events of the ``?topic=`` given (see the module)."""
    require(request, "issue.read")  # nobody: 401, not the login form (an event stream)
    topics = parse_topics(request.query.getall("topic", []))
    hub = live_hub(request.app)
    since = request.headers.get("Last-Event-ID") or request.query.get("last_id")
    if hub.full:
        raise web.HTTPServiceUnavailable(
            text="too many live streams; a reload shows what changed\n",
            headers={"Retry-After": "30"},
        )
    streams: Counter[str] = request.app[DEPS].extras[_STREAMS]
    user = actor_of(request).name
    if streams[user] >= STREAMS_PER_USER:
        raise web.HTTPTooManyRequests(
            text=f"{user} has {streams[user]} live streams open here; close some pages\n",
            headers={"Retry-After": "30"},
        )
    streams[user] += 1
    client = hub.subscribe(topics, since)
    try:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        await _stream(request, response, client, hub)
        return response
    finally:
        hub.unsubscribe(client)
        streams[user] -= 1
        if streams[user] <= 0:
            del streams[user]


async def _stream(
    request: web.Request, response: web.StreamResponse, client: Subscription, hub: Hub
) -> None:
    """Send what waits, then whatever comes, each batch after the one before by at least
    COALESCE seconds, a comment when nothing came for HEARTBEAT; until the hub closes, the
    client is gone, or its credentials no longer hold (asked again every HEARTBEAT: a logout,
    a session's end, a revoked token, a disabled user). Only a batch's last event carries an
    id (the hub's newest: the client has been told of everything up to it), so a batch cut
    short is sent again on reconnecting."""
    text = f"retry: {RETRY_MS}\n\n" + _events(client.take(), hub.last_id, hello=True)
    loop = asyncio.get_running_loop()
    checked = loop.time()
    while await _send(request, response, text):
        if loop.time() - checked >= HEARTBEAT:  # still logged in, still enabled?
            try:
                allowed = await still_allowed(request)
            except Exception as exc:  # the database: end the stream; the page reconnects
                log.info("mendline: a live stream ended: its login could not be checked (%s)", exc)
                return
            if not allowed:
                return
            checked = loop.time()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(hub.closing.wait(), COALESCE)
        if hub.closing.is_set():
            return
        try:
            await asyncio.wait_for(client.wake.wait(), HEARTBEAT)  # close() wakes it too
        except TimeoutError:
            text = ": ping\n\n"
        else:
            text = _events(client.take(), hub.last_id)
        if hub.closing.is_set():
            return


def _events(waiting: dict[str, set[str] | None], last_id: str, *, hello: bool = False) -> str:
    """The SSE text of what waits; the last event with ``id: last_id``. ``hello`` ends the
    first batch of a stream with an event of that name, its data the id, so a client knows
    where it stands even when nothing was waiting."""
    events = [(topic, _ids_text(keys)) for topic, keys in waiting.items()]
    if hello:
        events.append(("hello", last_id))
    parts = [f"event: {topic}\ndata: {data}\n" for topic, data in events]
    if parts:
        parts[-1] += f"id: {last_id}\n"
    return "".join(part + "\n" for part in parts)


async def _send(request: web.Request, response: web.StreamResponse, text: str) -> bool:
    """Write ``text``; False when the client is gone or reads too slowly (dropped)."""
    if not text:
        return True
    try:
        await asyncio.wait_for(response.write(text.encode()), _WRITE_TIMEOUT)
    except TimeoutError:
        log.info("mendline: a live stream that read too slowly was dropped (%s)", request.remote)
        if request.transport is not None:
            request.transport.abort()
        return False
    except (ConnectionError, RuntimeError):  # gone (aiohttp says so either way)
        return False
    return True


def _ids_text(keys: Iterable[str] | None) -> str:
    if keys is None:
        return EVERYTHING
    return ",".join(sorted(keys, key=lambda k: (len(k), k)))  # numbers in order
