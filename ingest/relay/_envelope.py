"""Sentry envelopes read from a decompressed body as Relay reads them: the header, the items,
the size limits per item type; and the legacy store endpoint's body."""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from mendline.ingest.relay._encoding import inflate_zlib
from mendline.schemas.errors import RelayRefused

__all__ = [
    "DEFAULT_LIMITS",
    "Envelope",
    "EnvelopeItem",
    "EnvelopeLimits",
    "check_limits",
    "decode_store_body",
    "parse_envelope",
    "parse_envelope_header",
    "read_json",
]

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True, slots=True)
class EnvelopeLimits:
    """Sizes in bytes after decompression, and counts, per envelope; Relay's defaults.

    From Sentry's envelope docs ("Size Limits"): ``envelope`` 200 MiB (Relay's own config
    default is still 100 MiB), ``event`` 1 MiB for an event, a transaction or any other
    event-like item, one of them per envelope; ``client_report`` 4 KiB in all;
    ``check_in`` 100 KiB, one per envelope; ``sessions`` 100 session updates or aggregates;
    ``profile`` 50 MiB, one (profile or profile chunk); ``replay`` 10 MiB for the one replay
    recording and the one replay video; ``telemetry`` 1 MiB per span, log or metric (on
    average over a container item's ``item_count``; one log, one trace metric and one
    span container per envelope). From Relay's ``Limits::default()``: ``attachment`` 100
    MiB for one attachment, ``attachments`` 100 MiB for all of them (user reports and
    Unreal reports count as attachments there). Items without a limit of their own
    (unknown types) are held by ``envelope`` only.
    """

    envelope: int = 200 * MiB
    event: int = 1 * MiB
    attachment: int = 100 * MiB
    attachments: int = 100 * MiB
    client_report: int = 4 * KiB
    check_in: int = 100 * KiB
    sessions: int = 100
    profile: int = 50 * MiB
    replay: int = 10 * MiB
    telemetry: int = 1 * MiB
    #: Items in one envelope (ours: Relay counts none; a body of millions of empty items
    #: would cost memory and time out of all proportion to its size).
    items: int = 1000


#: Relay's documented limits.
DEFAULT_LIMITS = EnvelopeLimits()


@dataclass(frozen=True, slots=True)
class EnvelopeItem:
    """One item: its ``type`` (kept whatever it is), its header line as sent (``length``,
    ``content_type``, ``filename``, ``attachment_type``, ``item_count``... and anything
    else), and its payload bytes."""

    type: str
    headers: dict[str, Any]
    payload: bytes


@dataclass(frozen=True, slots=True)
class Envelope:
    """An envelope: its header line as sent (``event_id``, ``dsn``, ``sent_at``, ``sdk``,
    ``trace`` and anything else) and its items in their order."""

    headers: dict[str, Any]
    items: tuple[EnvelopeItem, ...]

    @property
    def event_id(self) -> str | None:
        """The header's ``event_id`` as 32 lowercase hex digits (it wins over the event
        payload's own), or None when the header has none."""
        value = self.headers.get("event_id")
        return None if value is None else uuid.UUID(value).hex


