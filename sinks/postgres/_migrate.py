"""Versioned SQL migrations in schema ``mendline``: ordered, idempotent, one transaction each."""

from __future__ import annotations

import logging
from importlib import resources
from typing import Any

import asyncpg

from mendline.schemas.errors import DatabaseUnavailable

__all__ = ["MIGRATIONS_LOCK", "available_migrations", "migrate", "migrated_pool"]

log = logging.getLogger("mendline.sinks")

#: Advisory lock key held while migrating, so processes starting together take turns.
MIGRATIONS_LOCK = 0x6D656E646C696E65  # "mendline"


def available_migrations() -> list[tuple[str, str]]:
    """(version, SQL) of every migration shipped in the package, in order."""
    folder = resources.files("mendline.sinks.postgres").joinpath("migrations")
    files = sorted((entry.name, entry) for entry in folder.iterdir() if entry.name.endswith(".sql"))
    return [(name.removesuffix(".sql"), entry.read_text()) for name, entry in files]


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply the migrations not applied yet; returns their versions.

    The applied ones are read first, and when none is pending nothing else is done: no DDL,
    no lock, so a role that does not own the schema (``mendline grants``) connects as well.
    Safe when several processes run it at once: they serialise on an advisory lock, and each
    migration runs in a transaction with its bookkeeping row. A pending migration that this
    role may not apply is DatabaseUnavailable, with the hint to migrate as the owner.
    """
    if not await _pending(conn):
        return []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATIONS_LOCK)
    try:
        await conn.execute(
            """
            CREATE SCHEMA IF NOT EXISTS mendline;
            CREATE TABLE IF NOT EXISTS mendline.schema_migrations (
                version    text PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now()
            );
            """
        )
        done = await _applied(conn)
        applied = []
        for version, sql in available_migrations():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO mendline.schema_migrations (version) VALUES ($1)", version
                )
            log.info("mendline: applied migration %s", version)
            applied.append(version)
        return applied
    except asyncpg.InsufficientPrivilegeError as exc:
        role = await conn.fetchval("SELECT current_user")
        raise DatabaseUnavailable(
            f"migrations are pending and the role {role} may not apply them: {exc}",
            hint="run `mendline migrate` as the schema's owner, then apply"
            " `mendline grants ROLE` again",
        ) from exc
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATIONS_LOCK)


async def _applied(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT version FROM mendline.schema_migrations")
    return {row["version"] for row in rows}


async def _pending(conn: asyncpg.Connection) -> bool:
    """Whether a shipped migration is not applied, read without changing anything (True
    when the bookkeeping table is not there, or not readable by this role)."""
    try:
        done = await _applied(conn)
    except (
        asyncpg.UndefinedTableError,
        asyncpg.InvalidSchemaNameError,
        asyncpg.InsufficientPrivilegeError,
    ):
        return True
    return any(version not in done for version, _ in available_migrations())


async def migrated_pool(url: str, max_size: int, **options: Any) -> asyncpg.Pool:
    """A connection pool to ``url``, after applying pending migrations on a connection of
    its own. Statements time out after 60 s: a database that stops answering (a network
    partition) fails the call, so that the stage pauses and retries, rather than hangs."""
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    options.setdefault("command_timeout", 60)
    return await asyncpg.create_pool(url, min_size=1, max_size=max_size, **options)
