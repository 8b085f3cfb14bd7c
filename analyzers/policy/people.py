"""Who may do what: the permission table, ``authorize``, and the API tokens' format, hash and
validity (pure; the people store reads the rows and acts on the verdicts)."""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from collections.abc import Collection
from datetime import UTC, datetime
from typing import NamedTuple

from mendline.schemas.errors import AuthenticationFailed, PermissionDenied
from mendline.schemas.people import (
    ROLES,
    SYSTEM_ACTOR,
    TOKEN_PREFIX,
    Actor,
    Role,
    role_at_least,
)

__all__ = [
    "PERMISSIONS",
    "ParsedToken",
    "allowed",
    "authorize",
    "check_token_role",
    "last_admin_refusal",
    "lower_role",
    "new_token",
    "parse_token",
    "token_hash",
    "token_refusal",
    "tokens_listed",
    "user_name_refusal",
]

#: The least role each action needs. An action missing here is refused to everyone, so a
#: new action is denied until it is given a role.
PERMISSIONS: dict[str, Role] = {
    "issue.read": "viewer",
    "finding.read": "viewer",
    "fix.read": "viewer",
    "audit.read": "viewer",
    "remediation.read": "viewer",
    "user.list": "viewer",
    "token.list": "viewer",
    "token.revoke_own": "viewer",
    "user.password_own": "viewer",
    "silence.read": "viewer",
    "check.read": "viewer",
    "alert.read": "viewer",
    "relay_key.list": "viewer",
    "issue.resolve": "responder",
    "issue.ignore": "responder",
    "issue.merge": "responder",
    "issue.unmerge": "responder",
    "issue.reopen": "responder",
    "issue.assign": "responder",
    "issue.comment": "responder",
    "finding.mark": "responder",
    "issue.reanalyse": "responder",
    "fix.propose": "responder",
    "silence.create": "responder",
    "silence.expire": "responder",
    "review_rule.learn": "responder",
    "review_rule.disable": "responder",
    "review_rule.enable": "responder",
    "fix.approve": "approver",
    "fix.reject": "approver",
    "fix.apply": "approver",
    "fix.rollback": "approver",
    "fix.deployed": "approver",
    "remediation.run": "approver",
    "user.add": "admin",
    "user.set_role": "admin",
    "user.disable": "admin",
    "user.enable": "admin",
    "user.password": "admin",
    "token.create": "admin",
    "token.revoke": "admin",
    "token.list_all": "admin",
    "relay_key.create": "admin",
    "relay_key.revoke": "admin",
    "relay_key.rotate": "admin",
    "policy.change": "admin",
    "events.prune": "admin",
}

# Characters a name may not hold: control and format characters (terminal escapes, bidi
# overrides, zero-width ones), surrogates, and line and paragraph separators.
_UNSEEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})

# mlt_<8 lowercase hex>_<43 characters of token_urlsafe(32)>
_TOKEN = re.compile(rf"^({re.escape(TOKEN_PREFIX)}[0-9a-f]{{8}})_([A-Za-z0-9_-]{{43}})$")


class ParsedToken(NamedTuple):
    """A token split into its visible id (``mlt_ab12cd34``) and its hash."""

    token_id: str
    secret_hash: str


def allowed(actor: Actor, action: str) -> bool:
    """Whether ``actor``'s role may do ``action`` (``authorize`` without the refusal)."""
    needed = PERMISSIONS.get(action)
    return needed is not None and role_at_least(actor.role, needed)


def authorize(actor: Actor, action: str) -> None:
    """Return when ``actor``'s role may do ``action``; else raise PermissionDenied, which
    names the action and the role it needs."""
    needed = PERMISSIONS.get(action)
    if needed is None:
        raise PermissionDenied(
            f"{action!r} is not an action anyone may do", action=action, needed=None
        )
    if not role_at_least(actor.role, needed):
        raise PermissionDenied(
            f"{actor.name} ({actor.role}) may not {action}: it needs the role {needed}",
            action=action,
            needed=needed,
            hint="ask an admin: `mendline users set-role NAME ROLE`",
        )