def parse_envelope(body: bytes, limits: EnvelopeLimits = DEFAULT_LIMITS) -> Envelope:
    """Read an envelope (already decompressed), then check it against ``limits``.

    The grammar is Relay's (``Envelope::parse_bytes``): a header line, then items, each a
    header line and a payload of ``length`` bytes, or up to the next newline or the end when
    it has no ``length``; only ``\\n`` ends a line (a ``\\r`` before it is payload), the
    last newline is optional, a last item header at the end of the body has an empty
    payload, whitespace before a header line is skipped, and items of unknown types are
    kept. A header must be a JSON object on one line (Relay's JSON reader would also take
    one spread over several lines: no SDK writes one).

    An empty body is 400 ``empty_body`` ("empty request body"); a malformed one 400
    ``bad_envelope``, "invalid event envelope" with Relay's cause ("missing newline after
    header or payload", "unexpected end of file", "invalid item header"...) and ours; one
    over a limit 413 ``too_large`` (see ``check_limits``).
    """
    if not body:
        raise RelayRefused(400, "empty_body", "empty request body")
    if len(body) > limits.envelope:
        raise RelayRefused(
            413,
            "too_large",
            "length limit exceeded",
            (f"the envelope is {len(body)} bytes, over {limits.envelope}",),
        )
    headers, end = _header_line(body, 0, envelope=True)
    _check_envelope_header(headers)
    items: list[EnvelopeItem] = []
    position = end + 1
    while position < len(body):
        if len(items) == limits.items:
            raise RelayRefused(
                413,
                "too_large",
                "envelope exceeded size limits (https://develop.sentry.dev/sdk/envelopes/#size-limits)",
                (f"more than {limits.items} items",),
            )
        item, position = _item(body, position)
        items.append(item)
    envelope = Envelope(headers, tuple(items))
    check_limits(envelope, limits)
    return envelope


def parse_envelope_header(body: bytes) -> dict[str, Any]:
    """Only the header line of an envelope body (400 ``bad_envelope`` if it is not one): what
    authentication reads its ``dsn`` from before the rest is read."""
    if not body:
        raise RelayRefused(400, "empty_body", "empty request body")
    headers, _ = _header_line(body, 0, envelope=True)
    _check_envelope_header(headers)
    return headers


def check_limits(envelope: Envelope, limits: EnvelopeLimits = DEFAULT_LIMITS) -> None:
    """Refuse the whole envelope, 413 ``too_large``, when one item is over its type's limit
    or when its items together are over their types' count or total size, in the order
    Relay checks them (``check_envelope_size_limits``): item by item, the first breach
    wins. The detail is Relay's: "envelope exceeded size limits for type '<type>'" (for an
    attachment, ``attachment:<its attachment type>``)."""
    allowances = _allowances(limits)
    for item in envelope.items:
        name = _LIMIT_OF.get(item.type)
        if name is None:
            continue  # unknown types: held by the envelope's size only
        breach = allowances[name].take(_counted_size(item), len(item.payload))
        if breach is not None:
            raise RelayRefused(
                413,
                "too_large",
                f"envelope exceeded size limits for type '{_discard_type(item)}' "
                "(https://develop.sentry.dev/sdk/envelopes/#size-limits)",
                (breach,),
            )


def decode_store_body(body: bytes, limit: int = DEFAULT_LIMITS.event) -> bytes:
    """The body of the legacy store endpoint as Relay decodes it (``decode_bytes``): as it is
    when empty or starting with ``{``; else base64, used as it is if that starts with ``{``;
    else base64 of zlib (raven's old format). Bounded by ``limit`` (the event's): 413
    ``too_large`` past it, where Relay would cut it short; a body that is neither 400
    ``bad_compression`` ("invalid request body")."""
    if len(body) > limit:  # Relay's store route takes bodies up to the event limit
        raise _event_too_large(len(body), limit)
    if not body or body.startswith(b"{"):
        return body
    try:
        binary = base64.b64decode(body, validate=True)
    except binascii.Error as exc:
        raise RelayRefused(
            400, "bad_compression", "invalid request body", (f"not JSON, nor base64: {exc}",)
        ) from exc
    if binary.startswith(b"{"):
        return binary
    try:
        return inflate_zlib(binary, limit, "the event")
    except zlib.error as exc:
        raise RelayRefused(
            400, "bad_compression", "invalid request body", (f"not JSON, nor zlib: {exc}",)
        ) from exc


# --- lines and items ---------------------------------------------------------------------

_NOT_WHITESPACE = re.compile(rb"[^ \t\r\n]")
_U32 = 2**32 - 1


def _not_json(token: str) -> None:
    raise ValueError(f"{token} is not JSON")  # NaN, Infinity: Python reads them, Relay not


_DECODER = json.JSONDecoder(parse_constant=_not_json)
_FAST = msgspec.json.Decoder()


