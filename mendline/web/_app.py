"""The dashboard's web app: its middlewares (security headers, errors answered as pages or
JSON, who is asking), the templates, the vendored static files, every part's routes, and
serving it on ``web_host:web_port``."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
from aiohttp import web

from mendline.schemas.errors import (
    AuthenticationFailed,
    ConfigError,
    DatabaseUnavailable,
    IllegalTransition,
    InvalidPatch,
    MendlineError,
    NotFound,
    PatchRefused,
    PermissionDenied,
    RejectedData,
    UsageError,
    cannot_listen,
)
from mendline.web import (
    _admin,
    _alerts,
    _audit,
    _auth,
    _fixes,
    _health,
    _issues,
    _live,
    _overview,
    _review,
)
from mendline.web._charts import bar_chart, line_chart, sparkline, uptime_bars
from mendline.web._context import DEPS, TEMPLATES, WebDeps, is_htmx, render

__all__ = [
    "API_PREFIX",
    "REQUEST_DEADLINE",
    "STATIC_DIR",
    "TEMPLATE_DIR",
    "build_app",
    "serving_web",
]

log = logging.getLogger("mendline.web")

TEMPLATE_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
#: Every JSON endpoint is under it; errors there are answered as JSON.
API_PREFIX = "/api/"

#: Each part of the dashboard: a module with ``routes`` (an aiohttp RouteTableDef).
_PARTS = (_auth, _overview, _issues, _fixes, _health, _alerts, _audit, _admin, _review, _live)

# No inline script or style may run: every script is a vendored file of ours.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none';"
    " form-action 'self'; frame-ancestors 'none'"
)
_SECURITY_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Seconds a request may take (the live stream aside): a database that stopped answering
#: makes a 503 then, instead of a page that waits for the driver's own timeouts.
REQUEST_DEADLINE = 20.0
_LIVE_PATH = "/live"
_UNAVAILABLE = "the database is not available now; try again in a moment"
_BROKEN = "something went wrong here; the log says what"


def build_app(web_deps: WebDeps) -> web.Application:
    """The dashboard's app on ``web_deps`` (nothing is started: the caller runs it)."""
    app = web.Application(
        middlewares=[_headers_middleware, _errors_middleware, _auth.auth_middleware],
        client_max_size=1024 * 1024,
    )
    app[DEPS] = web_deps
    app[TEMPLATES] = templates()
    for part in _PARTS:
        app.router.add_routes(part.routes)
    static = app.router.add_static("/static", STATIC_DIR, name="static", append_version=True)
    app[TEMPLATES].globals["static"] = lambda name: str(static.url_for(filename=name))
    app.router.add_get("/healthz", _healthz)
    for part in _PARTS:
        setup = getattr(part, "setup", None)
        if setup is not None:
            setup(app)  # a part that keeps something for the app's life (the live hub)
    return app


