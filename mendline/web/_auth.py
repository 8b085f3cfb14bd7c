"""Who is asking, and the door: API tokens as ``Authorization: Bearer`` (on every route; a
token is no ambient credential, so it needs no CSRF token), a trusted SSO proxy's user header
(only from ``web_auth_proxy_allow``), and dashboard sessions by the ``mendline_session``
cookie; the login form with its back-off, logout, ``/api/v1/me``; and the CSRF checks every
state change by an ambient credential (a cookie, a proxy's header) passes: the dashboard's own
Origin, and for a session its CSRF token."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from aiohttp import web
from aiohttp.hdrs import SET_COOKIE

from mendline.analyzers.policy import (
    PERMISSIONS,
    TrustedProxies,
    csrf_refusal,
    expected_origin,
    forwarded_client,
    forwarded_scheme,
    host_refusal,
    local_path,
    origin_refusal,
    unusable_hash,
)
from mendline.schemas.errors import AuthenticationFailed, PermissionDenied
from mendline.schemas.people import Actor
from mendline.schemas.printable import printable
from mendline.sinks.postgres import PeopleStore, Session, SessionStore
from mendline.web._context import (
    ACTOR,
    CLIENT,
    CSRF_TOKEN,
    DEPS,
    actor_of,
    api_json,
    client_address,
    deps,
    is_htmx,
    may,
    origin,
    params,
    render,
)

__all__ = ["SESSION", "SESSION_COOKIE", "auth_middleware", "routes", "setup", "still_allowed"]

log = logging.getLogger("mendline.web")

routes = web.RouteTableDef()

#: The cookie that holds a dashboard session's secret (the database keeps its SHA-256).
SESSION_COOKIE = "mendline_session"
#: The request's dashboard session (``Session``), when it came with a live session cookie.
SESSION: web.RequestKey[Session | None] = web.RequestKey("session")

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The scheme the client used (a trusted proxy's X-Forwarded-Proto, else the connection's).
_SCHEME: web.RequestKey[str] = web.RequestKey("scheme")
# Whether the request came with a session cookie that no live session has.
_STALE_COOKIE: web.RequestKey[bool] = web.RequestKey("stale_cookie")
_FORWARDED = web.AppKey("forwarded_allow", TrustedProxies)
_AUTH_PROXIES = web.AppKey("auth_proxy_allow", TrustedProxies)

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# What nobody may reach without logging in: the door itself and what it is drawn with.
_PUBLIC_PATHS = frozenset({"/login", "/logout", "/healthz"})
_PUBLIC_PREFIX = "/static/"
_FORMS = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})

# The same words whether the user is unknown, has no password, is disabled or mistyped it.
_WRONG = "Wrong user name or password."
_CSRF_HINT = (
    "reload the dashboard's page and try again; scripts send an API token"
    " (Authorization: Bearer) instead of a cookie"
)


def setup(app: web.Application) -> None:
    """Parse the trusted proxies' networks once for the app's life; drop stale session
    cookies on every answer; make the hash unknown users are checked against before the
    first login (so that the first one does not take longer for an unknown name)."""
    settings = app[DEPS].settings
    app[_FORWARDED] = TrustedProxies(settings.web_forwarded_allow)
    app[_AUTH_PROXIES] = TrustedProxies(settings.web_auth_proxy_allow)
    app.on_response_prepare.append(_forget_stale_cookie)
    app.on_startup.append(_make_unusable_hash)


async def _make_unusable_hash(app: web.Application) -> None:
    await asyncio.to_thread(unusable_hash)


@web.middleware
async def auth_middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Tell who is asking before any handler runs (``ACTOR``: an Actor or None; ``CLIENT``,
    ``CSRF_TOKEN``, ``SESSION``); nobody reaches only the login, logout, static files and
    the health probe (AuthenticationFailed: a page is sent to the login form, the API
    answers 401); a state change by a cookie or a proxy's header must pass the CSRF checks
    (PermissionDenied, 403)."""
    peer = request.remote
    forwarded = request.app[_FORWARDED]
    # A trusted reverse proxy may pass its upstream's name (nginx's default); the check is
    # for what reaches the dashboard directly, where a rebinding page would.
    if peer not in forwarded:
        refused = host_refusal(request.host, deps(request).settings.web_public_url)
        if refused is not None:
            raise web.HTTPMisdirectedRequest(text=refused + "\n")
    headers = request.headers
    request[CLIENT] = forwarded_client(peer, headers.get("X-Forwarded-For"), forwarded)
    request[_SCHEME] = forwarded_scheme(
        peer, headers.get("X-Forwarded-Proto"), request.scheme, forwarded
    )
    request[CSRF_TOKEN] = None
    request[SESSION] = None
    request[ACTOR] = None
    request[_STALE_COOKIE] = await _identify(request)
    if request[ACTOR] is None and not _public(request.path):
        raise AuthenticationFailed("missing", "log in first", hint="open /login")
    if request.method not in _SAFE_METHODS:
        await _check_change(request)
    return await handler(request)


