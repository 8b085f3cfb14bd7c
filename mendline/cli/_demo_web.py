"""The demo's dashboard: a port for it (8040 when free), and a demo login (an admin with a
password made for this run) to click through the demo's issues, findings and proposed fix;
and a relay key, whose DSN lets any Sentry SDK send to the demo's pipeline."""

from __future__ import annotations

import errno
import secrets
import socket
from dataclasses import asdict, dataclass

import asyncpg

from mendline.devstack import free_port
from mendline.schemas.people import SYSTEM_ACTOR
from mendline.schemas.settings import Settings
from mendline.sinks.postgres import PeopleStore, RelayKeyStore, append_audit

__all__ = [
    "DEMO_SENTRY_SERVICE",
    "DEMO_USER",
    "DemoDashboard",
    "dashboard_lines",
    "dashboard_port",
    "demo_login",
    "demo_relay_dsn",
]

#: The demo's dashboard user (an admin: it may approve and apply the proposed fix).
DEMO_USER = "demo"
#: The service whose relay key the demo makes: errors sent with its DSN are this service's.
DEMO_SENTRY_SERVICE = "storefront"
_PREFERRED_PORT = 8040
_HOST = "127.0.0.1"


@dataclass(frozen=True)
class DemoDashboard:
    """Where the demo's dashboard is and how to log in to it."""

    url: str
    user: str
    password: str

    def as_json(self) -> dict[str, str]:
        """The dashboard as the demo's --json summary has it."""
        return asdict(self)


def dashboard_port(preferred: int = _PREFERRED_PORT) -> int:
    """``preferred`` when nothing listens there on loopback, else any free port (a real
    dashboard on 8040 keeps its port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((_HOST, preferred))
        except OSError as exc:
            if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                raise
            return free_port(_HOST)
    return preferred


async def demo_login(pool: asyncpg.Pool, port: int) -> DemoDashboard:
    """Add the demo's admin with a password made for this run (the demo's database is its
    own: it refuses one holding mendline data), audited as any user added by mendline."""
    people = PeopleStore(pool, append_audit, origin="demo")
    password = "-".join(secrets.token_urlsafe(6) for _ in range(3))
    await people.add_user(SYSTEM_ACTOR, DEMO_USER, "admin")
    await people.set_password(SYSTEM_ACTOR, DEMO_USER, password)
    return DemoDashboard(url=f"http://{_HOST}:{port}/", user=DEMO_USER, password=password)


def dashboard_lines(dashboard: DemoDashboard) -> list[str]:
    """What the demo says of its dashboard while it runs."""
    return [
        f"  dashboard    {dashboard.url}",
        f"               log in as {dashboard.user}, password {dashboard.password}",
    ]


async def demo_relay_dsn(pool: asyncpg.Pool, settings: Settings) -> str:
    """A relay key for DEMO_SENTRY_SERVICE (audited as any key mendline makes) and its DSN:
    a Sentry SDK given it, in any language, sends its errors to the demo's relay stage."""
    from mendline.ingest.relay import format_dsn

    keys = RelayKeyStore(pool, append_audit, origin="demo")
    key = await keys.create_key(SYSTEM_ACTOR, DEMO_SENTRY_SERVICE, "production", label="demo")
    return format_dsn(settings.relay_url, key.public_key, key.project_id)
