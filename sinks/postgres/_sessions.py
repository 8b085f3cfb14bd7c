"""The dashboard's sessions and the back-off of failed logins: a session opened at login
(audited, a new secret each time), found again from its cookie with the user's current role,
ended at logout or by its timeouts; failed logins counted per account, per client address and
per account from an address, in PostgreSQL so every web process sees the same counts."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg

from mendline.analyzers.policy.login import (
    FORGET_FAILURES_AFTER,
    FailureCount,
    account_key,
    address_key,
    after_failure,
    after_forgiving,
    longest_wait,
    needs_touch,
    new_session_secret,
    pair_key,
    session_end,
    wait_left,
)
from mendline.analyzers.policy.people import user_name_refusal
from mendline.schemas.people import SYSTEM_ACTOR, Actor
from mendline.sinks.postgres._audit import AuditedStore, AuditWriter
from mendline.sinks.postgres._errors import translating

if TYPE_CHECKING:
    _Conn = asyncpg.Connection[Any] | asyncpg.pool.PoolConnectionProxy[Any]

__all__ = ["Session", "SessionStore", "session_id"]

# What new_session_secret makes: 43 URL-safe characters. A cookie of any other shape is
# refused before the database is asked.
_SECRET = re.compile(r"[A-Za-z0-9_-]{43}")

_FIND = """
SELECT s.id, s.csrf_token, s.created_at, s.last_seen_at, s.expires_at, s.user_id, u.name,
       u.role, u.disabled_at, now() AS now
FROM mendline.web_sessions s JOIN mendline.users u ON u.id = s.user_id
WHERE s.id = $1
"""

_COUNTS = """
SELECT key, failures, last_failure_at, blocked_until FROM mendline.login_failures
WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE
"""

_SAVE_COUNT = """
INSERT INTO mendline.login_failures AS f (key, failures, last_failure_at, blocked_until)
VALUES ($1, $2, $3, $4)
ON CONFLICT (key) DO UPDATE SET failures = excluded.failures,
    last_failure_at = excluded.last_failure_at, blocked_until = excluded.blocked_until
"""


def session_id(secret: str) -> str:
    """A session's id: the SHA-256 (hex) of the secret its cookie holds. A fast hash is
    enough: the secret has 256 bits of entropy."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Session:
    """A live dashboard session: who acts (``auth`` "session", the user's current role), the
    CSRF token its pages send back, and its times."""

    actor: Actor
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