async def still_allowed(request: web.Request) -> bool:
    """Whether the credentials ``request`` came with still name an enabled user: a long
    answer (a live stream) asks again as it goes, so that a logout, a session's timeouts,
    a revoked token or a disabled user end it too."""
    request[ACTOR] = None
    try:
        stale = await _identify(request)
    except AuthenticationFailed:
        return False
    return not stale and request[ACTOR] is not None


async def _forget_stale_cookie(request: web.Request, response: web.StreamResponse) -> None:
    """Tell the browser to drop a session cookie that no live session has, on whatever
    answer it gets (an error page or a redirect to the login form included: this runs as
    the answer is sent, after its cookies became headers, so it adds the header itself)."""
    if not request.get(_STALE_COOKIE):
        return
    if any(h.startswith(SESSION_COOKIE + "=") for h in response.headers.getall(SET_COOKIE, ())):
        return  # the answer sets the cookie already (a new login)
    expired = web.Response()
    _forget_cookie(request, expired)
    response.headers.add(SET_COOKIE, expired.cookies[SESSION_COOKIE].OutputString())


def _public(path: str) -> bool:
    return path in _PUBLIC_PATHS or path.startswith(_PUBLIC_PREFIX)


async def _identify(request: web.Request) -> bool:
    """Set the request's actor from its credentials, the first that applies: a Bearer token,
    a trusted proxy's header, a session cookie. True when a session cookie came that no live
    session has (the answer removes it)."""
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        people = PeopleStore(deps(request).pool, deps(request).audit)
        request[ACTOR] = await people.authenticate(credentials.strip())
        return False
    if header:
        raise AuthenticationFailed("malformed", "send the API token as `Authorization: Bearer`")
    proxied = await _proxied(request)
    if proxied is not None:
        request[ACTOR] = proxied
        return False
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        return False
    # A page refreshing itself (a live fragment, the stream) is no sign of a person.
    by_itself = request.path == "/live" or (request.method == "GET" and is_htmx(request))
    session = await _sessions(request).find(secret, used=not by_itself)
    if session is None:
        return True
    request[SESSION] = session
    request[ACTOR] = session.actor
    request[CSRF_TOKEN] = session.csrf_token
    return False


async def _proxied(request: web.Request) -> Actor | None:
    """The user a trusted proxy's header names; None when proxy login is off, the header is
    absent, or the peer (the direct one: a forwarded address proves nothing) is not one of
    ``web_auth_proxy_allow`` (then the header is ignored)."""
    header = deps(request).settings.web_auth_proxy_header
    name = request.headers.get(header, "").strip() if header else ""
    if not name or request.remote not in request.app[_AUTH_PROXIES]:
        return None
    actor = await _sessions(request).proxied(name)
    if actor is None:
        log.warning(
            "mendline: the proxy at %s named %s, who is no enabled user",
            request.remote,
            printable(name[:200]),
        )
    return actor


async def _check_change(request: web.Request) -> None:
    """Refuse a state change that an ambient credential would make for another site: it must
    come from the dashboard's own Origin (a token's needs not: a browser never sends one by
    itself), and a session's must carry its CSRF token (the login, which has no session yet,
    only the Origin)."""
    actor = request[ACTOR]
    if actor is not None and actor.auth == "token":
        return
    settings = deps(request).settings
    expected = expected_origin(settings.web_public_url, request[_SCHEME], request.host)
    headers = request.headers
    refusal = origin_refusal(headers.get("Origin"), headers.get("Referer"), expected)
    session = request[SESSION]
    if refusal is None and session is not None and request.path != "/login":
        sent = [headers.get("X-CSRF-Token")]
        if not sent[0] and request.content_type in _FORMS:
            field = (await request.post()).get("csrf_token")
            sent.append(field if isinstance(field, str) else None)
        refusal = csrf_refusal(sent, session.csrf_token)
    if refusal is not None:
        raise PermissionDenied(refusal, action="csrf", needed=None, hint=_CSRF_HINT)


