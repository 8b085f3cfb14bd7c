"""The admin page (admins only): the users with their roles, whether they are disabled and
when they were added; adding one, giving one another role, disabling and enabling; every API
token, making one (shown once, on the page that answers the form, and never again) and
revoking one. Each change goes through the people store's audited functions, with the
request's origin. The JSON API reads as the CLI does: anyone lists the users and their own
tokens, an admin everyone's."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

from aiohttp import web

from mendline.analyzers.policy import authorize, tokens_listed
from mendline.schemas.errors import UsageError
from mendline.schemas.people import ROLES, Role
from mendline.schemas.tomlfile import parse_duration
from mendline.sinks.postgres import PeopleStore, TokenInfo, User
from mendline.web._context import (
    actor_of,
    api_json,
    deps,
    is_htmx,
    origin,
    params,
    render,
    render_fragment,
    require,
)

__all__ = ["routes", "token_json", "user_json"]

routes = web.RouteTableDef()

UserMove = Literal["role", "disable", "enable"]
_ACTIONS: dict[UserMove, str] = {
    "role": "user.set_role",
    "disable": "user.disable",
    "enable": "user.enable",
}
# The longest a token made here may live before it expires (a form's "expires").
_MAX_LIFETIME = timedelta(days=3650)


def _people(request: web.Request) -> PeopleStore:
    return PeopleStore(deps(request).pool, deps(request).audit, origin=origin(request))


def user_json(user: User) -> dict[str, Any]:
    """A user as the API answers it (what ``mendline users list --json`` prints)."""
    return {**asdict(user), "disabled": user.disabled_at is not None}


def token_json(token: TokenInfo, now: datetime | None = None) -> dict[str, Any]:
    """A token as the API answers it, never its secret (there is none to show), with its
    state now: ``active``, ``expired`` or ``revoked``."""
    return {**asdict(token), "state": _token_state(token, now or datetime.now(UTC))}


def _token_state(token: TokenInfo, now: datetime) -> str:
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= now:
        return "expired"
    return "active"


# -- reading -----------------------------------------------------------------------------


async def _admin_view(request: web.Request) -> dict[str, Any]:
    """What the admin page shows: every user and every token. Admins only (PermissionDenied
    for anyone else, even in read-only mode, where the forms are left out)."""
    actor = require(request, "user.list")
    authorize(actor, "token.list_all")
    people = _people(request)
    now = datetime.now(UTC)
    tokens = await people.list_tokens(None)
    return {
        "users": await people.list_users(),
        "tokens": [(token, _token_state(token, now)) for token in tokens],
        "roles": ROLES,
        "new_token": None,
    }


# -- the changes -------------------------------------------------------------------------


def _name(value: Any, what: str = "name") -> str:
    if not isinstance(value, str) or not value:
        raise UsageError(f"{what} is required")
    return value


def _role(value: Any, *, required: bool = True) -> Role | None:
    if value in (None, "") and not required:
        return None
    if value not in ROLES:
        raise UsageError(f"role must be one of {', '.join(ROLES)}")
    return cast("Role", value)


async def _add_user(request: web.Request, fields: dict[str, Any]) -> tuple[User, str]:
    actor = require(request, "user.add")
    role = _role(fields.get("role") or "viewer")
    assert role is not None
    user = await _people(request).add_user(actor, _name(fields.get("name")), role)
    return user, f"added user {user.name} ({user.role})"


async def _move_user(
    request: web.Request, move: UserMove, name: str, fields: dict[str, Any]
) -> tuple[User, str]:
    actor = require(request, _ACTIONS[move])
    people = _people(request)
    if move == "role":
        role = _role(fields.get("role"))
        assert role is not None
        user, changed = await people.set_role(actor, name, role)
        return user, f"{user.name} {'is now' if changed else 'was already'} {user.role}"
    if move == "disable":
        user = await people.disable_user(actor, name)
        return user, f"disabled {user.name}; their tokens no longer work"
    user, changed = await people.enable_user(actor, name)
    return user, f"enabled {user.name}" if changed else f"{user.name} was not disabled"


async def _create_token(request: web.Request, fields: dict[str, Any]) -> tuple[str, TokenInfo]:
    actor = require(request, "token.create")
    expires = fields.get("expires") or None
    expires_at = datetime.now(UTC) + _lifetime(expires) if expires else None
    return await _people(request).create_token(
        actor,
        _name(fields.get("user") or actor.name, "user"),
        _role(fields.get("role"), required=False),
        str(fields.get("name") or "")[:200],
        expires_at,
    )


def _lifetime(text: Any) -> timedelta:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"expires: {exc}") from None
    if seconds <= 0 or seconds > _MAX_LIFETIME.total_seconds():
        raise UsageError(f"expires must be above 0 and at most {_MAX_LIFETIME.days}d")
    return timedelta(seconds=seconds)


async def _revoke_token(request: web.Request, token_id: str) -> TokenInfo:
    # Anyone may revoke their own token; the store tells whose it is and checks the role.
    require(request, "token.revoke_own")
    return await _people(request).revoke_token(actor_of(request), token_id)


# -- the page ----------------------------------------------------------------------------


@routes.get("/admin")
async def admin_page(request: web.Request) -> web.Response:
    """Users, roles and tokens, with the forms that change them."""
    return render(request, "admin.html", await _admin_view(request))


async def _done(request: web.Request) -> web.Response:
    """A form's answer: the page again (303), or its people fragment for htmx."""
    if is_htmx(request):
        return render_fragment(request, "admin.html", "people", await _admin_view(request))
    raise web.HTTPSeeOther("/admin")


