"""A Server-Sent Events client of the dashboard's ``/live`` for tests: what the stream sends
read as it comes, each event waited for with a timeout; and waiting until the dashboard's
LISTEN connection is open."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import asyncpg
import httpx

from mendline.schemas.people import Role
from mendline.sinks.postgres import ChangeFeed
from tests.web.web_helpers import ServedWeb


@dataclass(frozen=True)
class Event:
    """One event of the stream: its name, data and id (None when it carried none)."""

    name: str
    data: str
    id: str | None


@dataclass
class Stream:
    """The events of one ``/live`` stream, in order, as a reader task parses them."""

    response: httpx.Response
    events: asyncio.Queue[Event | None] = field(default_factory=asyncio.Queue)
    comments: list[str] = field(default_factory=list)
    retry: int | None = None

    async def read(self) -> None:
        """Parse the stream into ``events`` until it ends (then put None)."""
        name, data, id_ = "message", [], None
        try:
            async for line in self.response.aiter_lines():
                if not line:
                    if data:
                        self.events.put_nowait(Event(name, "\n".join(data), id_))
                    name, data, id_ = "message", [], None
                    continue
                field_, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if field_ == "":
                    self.comments.append(value)
                elif field_ == "event":
                    name = value
                elif field_ == "data":
                    data.append(value)
                elif field_ == "id":
                    id_ = value
                elif field_ == "retry":
                    self.retry = int(value)
        except httpx.HTTPError:
            pass  # the server went away: the stream ended
        finally:
            self.events.put_nowait(None)

    async def next(self, timeout: float = 5.0) -> Event:
        """The next event; TimeoutError when none came within ``timeout`` seconds,
        EOFError when the stream ended."""
        event = await asyncio.wait_for(self.events.get(), timeout)
        if event is None:
            raise EOFError("the stream ended")
        return event

    async def batch(self, timeout: float = 5.0) -> list[Event]:
        """The events of the next batch: up to the one that carries an id."""
        events = [await self.next(timeout)]
        while events[-1].id is None:
            events.append(await self.next(timeout))
        return events

    async def until(self, name: str, timeout: float = 5.0) -> Event:
        """The next event called ``name``, those before it passed over."""
        while True:
            event = await self.next(timeout)
            if event.name == name:
                return event

    async def ended(self, timeout: float = 10.0) -> bool:
        """Whether the stream ends (every event before its end passed over)."""
        try:
            while True:
                await self.next(timeout)
        except EOFError:
            return True


@asynccontextmanager
async def live_stream(
    web: ServedWeb,
    topics: Sequence[str],
    *,
    role: Role = "viewer",
    last_event_id: str | None = None,
    last_id: str | None = None,
) -> AsyncIterator[Stream]:
    """``GET /live?topic=...`` as ``role`` (with ``Last-Event-ID`` or ``?last_id=`` if
    given), its events read as they come."""
    params = [("topic", topic) for topic in topics]
    if last_id is not None:
        params.append(("last_id", last_id))
    headers = {"Accept": "text/event-stream"}  # as EventSource asks
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    async with (
        web.client(role) as client,
        client.stream("GET", "/live", params=params, headers=headers) as response,
    ):
        assert response.status_code == 200, response.status_code
        assert response.headers["Content-Type"].startswith("text/event-stream")
        stream = Stream(response)
        reader = asyncio.create_task(stream.read())
        try:
            yield stream
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


async def listen_pid(database_url: str, timeout: float = 10.0) -> int:
    """The server process of the dashboard's LISTEN connection, once it listens."""
    conn = await asyncpg.connect(database_url)
    try:
        async with asyncio.timeout(timeout):
            while True:
                pid = await conn.fetchval(
                    """SELECT pid FROM pg_stat_activity
                       WHERE application_name = $1 AND datname = current_database()
                         AND query LIKE 'LISTEN%'""",
                    ChangeFeed.APPLICATION_NAME,
                )
                if pid is not None:
                    return int(pid)
                await asyncio.sleep(0.05)
    finally:
        await conn.close()
