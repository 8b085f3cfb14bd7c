"""The audit trail's store: ``append_audit`` writes one row in the caller's transaction,
chained to the row before it; ``AuditStore`` lists the rows and walks the chain; ``AuditedStore``
is the base of the stores whose changes write one."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import asyncpg

from mendline.analyzers.audit import ChainCheck, ChainWalk
from mendline.schemas.people import GENESIS_HASH, Actor, AuditEntry, StoredAuditEntry, audit_hash
from mendline.schemas.settings import Settings
from mendline.sinks.postgres._errors import translating
from mendline.sinks.postgres._migrate import migrated_pool

if TYPE_CHECKING:
    _Conn = asyncpg.Connection[Any] | asyncpg.pool.PoolConnectionProxy[Any]

__all__ = [
    "AUDIT_LOCK",
    "AuditStore",
    "AuditWriter",
    "AuditedStore",
    "append_audit",
    "connect_audit",
]

#: Appends one audit row on the connection, in the caller's transaction (``append_audit``).
AuditWriter: TypeAlias = Callable[["asyncpg.Connection[Any]", AuditEntry], Awaitable[object]]

#: The transaction-scoped advisory lock key appends take turns on ("audit").
AUDIT_LOCK = 0x6D6C5F6175646974  # "ml_audit"

_COLUMNS = """id, at, actor_name, actor_role, actor_auth, actor_user_id, actor_token_id, action,
target, before::text AS before, after::text AS after, origin, prev_hash, row_hash"""

# The JSON as jsonb gives it back (its numbers, its key order), and the database's clock:
# the hash is computed over what a reader of the row will see.
_STORED_FORM = """
SELECT $1::text::jsonb::text AS before, $2::text::jsonb::text AS after,
       clock_timestamp() AS at, current_setting('transaction_isolation') AS isolation,
       coalesce((SELECT row_hash FROM mendline.audit_log ORDER BY id DESC LIMIT 1), $3) AS prev
"""

_INSERT = f"""
INSERT INTO mendline.audit_log (
    at, actor_name, actor_role, actor_auth, actor_user_id, actor_token_id, action, target,
    before, after, origin, prev_hash, row_hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::jsonb, $10::text::jsonb, $11, $12, $13)
RETURNING {_COLUMNS}
"""

_LIST = f"""
SELECT {_COLUMNS} FROM mendline.audit_log
WHERE ($1::text IS NULL OR actor_name = $1)
  AND ($2::text IS NULL OR starts_with(action, $2))
  AND ($3::text IS NULL OR target = $3)
  AND ($4::timestamptz IS NULL OR at >= $4)
  AND ($5::timestamptz IS NULL OR at < $5)
  AND ($6::bigint IS NULL OR id < $6)
ORDER BY id DESC
LIMIT $7
"""


async def append_audit(conn: _Conn, entry: AuditEntry) -> StoredAuditEntry:
    """Append ``entry`` in the caller's transaction (the caller holds ``conn.transaction()``)
    and return it as stored.

    Appends take turns on a transaction-scoped advisory lock (``AUDIT_LOCK``), held until the
    caller commits or rolls back, so that concurrent ones chain in order: ``at`` is the
    database's clock read under it, ``prev_hash`` the last row's ``row_hash`` (or
    ``GENESIS_HASH``), ``row_hash`` is ``audit_hash(entry, at, prev_hash)``, with ``before``
    and ``after`` as jsonb gives them back. The transaction must be read committed (the
    server's usual default; ask for it, ``conn.transaction(isolation="read_committed")``,
    when a server's may differ; ValueError otherwise): a snapshot taken before the lock
    would fork the chain.
    Driver errors pass through: the caller's transaction is the caller's to translate."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", AUDIT_LOCK)
    stored = await conn.fetchrow(
        _STORED_FORM, _json(entry.before), _json(entry.after), GENESIS_HASH
    )
    assert stored is not None
    if stored["isolation"] != "read committed":  # its snapshot may predate the lock: a fork
        raise ValueError(
            f"append_audit needs a read committed transaction, not {stored['isolation']}"
        )
    as_read = entry.model_copy(
        update={"before": _loads(stored["before"]), "after": _loads(stored["after"])}
    )
    row_hash = audit_hash(as_read, stored["at"], stored["prev"])
    actor = entry.actor
    row = await conn.fetchrow(
        _INSERT,
        stored["at"],
        actor.name,
        actor.role,
        actor.auth,
        actor.user_id,
        actor.token_id,
        entry.action,
        entry.target,
        stored["before"],
        stored["after"],
        entry.origin,
        stored["prev"],
        row_hash,
    )
    assert row is not None
    return _entry(row)


