"""The live updates' hub: what a change of the database concerns, by topic (``issues``,
``issue-42``, ...), handed to the streams that follow those topics, each notification numbered
(``<epoch>-<n>``, the epoch new with each process start) and the last RING_SIZE of them kept
for a stream that reconnects after one of them; an id it cannot place gets a refresh of every
topic. No I/O: ``_live`` serves the streams."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mendline.schemas.checks import CHECK_NAME
from mendline.schemas.errors import UsageError
from mendline.sinks.postgres import Change, ChangeFeed
from mendline.web._context import is_whole

__all__ = [
    "EVERYTHING",
    "MAX_IDS",
    "MAX_STREAMS",
    "MAX_TOPICS",
    "RING_SIZE",
    "Hub",
    "Subscription",
    "Topics",
    "parse_topics",
    "topics_of",
]

#: The notifications the hub keeps for streams that reconnect.
RING_SIZE = 1000
#: The most topics one stream follows.
MAX_TOPICS = 20
#: The most ids an event lists; more are sent as EVERYTHING.
MAX_IDS = 100
#: The most streams a web process serves at once.
MAX_STREAMS = 1000
#: The data of an event about rows too many to name (and the topic of a refresh of all).
EVERYTHING = "*"

# The topics of every row of a kind; and the families of a topic per row (issue-42, fix-7,
# check-<name>).
_LISTS = ("issues", "findings", "fixes", "checks", "deliveries", "audit")
_TOPIC = re.compile(
    rf"(?:{'|'.join(_LISTS)})|(?:issue|fix)-[1-9][0-9]{{0,18}}|check-{CHECK_NAME.pattern}"
)

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


@dataclass(frozen=True)
class _Entry:
    """One notification, numbered: its topics."""

    n: int
    topics: Topics


class Subscription:
    """One stream's part of the hub: its topics, and what waits for it, merged by topic
    (bounded by its topics: at most MAX_IDS ids each)."""

    def __init__(self, topics: tuple[str, ...]) -> None:
        self.topics = topics
        self.waiting: dict[str, set[str] | None] = {}
        self.wake = asyncio.Event()

    def receive(self, entry: _Entry) -> None:
        """Take what of ``entry`` this stream follows."""
        if EVERYTHING in entry.topics:
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
        self._clients: set[Subscription] = set()
        self._by_topic: dict[str, set[Subscription]] = defaultdict(set)
        self._by_family: dict[str, set[Subscription]] = defaultdict(set)

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
        self.publish({EVERYTHING: None})

    def publish(self, topics: Mapping[str, frozenset[str] | None]) -> None:
        """Number ``topics`` as the next notification, keep it, and hand it to the streams
        that follow any of them."""
        self.n += 1
        entry = _Entry(self.n, dict(topics))
        self._ring.append(entry)
        if EVERYTHING in entry.topics:
            clients: Iterable[Subscription] = list(self._clients)
        else:
            found: set[Subscription] = set()
            for topic in entry.topics:
                if topic.endswith("-*"):
                    found |= self._by_family.get(topic[:-2], set())
                else:
                    found |= self._by_topic.get(topic, set())
            clients = found
        for client in clients:
            client.receive(entry)

    # -- streams ----------------------------------------------------------------------------

    @property
    def full(self) -> bool:
        """Whether it serves MAX_STREAMS streams already."""
        return len(self._clients) >= MAX_STREAMS

    def subscribe(self, topics: tuple[str, ...], since: str | None) -> Subscription:
        """A new stream of ``topics``; with ``since`` (a Last-Event-ID), what it missed after
        it is waiting already (or a refresh of every topic, when this hub cannot tell)."""
        client = Subscription(topics)
        if since is not None:
            self._replay(client, since)
        self._clients.add(client)
        for topic in topics:
            self._by_topic[topic].add(client)
            family = topic.split("-", 1)[0]
            if family != topic:
                self._by_family[family].add(client)
        return client

    def unsubscribe(self, client: Subscription) -> None:
        """The stream ended."""
        self._clients.discard(client)
        for topic in client.topics:
            for index, key in ((self._by_topic, topic), (self._by_family, topic.split("-", 1)[0])):
                followers = index.get(key)
                if followers is not None:
                    followers.discard(client)
                    if not followers:
                        del index[key]

    def _replay(self, client: Subscription, since: str) -> None:
        epoch, _, number = since.partition("-")
        n = int(number) if is_whole(number) else -1
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
        for client in self._clients:
            client.wake.set()
