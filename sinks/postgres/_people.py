"""The people store: users with a role, their passwords and API tokens, and telling who acts
from a token or a password. Every change authorizes its actor, changes and writes its audit row
in one transaction."""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import asyncpg

from mendline.analyzers.policy.login import (
    hash_password,
    password_refusal,
    unusable_hash,
    verify_password,
)
from mendline.analyzers.policy.people import (
    authorize,
    check_token_role,
    last_admin_refusal,
    lower_role,
    new_token,
    parse_token,
    token_hash,
    token_refusal,
    user_name_refusal,
)
from mendline.schemas.errors import (
    AuthenticationFailed,
    PermissionDenied,
    RejectedData,
    TokenNotFound,
    UserNotFound,
)
from mendline.schemas.people import Actor, Role
from mendline.sinks.postgres._audit import AuditedStore
from mendline.sinks.postgres._errors import translating

__all__ = ["PasswordCheck", "PasswordRefusal", "PeopleStore", "TokenInfo", "User"]

_log = logging.getLogger("mendline.audit")

if TYPE_CHECKING:
    _Conn = asyncpg.Connection[Any] | asyncpg.pool.PoolConnectionProxy[Any]

_USERS_HINT = "`mendline users list` shows the users"
_TOKENS_HINT = "`mendline tokens list` shows the tokens and their ids"
# argon2 takes 64 MiB and tens of milliseconds a call: at most this many at once, so a burst
# of logins queues instead of exhausting memory (rate limits bound it further).
_HASHING = threading.BoundedSemaphore(4)
_T = TypeVar("_T")
# Compared against when the token id is unknown, so that both paths hash and compare.
_ID_ATTEMPTS = 5
_NO_HASH = token_hash("mlt_00000000_" + "0" * 43)

_USER_COLUMNS = "id, name, role, disabled_at, created_at, created_by, password_set_at"
_TOKEN_COLUMNS = """t.token_id, u.name AS user_name, t.user_id, t.role, t.name, t.created_at,
    t.created_by, t.expires_at, t.revoked_at, t.last_used_at"""


@dataclass(frozen=True)
class User:
    """A user as stored."""

    id: int
    name: str
    role: Role
    disabled_at: datetime | None
    created_at: datetime
    created_by: str
    #: When their password was last set (None: they have none, and cannot log in by form).
    password_set_at: datetime | None = None


#: Why a password did not let a user in (for the audit trail; the person at the form is
#: told the same for all of them).
PasswordRefusal = Literal["unknown", "no_password", "wrong_password", "disabled"]


@dataclass(frozen=True)
class PasswordCheck:
    """What a login's name and password come to: the actor (a dashboard session's, with the
    user's current role), or None and why not."""

    actor: Actor | None
    refusal: PasswordRefusal | None = None


@dataclass(frozen=True)
class TokenInfo:
    """An API token as stored, without its secret (there is none to show: only its hash)."""

    token_id: str
    user_name: str
    user_id: int
    role: Role
    name: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


