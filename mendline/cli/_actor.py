"""Who the commands act as: the user of ``MENDLINE_TOKEN``, or, with direct database access
and no token, the local OS user with the role ``MENDLINE_LOCAL_ROLE`` gives it."""

from __future__ import annotations

import asyncio
import os
import pwd
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from mendline.schemas.errors import AuthenticationFailed
from mendline.schemas.people import ROLES, Actor
from mendline.schemas.settings import Settings

if TYPE_CHECKING:
    from mendline.sinks.postgres import AuditWriter, PeopleStore

__all__ = [
    "acting",
    "audit_writer",
    "cli_origin",
    "local_user_name",
    "people_store",
    "resolve_actor",
]

_T = TypeVar("_T")

_LOCAL_OFF_HINT = (
    "set MENDLINE_TOKEN to a token from `mendline tokens create`, or MENDLINE_LOCAL_ROLE"
    " where direct database access may act"
)


def local_user_name() -> str:
    """The local OS user's name, from the password database by the effective uid (not
    ``LOGNAME`` or ``USER``, which anyone can set); ``uid:N`` when the uid has no entry."""
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name[:200] or f"uid:{uid}"
    except KeyError:
        return f"uid:{uid}"


def cli_origin() -> str:
    """Where the command line's changes come from, on their audit rows: ``cli@HOST``."""
    return f"cli@{socket.gethostname()}"[:300]


def audit_writer() -> AuditWriter:
    """What writes the commands' audit rows: the audit trail's ``append_audit``."""
    from mendline.sinks.postgres import append_audit

    writer: AuditWriter = append_audit
    return writer


async def people_store(settings: Settings) -> PeopleStore:
    """The people store on a pool, once the database is known to be there and migrated."""
    import asyncpg

    from mendline.cli._connections import connect_database
    from mendline.sinks.postgres import PeopleStore

    conn = await connect_database(settings)  # a clear error when unreachable or not migrated
    await conn.close()
    pool = await asyncpg.create_pool(
        settings.database_url.get_secret_value(), min_size=1, max_size=2
    )
    return PeopleStore(pool, audit_writer(), cli_origin())


async def resolve_actor(settings: Settings, store: PeopleStore) -> Actor:
    """The token's user when ``MENDLINE_TOKEN`` is set (AuthenticationFailed when it cannot
    act); else the local OS user with ``local_role`` (AuthenticationFailed when ``none``)."""
    if settings.token is not None:
        return await store.authenticate(settings.token.get_secret_value())
    if settings.local_role == "none":
        raise AuthenticationFailed(
            "local_off",
            "acting as the local OS user is off (MENDLINE_LOCAL_ROLE=none)",
            hint=_LOCAL_OFF_HINT,
        )
    role = ROLES[ROLES.index(settings.local_role)]  # "none" is handled above
    return Actor(name=local_user_name(), role=role, auth="local")


def acting(settings: Settings, work: Callable[[PeopleStore, Actor], Awaitable[_T]]) -> _T:
    """``work(store, actor)`` with the actor the settings say, the people store (whose pool
    other audited stores may share) closed after."""

    async def go() -> _T:
        store = await people_store(settings)
        try:
            return await work(store, await resolve_actor(settings, store))
        finally:
            await store.close()

    return asyncio.run(go())
