"""What every handler shares: the dashboard's dependencies on the app, who is asking (set by
the auth middleware), the role check every action goes through, where an action comes from
for the audit trail, and rendering a template with what the layout needs."""

from __future__ import annotations

import dataclasses
import enum
import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg
import jinja2
from aiohttp import web
from pydantic import BaseModel

from mendline.analyzers.policy import allowed, authorize
from mendline.schemas.errors import AuthenticationFailed, PermissionDenied, UsageError
from mendline.schemas.people import Actor
from mendline.schemas.settings import Settings
from mendline.sinks.postgres import AuditWriter, append_audit

__all__ = [
    "ACTOR",
    "CLIENT",
    "CSRF_TOKEN",
    "DEPS",
    "TEMPLATES",
    "WebDeps",
    "actor_of",
    "api_json",
    "client_address",
    "deps",
    "is_htmx",
    "is_whole",
    "may",
    "origin",
    "params",
    "render",
    "render_fragment",
    "require",
]


@dataclass
class WebDeps:
    """What the dashboard runs on: the settings, one pool of the migrated database (shared by
    every handler; stores are made per request on it, with the request's origin), and the
    writer of audit rows. ``extras`` holds what a part of the dashboard keeps for the app's
    life (the live hub), by its own key."""

    settings: Settings
    pool: asyncpg.Pool
    audit: AuditWriter = append_audit
    extras: dict[str, Any] = field(default_factory=dict)


DEPS = web.AppKey("deps", WebDeps)
TEMPLATES = web.AppKey("templates", jinja2.Environment)
#: The request's actor (``Actor``), or None when nobody is logged in; set by the auth
#: middleware before any handler runs.
ACTOR: web.RequestKey[Actor | None] = web.RequestKey("actor")
#: The session's CSRF token (str) when the request came with a session cookie, else None.
CSRF_TOKEN: web.RequestKey[str | None] = web.RequestKey("csrf")
#: The client's address as the auth middleware worked it out (forwarded headers believed only
#: from ``web_forwarded_allow``).
CLIENT: web.RequestKey[str] = web.RequestKey("client")


def deps(request: web.Request) -> WebDeps:
    """The dashboard's dependencies."""
    return request.app[DEPS]


def actor_of(request: web.Request) -> Actor:
    """Who is asking; AuthenticationFailed when nobody is logged in (the middleware answers
    401 for the API and sends a page to the login form)."""
    actor: Actor | None = request.get(ACTOR)
    if actor is None:
        raise AuthenticationFailed("missing", "log in first")
    return actor


def may(request: web.Request, action: str) -> bool:
    """Whether the one asking may do ``action`` now: their role allows it and, for a change,
    the dashboard is not read-only. Templates use it to leave out buttons; handlers still call
    ``require``."""
    actor: Actor | None = request.get(ACTOR)
    if actor is None or not allowed(actor, action):
        return False
    return not (_is_change(action) and deps(request).settings.web_read_only)


def require(request: web.Request, action: str) -> Actor:
    """The actor, when they may do ``action``; else PermissionDenied (answered 403). The
    stores check the role again in their transaction: this answers early, and refuses every
    change when the dashboard is read-only."""
    actor = actor_of(request)
    if _is_change(action) and deps(request).settings.web_read_only:
        raise PermissionDenied(
            "the dashboard is read-only (MENDLINE_WEB_READ_ONLY)", action=action, needed=None
        )
    authorize(actor, action)
    return actor


def client_address(request: web.Request) -> str:
    """The client's address (as the auth middleware worked it out)."""
    return str(request.get(CLIENT) or request.remote or "unknown")


def origin(request: web.Request) -> str:
    """Where a change comes from, for its audit row: ``web@<client address>``."""
    return f"web@{client_address(request)}"


def _is_change(action: str) -> bool:
    return not action.endswith((".read", ".list"))


def render(
    request: web.Request, template: str, context: dict[str, Any], *, status: int = 200
) -> web.Response:
    """``template`` rendered with ``context`` and what the layout needs (the actor, the CSRF
    token, ``may``, the read-only flag, the page's path), as an HTML response that is never
    cached."""
    body = _template(request, template).render(_layout(request) | context)
    return _html(body, status)


def render_fragment(
    request: web.Request, template: str, block: str, context: dict[str, Any]
) -> web.Response:
    """One block of ``template`` (what a live update or an htmx request swaps in), rendered
    with the same context as the whole page."""
    tpl = _template(request, template)
    ctx = tpl.new_context(_layout(request) | context)
    body = "".join(tpl.blocks[block](ctx))
    return _html(body, 200)


def _template(request: web.Request, name: str) -> jinja2.Template:
    return request.app[TEMPLATES].get_template(name)


def _layout(request: web.Request) -> dict[str, Any]:
    return {
        "actor": request.get(ACTOR),
        "csrf_token": request.get(CSRF_TOKEN) or "",
        "may": lambda action: may(request, action),
        "read_only": deps(request).settings.web_read_only,
        "path": request.path,
        "query": request.query,
    }


def _html(body: str, status: int) -> web.Response:
    return web.Response(
        text=body,
        status=status,
        content_type="text/html",
        headers={"Cache-Control": "no-store"},
    )


def api_json(data: Any, *, status: int = 200) -> web.Response:
    """``data`` as the JSON API answers it: datetimes in ISO 8601, dataclasses and pydantic
    models as objects, enums as their values, never cached."""
    return web.Response(
        text=json.dumps(data, default=_jsonable, ensure_ascii=False),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


async def params(request: web.Request) -> dict[str, Any]:
    """An action's parameters: the JSON object of an API call, or a form's fields (the last
    value of each; ``csrf_token`` left out). UsageError when a JSON body is not an object."""
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except (ValueError, RecursionError):  # RecursionError: nested too deep to read
            raise UsageError("the body is not JSON") from None
        if not isinstance(body, dict):
            raise UsageError("send a JSON object")
        return body
    form = await request.post()
    return {name: form.getall(name)[-1] for name in form if name != "csrf_token"}


def is_htmx(request: web.Request) -> bool:
    """Whether htmx sent the request (it swaps the answer into the page)."""
    return request.headers.get("HX-Request") == "true"


def is_whole(text: str, longest: int = 18) -> bool:
    """Whether ``text`` is a whole number of at most ``longest`` ASCII digits (``str.isdigit``
    also takes "²" and other digits ``int`` refuses, and ``int`` refuses very long ones)."""
    return 0 < len(text) <= longest and text.isascii() and text.isdigit()