@translating
class PeopleStore(AuditedStore):
    """Users and API tokens. ``audit`` writes an audit row in the change's transaction;
    ``origin`` is where the changes come from (``cli@host``), on each audit row.

    Refusals come out as PermissionDenied, AuthenticationFailed, UserNotFound or
    TokenNotFound; database failures as DatabaseUnavailable or RejectedData."""

    async def add_user(self, actor: Actor, name: str, role: Role) -> User:
        """Add a user; RejectedData when the name is taken or cannot be one
        (``user_name_refusal``)."""
        authorize(actor, "user.add")
        refusal = user_name_refusal(name)
        if refusal is not None:
            raise RejectedData(refusal, sqlstate="22023", hint="choose another name")
        async with self._changing() as conn:
            row = await conn.fetchrow(
                f"""INSERT INTO mendline.users (name, role, created_by) VALUES ($1, $2, $3)
                    ON CONFLICT (name) DO NOTHING RETURNING {_USER_COLUMNS}""",
                name,
                role,
                actor.name,
            )
            if row is None:
                raise RejectedData(
                    f"there is a user {name!r} already", sqlstate="23505", hint=_USERS_HINT
                )
            await self._record(conn, actor, "user.add", f"user:{name}", None, {"role": role})
        return User(**dict(row))

    async def list_users(self) -> list[User]:
        """Every user, by name."""
        rows = await self.pool.fetch(f"SELECT {_USER_COLUMNS} FROM mendline.users ORDER BY name")
        return [User(**dict(row)) for row in rows]

    async def set_role(self, actor: Actor, name: str, role: Role) -> tuple[User, bool]:
        """Give a user another role (their tokens act with at most it from now on): the
        user as now, and whether the role changed (the same role changes nothing and writes
        no audit row). PermissionDenied when it would leave no active admin."""
        authorize(actor, "user.set_role")
        async with self._changing() as conn:
            admins = await self._active_admins(conn)
            before = await self._user(conn, name, lock=True)
            if before.role == role:
                return before, False
            refusal = last_admin_refusal(
                name, admins, stays_admin=role == "admin", action="user.set_role"
            )
            if refusal is not None:
                raise refusal
            row = await conn.fetchrow(
                f"UPDATE mendline.users SET role = $2 WHERE id = $1 RETURNING {_USER_COLUMNS}",
                before.id,
                role,
            )
            assert row is not None  # the user was read in this transaction
            await self._record(
                conn, actor, "user.set_role", f"user:{name}", {"role": before.role}, {"role": role}
            )
        return User(**dict(row)), True

    async def disable_user(self, actor: Actor, name: str) -> User:
        """Disable a user: their tokens stop authenticating. Disabling a disabled user
        changes nothing (and writes no audit row); the last active admin is refused
        (PermissionDenied)."""
        authorize(actor, "user.disable")
        async with self._changing() as conn:
            admins = await self._active_admins(conn)
            before = await self._user(conn, name, lock=True)
            if before.disabled_at is not None:
                return before
            refusal = last_admin_refusal(name, admins, stays_admin=False, action="user.disable")
            if refusal is not None:
                raise refusal
            row = await conn.fetchrow(
                f"""UPDATE mendline.users SET disabled_at = now() WHERE id = $1
                    RETURNING {_USER_COLUMNS}""",
                before.id,
            )
            assert row is not None  # the user was read in this transaction
            await self._record(
                conn, actor, "user.disable", f"user:{name}", {"disabled": False}, {"disabled": True}
            )
        return User(**dict(row))

    async def enable_user(self, actor: Actor, name: str) -> tuple[User, bool]:
        """Enable a disabled user again (their tokens not revoked or expired work again): the
        user as now, and whether they were disabled (enabling an enabled user changes nothing
        and writes no audit row)."""
        authorize(actor, "user.enable")
        async with self._changing() as conn:
            before = await self._user(conn, name, lock=True)
            if before.disabled_at is None:
                return before, False
            row = await conn.fetchrow(
                f"""UPDATE mendline.users SET disabled_at = NULL WHERE id = $1
                    RETURNING {_USER_COLUMNS}""",
                before.id,
            )
            assert row is not None  # the user was read in this transaction
            await self._record(
                conn, actor, "user.enable", f"user:{name}", {"disabled": True}, {"disabled": False}
            )
        return User(**dict(row)), True

    async def set_password(self, actor: Actor, name: str, password: str) -> tuple[User, int]:
        """Set ``name``'s dashboard password (an admin anyone's, anyone their own): the user
        as now, and how many of their dashboard sessions were ended (all of them: a password
        is changed because someone else may know the old one). Audited as ``user.password``,
        without the password or its hash. RejectedData when it cannot be a password
        (``password_refusal``); the hashing runs off the event loop."""
        refusal = password_refusal(name, password)
        if refusal is not None:
            raise RejectedData(
                refusal, sqlstate="22023", hint="choose a longer passphrase, e.g. four words"
            )
        hashed = await _hashing(hash_password, password)
        async with self._changing() as conn:
            before = await self._user(conn, name, lock=True)
            own = actor.user_id is not None and actor.user_id == before.id
            authorize(actor, "user.password_own" if own else "user.password")
            row = await conn.fetchrow(
                f"""UPDATE mendline.users SET password_hash = $2, password_set_at = now()
                    WHERE id = $1 RETURNING {_USER_COLUMNS}""",
                before.id,
                hashed,
            )
            assert row is not None  # the user was read in this transaction
            ended = await conn.fetchval(
                """WITH ended AS (DELETE FROM mendline.web_sessions WHERE user_id = $1
                                  RETURNING 1)
                   SELECT count(*) FROM ended""",
                before.id,
            )
            await self._record(
                conn,
                actor,
                "user.password",
                f"user:{name}",
                {"password_set": before.password_set_at is not None},
                {"password_set": True, "sessions_ended": ended},
            )
        return User(**dict(row)), int(ended)

    async def check_password(self, name: str, password: str) -> PasswordCheck:
        """Whether ``password`` is ``name``'s: the actor of a new dashboard session (with
        the user's current role), or None and why (unknown, no password, wrong password,
        disabled). One argon2 verification is spent whatever the reason, so the time taken
        does not tell whether the user exists; a match whose hash used older parameters is
        hashed again with the current ones. Nothing is audited or counted here (the login
        does both)."""
        row = await self.pool.fetchrow(
            """SELECT id, name, role, disabled_at, password_hash FROM mendline.users
               WHERE name = $1""",
            name,
        )
        stored = row["password_hash"] if row is not None else None
        verdict = await _hashing(verify_password, stored or unusable_hash(), password)
        if row is None:
            return PasswordCheck(None, "unknown")
        if stored is None:
            return PasswordCheck(None, "no_password")
        if not verdict.matches:
            return PasswordCheck(None, "wrong_password")
        if row["disabled_at"] is not None:
            return PasswordCheck(None, "disabled")
        if verdict.needs_rehash:
            await self._rehash(row["id"], stored, password)
        actor = Actor(name=row["name"], role=row["role"], auth="session", user_id=row["id"])
        return PasswordCheck(actor)

    async def _rehash(self, user_id: int, stored: str, password: str) -> None:
        """Store the password's hash with the current parameters, unless it was changed
        meanwhile. Not audited: the password is the same."""
        hashed = await _hashing(hash_password, password)
        await self.pool.execute(
            "UPDATE mendline.users SET password_hash = $3 WHERE id = $1 AND password_hash = $2",
            user_id,
            stored,
            hashed,
        )

    async def create_token(
        self,
        actor: Actor,
        user: str,
        role: Role | None = None,
        name: str = "",
        expires_at: datetime | None = None,
    ) -> tuple[str, TokenInfo]:
        """A new token of ``user`` with ``role`` (default: the user's), at most the user's
        role: (the token, to show once and never again; what is stored of it)."""
        authorize(actor, "token.create")
        async with self._changing() as conn:
            owner = await self._user(conn, user, lock=True)
            if owner.disabled_at is not None:
                raise PermissionDenied(
                    f"{user} is disabled: no new tokens", action="token.create", needed=None
                )
            role = role or owner.role
            check_token_role(role, owner.role)
            for _ in range(_ID_ATTEMPTS):  # the visible id has 32 bits: it may be taken
                token, token_id, secret_hash = new_token()
                made = await conn.fetchval(
                    """INSERT INTO mendline.api_tokens
                           (token_id, secret_hash, user_id, role, name, created_by, expires_at)
                       VALUES ($1, $2, $3, $4, $5, $6, $7)
                       ON CONFLICT (token_id) DO NOTHING RETURNING id""",
                    token_id,
                    secret_hash,
                    owner.id,
                    role,
                    name,
                    actor.name,
                    expires_at,
                )
                if made is not None:
                    break
            else:
                raise RejectedData("no free token id; try again", sqlstate="23505")
            after = {
                "user": user,
                "role": role,
                "name": name,
                "expires_at": expires_at.isoformat() if expires_at else None,
            }
            await self._record(conn, actor, "token.create", f"token:{token_id}", None, after)
            info = await self._token(conn, token_id)
        return token, info

    async def list_tokens(self, user: str | None = None) -> list[TokenInfo]:
        """The tokens (of one user, or all), newest first; never a secret."""
        rows = await self.pool.fetch(
            f"""SELECT {_TOKEN_COLUMNS} FROM mendline.api_tokens t
                JOIN mendline.users u ON u.id = t.user_id
                WHERE $1::text IS NULL OR u.name = $1
                ORDER BY t.created_at DESC, t.id DESC""",
            user,
        )
        return [TokenInfo(**dict(row)) for row in rows]

    async def revoke_token(self, actor: Actor, token_id: str) -> TokenInfo:
        """Revoke a token: an admin any, a user their own. Revoking a revoked token
        changes nothing (and writes no audit row)."""
        async with self._changing() as conn:
            before = await self._token(conn, token_id, lock=True)
            own = actor.user_id is not None and actor.user_id == before.user_id
            authorize(actor, "token.revoke_own" if own else "token.revoke")
            if before.revoked_at is not None:
                return before
            await conn.execute(
                "UPDATE mendline.api_tokens SET revoked_at = now() WHERE token_id = $1",
                token_id,
            )
            await self._record(
                conn,
                actor,
                "token.revoke",
                f"token:{token_id}",
                {"revoked": False},
                {"revoked": True},
            )
            return await self._token(conn, token_id)

    async def authenticate(self, token: str) -> Actor:
        """The actor a token speaks for, with the lower of its role and its user's; else
        AuthenticationFailed with the reason (malformed, unknown, revoked, expired,
        disabled). Marks the token used (at most once a minute)."""
        parsed = parse_token(token)
        row = await self.pool.fetchrow(
            """SELECT t.id, t.secret_hash, t.role, t.expires_at, t.revoked_at, u.id AS user_id,
                      u.name, u.role AS user_role, u.disabled_at, now() AS now
               FROM mendline.api_tokens t JOIN mendline.users u ON u.id = t.user_id
               WHERE t.token_id = $1""",
            parsed.token_id,
        )
        matches = hmac.compare_digest(parsed.secret_hash, row["secret_hash"] if row else _NO_HASH)
        if row is None or not matches:
            raise AuthenticationFailed(
                "unknown",
                "the token is not known (or not whole)",
                hint="ask an admin for one: `mendline tokens create`",
            )
        refusal = token_refusal(
            now=row["now"],
            expires_at=row["expires_at"],
            revoked_at=row["revoked_at"],
            user_disabled_at=row["disabled_at"],
        )
        if refusal is not None:
            raise refusal
        # Written at most once a minute per token: one write a minute, not one a call.
        await self.pool.execute(
            """UPDATE mendline.api_tokens SET last_used_at = now() WHERE id = $1
                AND (last_used_at IS NULL OR last_used_at < now() - interval '60 seconds')""",
            row["id"],
        )
        return Actor(
            name=row["name"],
            role=lower_role(row["role"], row["user_role"]),
            auth="token",
            user_id=row["user_id"],
            token_id=parsed.token_id,
        )

    async def _active_admins(self, conn: _Conn) -> list[str]:
        """The active admins' names, their rows locked until the transaction ends: two
        changes that would each leave one admin take turns, and the second sees the first's
        (locked before the changed user's row, always in one order, so they cannot deadlock)."""
        rows = await conn.fetch(
            """SELECT name FROM mendline.users WHERE role = 'admin' AND disabled_at IS NULL
               ORDER BY id FOR UPDATE"""
        )
        return [row["name"] for row in rows]

    async def _user(self, conn: _Conn, name: str, *, lock: bool = False) -> User:
        row = await conn.fetchrow(
            f"SELECT {_USER_COLUMNS} FROM mendline.users WHERE name = $1"
            + (" FOR UPDATE" if lock else ""),
            name,
        )
        if row is None:
            raise UserNotFound(f"there is no user {name!r}", hint=_USERS_HINT)
        return User(**dict(row))

    async def _token(self, conn: _Conn, token_id: str, *, lock: bool = False) -> TokenInfo:
        row = await conn.fetchrow(
            f"""SELECT {_TOKEN_COLUMNS} FROM mendline.api_tokens t
                JOIN mendline.users u ON u.id = t.user_id WHERE t.token_id = $1"""
            + (" FOR UPDATE OF t" if lock else ""),
            token_id,
        )
        if row is None:
            raise TokenNotFound(f"there is no token {token_id!r}", hint=_TOKENS_HINT)
        return TokenInfo(**dict(row))


async def _hashing(work: Callable[..., _T], *args: str) -> _T:
    """``work(*args)`` (an argon2 hash or verification) in a thread, at most ``_HASHING`` at
    once: the event loop keeps serving meanwhile."""

    def bounded() -> _T:
        with _HASHING:
            return work(*args)

    return await asyncio.to_thread(bounded)