def read_json(payload: bytes) -> Any:
    """``json.loads(payload)``, the same value and the same errors (ValueError,
    RecursionError), at a third of its cost: msgspec reads it, and what msgspec does not
    take (lone surrogates, NaN, numbers out of a float's range, bad UTF-8, malformed JSON)
    is left to ``json.loads`` to read or to explain. One difference: msgspec reads a few
    levels deeper than Python's recursion limit lets ``json.loads`` (about 1,000)."""
    try:
        return _FAST.decode(payload)
    except (msgspec.DecodeError, RecursionError):
        return json.loads(payload)


def _header_line(body: bytes, position: int, *, envelope: bool) -> tuple[dict[str, Any], int]:
    """The JSON object starting at ``position`` (after whitespace) and where its line ends:
    at a newline or the end of the body."""
    found = _NOT_WHITESPACE.search(body, position)
    if found is None:
        raise _invalid("missing envelope header" if envelope else "unexpected end of file")
    start = found.start()
    newline = body.find(b"\n", start)
    end = len(body) if newline < 0 else newline
    if body[end - 1 : end] == b"}":  # what SDKs write: read fast, else explained below
        try:
            value = _FAST.decode(body[start:end])
        except (msgspec.DecodeError, RecursionError):
            pass
        else:
            if isinstance(value, dict):  # it ended with "}" and was whole: one object
                return value, end
    what = "invalid envelope header" if envelope else "invalid item header"
    try:
        text = body[start:end].decode("utf-8")
        value, stop = _DECODER.raw_decode(text)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise _invalid(what, str(exc)) from exc
    if stop != len(text):
        # Relay wants the newline right after the JSON value, not even a space or "\r".
        raise _invalid("missing newline after header or payload")
    if not isinstance(value, dict):
        raise _invalid(what, f"a header is a JSON object, not {type(value).__name__}")
    return value, end


def _item(body: bytes, position: int) -> tuple[EnvelopeItem, int]:
    """The item at ``position`` and where the next one starts (Relay's ``Item::parse``)."""
    headers, header_end = _header_line(body, position, envelope=False)
    item_type = headers.get("type")
    if not isinstance(item_type, str):
        raise _invalid("invalid item header", "an item header has a string `type`")
    length = headers.get("length")
    # The last header needs no newline: its payload then starts (and ends) at the end.
    start = min(header_end + 1, len(body))
    if length is None:
        newline = body.find(b"\n", start)
        end = len(body) if newline < 0 else newline
    else:
        if isinstance(length, bool) or not isinstance(length, int) or not 0 <= length <= _U32:
            raise _invalid("invalid item header", f"`length` is not a byte count: {length!r}")
        end = start + length
        if end > len(body):
            raise _invalid(
                "unexpected end of file",
                f"a {item_type} item says {length} bytes, {len(body) - start} follow",
            )
        if end < len(body) and body[end] != 0x0A:
            raise _invalid("missing newline after header or payload")
    return EnvelopeItem(item_type, headers, body[start:end]), end + 1


def _check_envelope_header(headers: Mapping[str, Any]) -> None:
    event_id = headers.get("event_id")
    if event_id is None:
        return
    if isinstance(event_id, str):
        try:
            uuid.UUID(event_id)
            return
        except ValueError:
            pass
    raise _invalid("invalid envelope header", f"event_id is not a UUID: {event_id!r}")


def _invalid(*causes: str) -> RelayRefused:
    return RelayRefused(400, "bad_envelope", "invalid event envelope", causes)


def _event_too_large(size: int, limit: int) -> RelayRefused:
    return RelayRefused(
        413,
        "too_large",
        "envelope exceeded size limits for type 'event' "
        "(https://develop.sentry.dev/sdk/envelopes/#size-limits)",
        (f"the event is {size} bytes, over {limit}",),
    )


# --- limits ------------------------------------------------------------------------------