@translating
class AuditStore:
    """Reads the audit trail: lists its rows and walks its chain.

    Failures come out as DatabaseUnavailable or RejectedData."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def close(self) -> None:
        """Close the pool; idempotent."""
        await self.pool.close()

    async def append(self, entry: AuditEntry) -> StoredAuditEntry:
        """Append ``entry`` in a read committed transaction of its own (see ``append_audit``),
        whatever the server's default isolation."""
        async with self.pool.acquire() as conn, conn.transaction(isolation="read_committed"):
            return await append_audit(conn, entry)

    async def list(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[StoredAuditEntry]:
        """The rows, newest first: of the actor named ``actor``, with an action starting with
        ``action`` ("issue." for every issue action), on ``target``, at or after ``since``
        and before ``until``; at most ``limit``. The next page: ``before_id`` the last id."""
        rows = await self.pool.fetch(_LIST, actor, action, target, since, until, before_id, limit)
        return [_entry(row) for row in rows]

    async def verify(
        self, expect: str | None = None, *, after: ChainCheck | None = None
    ) -> ChainCheck:
        """Walk the whole chain in id order, streamed with a cursor, to its first break;
        with ``expect``, looking for the intact row with that ``row_hash``. With ``after``
        (an earlier walk that found it intact), only the rows appended since are walked,
        from where that walk ended (what a dashboard checks on each view)."""
        walk = ChainWalk(expect, after)
        async with self.pool.acquire() as conn, conn.transaction(readonly=True):
            query = f"SELECT {_COLUMNS} FROM mendline.audit_log WHERE id > $1 ORDER BY id"
            async for row in conn.cursor(query, walk.last_id, prefetch=500):
                if not walk.add(_entry(row)):
                    break
        return walk.result()


@translating
class AuditedStore:
    """The base of a store whose every change authorizes its actor, changes and writes its
    audit row in one transaction. ``audit`` writes the row in the change's transaction
    (``append_audit``); ``origin`` is where the changes come from (``cli@host``), on each
    row."""

    def __init__(self, pool: asyncpg.Pool, audit: AuditWriter, origin: str = "") -> None:
        self.pool = pool
        self.audit = audit
        self.origin = origin

    async def close(self) -> None:
        """Close the pool; idempotent."""
        await self.pool.close()

    @contextlib.asynccontextmanager
    async def _changing(self) -> AsyncIterator[_Conn]:
        """A connection in a read committed transaction, whatever the server's default: the
        audit row's chain needs it (``append_audit``)."""
        async with self.pool.acquire() as conn, conn.transaction(isolation="read_committed"):
            yield conn

    async def _record(
        self,
        conn: _Conn,
        actor: Actor,
        action: str,
        target: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> None:
        entry = AuditEntry(
            actor=actor,
            action=action,
            target=target,
            before=before,
            after=after,
            origin=self.origin,
        )
        # A pooled connection is one for the writer: the proxy passes every call on.
        await self.audit(cast("asyncpg.Connection[Any]", conn), entry)


async def connect_audit(settings: Settings, size: int = 2) -> AuditStore:
    """An AuditStore on a new pool, after applying pending migrations."""
    return AuditStore(await migrated_pool(settings.database_url.get_secret_value(), size))


def _json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _entry(row: asyncpg.Record) -> StoredAuditEntry:
    return StoredAuditEntry(
        id=row["id"],
        at=row["at"],
        actor=Actor(
            name=row["actor_name"],
            role=row["actor_role"],
            auth=row["actor_auth"],
            user_id=row["actor_user_id"],
            token_id=row["actor_token_id"],
        ),
        action=row["action"],
        target=row["target"],
        before=_loads(row["before"]),
        after=_loads(row["after"]),
        origin=row["origin"],
        prev_hash=row["prev_hash"],
        row_hash=row["row_hash"],
    )