@routes.post("/admin/users")
async def add_user_form(request: web.Request) -> web.Response:
    """Add a user (name, role)."""
    await _add_user(request, await params(request))
    return await _done(request)


@routes.post("/admin/users/{move:role|disable|enable}")
async def user_form(request: web.Request) -> web.Response:
    """Give a user (``name``) another role, disable or enable them. The name is a field, not
    part of the path: a browser would resolve a name such as ``..`` in a path."""
    move = cast("UserMove", request.match_info["move"])
    fields = await params(request)
    await _move_user(request, move, _name(fields.get("name")), fields)
    return await _done(request)


@routes.post("/admin/tokens")
async def create_token_form(request: web.Request) -> web.Response:
    """Make a token: the page that answers shows it, this once (it is never stored)."""
    token, info = await _create_token(request, await params(request))
    view = await _admin_view(request)
    view["new_token"] = (token, info)
    return render(request, "admin.html", view)


@routes.post("/admin/tokens/{token_id}/revoke")
async def revoke_token_form(request: web.Request) -> web.Response:
    """Revoke a token."""
    await _revoke_token(request, request.match_info["token_id"])
    return await _done(request)


# -- the JSON API ------------------------------------------------------------------------


@routes.get("/api/v1/users")
async def users_api(request: web.Request) -> web.Response:
    """Every user, by name."""
    require(request, "user.list")
    return api_json({"users": [user_json(u) for u in await _people(request).list_users()]})


@routes.post("/api/v1/users")
async def add_user_api(request: web.Request) -> web.Response:
    """Add a user: ``{"name", "role"}`` (role: viewer by default)."""
    user, message = await _add_user(request, await params(request))
    return api_json({"user": user_json(user), "message": message}, status=201)


@routes.post("/api/v1/users/{name:.+}/{move:role|disable|enable}")
async def user_api(request: web.Request) -> web.Response:
    """Give a user another role (``{"role"}``), disable or enable them."""
    move = cast("UserMove", request.match_info["move"])
    user, message = await _move_user(
        request, move, request.match_info["name"], await params(request)
    )
    return api_json({"user": user_json(user), "message": message})


@routes.get("/api/v1/tokens")
async def tokens_api(request: web.Request) -> web.Response:
    """The tokens (``user``: one user's), never their secrets: an admin's ask shows
    everyone's by default, anyone else's only their own."""
    actor = require(request, "token.list")
    user = tokens_listed(actor, request.query.get("user") or None)
    now = datetime.now(UTC)
    tokens = await _people(request).list_tokens(user)
    return api_json({"tokens": [token_json(t, now) for t in tokens]})


@routes.post("/api/v1/tokens")
async def create_token_api(request: web.Request) -> web.Response:
    """Make a token: ``{"user", "role", "name", "expires"}`` (all optional: yours, with
    your role, never expiring). The answer holds the token, this once."""
    token, info = await _create_token(request, await params(request))
    return api_json({"token": token, **token_json(info)}, status=201)


@routes.post("/api/v1/tokens/{token_id}/revoke")
async def revoke_token_api(request: web.Request) -> web.Response:
    """Revoke a token (an admin any, anyone their own)."""
    return api_json(token_json(await _revoke_token(request, request.match_info["token_id"])))
