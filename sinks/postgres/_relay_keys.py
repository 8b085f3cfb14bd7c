"""The relay's keys (``mendline keys``): the public keys of Sentry DSNs, each speaking for one
service. Every change authorizes its actor, changes and writes its audit row in one
transaction; the relay reads the keys in force."""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg

from mendline.analyzers.policy.people import authorize
from mendline.schemas.errors import ConfigError, RelayKeyNotFound
from mendline.schemas.people import Actor
from mendline.schemas.relay import RelayKey
from mendline.sinks.postgres._audit import AuditedStore
from mendline.sinks.postgres._errors import translating

if TYPE_CHECKING:
    _Conn = asyncpg.Connection[Any] | asyncpg.pool.PoolConnectionProxy[Any]

__all__ = ["RelayKeyStore", "check_origin_pattern"]

_KEYS_HINT = "`mendline keys list` shows the keys, their ids and public keys"
_COLUMNS = """id, public_key, project_id, service, environment, label, allowed_origins,
    rate_limit, created_at, created_by, revoked_at, rotated_to"""
# An allowed origin: "*", a scheme and host ("https://shop.example.com", a port allowed), or
# a host pattern with one leading wildcard label ("*.example.com").
_ORIGIN = re.compile(r"\*|(?:https?://)?(?:\*\.)?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?::\d{1,5})?")


def check_origin_pattern(text: str) -> str:
    """An allowed origin as stored (lowercase); ConfigError when it is not one."""
    if not _ORIGIN.fullmatch(text):
        raise ConfigError(
            f"{text[:100]!r} is not an origin: give *, a host (shop.example.com), a scheme and"
            " host (https://shop.example.com:8443) or *.example.com"
        )
    return text.lower()


