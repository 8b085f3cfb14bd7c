"""A Sentry SDK's event as an ErrorEvent v1 wire dict: the relay's conversion, pure.

The service comes from the key the event was sent with (an HTTP producer cannot claim
another service); everything else from the event, as Sentry's event payload documents it
(https://develop.sentry.dev/sdk/data-model/event-payloads/) and as the SDKs send it in
practice: ``exception`` as ``{"values": [...]}`` or a bare list, the oldest (the cause) first
and the raised exception last, as ErrorEvent orders its chain; frames oldest call first, as
ours; ``logentry`` or ``message`` as a string or an object; tags as an object or a list of
pairs; a timestamp as Unix seconds or RFC 3339. Strings are cut to their limits here; the
caller scrubs the event and checks it against the contract (``finish_event``, then the
parse), which has the last word.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mendline.analyzers.grouping import default_in_app
from mendline.analyzers.policy.relay import clock_correction
from mendline.ingest._wire import (
    PRECUT,
    as_text,
    cut,
    jsonable,
    rfc3339,
    uuid4_hex,
    wire_fingerprint,
    wire_tags,
)
from mendline.schemas.errors import RelayRefused
from mendline.schemas.event import SCHEMA_VERSION, Level
from mendline.schemas.limits import MAX_EXCEPTIONS, MAX_FRAMES

__all__ = ["KeyScope", "convert_event", "event_id_of"]

#: Sentry's levels as ErrorEvent's (``fatal`` is our ``critical``; ``log`` an old alias).
_LEVELS: dict[str, Level] = {
    "fatal": "critical",
    "critical": "critical",
    "error": "error",
    "warning": "warning",
    "warn": "warning",
    "info": "info",
    "log": "info",
    "debug": "debug",
}
_HEX_ID = re.compile(r"[0-9a-f]{32}")
_PLATFORM = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
# How a parent holds an exception, as SDKs other than Python's say it: JavaScript's Error
# cause ("cause") and AggregateError members ("errors[i]"), .NET's InnerException(s).
_MEMBER = re.compile(r"(?:exceptions|errors|InnerExceptions)\[([0-9]{1,6})\]")
_CAUSES = {
    "__cause__": "__cause__",
    "__context__": "__context__",
    "cause": "__cause__",
    "InnerException": "__cause__",
}
_MAX_ID = 2**31 - 1
# RFC 3339 with more than microseconds (Go sends nanoseconds): the rest is cut.
_LONG_FRACTION = re.compile(r"(\.\d{6})\d+")
# An envelope's sent_at, as Relay reads it: RFC 3339, a date, a time and an offset.
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(?:\.\d+)?(?:[Zz]|[+-]\d\d:\d\d)\Z")
# What of the event goes in the context, beside ``extra`` (whose keys come first, as a
# structlog event's do); an extra of the same name is kept as "extra.<name>".
_SENTRY_PARTS = ("request", "user", "contexts", "transaction", "sdk", "clock_drift")
# Request parts that are the client's address or identity: kept only with keep_pii.
_REQUEST_PII = ("cookies", "env")
# Request headers that carry the client's address: kept only with keep_pii.
_ADDRESS_HEADERS = frozenset(
    {
        "x-forwarded-for",
        "x-real-ip",
        "forwarded",
        "cf-connecting-ip",
        "true-client-ip",
        "x-client-ip",
        "x-cluster-client-ip",
        "fastly-client-ip",
    }
)
_USER_PII = ("ip_address", "email", "username", "name", "geo")
_HALF = MAX_FRAMES // 2


@dataclass(frozen=True, slots=True)
class KeyScope:
    """What a relay key speaks for: its service, and the environment of its events that name
    none."""

    service: str
    environment: str


def event_id_of(*candidates: object) -> str:
    """The first candidate that is a UUID (32 hex digits, dashes allowed, any case) as 32
    lowercase hex digits; a new random one when none is (Sentry's Relay makes one too)."""
    for candidate in candidates:
        if isinstance(candidate, str):
            text = candidate.replace("-", "").lower()
            if _HEX_ID.fullmatch(text):
                return text
    return uuid4_hex()


def convert_event(
    event: Mapping[str, Any],
    scope: KeyScope,
    *,
    event_id: str | None = None,
    received: float,
    sent_at: object = None,
    keep_pii: bool = False,
) -> dict[str, Any]:
    """The ErrorEvent v1 wire dict of a Sentry event payload (not yet scrubbed, cut to the
    contract's byte limits, nor validated). ``event_id``: the envelope header's, which wins
    over the payload's; ``received``: the time of receipt, for an event without a usable
    timestamp; ``sent_at``: the envelope header's (RFC 3339), when the SDK's clock said it
    sent it: an SDK clock 55 minutes or more off ours moves the event's time by as much (as
    Relay corrects it), and the context says so under ``clock_drift``. Without
    ``keep_pii`` the user's address, email and names, cookies and the request's environment
    are left out (Sentry's ``send_default_pii`` off). RelayRefused (400, bad_event) when the
    payload is not an object."""
    if not isinstance(event, Mapping):
        raise RelayRefused(400, "bad_event", "invalid event: not a JSON object")
    platform = _platform(event.get("platform"))
    exceptions = _exceptions(event, platform)
    timestamp, drift = _event_time(event.get("timestamp"), sent_at, received)
    context = _context(event, keep_pii)
    if drift is not None:
        context["clock_drift"] = drift
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "event_id": event_id_of(event_id, event.get("event_id")),
        "timestamp": timestamp,
        "service": scope.service,
        "environment": _name(event.get("environment"), PRECUT) or scope.environment,
        "release": _name(event.get("release"), PRECUT),
        "host": _name(event.get("server_name"), PRECUT),
        "level": _LEVELS.get(str(event.get("level") or "error").lower(), "error"),
        "logger": _name(event.get("logger"), PRECUT),
        "message": cut(_message(event), PRECUT),
        "exceptions": exceptions,
        "context": context,
        "tags": wire_tags(_pairs(event.get("tags"))),
        "fingerprint": _fingerprint(event.get("fingerprint")),
    }
    if platform is not None:
        doc["platform"] = platform
    return doc