@translating
class SessionStore(AuditedStore):
    """Dashboard sessions and failed logins. ``idle`` and ``longest`` are a session's idle
    and absolute timeouts; ``free_failures`` the failed logins of a key before its next
    attempt waits (``after_failure``). Logins, logouts and failed logins are audited
    (``session.login``, ``session.logout``, ``session.login_failed``) with ``origin``.

    Database failures come out as DatabaseUnavailable or RejectedData."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        audit: AuditWriter,
        origin: str = "",
        *,
        idle: timedelta,
        longest: timedelta,
        free_failures: int,
    ) -> None:
        super().__init__(pool, audit, origin)
        self.idle = idle
        self.longest = longest
        self.free_failures = free_failures

    async def attempt(self, name: str, client: str) -> int | None:
        """Begin a login of ``name`` from ``client``, before its password is checked: the
        whole seconds it must wait first (the longer wait of the account and the address;
        nothing is counted then), or None, and the attempt is counted as a failure on the
        account, the address and the pair until the login succeeds (``open`` takes it back).
        Counted first, under the keys' row locks, so that a burst of logins at once cannot
        all slip in before the first failure is written."""
        keys = sorted({account_key(name), address_key(client), pair_key(name, client)})
        async with self._changing() as conn:
            now, counts = await self._locked_counts(conn, keys)
            # The account's own wait is short (failures from anywhere keep its owner out a
            # minute at most); an address's, and the account's from that address, grow long.
            blocked = [counts.get(key) for key in keys]
            wait = wait_left(blocked, now)
            if wait is not None:  # not counted: the rows just made for it go again
                await conn.execute(
                    """DELETE FROM mendline.login_failures
                       WHERE key = ANY($1::text[]) AND failures = 0""",
                    keys,
                )
                return wait
            for key in keys:
                after = after_failure(counts.get(key), now, self.free_failures, longest_wait(key))
                await conn.execute(
                    _SAVE_COUNT, key, after.failures, after.last_failure_at, after.blocked_until
                )
        return None

    async def login_failed(self, name: str, reason: str) -> None:
        """Audit a failed login of ``name`` (counted already by ``attempt``) as
        ``session.login_failed`` by mendline itself, with why. An unknown user's name is not
        written to the audit trail (it is attacker-chosen, or a password typed into the
        wrong field): its target is ``user:?``."""
        named = reason != "unknown" and user_name_refusal(name) is None
        target = f"user:{name}" if named else "user:?"
        async with self._changing() as conn:
            await self._record(
                conn, SYSTEM_ACTOR, "session.login_failed", target, None, {"reason": reason}
            )

    async def open(
        self, actor: Actor, client: str, user_agent: str, replaced: str | None = None
    ) -> tuple[str, Session]:
        """A new session of ``actor`` (whose password was just checked): (the secret for
        its cookie, the session). The session a cookie ``replaced`` held is ended (a new id
        at every login); the account's failed logins are cleared, and the address's that
        were made on this account (this attempt's among them); expired sessions and
        forgotten failures are pruned.
        Audited as ``session.login``."""
        assert actor.user_id is not None, "a session is a user's"
        secret, csrf = new_session_secret(), new_session_secret()
        async with self._changing() as conn:
            if replaced is not None:
                await conn.execute(
                    "DELETE FROM mendline.web_sessions WHERE id = $1", session_id(replaced)
                )
            now = await self._forgive(conn, actor.name, client)
            await self._prune(conn, now)
            row = await conn.fetchrow(
                """INSERT INTO mendline.web_sessions
                       (id, user_id, csrf_token, created_at, last_seen_at, expires_at, client,
                        user_agent)
                   VALUES ($1, $2, $3, $4, $4, $5, $6, $7)
                   RETURNING created_at, last_seen_at, expires_at""",
                session_id(secret),
                actor.user_id,
                csrf,
                now,
                now + self.longest,
                client[:100],
                user_agent[:300],
            )
            assert row is not None
            await self._record(conn, actor, "session.login", f"user:{actor.name}", None, None)
        return secret, Session(actor, csrf, **dict(row))

    async def find(self, secret: str, *, used: bool = True) -> Session | None:
        """The live session whose cookie holds ``secret``, with its user's current name and
        role; None when there is none, or it ended (by its timeouts, or its user is
        disabled: the row is removed then). Marks it used, at most once a minute, when
        ``used`` (a person's request; not a page refreshing itself, which would keep an
        open tab's session from ever idling out)."""
        if not _SECRET.fullmatch(secret):
            return None
        row = await self.pool.fetchrow(_FIND, session_id(secret))
        if row is None:
            return None
        ended = session_end(
            now=row["now"],
            created_at=row["created_at"],
            last_seen_at=row["last_seen_at"],
            expires_at=row["expires_at"],
            idle=self.idle,
            longest=self.longest,
            user_disabled_at=row["disabled_at"],
        )
        if ended is not None:
            await self.pool.execute("DELETE FROM mendline.web_sessions WHERE id = $1", row["id"])
            return None
        last_seen = row["last_seen_at"]
        if used and needs_touch(row["now"], last_seen):
            await self.pool.execute(
                "UPDATE mendline.web_sessions SET last_seen_at = $2 WHERE id = $1",
                row["id"],
                row["now"],
            )
            last_seen = row["now"]
        actor = Actor(name=row["name"], role=row["role"], auth="session", user_id=row["user_id"])
        return Session(actor, row["csrf_token"], row["created_at"], last_seen, row["expires_at"])

    async def end(self, actor: Actor, secret: str) -> bool:
        """End the session whose cookie holds ``secret`` (logout), audited as
        ``session.logout`` by ``actor``; False when there was none."""
        async with self._changing() as conn:
            ended = await conn.fetchval(
                "DELETE FROM mendline.web_sessions WHERE id = $1 RETURNING user_id",
                session_id(secret),
            )
            if ended is None:
                return False
            await self._record(conn, actor, "session.logout", f"user:{actor.name}", None, None)
        return True

    async def proxied(self, name: str) -> Actor | None:
        """The actor a trusted proxy's header names (``auth`` "proxy", the user's current
        role); None when there is no such enabled user."""
        row = await self.pool.fetchrow(
            "SELECT id, name, role FROM mendline.users WHERE name = $1 AND disabled_at IS NULL",
            name,
        )
        if row is None:
            return None
        return Actor(name=row["name"], role=row["role"], auth="proxy", user_id=row["id"])

    async def _locked_counts(
        self, conn: _Conn, keys: list[str]
    ) -> tuple[datetime, dict[str, FailureCount]]:
        """The transaction's time and the counts of ``keys``, each given a row first and
        locked (in key order, so two logins cannot deadlock): what is read is the last count
        written, and two failures at once both count."""
        now: datetime = await conn.fetchval("SELECT now()")
        await conn.executemany(
            """INSERT INTO mendline.login_failures (key, failures, last_failure_at)
               VALUES ($1, 0, $2) ON CONFLICT (key) DO NOTHING""",
            [(key, now) for key in keys],
        )
        return now, await self._counts(conn, keys)

    async def _counts(self, conn: _Conn, keys: list[str]) -> dict[str, FailureCount]:
        rows = await conn.fetch(_COUNTS, keys)
        return {row["key"]: _count(row) for row in rows if row["failures"] > 0}

    async def _forgive(self, conn: _Conn, name: str, client: str) -> datetime:
        """Clear the account's failures and forgive the address those made on this account
        from it (``after_forgiving``); returns the transaction's time."""
        address, pair = address_key(client), pair_key(name, client)
        now: datetime = await conn.fetchval("SELECT now()")
        await conn.execute("DELETE FROM mendline.login_failures WHERE key = $1", account_key(name))
        counts = await self._counts(conn, [address, pair])
        await conn.execute("DELETE FROM mendline.login_failures WHERE key = $1", pair)
        if address not in counts:
            return now
        forgiven = counts[pair].failures if pair in counts else 0
        after = after_forgiving(counts[address], forgiven, now, self.free_failures)
        if after is None:
            await conn.execute("DELETE FROM mendline.login_failures WHERE key = $1", address)
        else:
            await conn.execute(
                _SAVE_COUNT, address, after.failures, after.last_failure_at, after.blocked_until
            )
        return now

    async def _prune(self, conn: _Conn, now: datetime) -> None:
        """Remove sessions past their timeouts and failures forgotten by now (opportunistic,
        at each login: nothing else needs to run for it)."""
        await conn.execute(
            """DELETE FROM mendline.web_sessions
               WHERE expires_at <= $1::timestamptz OR created_at <= $1::timestamptz - $2::interval
                  OR last_seen_at <= $1::timestamptz - $3::interval""",
            now,
            self.longest,
            self.idle,
        )
        await conn.execute(
            """DELETE FROM mendline.login_failures
               WHERE last_failure_at <= $1::timestamptz - $2::interval
                 AND (blocked_until IS NULL OR blocked_until <= $1::timestamptz)""",
            now,
            FORGET_FAILURES_AFTER,
        )


def _count(row: asyncpg.Record) -> FailureCount:
    return FailureCount(row["failures"], row["last_failure_at"], row["blocked_until"])
