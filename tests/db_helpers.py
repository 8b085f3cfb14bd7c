"""A fresh database for a test, on the session's PostgreSQL server, and reading it back."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@asynccontextmanager
async def fresh_database(server_url: str) -> AsyncIterator[str]:
    """Create an empty database, yield its URL, drop it afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(with_database(server_url, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield with_database(server_url, name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@asynccontextmanager
async def repeatable_read_pool(url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool whose sessions default to repeatable read, as a server configured so would:
    what a change that needs read committed must ask for itself."""
    pool = await asyncpg.create_pool(
        url,
        min_size=1,
        max_size=2,
        server_settings={"default_transaction_isolation": "repeatable read"},
    )
    try:
        yield pool
    finally:
        await pool.close()


async def query(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    """The rows of ``sql`` with ``args``, on a connection of its own."""
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def behind_audit_trigger(url: str, statement: str, *args: object) -> None:
    """``statement`` run with the audit log's append-only trigger disabled, as a superuser
    could: how the tests alter and remove audit rows that ``audit verify`` must catch."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.execute("ALTER TABLE mendline.audit_log DISABLE TRIGGER USER")
            await conn.execute(statement, *args)
            await conn.execute("ALTER TABLE mendline.audit_log ENABLE TRIGGER USER")
    finally:
        await conn.close()