def _platform(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    return text if _PLATFORM.fullmatch(text) and text != "other" else None


def _name(value: object, limit: int) -> str | None:
    """A short text field: a non-empty string cut to ``limit`` characters, else None."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        text = str(value).strip()
        return cut(text, limit) if text else None
    return None


def _event_time(
    value: object, sent_at: object, received: float
) -> tuple[str, dict[str, Any] | None]:
    """The event's time in RFC 3339: its ``timestamp``, moved by the SDK's clock drift when
    its envelope's ``sent_at`` says the SDK's clock is 55 minutes or more off (and the moved
    time can be written), else as it came, else the time of receipt; and, when moved, what
    the context says of it."""
    moment = _moment(value)
    if moment is None:
        return rfc3339(received), None
    sent = _moment(sent_at) if isinstance(sent_at, str) and _RFC3339.match(sent_at) else None
    correction = clock_correction(sent, received)
    moved = _time_text(moment + correction) if correction else None
    if moved is None:
        return _time_text(moment) or rfc3339(received), None
    return moved, {
        "adjusted_by_seconds": round(correction, 3),
        "sdk_time": _time_text(sent),
        "server_time": rfc3339(received),
    }


def _moment(value: object) -> float | None:
    """Unix seconds of a Sentry timestamp: Unix seconds (after 1970, before the last day of
    the year 9999), or RFC 3339 with or without an offset (without, UTC); None when it does
    not read as a time."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) if 0 < value < 253402214400 else None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(_LONG_FRACTION.sub(r"\1", value.strip()))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return moment.timestamp()
        except (ValueError, OverflowError):  # not a time
            return None
    return None


def _time_text(seconds: float | None) -> str | None:
    """``seconds`` in RFC 3339, UTC; None for none, or a time of no year UTC can write."""
    if seconds is None:
        return None
    try:
        return rfc3339(seconds)
    except (ValueError, OverflowError, OSError):
        return None


def _message(event: Mapping[str, Any]) -> str:
    """The message template: ``logentry.message`` (``sentry.interfaces.Message``), else its
    ``formatted`` text, else ``message`` as a string or such an object; "" for an event that
    has only its exceptions."""
    for key in ("logentry", "sentry.interfaces.Message", "message"):
        value = event.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, Mapping):
            for part in ("message", "formatted"):
                text = value.get(part)
                if isinstance(text, str) and text:
                    return text
    return ""


