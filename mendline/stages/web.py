"""The web stage: the dashboard served on ``web_host:web_port`` (``mendline web``, and a stage
of ``mendline run``), on a pool of the migrated database."""

from __future__ import annotations

import asyncio
import ipaddress
import logging

from mendline.schemas.settings import Settings
from mendline.sinks.postgres import migrated_pool
from mendline.stages._telemetry import StageContext
from mendline.stages._waiting import connect_patiently

__all__ = ["POOL_SIZE", "STATEMENT_TIMEOUT", "exposed", "run"]

log = logging.getLogger("mendline.web")

#: Connections the dashboard's pages and API share.
POOL_SIZE = 8
#: Seconds a statement of the dashboard may run (PostgreSQL's statement_timeout): a slow
#: search ends as a 503 instead of holding one of the pool's connections for long.
STATEMENT_TIMEOUT = 15.0


def exposed(settings: Settings) -> bool:
    """Whether the dashboard would be reachable from other machines over plain HTTP: it
    listens on an address that is not loopback, and ``web_public_url`` is not https (a
    proxy in front that terminates TLS says so there)."""
    public = settings.web_public_url or ""
    if public.startswith("https://"):
        return False
    host = settings.web_host.strip("[]")
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: whatever it resolves to may be reachable
        return True


async def run(settings: Settings, stop: asyncio.Event, context: StageContext) -> None:
    """Serve the dashboard until ``stop``; its streams are ended and its requests finished
    first. Waits out a database that is not up yet; ready while it serves and its live
    updates listen."""
    from mendline.web import WebDeps, build_app, readiness, serving_web

    if exposed(settings):
        log.warning(
            "mendline: the dashboard listens on %s without TLS: its logins and session cookies"
            " cross the network in clear; serve it behind a proxy with https (and set"
            " MENDLINE_WEB_PUBLIC_URL to its https address), or on 127.0.0.1",
            settings.web_host,
        )
    context.not_ready("connecting to PostgreSQL")
    url = settings.database_url.get_secret_value()
    pool = await connect_patiently(
        lambda: migrated_pool(
            url,
            POOL_SIZE,
            command_timeout=STATEMENT_TIMEOUT + 5,
            # UTC: the pages bucket counts by hour with date_trunc, which uses the session zone.
            server_settings={
                "statement_timeout": str(int(STATEMENT_TIMEOUT * 1000)),
                "timezone": "UTC",
            },
        ),
        stop,
    )
    if pool is None:
        return
    try:
        app = build_app(WebDeps(settings=settings, pool=pool))
        async with serving_web(app, settings.web_host, settings.web_port) as served:
            log.info("mendline: dashboard at %s/", served)
            context.ready_when(lambda: readiness(app))
            await stop.wait()
            context.not_ready("stopping")
    finally:
        await pool.close()
