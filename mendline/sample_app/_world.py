"""The shop's misbehaving world: its databases and the dependencies that let it down."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["World", "misbehaving_world"]


@dataclass(frozen=True, slots=True)
class World:
    """The databases and dependencies one running shop uses."""

    shop_db: Path
    loyalty_db: Path
    inventory_url: str  # nothing listens there
    shipping_url: str  # accepts connections and never answers
    cache: tuple[str, int]  # nothing listens there


_SHOP_SCHEMA = """
CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT NOT NULL);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY, sku TEXT NOT NULL, qty INTEGER NOT NULL, total REAL NOT NULL,
    day TEXT NOT NULL
);
INSERT INTO users (id, email, name)
    VALUES (1, 'ada@example.com', 'Ada Lovelace'), (2, 'grace@example.com', 'Grace Hopper');
INSERT INTO orders (id, sku, qty, total, day)
    VALUES (1001, 'mug-01', 2, 19.0, '2024-12-24'), (1002, 'tee-02', 1, 19.0, '2024-12-26');
"""


@contextlib.contextmanager
def _stuck_loyalty_db(path: Path) -> Iterator[None]:
    """The loyalty database, with the points-expiry job's write transaction left open."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("CREATE TABLE points (user_id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)")
        db.execute("BEGIN IMMEDIATE")
        db.execute("UPDATE points SET balance = 0 WHERE balance < 0")
        yield
    finally:
        db.close()


@contextlib.contextmanager
def _refusing_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound, so no one else takes it, never listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def _silent_server() -> AsyncIterator[int]:
    """A loopback server that accepts connections, reads what comes and never answers."""
    writers: set[asyncio.StreamWriter] = set()

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.add(writer)
        try:
            with contextlib.suppress(ConnectionError):
                await reader.read()  # until the client gives up and closes
        finally:
            writers.discard(writer)
            writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        for writer in list(writers):
            writer.close()
        await server.wait_closed()
        await asyncio.sleep(0)  # let the handlers see their end


@contextlib.asynccontextmanager
async def misbehaving_world() -> AsyncIterator[World]:
    """The shop's databases and dependencies for the block, in a temporary folder.

    SQLite databases (the loyalty one with a write transaction left open), an inventory
    service that refuses connections (a port bound, never listening), a shipping-quote service
    that accepts and never answers, and no recommendation cache.
    """
    async with contextlib.AsyncExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mendline-shop-")))
        with contextlib.closing(sqlite3.connect(folder / "shop.db")) as db:
            db.executescript(_SHOP_SCHEMA)
        stack.enter_context(_stuck_loyalty_db(folder / "loyalty.db"))
        inventory_port = stack.enter_context(_refusing_port())
        cache_port = stack.enter_context(_refusing_port())
        shipping_port = await stack.enter_async_context(_silent_server())
        yield World(
            shop_db=folder / "shop.db",
            loyalty_db=folder / "loyalty.db",
            inventory_url=f"http://127.0.0.1:{inventory_port}",
            shipping_url=f"http://127.0.0.1:{shipping_port}",
            cache=("127.0.0.1", cache_port),
        )