def _sessions(request: web.Request) -> SessionStore:
    web_deps = deps(request)
    settings = web_deps.settings
    return SessionStore(
        web_deps.pool,
        web_deps.audit,
        origin(request),
        idle=timedelta(seconds=settings.web_session_idle),
        longest=timedelta(seconds=settings.web_session_max),
        free_failures=settings.web_login_free_failures,
    )


def _secure(request: web.Request) -> bool:
    """Whether the cookie is ``Secure``: the client came over https (as a trusted proxy
    says), or the dashboard's public address is https."""
    public = deps(request).settings.web_public_url or ""
    return request[_SCHEME] == "https" or public.startswith("https://")


def _set_cookie(request: web.Request, response: web.StreamResponse, secret: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(deps(request).settings.web_session_max),
        path="/",
        secure=_secure(request),
        httponly=True,
        samesite="Lax",
    )


def _forget_cookie(request: web.Request, response: web.StreamResponse) -> None:
    response.del_cookie(
        SESSION_COOKIE, path="/", secure=_secure(request), httponly=True, samesite="Lax"
    )


@routes.get("/login")
async def login_page(request: web.Request) -> web.Response:
    """The login form; ``?next=`` (a path on this site only) is where it leads."""
    return _login_form(request, local_path(request.query.get("next")))


@routes.post("/login")
async def login(request: web.Request) -> web.Response:
    """Log in with a name and password: a new session (a new id every time, the cookie's
    old one ended) and 303 to ``next``; 401 and the form again for a wrong name or password
    (the same words whatever was wrong); 429 with Retry-After while the account or the
    address must wait after failed logins (the password is not checked then)."""
    form = await params(request)
    name = str(form.get("name", "")).strip()
    password = str(form.get("password", ""))
    target = local_path(form.get("next"))
    client = client_address(request)
    sessions = _sessions(request)
    wait = await sessions.attempt(name, client)
    if wait is not None:
        error = f"Too many failed logins: try again in {_in_words(wait)}."
        response = _login_form(request, target, name, error, status=429)
        response.headers["Retry-After"] = str(wait)
        return response
    people = PeopleStore(deps(request).pool, deps(request).audit, origin(request))
    check = await people.check_password(name, password)
    if check.actor is None:
        await sessions.login_failed(name, check.refusal or "unknown")
        return _login_form(request, target, name, _WRONG, status=401)
    secret, _ = await sessions.open(
        check.actor,
        client,
        request.headers.get("User-Agent", ""),
        replaced=request.cookies.get(SESSION_COOKIE),
    )
    response = web.Response(status=303, headers={"Location": target})
    _set_cookie(request, response, secret)
    return response


@routes.post("/logout")
async def logout(request: web.Request) -> web.Response:
    """End the session (its row is removed: the cookie no longer works anywhere) and send
    the browser to the login form."""
    session = request[SESSION]
    secret = request.cookies.get(SESSION_COOKIE)
    if session is not None and secret:
        await _sessions(request).end(session.actor, secret)
    response = web.Response(status=303, headers={"Location": "/login"})
    _forget_cookie(request, response)
    return response


@routes.get("/api/v1/me")
async def me(request: web.Request) -> web.Response:
    """Who is asking: name, role, how they were told apart, the actions they may do now
    (none that change anything when the dashboard is read-only), and for a session its CSRF
    token and times."""
    actor = actor_of(request)
    session = request[SESSION]
    return api_json(
        {
            "name": actor.name,
            "role": actor.role,
            "auth": actor.auth,
            "user_id": actor.user_id,
            "token_id": actor.token_id,
            "permissions": sorted(action for action in PERMISSIONS if may(request, action)),
            "read_only": deps(request).settings.web_read_only,
            "csrf_token": request[CSRF_TOKEN],
            "session": None
            if session is None
            else {
                "created_at": session.created_at,
                "last_seen_at": session.last_seen_at,
                "expires_at": session.expires_at,
            },
        }
    )


def _login_form(
    request: web.Request,
    target: str,
    name: str = "",
    error: str | None = None,
    *,
    status: int = 200,
) -> web.Response:
    context = {"next": target, "name": name, "error": error}
    return render(request, "login.html", context, status=status)


def _in_words(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = -(-seconds // 60)
    return f"{minutes} minutes"
