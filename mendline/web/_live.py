"""Live updates: one LISTEN connection per web process (sinks.postgres.ChangeFeed), its
notifications fanned out to the pages as Server-Sent Events on ``GET /live``.

A change becomes events by topic (``issues``, ``issue-42``, ...; the data: the ids, or ``*``
for "anything"), each notification numbered in order. The hub keeps the last
``RING_SIZE`` of them for a client that reconnects with ``Last-Event-ID`` (or ``?last_id=``:
static/live.js asks so, also from when its page was rendered); an id it no longer holds, or one
of another process's start (ids are ``<epoch>-<n>``), gets one refresh of every topic instead.
A client's events wait merged by topic (its queue is bounded by its topics), sent at most every
``COALESCE`` seconds; a client whose socket takes no more is dropped, never waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass

from aiohttp import web

from mendline.schemas.checks import CHECK_NAME
from mendline.schemas.errors import AuthenticationFailed, UsageError
from mendline.sinks.postgres import Change, ChangeFeed
from mendline.web._context import DEPS, TEMPLATES, require

__all__ = [
    "COALESCE",
    "HEARTBEAT",
    "MAX_IDS",
    "MAX_STREAMS",
    "MAX_TOPICS",
    "RING_SIZE",
    "Hub",
    "live_hub",
    "parse_topics",
    "readiness",
    "routes",
    "setup",
    "topics_of",
]

log = logging.getLogger("mendline.web")

routes = web.RouteTableDef()

#: The notifications the hub keeps for clients that reconnect.
RING_SIZE = 1000
#: Seconds a client's events are gathered before they are sent (after the first).
COALESCE = 0.3
#: Seconds between comments that keep an idle stream (and the proxies on its way) open.
HEARTBEAT = 15.0
#: The most topics one stream subscribes to.
MAX_TOPICS = 20
#: The most ids an event lists; more are sent as ``*`` (anything).
MAX_IDS = 100
#: The most streams a web process serves at once.
MAX_STREAMS = 1000
#: Milliseconds the browser waits before it reconnects (the ``retry:`` field).
RETRY_MS = 2000
# Seconds a write may wait for the client to read before it is dropped.
_WRITE_TIMEOUT = 10.0

# Topics of every row of a kind, and the families with a topic per row ("issue" for
# issue-42); "*" in an event's topics: every topic.
_LISTS = ("issues", "findings", "fixes", "checks", "deliveries", "audit")
_TOPIC = re.compile(
    rf"(?:{'|'.join(_LISTS)})|(?:issue|fix)-[1-9][0-9]{{0,18}}|check-{CHECK_NAME.pattern}"
)
_EVERYTHING = "*"

# What a change of each kind tells: the list topic its ids go to, the family of the topic each
# of its keys has, and whether the topics of its issues hear of it.
_ROUTES: dict[str, tuple[str | None, str | None, bool]] = {
    "issue": ("issues", "issue", False),
    "finding": ("findings", None, True),
    "fix": ("fixes", "fix", True),
    "delivery": ("deliveries", None, True),
    "comment": (None, None, True),
    "audit": ("audit", None, False),
    "check": ("checks", "check", False),
}

#: Ids by topic: what one notification tells, or what waits for one client (None: anything).
Topics = dict[str, frozenset[str] | None]


def topics_of(change: Change) -> Topics:
    """The topics ``change`` concerns, each with the keys its event lists (None: more than
    were named). A family's topic for "many rows" is ``<family>-*`` (every topic of it)."""
    listed, family, by_issue = _ROUTES.get(change.kind, (None, None, False))
    topics: Topics = {}
    if listed is not None:
        topics[listed] = None if change.keys is None else frozenset(change.keys)
    if family is not None:
        _each(topics, family, change.keys)
    if by_issue:
        issues = None if change.issues is None else [str(i) for i in change.issues]
        _each(topics, "issue", issues)
    return topics


def _each(topics: Topics, family: str, keys: Iterable[str] | None) -> None:
    if keys is None:
        topics[f"{family}-*"] = None
        return
    for key in keys:
        topics[f"{family}-{key}"] = frozenset((key,))


