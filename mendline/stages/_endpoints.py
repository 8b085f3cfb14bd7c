"""``/healthz``, ``/readyz`` and ``/metrics`` of a long-running command, on
``metrics_host:metrics_port`` when the port is set."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from mendline.schemas.errors import cannot_listen
from mendline.schemas.settings import Settings
from mendline.stages._metrics import CONTENT_TYPE
from mendline.stages._telemetry import Telemetry

__all__ = ["endpoints_app", "serving_endpoints"]

_TELEMETRY = web.AppKey("telemetry", Telemetry)


def endpoints_app(telemetry: Telemetry) -> web.Application:
    """The web app answering the three endpoints from ``telemetry``."""
    app = web.Application()
    app[_TELEMETRY] = telemetry
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    return app


async def _healthz(request: web.Request) -> web.Response:
    # Answered at all: the event loop runs.
    return web.Response(text="ok\n")


async def _readyz(request: web.Request) -> web.Response:
    telemetry = request.app[_TELEMETRY]
    stages = {name: reason or "ready" for name, reason in telemetry.readiness().items()}
    ready = telemetry.ready()
    return web.json_response({"ready": ready, "stages": stages}, status=200 if ready else 503)


async def _metrics(request: web.Request) -> web.Response:
    body = request.app[_TELEMETRY].metrics.render()
    return web.Response(body=body.encode(), headers={"Content-Type": CONTENT_TYPE})


@asynccontextmanager
async def serving_endpoints(settings: Settings, telemetry: Telemetry) -> AsyncIterator[None]:
    """Serve the endpoints for the block when ``metrics_port`` is set (else do nothing);
    ConfigError, with a hint, when the address cannot be listened on."""
    if settings.metrics_port is None:
        yield
        return
    host, port = settings.metrics_host, settings.metrics_port
    runner = web.AppRunner(endpoints_app(telemetry), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise cannot_listen("/metrics", host, port, exc, "METRICS") from None
    try:
        yield
    finally:
        await runner.cleanup()
