"""Who is asking: API tokens as ``Authorization: Bearer`` (accepted on every route; a token
is no ambient credential, so it needs no CSRF token). Dashboard sessions, the login form,
CSRF checks, trusted-proxy login and the login rate limits come next."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from mendline.schemas.errors import AuthenticationFailed
from mendline.schemas.people import Actor
from mendline.sinks.postgres import PeopleStore
from mendline.web._context import ACTOR, CLIENT, CSRF_TOKEN, deps

__all__ = ["auth_middleware", "routes"]

routes = web.RouteTableDef()

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def auth_middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Tell who is asking before any handler runs (``ACTOR``: an Actor or None)."""
    request[CLIENT] = request.remote or "unknown"
    request[CSRF_TOKEN] = None
    request[ACTOR] = await _identify(request)
    return await handler(request)


async def _identify(request: web.Request) -> Actor | None:
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        people = PeopleStore(deps(request).pool, deps(request).audit)
        return await people.authenticate(credentials.strip())
    if header:
        raise AuthenticationFailed("malformed", "send the API token as `Authorization: Bearer`")
    return None