def parse_topics(values: Iterable[str]) -> tuple[str, ...]:
    """The topics a stream asks for (``?topic=`` repeated), each known and at most
    MAX_TOPICS; UsageError (answered 400) for anything else."""
    topics = tuple(dict.fromkeys(values))
    if not topics:
        raise UsageError("name the topics to follow: /live?topic=issues&topic=issue-42")
    if len(topics) > MAX_TOPICS:
        raise UsageError(f"follow at most {MAX_TOPICS} topics on one stream")
    unknown = [t for t in topics if not _TOPIC.fullmatch(t)]
    if unknown:
        raise UsageError(
            f"no such topic: {unknown[0][:120]!r}",
            hint=f"topics are {', '.join(_LISTS)}, issue-<id>, fix-<id> and check-<name>",
        )
    return topics


def _ids_text(keys: Iterable[str] | None) -> str:
    if keys is None:
        return _EVERYTHING
    return ",".join(sorted(keys, key=lambda k: (len(k), k)))  # numbers in order


@dataclass(frozen=True)
class _Entry:
    """One notification, numbered: its topics."""

    n: int
    topics: Topics


class _Client:
    """One stream: its topics, and its events waiting, merged by topic."""

    def __init__(self, topics: tuple[str, ...]) -> None:
        self.topics = topics
        self.waiting: dict[str, set[str] | None] = {}
        self.wake = asyncio.Event()

    def receive(self, entry: _Entry) -> None:
        """Take what of ``entry`` this stream follows."""
        if _EVERYTHING in entry.topics:
            self.refresh()
            return
        for topic in self.topics:
            if topic in entry.topics:
                self._offer(topic, entry.topics[topic])
                continue
            family = topic.split("-", 1)[0]
            if topic != family and f"{family}-*" in entry.topics:
                self._offer(topic, None)

    def refresh(self) -> None:
        """Every topic, for anything (missed notifications)."""
        for topic in self.topics:
            self._offer(topic, None)

    def _offer(self, topic: str, keys: frozenset[str] | None) -> None:
        if topic in self.waiting:
            have = self.waiting[topic]
            if have is not None and keys is not None:
                have |= keys
                if len(have) > MAX_IDS:
                    self.waiting[topic] = None
            elif have is not None:
                self.waiting[topic] = None
        else:
            self.waiting[topic] = None if keys is None or len(keys) > MAX_IDS else set(keys)
        self.wake.set()

    def take(self) -> dict[str, set[str] | None]:
        """What waits, emptied."""
        waiting, self.waiting = self.waiting, {}
        self.wake.clear()
        return waiting


class Hub:
    """One web process's fan-out of changes to its streams (see the module)."""

    def __init__(self, epoch: str | None = None) -> None:
        #: This process start's part of every event id.
        self.epoch = epoch or secrets.token_hex(4)
        self.n = 0
        self.closing = asyncio.Event()
        self.feed: ChangeFeed | None = None
        self._ring: deque[_Entry] = deque(maxlen=RING_SIZE)
        self._clients: set[_Client] = set()
        self._by_topic: dict[str, set[_Client]] = defaultdict(set)
        self._by_family: dict[str, set[_Client]] = defaultdict(set)

    @property
    def last_id(self) -> str:
        """The id of the newest notification (``<epoch>-<n>``)."""
        return f"{self.epoch}-{self.n}"

    @property
    def streams(self) -> int:
        """The streams open now."""
        return len(self._clients)

    def waiting_for(self) -> str | None:
        """None while live updates reach the pages; else why not."""
        if self.feed is None:
            return "starting"
        return None if self.feed.listening else "waiting for PostgreSQL (live updates)"

    # -- what comes in ----------------------------------------------------------------------

    def change(self, change: Change) -> None:
        """Tell every stream that follows it of ``change``."""
        topics = topics_of(change)
        if topics:
            self.publish(topics)

    def refresh_all(self) -> None:
        """Tell every stream that anything may have changed (notifications were missed)."""
        self.publish({_EVERYTHING: None})

    def publish(self, topics: Mapping[str, frozenset[str] | None]) -> None:
        """Number ``topics`` as the next notification, keep it, and hand it to the streams
        that follow any of them."""
        self.n += 1
        entry = _Entry(self.n, dict(topics))
        self._ring.append(entry)
        if _EVERYTHING in entry.topics:
            clients: Iterable[_Client] = list(self._clients)
        else:
            found: set[_Client] = set()
            for topic in entry.topics:
                if topic.endswith("-*"):
                    found |= self._by_family.get(topic[:-2], set())
                else:
                    found |= self._by_topic.get(topic, set())
            clients = found
        for client in clients:
            client.receive(entry)

    # -- streams ----------------------------------------------------------------------------

    def subscribe(self, topics: tuple[str, ...], since: str | None) -> _Client:
        """A new stream of ``topics``; with ``since`` (a Last-Event-ID), what it missed after
        it is waiting already (or a refresh of every topic, when this hub cannot tell)."""
        if len(self._clients) >= MAX_STREAMS:
            raise web.HTTPServiceUnavailable(
                text="too many live streams; the page refreshes on reload\n",
                headers={"Retry-After": "30"},
            )
        client = _Client(topics)
        if since is not None:
            self._replay(client, since)
        self._clients.add(client)
        for topic in topics:
            self._by_topic[topic].add(client)
            family = topic.split("-", 1)[0]
            if family != topic:
                self._by_family[family].add(client)
        return client

    def unsubscribe(self, client: _Client) -> None:
        """The stream ended."""
        self._clients.discard(client)
        for topic in client.topics:
            for index, key in ((self._by_topic, topic), (self._by_family, topic.split("-", 1)[0])):
                followers = index.get(key)
                if followers is not None:
                    followers.discard(client)
                    if not followers:
                        del index[key]

    def _replay(self, client: _Client, since: str) -> None:
        epoch, _, number = since.partition("-")
        n = int(number) if number.isdigit() and len(number) <= 18 else -1
        oldest = self._ring[0].n if self._ring else self.n + 1
        if epoch != self.epoch or not oldest - 1 <= n <= self.n:
            client.refresh()  # another process's, forged, or older than what is kept
            return
        for entry in self._ring:
            if entry.n > n:
                client.receive(entry)

    def close(self) -> None:
        """End every stream now (the app stops)."""
        self.closing.set()


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
    app.middlewares.append(_page_since)
    app[TEMPLATES].globals["live_since"] = lambda: _PAGE_SINCE.get() or hub.last_id
    app.cleanup_ctx.append(_listening)
    app.on_shutdown.append(_closing)