def templates() -> jinja2.Environment:
    """The Jinja2 environment of the dashboard's templates: autoescaped, undefined names an
    error, the charts and time helpers as globals and filters."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        sparkline=sparkline, line_chart=line_chart, bar_chart=bar_chart, uptime_bars=uptime_bars
    )
    env.filters.update(ago=ago, iso=iso, number=number, percent=percent)
    return env


def ago(when: datetime | None, now: datetime | None = None) -> str:
    """``when`` as people read it in a list: "12s ago", "5m ago", "3h ago", "4d ago"."""
    if when is None:
        return "never"
    seconds = ((now or datetime.now(UTC)) - when).total_seconds()
    suffix = "ago" if seconds >= 0 else "from now"
    seconds = abs(seconds)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} {suffix}"
    return f"{int(seconds)}s {suffix}"


def iso(when: datetime | None) -> str:
    """``when`` in ISO 8601, UTC, to the second (``<time datetime>`` and titles)."""
    if when is None:
        return ""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def number(value: float | int | None) -> str:
    """A count with thousands separators; an em dash for no value."""
    if value is None:
        return "\u2014"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"


def percent(value: float | None, digits: int = 1) -> str:
    """A ratio 0..1 as a percentage; an em dash for no value."""
    if value is None:
        return "\u2014"
    return f"{value * 100:.{digits}f} %"


@web.middleware
async def _headers_middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """The security headers on every answer, and ``Server-Timing: app;dur=<ms>`` (the time
    the handler took, as browsers' developer tools and bench/web.py read it)."""
    started = time.perf_counter()
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(_SECURITY_HEADERS)
        raise
    for name, value in _SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if not response.prepared:  # a stream (live updates) has sent its headers already
        elapsed = (time.perf_counter() - started) * 1000
        response.headers["Server-Timing"] = f"app;dur={elapsed:.1f}"
    return response


@web.middleware
async def _errors_middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """What went wrong answered as what the caller reads: JSON under /api/, else a page
    (a page that needs a login sends the browser to the login form)."""
    try:
        if _no_deadline(request):  # a stream, or a whole walk of the audit chain
            return await handler(request)
        async with asyncio.timeout(REQUEST_DEADLINE):
            return await handler(request)
    except web.HTTPException:
        raise
    except TimeoutError:  # a database that stopped answering: no page waits for minutes
        log.warning(
            "mendline: %s %s took over %.0f s", request.method, request.path, REQUEST_DEADLINE
        )
        return error_response(
            request, 503, "database_unavailable", "the database did not answer in time"
        )
    except Exception as exc:
        if not isinstance(exc, MendlineError):  # a bug: the log has it, the page says little
            log.exception("mendline: %s %s failed", request.method, request.path)
            return error_response(request, 500, "internal_error", _BROKEN)
        status = _status(exc)
        if status == 401 and is_htmx(request):  # a fragment: the whole page goes to the login
            page = urlsplit(request.headers.get("HX-Current-URL", "/"))
            back = quote((page.path or "/") + (f"?{page.query}" if page.query else ""), safe="")
            response = error_response(request, 401, _code(exc), str(exc), exc.hint)
            response.headers["HX-Redirect"] = f"/login?next={back}"
            return response
        if status == 401 and _page_request(request):
            raise web.HTTPSeeOther(f"/login?next={_quoted_path(request)}") from None
        if status >= 500:  # the detail (a driver's, an address) is for the log, not the page
            log.warning("mendline: %s %s: %s", request.method, request.path, exc)
            shown = (
                _UNAVAILABLE if status == 503 else "something went wrong here; the log says what"
            )
            return error_response(request, status, _code(exc), shown, exc.hint)
        return error_response(request, status, _code(exc), str(exc), exc.hint)


def _no_deadline(request: web.Request) -> bool:
    """Whether a request may take longer than REQUEST_DEADLINE: the live stream (as long as
    the page is open) and a whole walk of the audit chain (about 27 us a row, asked for)."""
    return request.path in (_LIVE_PATH, "/api/v1/audit/verify") or (
        request.path == "/audit" and request.query.get("verify") == "full"
    )


def _page_request(request: web.Request) -> bool:
    """Whether a browser asks for a page (sent to the login form when nobody is logged in):
    not an API call, and not an event stream (``/live``: a redirect to a page is no answer
    an EventSource can read; it gets the 401)."""
    accepts = request.headers.get("Accept", "")
    return (
        request.method == "GET"
        and not request.path.startswith(API_PREFIX)
        and "text/event-stream" not in accepts
    )


def error_response(
    request: web.Request, status: int, code: str, message: str, hint: str | None = None
) -> web.Response:
    """An error as JSON (``{"error": {"code", "message", "hint"}}``) under /api/ and for htmx
    requests' callers, else as a page."""
    headers = {"Retry-After": "5"} if status == 503 else {}
    if request.path.startswith(API_PREFIX) or is_htmx(request):
        body: dict[str, Any] = {"error": {"code": code, "message": message, "hint": hint}}
        return web.json_response(body, status=status, headers=headers)
    response = render(
        request, "error.html", {"status": status, "message": message, "hint": hint}, status=status
    )
    response.headers.update(headers)
    return response


def _status(exc: MendlineError) -> int:
    if isinstance(exc, AuthenticationFailed):
        return 401
    if isinstance(exc, PermissionDenied):
        return 403
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, IllegalTransition):
        return 409
    if isinstance(exc, RejectedData | UsageError | InvalidPatch | PatchRefused | ConfigError):
        return 422 if isinstance(exc, RejectedData) else 400
    if isinstance(exc, DatabaseUnavailable):
        return 503
    return 500


def _code(exc: MendlineError) -> str:
    name = type(exc).__name__
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def _quoted_path(request: web.Request) -> str:
    return quote(request.path_qs, safe="")


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


@asynccontextmanager
async def serving_web(
    app: web.Application,
    host: str,
    port: int,
    what: str = "the dashboard",
    var: str = "WEB",
    *,
    auto_decompress: bool = True,
) -> AsyncIterator[str]:
    """Serve ``app`` on ``host:port`` for the block; yields the URL it is served at (the real
    port when ``port`` is 0). ConfigError, with a hint naming ``MENDLINE_<var>_PORT``, when
    it cannot listen there (``what`` is what would have been served). ``auto_decompress``
    off: request bodies are read as sent (the app decodes them within its own limits)."""
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, auto_decompress=auto_decompress
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise cannot_listen(what, host, port, exc, var) from None
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    shown = f"[{host}]" if ":" in host else host
    try:
        yield f"http://{shown}:{bound}"
    finally:
        await runner.cleanup()
