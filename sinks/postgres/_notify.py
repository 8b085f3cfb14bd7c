"""LISTEN/NOTIFY: how a worker hears at once that there is work, with polling as the fallback;
and the dashboard's feed of what changed (channel ``mendline_web``, ids only)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from mendline.analyzers.backoff import Backoff
from mendline.schemas.checks import CHECK_NAME
from mendline.sinks.postgres._errors import is_outage

__all__ = ["CHANGE_KINDS", "WEB_CHANNEL", "Change", "ChangeFeed", "Listener", "parse_change"]

log = logging.getLogger("mendline")

#: The channel the triggers of 0024_web_notify.sql tell what changed on, ids only.
WEB_CHANNEL = "mendline_web"
#: The kinds of rows a Change is about.
CHANGE_KINDS = frozenset({"issue", "finding", "fix", "delivery", "comment", "audit", "check"})
# The largest id a bigint holds.
_MAX_ID = 2**63 - 1


class Listener:
    """LISTENs on some channels and sets ``wake`` on each NOTIFY; ``keep()`` connects again
    after the database came back (polling covers the time without it)."""

    def __init__(self, url: str, channels: tuple[str, ...]) -> None:
        self.wake = asyncio.Event()
        self._url = url
        self._channels = channels
        self._conn: asyncpg.Connection | None = None

    async def keep(self) -> None:
        """Make sure a LISTEN connection is open; quietly do nothing while it cannot be."""
        if self._conn is not None and not self._conn.is_closed():
            return
        try:
            conn = await asyncpg.connect(self._url)
            for channel in self._channels:
                await conn.add_listener(channel, self._on_notify)
        except Exception as exc:
            log.debug("mendline: cannot LISTEN yet (%s); polling", exc)
            return
        self._conn = conn

    async def close(self) -> None:
        """Close the connection; idempotent."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None

    def _on_notify(self, *_: object) -> None:
        self.wake.set()


@dataclass(frozen=True)
class Change:
    """What one NOTIFY on ``mendline_web`` says changed: the kind of rows (one of
    CHANGE_KINDS), their keys (ids as text; a check's name) and the issues they belong to.
    None for either: more than the trigger lists, take it as "any"."""

    kind: str
    keys: tuple[str, ...] | None
    issues: tuple[int, ...] | None = ()


def parse_change(payload: str) -> Change | None:
    """The Change a payload of ``mendline_web`` tells (``{"t": kind, "ids": [...] or null,
    "issues": [...] or null}``); None for anything else (anyone who may connect may NOTIFY:
    what does not parse is dropped, and an id is a bigint, a check's name a check's name)."""
    try:
        body = json.loads(payload)
    except ValueError:
        return None
    kind = body.get("t") if isinstance(body, dict) else None
    if not isinstance(kind, str) or kind not in CHANGE_KINDS:
        return None
    keys: tuple[str, ...] | None
    if kind == "check":
        keys = _names(body.get("ids"))
    else:
        ids = _ids(body.get("ids"))
        keys = None if ids is None else tuple(str(i) for i in ids)
    if keys == ():
        return None  # no rows, or none that could be
    return Change(kind, keys, _ids(body.get("issues", [])))


def _ids(value: Any) -> tuple[int, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if type(v) is int and 0 < v <= _MAX_ID)


def _names(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str) and CHECK_NAME.fullmatch(v))


class ChangeFeed:
    """The dashboard's one LISTEN connection on ``mendline_web``, kept while ``run`` runs
    (until ``stop()``): each notification parsed and handed to ``on_change``, and
    ``on_listening()`` each time it listens (again): what was told while it did not is lost,
    so whoever reads the feed starts over from the rows. It connects again, with backoff,
    after an outage, and asks the server every ``ping`` seconds whether it is still there (a
    connection cut without a word is noticed too)."""

    #: The ``application_name`` of its connection (pg_stat_activity shows it).
    APPLICATION_NAME = "mendline web live"

    def __init__(
        self,
        url: str,
        on_change: Callable[[Change], object],
        on_listening: Callable[[], object],
        *,
        ping: float = 30.0,
    ) -> None:
        self._url = url
        self._on_change = on_change
        self._on_listening = on_listening
        self._ping = ping
        self._listening = False
        self._stopping = False
        # Set when the connection is lost or the feed is to stop: whatever waits wakes.
        self._wake = asyncio.Event()

    @property
    def listening(self) -> bool:
        """Whether its LISTEN connection is open now."""
        return self._listening

    @property
    def stopping(self) -> bool:
        """Whether ``stop()`` was called."""
        return self._stopping

    def stop(self) -> None:
        """Let ``run`` return: at once when it waits, after a connection attempt that is
        under way (at most its 10 s timeout: a connect cut short leaves asyncpg's futures
        unread)."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Listen until ``stop()``, connecting again after each outage."""
        backoff = Backoff(0.5, 30.0)
        while not self._stopping:
            try:
                await self._listen(backoff)
            except Exception as exc:
                if self.stopping:
                    return
                first = backoff.attempts == 0
                delay = backoff.next()
                if not first:
                    log.debug(
                        "mendline: live updates still paused (%s); again in %.1f s", exc, delay
                    )
                elif is_outage(exc):
                    log.warning(
                        "mendline: the dashboard's live updates paused: PostgreSQL unavailable"
                        " (%s); listening again when it is back",
                        exc,
                    )
                else:
                    log.exception(
                        "mendline: the dashboard's live updates failed; again in %.1f s", delay
                    )
                await self._sleep(delay)

    async def _sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or until the connection is lost or the feed stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _listen(self, backoff: Backoff) -> None:
        self._wake = asyncio.Event()
        conn = await asyncpg.connect(
            self._url, timeout=10, server_settings={"application_name": self.APPLICATION_NAME}
        )
        lost = False

        def on_lost(_conn: object) -> None:
            nonlocal lost
            lost = True
            self._wake.set()

        conn.add_termination_listener(on_lost)
        try:
            if self._stopping:
                return
            await conn.add_listener(WEB_CHANNEL, self._on_notify)
            self._listening = True
            if backoff.attempts:
                log.warning("mendline: the dashboard's live updates are back")
            backoff.reset()
            self._on_listening()
            while not (lost or self._stopping):
                await self._sleep(self._ping)
                if not (lost or self._stopping):
                    await conn.execute("SELECT 1", timeout=10)
            if lost:
                raise ConnectionError("the LISTEN connection was closed")
        finally:
            self._listening = False
            conn.terminate()

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        change = parse_change(str(payload))
        if change is None:
            log.debug(
                "mendline: a notification on %s that is no change: %.200r", WEB_CHANNEL, payload
            )
            return
        try:
            self._on_change(change)
        except Exception:  # one bad change must not stop the feed
            log.exception("mendline: a change of the dashboard could not be handled")