async def _listening(app: web.Application) -> AsyncIterator[None]:
    hub = live_hub(app)
    url = app[DEPS].settings.database_url.get_secret_value()
    # Each time it listens (the first time too: a page rendered before missed nothing it
    # would not refresh anyway), every stream refreshes: notifications were lost meanwhile.
    hub.feed = ChangeFeed(url, hub.change, hub.refresh_all)
    task = asyncio.create_task(hub.feed.run(), name="mendline live feed")
    try:
        yield
    finally:
        hub.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


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
    try:
        require(request, "issue.read")
    except AuthenticationFailed:
        # A stream is no page to send to the login form: EventSource stops on a 401.
        raise web.HTTPUnauthorized(text="log in first\n") from None
    topics = parse_topics(request.query.getall("topic", []))
    hub = live_hub(request.app)
    since = request.headers.get("Last-Event-ID") or request.query.get("last_id")
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


async def _stream(
    request: web.Request, response: web.StreamResponse, client: _Client, hub: Hub
) -> None:
    """Send what waits, then whatever comes, each batch after the one before by at least
    COALESCE seconds, a comment when nothing came for HEARTBEAT; until the hub closes or the
    client is gone. Only a batch's last event carries an id (the hub's newest: the client has
    been told of everything up to it), so a batch cut short is sent again on reconnecting."""
    text = f"retry: {RETRY_MS}\n\n" + _events(client.take(), hub.last_id, hello=True)
    while await _send(request, response, text):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(hub.closing.wait(), COALESCE)
        if hub.closing.is_set():
            return
        woke = await _first(client.wake, hub.closing, HEARTBEAT)
        if hub.closing.is_set():
            return
        text = _events(client.take(), hub.last_id) if woke else ": ping\n\n"


def _events(waiting: dict[str, set[str] | None], last_id: str, *, hello: bool = False) -> str:
    """The SSE text of what waits; the last event with ``id: last_id``. ``hello`` ends the
    first batch of a stream with an event of that name, its data the id, so a client knows
    where it stands even when nothing was waiting."""
    events = [
        (topic, _ids_text(None if keys is None else frozenset(keys)))
        for topic, keys in waiting.items()
    ]
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


async def _first(event: asyncio.Event, other: asyncio.Event, timeout: float) -> bool:
    """Wait until ``event`` or ``other`` is set, or ``timeout`` passes; whether ``event``
    is set."""
    waits = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(other.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for each in waits:
            each.cancel()
    return event.is_set()
