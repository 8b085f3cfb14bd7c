"""The exceptions mendline raises, all under one root.

    MendlineError
    ├── ConfigError            settings or a file we read is invalid
    ├── InvalidEvent           an event does not satisfy the ErrorEvent contract
    │                          (carries ``reason``, an ``InvalidEventReason`` code)
    ├── RelayRefused           the Sentry-compatible endpoint refuses a request (``status``,
    │                          ``reason``, a ``RelayReason`` code, ``detail``, ``causes``)
    ├── ShipperClosed          a shipper was used after ``shutdown()``
    ├── NotFound               what an id names is not there
    │   ├── IssueNotFound      ... an issue (or it cannot take part in the operation)
    │   ├── FindingNotFound    ... a finding (or the issue to analyse)
    │   ├── EventNotFound      ... a stored event (or it is not of the issue named)
    │   ├── UserNotFound       ... a user (by name)
    │   ├── TokenNotFound      ... an API token (by its visible id)
    │   ├── FixNotFound        ... a fix
    │   ├── RemediationNotFound  ... a remediation run
    │   ├── SilenceNotFound    ... an alert silence
    │   ├── CheckNotFound      ... a health check of the checks file (by its name)
    │   ├── RelayKeyNotFound   ... a relay key (by its id or public key)
    │   └── TopicNotFound      ... a Kafka topic (by its name)
    ├── IllegalTransition      a fix, a remediation run or an issue cannot move from its
    │                          state to the one asked for
    ├── InvalidPatch           a text is not a unified diff we can read
    ├── PatchRefused           a patch does not apply where it must (``code``, a
    │                          ``PatchRefusal``: not found, ambiguous, a conflict...)
    ├── PermissionDenied       the actor's role may not do that (``action``, ``needed``)
    ├── AuthenticationFailed   a token or local user that cannot act (``reason``)
    ├── UsageError             the command line was used wrongly (exit status 2)
    ├── ServiceError           a call to an outside service failed (``code``, ``retriable``,
    │   │                      ``status``, ``retry_after``)
    │   ├── LLMError           ... to the LLM endpoint
    │   ├── ChannelError       ... to an alert channel (Slack, SMTP, PagerDuty)
    │   └── ForgeError         ... to git or a forge's API (GitHub, GitLab)
    ├── DatabaseError          a PostgreSQL call failed (``retriable``)
    │   ├── DatabaseUnavailable  the server, its connection or a timeout: wait it out
    │   └── RejectedData       the data itself was refused (``sqlstate``): keep it aside
    └── DevStackError          the embedded broker or database could not start

Foreign exceptions are translated where they cross into our code, with ``raise ... from exc``.
Retry decisions read the ``retriable`` attribute, never a message. Any of them may carry a
``hint``: what the person at the command line can do about it, printed on the line after the
error.
"""

from __future__ import annotations

import errno
from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal, get_args

__all__ = [
    "DEAD_LETTER_REASONS",
    "NEVER_REDRIVEN",
    "AuthFailure",
    "AuthenticationFailed",
    "ChannelError",
    "CheckNotFound",
    "ConfigError",
    "DatabaseError",
    "DatabaseUnavailable",
    "DeadLetterReason",
    "DevStackError",
    "EventNotFound",
    "FindingNotFound",
    "FixNotFound",
    "ForgeError",
    "IllegalTransition",
    "InvalidEvent",
    "InvalidEventReason",
    "InvalidPatch",
    "IssueNotFound",
    "LLMError",
    "MendlineError",
    "NotFound",
    "PatchRefusal",
    "PatchRefused",
    "PermissionDenied",
    "RejectedData",
    "RelayKeyNotFound",
    "RelayReason",
    "RelayRefused",
    "RemediationNotFound",
    "ServiceError",
    "ShipperClosed",
    "SilenceNotFound",
    "TokenNotFound",
    "TopicNotFound",
    "UsageError",
    "UserNotFound",
    "cannot_listen",
]

#: Why an event breaks the ErrorEvent contract: ``InvalidEvent.reason``, and the DLQ's
#: ``mendline.errors.reason`` header of such a record.
InvalidEventReason = Literal["not_json", "invalid", "too_large", "unknown_schema_version"]
#: Why a record went to the dead-letter topic (its ``mendline.errors.reason`` header): the
#: event broke the contract, PostgreSQL refused it, preparing it failed unexpectedly, its
#: event_id was stored with other content (``duplicate_conflict``), the consumer could not
#: decode the record batch it came in (``undecodable``: a DLQ record per offset range), its
#: producer could not prove it may speak for the service it claims (``unauthenticated``), or
#: the relay answered an SDK's malformed body 400 (``relay_rejected``: the body, never a
#: record of the errors topic).
DeadLetterReason = (
    InvalidEventReason
    | Literal[
        "store_rejected",
        "processing_error",
        "duplicate_conflict",
        "undecodable",
        "unauthenticated",
        "relay_rejected",
    ]
)
#: Reasons whose DLQ records are never sent to the errors topic again, and why.
NEVER_REDRIVEN: Mapping[str, str] = MappingProxyType(
    {
        "undecodable": "they name offsets, not records",
        "relay_rejected": "they are bodies the relay refused, not events",
    }
)
#: Every DeadLetterReason, in the order written above.
DEAD_LETTER_REASONS: tuple[str, ...] = tuple(
    reason for literal in get_args(DeadLetterReason) for reason in get_args(literal)
)

