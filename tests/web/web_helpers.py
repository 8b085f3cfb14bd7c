"""The dashboard served for a test: a fresh migrated database, one user of each role with an
API token and a password, the app on a loopback port, httpx clients that act as each role by
its token, and browser-like clients logged in through the real login form."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from mendline.analyzers.policy import hash_password
from mendline.schemas.people import ROLES, SYSTEM_ACTOR, Role
from mendline.schemas.settings import Settings, load_settings
from mendline.sinks.postgres import PeopleStore, append_audit, migrated_pool
from mendline.web import WebDeps, build_app, serving_web

#: The user of each role the served dashboard has (their names are their roles).
USERS: dict[Role, str] = {role: role for role in ROLES}
#: Each of those users' dashboard password.
PASSWORDS: dict[str, str] = {name: f"{name}-correct-horse-battery" for name in USERS.values()}


@dataclass
class ServedWeb:
    """The dashboard being served: its URL, its database's URL and pool, the settings it
    runs with, and an API token of each role's user."""

    url: str
    database_url: str
    pool: asyncpg.Pool
    settings: Settings
    tokens: dict[Role, str] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=lambda: dict(PASSWORDS))

    def client(self, role: Role | None = None, **options: Any) -> httpx.AsyncClient:
        """An httpx client of the dashboard acting as ``role``'s user by its API token
        (None: nobody); redirects are not followed."""
        headers = dict(options.pop("headers", {}))
        if role is not None:
            headers["Authorization"] = f"Bearer {self.tokens[role]}"
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10, **options)

    def browser(self, **options: Any) -> httpx.AsyncClient:
        """An httpx client like a browser on the dashboard's pages: no token, cookies kept,
        the dashboard's own ``Origin`` on every request (override it in ``headers`` to play
        another site); redirects are not followed."""
        headers = {"Origin": self.url, **options.pop("headers", {})}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10, **options)

    async def login(
        self, client: httpx.AsyncClient, user: str, password: str | None = None, next: str = "/"
    ) -> str:
        """Log ``client`` (a ``browser()``: no token) in as ``user`` (a role's user, with its
        password unless ``password`` is given) through the real login form, and return the
        session's CSRF token: send it as the ``X-CSRF-Token`` header (what htmx does) or the
        ``csrf_token`` form field with every change. Asserts that the login worked."""
        form = {"name": user, "password": self.passwords[user] if password is None else password}
        response = await client.post(
            "/login", data={**form, "next": next}, headers={"Origin": self.url}
        )
        assert response.status_code == 303, (response.status_code, response.text[:300])
        me = await client.get("/api/v1/me")
        assert me.status_code == 200 and me.json()["auth"] == "session", me.text
        token: str = me.json()["csrf_token"]
        return token

    @asynccontextmanager
    async def logged_in(
        self, user: str, password: str | None = None
    ) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
        """A ``browser()`` logged in as ``user`` (see ``login``), and its CSRF token."""
        async with self.browser() as client:
            yield client, await self.login(client, user, password)


@asynccontextmanager
async def served_web(database_url: str, **settings: Any) -> AsyncIterator[ServedWeb]:
    """The dashboard on ``database_url`` (migrated here), served on 127.0.0.1 at a free port
    with ``settings`` over the defaults, with one user per role, a token of each and their
    ``PASSWORDS``."""
    config = load_settings(database_url=database_url, **settings)
    pool = await migrated_pool(database_url, 4)
    try:
        people = PeopleStore(pool, append_audit, origin="test")
        tokens: dict[Role, str] = {}
        for role, name in USERS.items():
            await people.add_user(SYSTEM_ACTOR, name, role)
            tokens[role], _ = await people.create_token(SYSTEM_ACTOR, name)
        # The same argon2id hashes PeopleStore.set_password stores, made once per test run
        # (each takes ~0.1 s; tests/web/test_auth_passwords.py sets them the store's way).
        await pool.executemany(
            """UPDATE mendline.users SET password_hash = $2, password_set_at = now()
               WHERE name = $1""",
            [(name, _password_hash(PASSWORDS[name])) for name in USERS.values()],
        )
        app = build_app(WebDeps(settings=config, pool=pool))
        async with serving_web(app, "127.0.0.1", 0) as url:
            yield ServedWeb(url, database_url, pool, config, tokens)
    finally:
        await pool.close()


@functools.cache
def _password_hash(password: str) -> str:
    return hash_password(password)
