"""The keys the relay takes events with, read again every ``refresh`` seconds. While the
database is out the keys last read stay in force (a revocation then waits for it); before any
were read, every request is answered 503 (the SDK may send it again)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from mendline.analyzers.backoff import Backoff
from mendline.schemas.errors import DatabaseError
from mendline.schemas.relay import RelayKey

__all__ = ["KeyRing"]

log = logging.getLogger("mendline.relay")


class KeyRing:
    """The relay's keys by public key, kept fresh by :meth:`run`."""

    def __init__(self, load: Callable[[], Awaitable[list[RelayKey]]], refresh: float) -> None:
        self._load = load
        self._refresh = refresh
        self._keys: dict[str, RelayKey] | None = None
        #: Why the keys could not be read the last time, while that lasts.
        self.failing: str | None = None

    @property
    def loaded(self) -> bool:
        """Whether keys were read at least once."""
        return self._keys is not None

    def find(self, public_key: str, now: datetime | None = None) -> RelayKey | None:
        """The key in force with that public key, else None (unknown, or revoked)."""
        key = (self._keys or {}).get(public_key)
        if key is None or not key.in_force(now or datetime.now(UTC)):
            return None
        return key

    def knows(self, public_key: str) -> bool:
        """Whether the public key was ever a key (then a refusal says "revoked")."""
        return public_key in (self._keys or {})

    async def load(self) -> None:
        """Read the keys now; DatabaseError (kept as ``failing``) when that fails."""
        try:
            keys = await self._load()
        except DatabaseError as exc:
            self.failing = str(exc)
            raise
        self._keys = {key.public_key: key for key in keys}
        self.failing = None

    async def run(self, stop: asyncio.Event) -> None:
        """Read the keys every ``refresh`` seconds until ``stop``; an outage is waited out
        (with backoff, said once), the keys last read still used."""
        backoff = Backoff(0.5, max(self._refresh, 5.0))
        while not stop.is_set():
            try:
                await self.load()
            except DatabaseError as exc:
                if backoff.attempts == 0:
                    log.warning("mendline: relay cannot read its keys (%s); retrying", exc)
                delay = backoff.next()
            else:
                if backoff.attempts:
                    log.info("mendline: relay reads its keys again")
                backoff.reset()
                delay = self._refresh
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
