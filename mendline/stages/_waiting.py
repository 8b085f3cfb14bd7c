"""How the stages wait: for a NOTIFY, a stop or a poll; for a database to come up or back;
while holding leases."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any, TypeVar

from mendline.analyzers.backoff import Backoff
from mendline.sinks.postgres import is_outage

__all__ = [
    "connect_patiently",
    "keep_renewing",
    "outage_backoff",
    "outage_over",
    "pause_for_outage",
    "through_outages",
    "wait_any",
]

_T = TypeVar("_T")

log = logging.getLogger("mendline")


def outage_backoff(longest: float = 30.0) -> Backoff:
    """The waits of a running worker through a database outage: from half a second up to
    ``longest`` seconds (MENDLINE_OUTAGE_RETRY_MAX, 30 s: few queries and warnings while it
    lasts; the work is a queue, not a stream)."""
    return Backoff(min(0.5, longest), longest)


async def pause_for_outage(
    exc: Exception, backoff: Backoff, stop: asyncio.Event, log: logging.Logger = log
) -> None:
    """A worker loop's answer to ``exc``: wait the next delay of ``backoff`` (or until
    ``stop``) when it is a database outage, or raise it again when it is anything else."""
    if not is_outage(exc):
        raise exc
    first = backoff.attempts == 0
    delay = backoff.next()
    if first:  # one line an outage: the retries while it lasts are debug lines
        log.warning(
            "mendline: PostgreSQL unavailable (%s); retrying with backoff until it is back",
            exc,
        )
    else:
        log.debug("mendline: PostgreSQL still unavailable (%s); retrying in %.1f s", exc, delay)
    await wait_any(stop, None, delay)


def outage_over(backoff: Backoff, log: logging.Logger = log) -> None:
    """A worker loop's pass succeeded: if it was waiting out an outage, say once that
    PostgreSQL is back; the next outage's waits start short again."""
    if backoff.attempts:
        log.warning(
            "mendline: PostgreSQL is back after %d retr%s",
            backoff.attempts,
            "y" if backoff.attempts == 1 else "ies",
        )
    backoff.reset()


async def connect_patiently(connect: Callable[[], Awaitable[_T]], stop: asyncio.Event) -> _T | None:
    """``connect()``, waiting out a database that is not up yet; None if stopped first.
    Starting, the waits are shorter (0.2 s up to 10 s): a database started at the same time
    is found soon after it is up."""
    backoff = Backoff(0.2, 10.0)
    while not stop.is_set():
        try:
            return await connect()
        except Exception as exc:
            if not is_outage(exc):
                raise
            delay = backoff.next()
            log.warning("mendline: PostgreSQL unreachable (%s); retrying in %.1f s", exc, delay)
            await wait_any(stop, None, delay)
    return None


async def wait_any(stop: asyncio.Event, wake: asyncio.Event | None, timeout: float) -> None:
    """Return when ``stop`` or ``wake`` is set, or after ``timeout`` seconds."""
    waits = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waits.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for each in waits:
            each.cancel()


async def through_outages(
    write: Callable[..., Awaitable[_T]],
    *args: Any,
    what: str,
    stop: asyncio.Event | None = None,
    longest: float = 30.0,
    **kwargs: Any,
) -> _T:
    """``write(*args, **kwargs)``, tried again with backoff (``outage_backoff(longest)``) for
    as long as the database is out (and ``stop``, if given, is not set): for what must not be
    given up on, such as the record of a paid LLM call or of a message already sent. Other
    errors are raised at once."""
    backoff = outage_backoff(longest)
    while True:
        try:
            return await write(*args, **kwargs)
        except Exception as exc:
            if not is_outage(exc) or (stop is not None and stop.is_set()):
                raise
            delay = backoff.next()
            log.warning("mendline: cannot %s yet (%s); again in %.1f s", what, exc, delay)
            await wait_any(stop or asyncio.Event(), None, delay)


async def keep_renewing(
    lease: float,
    held: Callable[[], Collection[_T]],
    renew: Callable[[list[_T]], Awaitable[None]],
    what: str,
) -> None:
    """Every third of ``lease``, ``renew`` what is ``held``, until cancelled: work that takes
    long (a slow LLM, a slow channel) is not claimed by another worker meanwhile."""
    while True:
        await asyncio.sleep(lease / 3)
        ids = list(held())
        if ids:
            try:
                await renew(ids)
            except Exception as exc:  # the lease may lapse: at worst, done twice
                log.warning("mendline: could not renew the leases of %s: %s", what, exc)
