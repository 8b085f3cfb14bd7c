"""What becomes of each envelope item: converted (events), counted and dropped, read for
its counts (client reports) or for a heartbeat (check-ins); and an event's rate-limit
category."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple

from mendline.ingest.relay._envelope import read_json
from mendline.schemas.errors import InvalidEvent

__all__ = [
    "DATA_CATEGORIES",
    "DISCARD_REASONS",
    "DROPPED_TYPES",
    "CheckInStatus",
    "ClientReport",
    "Discarded",
    "EventCategory",
    "ItemHandling",
    "SentryCheckIn",
    "event_category",
    "item_handling",
    "item_label",
    "parse_check_in",
    "parse_client_report",
]

#: What the endpoint does with an item: ``convert`` it into an ErrorEvent, count and
#: ``drop`` it, count and drop an ``attachment`` (its bytes are held by the attachment
#: limits), read a ``client_report`` into metrics, or read a ``check_in``.
ItemHandling = Literal["convert", "drop", "attachment", "client_report", "check_in"]

#: The types accepted and counted but not stored (issue 19); any type not known is too.
DROPPED_TYPES = frozenset(
    {
        "transaction",
        "span",
        "profile",
        "profile_chunk",
        "replay_event",
        "replay_recording",
        "replay_video",
        "session",
        "sessions",
        "log",
        "otel_log",
        "trace_metric",
        "statsd",
        "metric_buckets",
        "user_report",
        "feedback",
    }
)
_HANDLING: dict[str, ItemHandling] = {
    "event": "convert",
    "attachment": "attachment",
    "client_report": "client_report",
    "check_in": "check_in",
    **dict.fromkeys(DROPPED_TYPES, "drop"),
}

#: Reasons an SDK gives for what it discarded (the develop docs' list, and sentry-python
#: 2.76's ``buffer_overflow`` and ``backpressure``); any other is counted as ``other``.
DISCARD_REASONS = frozenset(
    {
        "queue_overflow",
        "cache_overflow",
        "buffer_overflow",
        "ratelimit_backoff",
        "network_error",
        "sample_rate",
        "before_send",
        "event_processor",
        "send_error",
        "internal_sdk_error",
        "insufficient_data",
        "backpressure",
    }
)
#: Rate-limit data categories (the rate-limiting docs, and sentry-python 2.76's
#: ``EventDataCategory``); any other is counted as ``other``.
DATA_CATEGORIES = frozenset(
    {
        "default",
        "error",
        "crash",
        "transaction",
        "span",
        "security",
        "attachment",
        "session",
        "profile",
        "profile_chunk",
        "replay",
        "metric_bucket",
        "internal",
        "monitor",
        "log_item",
        "log_byte",
        "trace_metric",
        "trace_metric_byte",
    }
)

#: An error event's rate-limit category, as Relay infers its event type.
EventCategory = Literal["error", "default", "security", "transaction"]
#: A check-in's status; ``missed`` (computed by the server) and anything else are ``unknown``.
CheckInStatus = Literal["in_progress", "ok", "error", "unknown"]

_SLUG_LENGTH = 50  # relay-monitors' SLUG_LENGTH: longer slugs are cut
_ENVIRONMENT_LENGTH = 64  # Relay refuses a check-in with a longer environment


def item_handling(item_type: str) -> ItemHandling:
    """What the endpoint does with an item of this type; unknown types are dropped (and
    counted), as a Relay that does not forward them does."""
    return _HANDLING.get(item_type, "drop")


def item_label(item_type: str) -> str:
    """The item type as a metric label: a type we know, else ``unknown``, so that what an SDK
    invents never becomes a label."""
    return item_type if item_type in _HANDLING else "unknown"


def event_category(event: Mapping[str, Any]) -> EventCategory:
    """The rate-limit category of an ``event`` item's payload, as Relay infers its type:
    ``transaction`` when it says so, ``error`` when it holds at least one exception (under
    ``exception`` as ``{"values": [...]}`` or a bare list, or the legacy
    ``sentry.interfaces.Exception``), ``security`` for a CSP, HPKP, Expect-CT or
    Expect-Staple report, else ``default`` (a message, for one)."""
    if event.get("type") == "transaction":
        return "transaction"
    exception = event.get("exception", event.get("sentry.interfaces.Exception"))
    values = exception.get("values") if isinstance(exception, Mapping) else exception
    if isinstance(values, list) and values:
        return "error"
    if any(event.get(key) is not None for key in ("csp", "hpkp", "expectct", "expectstaple")):
        return "security"
    return "default"


class Discarded(NamedTuple):
    """One line of a client report: ``quantity`` items of ``category`` the SDK discarded for
    ``reason`` (unknown reasons and categories are ``other``)."""

    reason: str
    category: str
    quantity: int


@dataclass(frozen=True, slots=True)
class ClientReport:
    """A client report read: its ``timestamp`` (UNIX seconds; None when absent or not
    readable), its lines, and how many parts were ``malformed`` (the whole report, or
    lines without a reason, a category or a whole quantity)."""

    timestamp: float | None
    discarded: tuple[Discarded, ...]
    malformed: int = 0


def parse_client_report(payload: bytes) -> ClientReport:
    """Read a ``client_report`` item: ``{"timestamp": <ISO text or UNIX number>,
    "discarded_events": [{"reason", "category", "quantity"}, ...]}``. Never raises: what
    cannot be read is counted in ``malformed``. The Relay-to-Relay lists
    (``rate_limited_events``, ``filtered_events``...) are not an SDK's: ignored."""
    try:
        report = read_json(payload)
    except (ValueError, RecursionError):
        return ClientReport(None, (), malformed=1)
    if not isinstance(report, dict):
        return ClientReport(None, (), malformed=1)
    lines = report.get("discarded_events", [])
    if not isinstance(lines, list):
        return ClientReport(_timestamp(report.get("timestamp")), (), malformed=1)
    discarded = [line for line in map(_discarded, lines) if line is not None]
    return ClientReport(
        _timestamp(report.get("timestamp")), tuple(discarded), len(lines) - len(discarded)
    )


