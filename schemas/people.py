"""Who acts on mendline, and the record of what they did: the contract between the people
store, the audit trail, the CLI and (later) the dashboard.

Roles are ordered: each can do what the ones before it can. ``viewer`` reads; ``responder``
resolves, ignores, merges and marks findings; ``approver`` also approves and applies fixes
and runs remediations; ``admin`` also manages users, tokens and policy, and prunes stored
events. mendline itself acts as the actor ``SYSTEM_ACTOR`` (its workers: a fix applied by
policy, a check let go).

An audit entry is one state change: who (the actor and how they were authenticated), what
(the action, its target, the state before and after, as JSON), when (the database's clock)
and from where (``origin``: the CLI and its host, the dashboard and the client's address).
Entries are appended in the transaction of the change, and chained: each row stores the
SHA-256 of its canonical content and the hash of the row before it (``prev_hash``), so an
altered or removed row breaks the chain at that point.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "GENESIS_HASH",
    "ROLES",
    "SYSTEM_ACTOR",
    "TOKEN_PREFIX",
    "Actor",
    "AuditEntry",
    "AuthMethod",
    "Role",
    "StoredAuditEntry",
    "audit_hash",
    "audit_json",
    "role_at_least",
]

Role = Literal["viewer", "responder", "approver", "admin"]
#: The roles from least to most able: each can do what the ones before it can.
ROLES: tuple[Role, ...] = ("viewer", "responder", "approver", "admin")
#: How an actor was told apart: an API token, the local OS user with direct database access
#: (the role the settings give it), a dashboard session, a trusted SSO proxy's header naming
#: the user (``web_auth_proxy_header``), or mendline's own workers.
AuthMethod = Literal["token", "local", "session", "proxy", "system"]
#: Every API token starts with it (then its visible id): secret scanners can find them.
TOKEN_PREFIX = "mlt_"
#: The chain hash before the first audit row.
GENESIS_HASH = "0" * 64


def role_at_least(role: Role, needed: Role) -> bool:
    """Whether ``role`` can do what ``needed`` can."""
    return ROLES.index(role) >= ROLES.index(needed)


class Actor(BaseModel):
    """Who is acting: a user (by name, with the role they act with) or mendline itself."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1, max_length=200)
    role: Role
    auth: AuthMethod
    #: The user's id in ``mendline.users`` (None for mendline itself and local OS users
    #: not registered).
    user_id: int | None = None
    #: The token's visible id when ``auth`` is "token".
    token_id: str | None = None


#: mendline's own workers, acting by policy.
SYSTEM_ACTOR = Actor(name="mendline", role="admin", auth="system")


def audit_json(value: Any) -> Any:
    """``value`` as JSON that PostgreSQL's jsonb takes, so that an odd value in a change's
    before or after never fails the change: NaN and the infinities as the strings "NaN",
    "Infinity" and "-Infinity"; NUL characters (which jsonb refuses) left out of strings and
    keys, and unpaired surrogates replaced; times and dates in ISO 8601; tuples and sets as
    lists; enums as their values; keys and any other value as their ``str``. JSON as jsonb
    gives it back is left as it is."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, Mapping):
        return {_clean_text(str(audit_json(k))): audit_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [audit_json(item) for item in value]
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return audit_json(value.value)
    if isinstance(value, BaseModel):
        return audit_json(value.model_dump(mode="json"))
    return _clean_text(str(value))


def _clean_text(text: str) -> str:
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


class AuditEntry(BaseModel):
    """One state change to record: see the module docstring. Its ``before`` and ``after``
    are made JSON that jsonb takes when it is built (``audit_json``)."""

    model_config = ConfigDict(frozen=True)

    actor: Actor
    #: A dotted verb: "issue.resolve", "issue.ignore", "issue.merge", "finding.mark",
    #: "fix.approve", "user.add", "user.set_role", "token.create", "token.revoke", ...
    action: str = Field(min_length=1, max_length=100)
    #: What it acted on: "issue:12", "finding:40", "user:alice", "token:mlt_ab12cd34".
    target: str = Field(min_length=1, max_length=300)
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    #: Where it came from: "cli@host", "web 10.0.0.5", "monitor host:pid".
    origin: str = Field(default="", max_length=300)

    @field_validator("before", "after", mode="before")
    @classmethod
    def _as_jsonb_takes_it(cls, value: Any) -> Any:
        return audit_json(value) if isinstance(value, Mapping) else value


class StoredAuditEntry(AuditEntry):
    """An audit row as stored: its id, time and place in the chain."""

    id: int
    at: datetime
    prev_hash: str
    row_hash: str


def audit_hash(entry: AuditEntry, at: datetime, prev_hash: str) -> str:
    """The SHA-256 (hex) of an audit row: its canonical JSON content (sorted keys, no
    spaces, the time in ISO 8601 UTC to the microsecond) and the previous row's hash. The
    store computes it when appending and ``audit verify`` again when walking the chain."""
    actor = entry.actor
    content = {
        # Named one by one: a field added to Actor later must not change old rows' hashes.
        "actor": {
            "name": actor.name,
            "role": actor.role,
            "auth": actor.auth,
            "user_id": actor.user_id,
            "token_id": actor.token_id,
        },
        "action": entry.action,
        "target": entry.target,
        "before": entry.before,
        "after": entry.after,
        "origin": entry.origin,
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        "prev": prev_hash,
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