def check_token_role(token_role: Role, user_role: Role) -> None:
    """Raise PermissionDenied when a token would have a higher role than its user."""
    if not role_at_least(user_role, token_role):
        raise PermissionDenied(
            f"a token's role cannot exceed its user's: {token_role} > {user_role}",
            action="token.create",
            needed=token_role,
        )


def last_admin_refusal(
    name: str, active_admins: Collection[str], *, stays_admin: bool, action: str
) -> PermissionDenied | None:
    """Why a change to the user ``name`` (demoting or disabling them: ``stays_admin``
    False) may not be made when ``active_admins`` are the active admins' names: it would
    leave no one to manage users and tokens. None when it may."""
    if stays_admin or name not in active_admins or len(active_admins) > 1:
        return None
    return PermissionDenied(
        f"{name} is the last active admin: {action} would leave no one to manage users",
        action=action,
        needed=None,
        hint="make another user admin first: `mendline users set-role NAME admin`",
    )


def lower_role(one: Role, other: Role) -> Role:
    """The less able of two roles (a token acts with at most its user's current role)."""
    return ROLES[min(ROLES.index(one), ROLES.index(other))]


def tokens_listed(actor: Actor, user: str | None) -> str | None:
    """Whose tokens ``actor`` is shown when asking for ``user``'s (None: without saying
    whose): anyone their own, whatever their role; everyone's (None) or another's, an admin
    only (PermissionDenied). Without saying whose, an admin sees everyone's and anyone else
    their own."""
    if user is None and not allowed(actor, "token.list_all"):
        user = actor.name
    authorize(actor, "token.list" if user == actor.name else "token.list_all")
    return user


def token_hash(token: str) -> str:
    """The SHA-256 (hex) of the whole token: what is stored instead of it. A fast hash is
    enough: the secret has 256 bits of entropy, nothing to guess from a dictionary."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> tuple[str, str, str]:
    """A new API token: (the token, shown once; its visible id; its hash, stored)."""
    token_id = TOKEN_PREFIX + secrets.token_hex(4)
    token = f"{token_id}_{secrets.token_urlsafe(32)}"
    return token, token_id, token_hash(token)


def parse_token(token: str) -> ParsedToken:
    """The visible id and hash of a token; AuthenticationFailed("malformed") when it is not
    one. The message never quotes the token."""
    found = _TOKEN.fullmatch(token.strip())
    if found is None:
        raise AuthenticationFailed(
            "malformed",
            f"not a mendline token (expected {TOKEN_PREFIX}<id>_<secret>)",
            hint="MENDLINE_TOKEN holds what `mendline tokens create` printed",
        )
    return ParsedToken(found[1], token_hash(found[0]))


def token_refusal(
    *,
    now: datetime,
    expires_at: datetime | None,
    revoked_at: datetime | None,
    user_disabled_at: datetime | None,
) -> AuthenticationFailed | None:
    """Why a known token may not act now (revoked, expired, its user disabled), or None."""
    if revoked_at is not None and revoked_at <= now:
        return AuthenticationFailed(
            "revoked", f"the token was revoked at {revoked_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        )
    if expires_at is not None and expires_at <= now:
        return AuthenticationFailed(
            "expired", f"the token expired at {expires_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        )
    if user_disabled_at is not None and user_disabled_at <= now:
        return AuthenticationFailed("disabled", "the token's user is disabled")
    return None


def user_name_refusal(name: str) -> str | None:
    """Why ``name`` cannot be a user's name, or None: empty or longer than 200 characters,
    with spaces around it, with a character that does not show (a control or format
    character), or mendline's own (``SYSTEM_ACTOR``'s, in any case), which the audit trail
    must not confuse with a person."""
    if not name or len(name) > 200:
        return "a user's name has 1 to 200 characters"
    if name != name.strip():
        return "a user's name may not start or end with spaces"
    unseen = next((ch for ch in name if unicodedata.category(ch) in _UNSEEN), None)
    if unseen is not None:
        return f"a user's name may not hold the control character U+{ord(unseen):04X}"
    if name.casefold() == SYSTEM_ACTOR.name.casefold():
        return f"{SYSTEM_ACTOR.name!r} is mendline's own name in the audit trail"
    return None