def _values(value: object) -> list[Any]:
    """An interface's list: ``{"values": [...]}`` or the bare list."""
    if isinstance(value, Mapping):
        value = value.get("values")
    return value if isinstance(value, list) else []


def _exceptions(event: Mapping[str, Any], platform: str | None) -> list[dict[str, Any]]:
    raw = _values(event.get("exception") or event.get("sentry.interfaces.Exception"))
    # A message captured with attachStacktrace comes with a synthetic exception standing for
    # the call site (no type, or flagged): it is the message's event, grouped by its text.
    chain = [
        exc for exc in raw if isinstance(exc, Mapping) and not _synthetic(exc) and _named(exc)
    ][-MAX_EXCEPTIONS:]
    grouped = any(_mechanism(exc).get("is_exception_group") is True for exc in chain)
    return [_exception(exc, platform, tree=grouped) for exc in chain]


def _mechanism(exc: Mapping[str, Any]) -> Mapping[str, Any]:
    mechanism = exc.get("mechanism")
    return mechanism if isinstance(mechanism, Mapping) else {}


def _synthetic(exc: Mapping[str, Any]) -> bool:
    return _mechanism(exc).get("synthetic") is True and not exc.get("type")


def _named(exc: Mapping[str, Any]) -> bool:
    return bool(exc.get("type") or exc.get("value"))


def _exception(exc: Mapping[str, Any], platform: str | None, *, tree: bool) -> dict[str, Any]:
    frames = [_frame(f, platform) for f in _frames(exc) if isinstance(f, Mapping)]
    omitted = 0
    if len(frames) > MAX_FRAMES:  # the outermost and the innermost, as our emitters keep
        omitted = len(frames) - MAX_FRAMES
        frames = frames[:_HALF] + frames[-_HALF:]
    out: dict[str, Any] = {
        "type": cut(as_text(exc.get("type") or "Error"), PRECUT),
        "module": _name(exc.get("module"), PRECUT),
        "value": cut(_value(exc.get("value")), PRECUT),
        "frames": frames,
        "frames_omitted": omitted,
    }
    if tree:  # ids only for an event that holds an exception group, as our emitters send
        mechanism = _mechanism(exc)
        own, parent = _id(mechanism.get("exception_id")), _id(mechanism.get("parent_id"))
        if own is not None:
            out["exception_id"] = own
            if parent is not None:
                out["parent_id"] = parent
                out["source"] = _source(mechanism.get("source"))
            if mechanism.get("is_exception_group") is True:
                out["is_exception_group"] = True
    return out


def _frames(exc: Mapping[str, Any]) -> list[Any]:
    stacktrace = exc.get("stacktrace")
    frames = stacktrace.get("frames") if isinstance(stacktrace, Mapping) else None
    return frames if isinstance(frames, list) else []