#: Why a patch was not applied (``PatchRefused.code``): a path outside the repository
#: (``unsafe_path``), a rename, a file to change that is not there (``missing``) or one to
#: create that is (``exists``), not valid UTF-8 text (``not_text``), a hunk with no line to
#: place it by (``no_anchor``), whose lines are nowhere (``not_found``) or in several places
#: (``ambiguous``), hunks that overlap (``overlap``), a patch that changes nothing
#: (``no_change``), a three-way merge with conflicts (``conflict``), git refusing it
#: (``rejected``), or a text that is no unified diff (``invalid_patch``).
PatchRefusal = Literal[
    "unsafe_path",
    "rename",
    "missing",
    "exists",
    "not_text",
    "no_anchor",
    "not_found",
    "ambiguous",
    "overlap",
    "no_change",
    "conflict",
    "rejected",
    "invalid_patch",
]

#: Why the relay (the Sentry-compatible ingest endpoint) refused a request, or an item of it:
#: ``RelayRefused.reason``, a metric label, and the DLQ's reason header for a kept body.
RelayReason = Literal[
    "missing_auth",  # 401: no key in a header, the query or the envelope's dsn
    "bad_auth",  # 401: an auth header that does not parse, or several ways at once
    "bad_key",  # 400: a public key that is not 32 characters
    "unknown_key",  # 403: no such key, or not of this project
    "revoked_key",  # 403
    "origin",  # 403: a browser's Origin the key does not allow
    "unsupported_version",  # 400: sentry_version over 8 (Relay takes 8 and below)
    "bad_envelope",  # 400: not an envelope (its lines, lengths, JSON)
    "bad_event",  # 400: an event that does not convert to an ErrorEvent
    "empty_body",  # 400
    "bad_compression",  # 400: a body that does not decompress
    "unsupported_encoding",  # 415
    "too_large",  # 413: a body, an item or the whole envelope over its limit
    "rate_limited",  # 429
    "kafka_unavailable",  # 503: nothing was accepted; the SDK may send it again
    "keys_unavailable",  # 503: the keys could not be read yet (PostgreSQL is out)
    "internal_error",  # 500: a bug of ours, logged
    "read_timeout",  # 408: the body did not come in time
    "overloaded",  # 503: too many requests being read at once
]


#: Why an actor could not be authenticated: ``AuthenticationFailed.reason``.
AuthFailure = Literal[
    "malformed", "unknown", "revoked", "expired", "disabled", "local_off", "missing"
]


class MendlineError(Exception):
    """The root of every exception mendline raises on purpose.

    ``hint`` (keyword only) says what to do about it, e.g. "run `mendline migrate`"; the
    command line prints it on the line after the message.
    """

    retriable: bool = False
    hint: str | None = None

    def __init__(self, *args: object, hint: str | None = None) -> None:
        super().__init__(*args)
        if hint is not None:
            self.hint = hint


class ConfigError(MendlineError):
    """Settings, a routing file or another input we were configured with is invalid."""


def cannot_listen(what: str, host: str, port: int, exc: OSError, setting: str) -> ConfigError:
    """The ConfigError of a server (``what``: "/metrics", "the dashboard") that cannot
    listen on ``host:port``, with a hint naming the settings ``MENDLINE_<setting>_HOST`` and
    ``_PORT`` that choose the address."""
    host_var, port_var = f"MENDLINE_{setting}_HOST", f"MENDLINE_{setting}_PORT"
    if exc.errno == errno.EADDRINUSE:
        hint = f"another process listens there: set {port_var} to a free port"
    elif exc.errno == errno.EACCES:
        hint = f"ports below 1024 need privileges: set {port_var} to 1024 or above"
    else:
        hint = f"check {host_var} (an address of this machine) and {port_var}"
    return ConfigError(f"cannot serve {what} on {host}:{port}: {exc.strerror or exc}", hint=hint)