# Which limit an item type counts against (Relay's sizes.rs); types not here are unknown.
_LIMIT_OF: dict[str, str] = {
    **dict.fromkeys(
        (
            "event",
            "transaction",
            "security",
            "raw_security",
            "replay_event",
            "feedback",
            "form_data",
        ),
        "event",
    ),
    **dict.fromkeys(("attachment", "unreal_report", "user_report"), "attachment"),
    "replay_recording": "replay_recording",
    "replay_video": "replay_video",
    "session": "session",
    "sessions": "session",
    "client_report": "client_report",
    "profile": "profile",
    "profile_chunk": "profile",
    "profile_chunk_ui": "profile",
    "check_in": "check_in",
    "statsd": "statsd",
    "metric_buckets": "metric_buckets",
    "log": "log",
    "trace_metric": "trace_metric",
    "span": "span",
}


@dataclass(slots=True)
class _Allowance:
    """What is left of one limit while an envelope's items are checked: the largest item,
    how many more items, how many more bytes (None: no limit of its own)."""

    words: str
    largest: int | None
    count: int | None = None
    total: int | None = None

    def take(self, size: int, length: int) -> str | None:
        """Take an item counted as ``size`` bytes (``length`` in all), or say what it
        breaks."""
        if self.largest is not None and size > self.largest:
            return f"{self.words} are at most {self.largest} bytes each: this one is {size}"
        if self.count is not None:
            if self.count == 0:
                return f"{self.words} are too many for one envelope"
            self.count -= 1
        if self.total is not None:
            if length > self.total:
                return f"{self.words} are over their total size"
            self.total -= length
        return None


def _allowances(limits: EnvelopeLimits) -> dict[str, _Allowance]:
    """A fresh allowance per limit of ``_LIMIT_OF``, as Relay's sizes.rs sets them."""
    telemetry = limits.telemetry
    return {
        "event": _Allowance("event-like items", limits.event, 1, limits.event),
        "attachment": _Allowance("attachments", limits.attachment, None, limits.attachments),
        "replay_recording": _Allowance("replay recordings", limits.replay, 1, limits.replay),
        "replay_video": _Allowance("replay videos", limits.replay, 1, limits.replay),
        "session": _Allowance("sessions", None, limits.sessions),
        "client_report": _Allowance(
            "client reports", limits.client_report, None, limits.client_report
        ),
        "profile": _Allowance("profiles", limits.profile, 1, limits.profile),
        "check_in": _Allowance("check-ins", limits.check_in, 1, limits.check_in),
        "statsd": _Allowance("statsd items", telemetry, 1, telemetry),
        "metric_buckets": _Allowance("metric buckets items", telemetry, 1, telemetry),
        "log": _Allowance("log items", telemetry, 1),
        "trace_metric": _Allowance("trace metric items", telemetry, 1),
        "span": _Allowance("spans", telemetry),
    }


def _counted_size(item: EnvelopeItem) -> int:
    """The size held against the per-item limit: a container item's (one with
    ``item_count``: logs, spans v2, trace metrics) is the average of its entries."""
    count = item.headers.get("item_count")
    if isinstance(count, int) and not isinstance(count, bool) and count > 1:
        return len(item.payload) // count
    return len(item.payload)


# Relay's DiscardItemType names for attachments, by attachment_type.
_ATTACHMENT_NAMES = {
    "event.attachment": "attachment",
    "event.minidump": "minidump",
    "event.applecrashreport": "apple_crash_report",
    "event.payload": "event_payload",
    "event.breadcrumbs": "breadcrumbs",
    "playstation.prosperodump": "prosperodump",
    "unreal.context": "unreal_context",
    "unreal.logs": "unreal_logs",
    "event.view_hierarchy": "view_hierarchy",
}


# Relay's DiscardItemType names that are not the item's type.
_DISCARD_NAMES = {"feedback": "user_report_v2", "profile_chunk_ui": "profile_chunk"}


def _discard_type(item: EnvelopeItem) -> str:
    if item.type != "attachment":
        return _DISCARD_NAMES.get(item.type, item.type)
    kind = item.headers.get("attachment_type", "event.attachment")
    return "attachment:" + _ATTACHMENT_NAMES.get(
        kind if isinstance(kind, str) else "", "attachment"
    )