def _value(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else as_text(value)


def _id(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_ID:
        return value
    return None


def _source(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    member = _MEMBER.fullmatch(value)
    if member is not None:
        return f"exceptions[{member[1]}]"
    return _CAUSES.get(value)


def _frame(frame: Mapping[str, Any], platform: str | None) -> dict[str, Any]:
    """One frame in ErrorEvent's shape: its function (``?`` when the SDK knows none, as
    Sentry shows it), the file (its path, else its absolute path or module), in-app as the
    SDK marked it (a frame it did not mark by Sentry's default rules: library folders and
    frameworks are not, the rest is)."""
    # Cut to their limits once scrubbed (finish_event): a secret cut in half is not found.
    module = _name(frame.get("module"), PRECUT)
    abs_path = _name(frame.get("abs_path"), PRECUT)
    filename = _name(frame.get("filename"), PRECUT) or abs_path or module or "?"
    function = _name(frame.get("function"), PRECUT) or _name(frame.get("raw_function"), PRECUT)
    line = frame.get("context_line")
    context_line = cut(line.rstrip("\r\n"), PRECUT) if isinstance(line, str) else None
    out: dict[str, Any] = {
        "filename": filename,
        "module": module,
        "function": function or "?",
        "lineno": _id(frame.get("lineno")),
        "context_line": context_line if context_line and context_line.strip() else None,
        "in_app": in_app
        if isinstance(in_app := frame.get("in_app"), bool)
        else default_in_app(
            platform, {"abs_path": abs_path, "filename": filename, "module": module}
        ),
    }
    colno = _id(frame.get("colno"))
    package = _name(frame.get("package"), PRECUT)
    if abs_path is not None and abs_path != filename:
        out["abs_path"] = abs_path
    if colno is not None:
        out["colno"] = colno
    if package is not None:
        out["package"] = package
    return out


def _pairs(value: object) -> dict[str, Any]:
    """An object, or a list of [name, value] pairs (older SDKs' tags and headers), as a dict."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, list):
        return {
            as_text(pair[0]): pair[1]
            for pair in value
            if isinstance(pair, list | tuple) and len(pair) == 2
        }
    return {}


def _fingerprint(value: object) -> list[str] | None:
    if not isinstance(value, list) or not value:
        return None
    return wire_fingerprint([part for part in value if isinstance(part, str | int | float)])


def _context(event: Mapping[str, Any], keep_pii: bool) -> dict[str, Any]:
    """``extra`` first (its keys as they came), then the request, the user, the SDK's
    contexts (runtime, os, browser, trace), the transaction and the SDK, JSON-safe: the
    context a person reads beside the stack."""
    context: dict[str, Any] = {}
    extra = event.get("extra")
    if isinstance(extra, Mapping):
        for key, value in extra.items():
            name = as_text(key)
            context[f"extra.{name}" if name in _SENTRY_PARTS else name] = value
    request = _request(event.get("request") or event.get("sentry.interfaces.Http"), keep_pii)
    if request:
        context["request"] = request
    user = _user(event.get("user") or event.get("sentry.interfaces.User"), keep_pii)
    if user:
        context["user"] = user
    contexts = event.get("contexts")
    if isinstance(contexts, Mapping) and contexts:
        context["contexts"] = dict(contexts)
    transaction = _name(event.get("transaction"), 200)
    if transaction:
        context["transaction"] = transaction
    sdk = event.get("sdk")
    if isinstance(sdk, Mapping):
        named = {k: sdk[k] for k in ("name", "version") if isinstance(sdk.get(k), str)}
        if named:
            context["sdk"] = named
    shaped = jsonable(context)
    return shaped if isinstance(shaped, dict) else {}


def _request(value: object, keep_pii: bool) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        return {}
    request = {key: value[key] for key in ("method", "url", "query_string", "data") if key in value}
    headers = {
        name: item
        for name, item in _pairs(value.get("headers")).items()
        if keep_pii or name.lower() not in _ADDRESS_HEADERS
    }
    if headers:
        request["headers"] = headers
    if keep_pii:
        for key in _REQUEST_PII:
            if key in value:
                request[key] = value[key]
    return request


def _user(value: object, keep_pii: bool) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        return {}
    user = {key: item for key, item in value.items() if keep_pii or key not in _USER_PII}
    if user.get("ip_address") == "{{auto}}":  # the address the request came from: not known
        del user["ip_address"]
    return user
