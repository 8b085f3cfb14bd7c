"""LISTEN/NOTIFY: how a worker hears at once that there is work, with polling as the fallback."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

__all__ = ["Listener"]

log = logging.getLogger("mendline")


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
