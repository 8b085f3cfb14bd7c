"""The dashboard served for a test: a fresh migrated database, one user of each role with an
API token, the app on a loopback port, and httpx clients that act as each role."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from mendline.schemas.people import ROLES, SYSTEM_ACTOR, Role
from mendline.schemas.settings import Settings, load_settings
from mendline.sinks.postgres import PeopleStore, append_audit, migrated_pool
from mendline.web import WebDeps, build_app, serving_web

#: The user of each role the served dashboard has (their names are their roles).
USERS: dict[Role, str] = {role: role for role in ROLES}


@dataclass
class ServedWeb:
    """The dashboard being served: its URL, its database's URL and pool, the settings it
    runs with, and an API token of each role's user."""

    url: str
    database_url: str
    pool: asyncpg.Pool
    settings: Settings
    tokens: dict[Role, str] = field(default_factory=dict)

    def client(self, role: Role | None = None, **options: Any) -> httpx.AsyncClient:
        """An httpx client of the dashboard acting as ``role``'s user by its API token
        (None: nobody); redirects are not followed."""
        headers = dict(options.pop("headers", {}))
        if role is not None:
            headers["Authorization"] = f"Bearer {self.tokens[role]}"
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10, **options)


@asynccontextmanager
async def served_web(database_url: str, **settings: Any) -> AsyncIterator[ServedWeb]:
    """The dashboard on ``database_url`` (migrated here), served on 127.0.0.1 at a free port
    with ``settings`` over the defaults, with one user per role and a token of each."""
    config = load_settings(database_url=database_url, **settings)
    pool = await migrated_pool(database_url, 4)
    try:
        people = PeopleStore(pool, append_audit, origin="test")
        tokens: dict[Role, str] = {}
        for role, name in USERS.items():
            await people.add_user(SYSTEM_ACTOR, name, role)
            tokens[role], _ = await people.create_token(SYSTEM_ACTOR, name)
        app = build_app(WebDeps(settings=config, pool=pool))
        async with serving_web(app, "127.0.0.1", 0) as url:
            yield ServedWeb(url, database_url, pool, config, tokens)
    finally:
        await pool.close()