def _discarded(line: object) -> Discarded | None:
    if not isinstance(line, dict):
        return None
    reason, category, quantity = line.get("reason"), line.get("category"), line.get("quantity")
    if not isinstance(reason, str) or not isinstance(category, str):
        return None
    if isinstance(quantity, float) and quantity.is_integer():
        quantity = int(quantity)  # JavaScript numbers: 1.0 is 1
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
        return None
    return Discarded(
        reason if reason in DISCARD_REASONS else "other",
        category if category in DATA_CATEGORIES else "other",
        quantity,
    )


def _timestamp(value: object) -> float | None:
    """UNIX seconds from a number or an RFC 3339 text (``Z`` or an offset); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an integer too large for a float
            return None
        return seconds if math.isfinite(seconds) else None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        return moment.timestamp() if moment.tzinfo is not None else None
    return None


@dataclass(frozen=True, slots=True)
class SentryCheckIn:
    """A ``check_in`` item read as Relay reads it (``relay-monitors``): ``check_in_id`` as
    32 lowercase hex digits (all zeros: "the latest in-progress check-in of this
    monitor"), ``monitor_slug`` cut to 50 characters, the ``status``, ``duration`` in
    seconds, and from ``monitor_config`` the margin and the longest run in minutes
    (``checkin_margin``, or sentry-go's ``check_in_margin``) and the zone."""

    check_in_id: str
    monitor_slug: str
    status: CheckInStatus
    duration: float | None = None
    environment: str | None = None
    release: str | None = None
    margin_minutes: int | None = None
    max_runtime_minutes: int | None = None
    timezone: str | None = None


def parse_check_in(payload: bytes) -> SentryCheckIn:
    """Read a ``check_in`` item; InvalidEvent (``not_json`` or ``invalid``, with what is
    wrong) for one Relay would refuse: no UUID ``check_in_id``, no ``monitor_slug`` (or an
    empty one), an environment over 64 characters, fields of the wrong type. A status it
    does not know (``missed`` included) is ``unknown``, as in Relay."""
    try:
        doc = read_json(payload)
    except (ValueError, RecursionError) as exc:
        raise InvalidEvent("not_json", f"the check-in is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidEvent("not_json", "the check-in is not a JSON object")
    check_in_id = doc.get("check_in_id")
    try:
        check_in_id = uuid.UUID(check_in_id).hex if isinstance(check_in_id, str) else None
    except ValueError:
        check_in_id = None
    if check_in_id is None:
        raise InvalidEvent("invalid", "the check-in has no UUID check_in_id")
    slug = doc.get("monitor_slug")
    if not isinstance(slug, str) or not slug:
        raise InvalidEvent("invalid", "the check-in has no monitor_slug")
    status = doc.get("status")
    environment = _text(doc, "environment")
    if environment is not None and len(environment) > _ENVIRONMENT_LENGTH:
        raise InvalidEvent("invalid", "the check-in's environment is over 64 characters")
    config = doc.get("monitor_config")
    config = config if isinstance(config, dict) else {}
    margin = config.get("checkin_margin", config.get("check_in_margin"))
    return SentryCheckIn(
        check_in_id=check_in_id,
        monitor_slug=slug[:_SLUG_LENGTH],
        status=status if status in ("in_progress", "ok", "error") else "unknown",
        duration=_seconds(doc.get("duration")),
        environment=environment,
        release=_text(doc, "release"),
        margin_minutes=_minutes(margin, "checkin_margin"),
        max_runtime_minutes=_minutes(config.get("max_runtime"), "max_runtime"),
        timezone=_text(config, "timezone"),
    )


def _text(doc: Mapping[str, Any], key: str) -> str | None:
    value = doc.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidEvent("invalid", f"the check-in's {key} is not a string")
    return value


def _seconds(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidEvent("invalid", "the check-in's duration is not a number of seconds")
    return float(value)


def _minutes(value: object, key: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidEvent("invalid", f"the check-in's {key} is not a whole number of minutes")
    return value