class InvalidEvent(MendlineError):
    """An event does not satisfy the ErrorEvent contract.

    ``reason`` is one of a small fixed set of codes (``InvalidEventReason``: ``not_json``,
    ``invalid``, ``too_large``, ``unknown_schema_version``) suitable as a metric label or a DLQ
    header.
    """

    def __init__(self, reason: InvalidEventReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: InvalidEventReason = reason
        self.detail = detail


class RelayRefused(MendlineError):
    """The Sentry-compatible endpoint refuses a request: answered with ``status`` and a JSON
    body ``{"detail": ..., "causes": [...]}`` as Sentry's Relay answers it."""

    def __init__(
        self,
        status: int,
        reason: RelayReason,
        detail: str,
        causes: tuple[str, ...] = (),
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {reason}: {detail}")
        self.status = status
        self.reason: RelayReason = reason
        self.detail = detail
        self.causes = causes
        #: Seconds the client should wait before sending again (429, 503).
        self.retry_after = retry_after


class NotFound(MendlineError):
    """What an id names is not there: an issue, a finding."""


class IssueNotFound(NotFound):
    """No issue has that id (or it cannot take part in the operation)."""


class EventNotFound(NotFound):
    """No stored event has that id (or it is not of the issue named)."""


class FindingNotFound(NotFound):
    """No finding (or issue) has that id."""


class UserNotFound(NotFound):
    """No user has that name."""


class TokenNotFound(NotFound):
    """No API token has that visible id."""


class FixNotFound(NotFound):
    """No fix has that id."""


class SilenceNotFound(NotFound):
    """No alert silence has that id."""


class RemediationNotFound(NotFound):
    """No remediation run has that id."""


class CheckNotFound(NotFound):
    """No health check of the checks file has that name."""


class RelayKeyNotFound(NotFound):
    """No relay key has that id or public key."""


class TopicNotFound(NotFound):
    """The broker has no topic of that name."""


class IllegalTransition(MendlineError):
    """A fix or a remediation run cannot move from its state (``current``) to the one asked
    for (``wanted``)."""

    def __init__(self, detail: str, *, current: str, wanted: str, hint: str | None = None) -> None:
        super().__init__(detail, hint=hint)
        self.current = current
        self.wanted = wanted


class InvalidPatch(MendlineError):
    """A text is not a unified diff we can read (the message names the line)."""


class PatchRefused(MendlineError):
    """A patch does not apply where it must; the message says why, for people, and ``code``
    (a ``PatchRefusal``) says it for metrics and the fix store. Never retried: the same patch
    against the same code is refused again."""

    def __init__(self, code: PatchRefusal, detail: str, *, hint: str | None = None) -> None:
        super().__init__(detail, hint=hint)
        self.code: PatchRefusal = code


class PermissionDenied(MendlineError):
    """The actor's role may not do ``action``: it needs ``needed`` (None: an action no role
    may do, such as one the permission table does not know)."""

    def __init__(
        self, detail: str, *, action: str, needed: str | None, hint: str | None = None
    ) -> None:
        super().__init__(detail, hint=hint)
        self.action = action
        self.needed = needed


class AuthenticationFailed(MendlineError):
    """Who is acting cannot be told apart: ``reason`` is one of ``AuthFailure`` (a token
    that is malformed, unknown, revoked or expired, of a disabled user; local access off; no
    credentials at all)."""

    def __init__(self, reason: AuthFailure, detail: str, *, hint: str | None = None) -> None:
        super().__init__(detail, hint=hint)
        self.reason: AuthFailure = reason


class UsageError(MendlineError):
    """The command line was used wrongly in a way its parser cannot see: exit status 2."""


class ServiceError(MendlineError):
    """A call to an outside service failed: a timeout, a refused connection, an error status.

    ``code`` is one of a small set of forms (``timeout``, ``unreachable``, ``http_<status>``,
    ``bad_response``, ``unexpected``, and per service ``smtp_<code>``, ``smtp_error``,
    ``slack_<error>``, ``config``): a ``str``, since the forms with a status or a service's
    error name are open-ended;
    ``retriable`` says whether the same call may succeed later (timeouts, 429, 5xx);
    ``retry_after`` is the server's Retry-After in seconds, when it gave one.
    """

    def __init__(
        self,
        detail: str,
        *,
        code: str,
        retriable: bool,
        status: int | None = None,
        retry_after: float | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(detail, hint=hint)
        self.code = code
        self.retriable = retriable
        self.status = status
        self.retry_after = retry_after


class LLMError(ServiceError):
    """An LLM call failed."""


class ChannelError(ServiceError):
    """An alert channel could not deliver."""


class ForgeError(ServiceError):
    """git or a forge's API failed: git missing (``git_missing``), a git command failing
    (``git_failed``) or timing out (``timeout``), a push refused (``push_rejected``), a full
    disk (``disk_full``) or another file error (``io_error``), a repository, base or commit
    that is not there (``config``), or an API's ``http_<status>``, ``unreachable``,
    ``bad_response``. Timeouts, 429 and 5xx are
    retriable; 401, 403, 404 and 422 are not. The message never holds a token."""


class DatabaseError(MendlineError):
    """A PostgreSQL call failed; the driver's error is the ``__cause__``. ``retriable`` says
    whether the same call may succeed later."""


class DatabaseUnavailable(DatabaseError):
    """The database cannot serve now (down, a lost connection, a timeout, a read-only
    standby, missing privileges, a schema from another release): waiting can cure it."""

    retriable = True


class RejectedData(DatabaseError):
    """PostgreSQL refused the data itself (a data exception, an integrity constraint, a
    program limit): the same data fails again. ``sqlstate`` is PostgreSQL's error code."""

    retriable = False

    def __init__(self, detail: str, *, sqlstate: str, hint: str | None = None) -> None:
        super().__init__(detail, hint=hint)
        self.sqlstate = sqlstate


class ShipperClosed(MendlineError):
    """The shipper was shut down and refuses new work."""


class DevStackError(MendlineError):
    """The embedded broker or database of the dev stack could not be started."""