@translating
class RelayKeyStore(AuditedStore):
    """The relay's keys. Refusals come out as PermissionDenied, NotFound or ConfigError;
    database failures as DatabaseUnavailable or RejectedData."""

    async def create_key(
        self,
        actor: Actor,
        service: str,
        environment: str,
        *,
        label: str = "",
        origins: tuple[str, ...] = ("*",),
        rate_limit: int | None = None,
    ) -> RelayKey:
        """A new key for ``service``, its events' environment ``environment`` unless they
        name one."""
        authorize(actor, "relay_key.create")
        _check_names(service, environment, label)
        allowed = tuple(check_origin_pattern(o) for o in origins)
        async with self._changing() as conn:
            key_id = await self._insert(
                conn, actor, service, environment, label, allowed, rate_limit
            )
            await conn.execute(
                "UPDATE mendline.relay_keys SET project_id = id WHERE id = $1", key_id
            )
            key = await self._key(conn, str(key_id))
            await self._record(conn, actor, "relay_key.create", _target(key), None, _shown(key))
        return key

    async def list_keys(self, *, all_keys: bool = False) -> list[RelayKey]:
        """The keys in force (with ``all_keys``, revoked ones too), oldest first."""
        rows = await self.pool.fetch(
            f"""SELECT {_COLUMNS} FROM mendline.relay_keys
                WHERE $1 OR revoked_at IS NULL OR revoked_at > now() ORDER BY id""",
            all_keys,
        )
        return [_key(row) for row in rows]

    async def keys_for_relay(self) -> list[RelayKey]:
        """Every key, revoked ones too: the relay takes events with those in force, and
        answers those revoked as such."""
        return await self.list_keys(all_keys=True)

    async def revoke_key(self, actor: Actor, ref: str) -> RelayKey:
        """Revoke a key (by its id or public key) now. Revoking a revoked key changes nothing
        (and writes no audit row); a key in its grace after a rotation is revoked now."""
        authorize(actor, "relay_key.revoke")
        async with self._changing() as conn:
            before = await self._key(conn, ref, lock=True)
            if before.revoked_at is not None and not before.in_force(await _now(conn)):
                return before
            await conn.execute(
                "UPDATE mendline.relay_keys SET revoked_at = now() WHERE id = $1", before.id
            )
            after = await self._key(conn, str(before.id))
            await self._record(
                conn,
                actor,
                "relay_key.revoke",
                _target(before),
                {"revoked_at": _when(before.revoked_at)},
                {"revoked_at": _when(after.revoked_at)},
            )
        return after

    async def rotate_key(
        self, actor: Actor, ref: str, grace: timedelta
    ) -> tuple[RelayKey, RelayKey]:
        """A new key in place of ``ref`` (same service, environment, project, origins and
        limit); the old one is refused once ``grace`` has passed. (new key, old key)."""
        authorize(actor, "relay_key.rotate")
        async with self._changing() as conn:
            old = await self._key(conn, ref, lock=True)
            now = await _now(conn)
            if not old.in_force(now):
                raise ConfigError(
                    f"relay key {old.id} is revoked: create a new one with `mendline keys create`"
                )
            if old.rotated_to is not None:
                raise ConfigError(
                    f"relay key {old.id} was rotated already: rotate key {old.rotated_to}"
                )
            new_id = await self._insert(
                conn,
                actor,
                old.service,
                old.environment,
                old.label,
                old.allowed_origins,
                old.rate_limit,
                project_id=old.project_id,
            )
            ends = now + grace
            if old.revoked_at is not None:
                ends = min(ends, old.revoked_at)
            await conn.execute(
                "UPDATE mendline.relay_keys SET revoked_at = $2, rotated_to = $3 WHERE id = $1",
                old.id,
                ends,
                new_id,
            )
            new, retired = await self._key(conn, str(new_id)), await self._key(conn, str(old.id))
            await self._record(
                conn,
                actor,
                "relay_key.rotate",
                _target(old),
                {"revoked_at": _when(old.revoked_at)},
                {"revoked_at": _when(retired.revoked_at), "rotated_to": _shown(new)},
            )
        return new, retired

    async def _insert(
        self,
        conn: _Conn,
        actor: Actor,
        service: str,
        environment: str,
        label: str,
        origins: tuple[str, ...],
        rate_limit: int | None,
        *,
        project_id: int = 0,
    ) -> int:
        if rate_limit is not None and rate_limit < 0:
            raise ConfigError("a rate limit is 0 (none) or more events a minute")
        key_id: int = await conn.fetchval(
            """INSERT INTO mendline.relay_keys (public_key, project_id, service, environment,
                   label, allowed_origins, rate_limit, created_by)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id""",
            secrets.token_hex(16),
            project_id,
            service,
            environment,
            label,
            list(origins),
            rate_limit,
            actor.name,
        )
        return key_id

    async def _key(self, conn: _Conn, ref: str, *, lock: bool = False) -> RelayKey:
        by_id = ref.isdigit() and len(ref) < 19
        row = await conn.fetchrow(
            f"""SELECT {_COLUMNS} FROM mendline.relay_keys
                WHERE {"id = $1::bigint" if by_id else "public_key = $1"}
                {"FOR UPDATE" if lock else ""}""",
            int(ref) if by_id else ref.lower(),
        )
        if row is None:
            raise RelayKeyNotFound(f"there is no relay key {ref[:40]!r}", hint=_KEYS_HINT)
        return _key(row)


def _check_names(service: str, environment: str, label: str) -> None:
    for what, text, low in (("service", service, 1), ("environment", environment, 1)):
        if not low <= len(text) <= 200 or not text.strip():
            raise ConfigError(f"a {what} is 1 to 200 characters, not {text[:40]!r}")
    if len(label) > 200:
        raise ConfigError("a label is at most 200 characters")


async def _now(conn: _Conn) -> datetime:
    moment: datetime = await conn.fetchval("SELECT now()")
    return moment


def _key(row: asyncpg.Record) -> RelayKey:
    values = dict(row)
    values["allowed_origins"] = tuple(values["allowed_origins"])
    return RelayKey(**values)


def _target(key: RelayKey) -> str:
    return f"relay_key:{key.id}"


def _shown(key: RelayKey) -> dict[str, Any]:
    return {
        "public_key": key.public_key,
        "project_id": key.project_id,
        "service": key.service,
        "environment": key.environment,
        "label": key.label,
        "allowed_origins": list(key.allowed_origins),
        "rate_limit": key.rate_limit,
    }


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
