"""The shaping of ErrorEvent v1 wire dicts shared by what builds events (the app's builder,
the relay's conversion of Sentry events): text cut to its limits, JSON-safe context, tags and
fingerprints as events carry them, and an event shrunk to fit MAX_EVENT_BYTES."""

from __future__ import annotations

import math
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic_core import to_json

from mendline.schemas.limits import (
    MAX_CONTEXT_BYTES,
    MAX_EVENT_BYTES,
    MAX_EXCEPTION_VALUE_BYTES,
    MAX_MESSAGE_BYTES,
)

if TYPE_CHECKING:
    from mendline.analyzers.grouping.scrubbing import Scrubber

__all__ = [
    "MAX_LINE",
    "MAX_NAME",
    "PRECUT",
    "as_text",
    "clean",
    "cut",
    "encode_event",
    "finish_event",
    "fit_context",
    "fit_event",
    "jsonable",
    "rfc3339",
    "truncate_utf8",
    "uuid4_hex",
    "wire_fingerprint",
    "wire_tags",
]

_MAX_CONTEXT_STRING = 1024


# Strings are scrubbed before they are cut to their limits (a secret cut in half may no longer
# be recognisable), so they are first cut only to this generous size to bound the cost.
PRECUT = 32 * 1024
_MAX_CONTEXT_DEPTH = 8
_MAX_CONTEXT_ITEMS = 100
MAX_LINE = 1024
MAX_NAME = 512
_ELLIPSIS = "..."


def truncate_utf8(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` UTF-8 bytes, marking the cut with '...'."""
    if len(text) * 4 <= limit:
        return text
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: limit - len(_ELLIPSIS)].decode("utf-8", "ignore") + _ELLIPSIS


def clean(text: str) -> str:
    """``text`` with lone surrogates replaced: they cannot be encoded as UTF-8 JSON."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters (the cut marked '...'), lone surrogates replaced."""
    return clean(text if len(text) <= limit else text[: limit - len(_ELLIPSIS)] + _ELLIPSIS)


def uuid4_hex() -> str:
    """A random UUID4 as 32 hex digits.

    From the OS's CSPRNG (``secrets``), not the random module's Mersenne Twister: its state
    can be rebuilt from ids it has produced, which would let anyone who sees some event ids
    predict the next ones. The OS generator also needs no reseeding in a forked child.
    """
    value = (secrets.randbits(128) & _UUID_CLEAR) | _UUID4_BITS
    return f"{value:032x}"


# Version 4 in bits 76-79, variant 0b10 in bits 62-63.
_UUID_CLEAR = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)


_UUID4_BITS = (0x4 << 76) | (0x2 << 62)


def encode_event(event: dict[str, Any]) -> bytes:
    """The wire bytes of an event dict: compact UTF-8 JSON."""
    return to_json(event)


def rfc3339(timestamp: float) -> str:
    """A Unix time as RFC 3339 in UTC with microseconds, as events carry it."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def as_text(value: object) -> str:
    """Any value as text: bytes decoded, objects by ``str`` (never raising)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    try:
        return str(value)
    except Exception as failure:
        return f"<str() failed: {type(failure).__name__}>"


def jsonable(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy of ``value``: containers copied, other objects as their repr."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return cut(value, PRECUT)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth >= _MAX_CONTEXT_DEPTH:
        return "[Too deep]"
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        try:
            for i, (key, item) in enumerate(value.items()):
                if i >= _MAX_CONTEXT_ITEMS:
                    out["[Trimmed]"] = f"{len(value) - i} more items"
                    break
                out[cut(key if isinstance(key, str) else as_text(key), 256)] = jsonable(
                    item, depth + 1
                )
        except RuntimeError:  # changed size under us on another thread
            return "[Unreadable: changed while read]"
        return out
    if isinstance(value, list | tuple | set | frozenset):
        try:
            items = list(value)
        except RuntimeError:
            return "[Unreadable: changed while read]"
        kept = [jsonable(item, depth + 1) for item in items[:_MAX_CONTEXT_ITEMS]]
        if len(items) > _MAX_CONTEXT_ITEMS:
            kept.append(f"[Trimmed: {len(items) - _MAX_CONTEXT_ITEMS} more items]")
        return kept
    if isinstance(value, bytes | bytearray):
        return cut(bytes(value).decode("utf-8", "backslashreplace"), PRECUT)
    try:
        text = repr(value)
    except Exception as failure:
        text = f"<repr() failed: {type(failure).__name__}>"
    return cut(text, PRECUT)


def _size(value: Any) -> int:
    return len(to_json(value))


def _shorten_strings(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= _MAX_CONTEXT_STRING else cut(value, _MAX_CONTEXT_STRING)
    if isinstance(value, dict):
        return {k: _shorten_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shorten_strings(v) for v in value]
    return value


def fit_context(context: dict[str, Any]) -> dict[str, Any]:
    """Context within MAX_CONTEXT_BYTES: long strings cut, then the largest values replaced."""
    if _size(context) <= MAX_CONTEXT_BYTES:
        return context
    safe: dict[str, Any] = _shorten_strings(context)
    if _size(safe) <= MAX_CONTEXT_BYTES:
        return safe
    sizes = sorted(((_size(v), k) for k, v in safe.items()), reverse=True)
    total = _size(safe)
    for size, key in sizes:
        marker = f"[Trimmed: {size} bytes]"
        safe[key] = marker
        total -= size - len(marker) - 2
        if total <= MAX_CONTEXT_BYTES and _size(safe) <= MAX_CONTEXT_BYTES:
            return safe
    # Even the keys alone are too many: keep as many as fit.
    kept: dict[str, Any] = {}
    for key in list(safe)[: MAX_CONTEXT_BYTES // 64]:
        kept[key] = safe[key]
    kept["[Trimmed]"] = f"{len(safe) - len(kept)} keys left out"
    return kept


def wire_tags(tags: dict[str, Any] | None) -> dict[str, str]:
    """The tags as an event carries them: text, cut to their limits."""
    if not tags:
        return {}
    return {
        cut(as_text(key), 64): cut(as_text(value), 200) for key, value in list(tags.items())[:50]
    }


def wire_fingerprint(parts: list[Any] | None) -> list[str] | None:
    """A custom fingerprint as an event carries it: text, cut to its limits."""
    if not parts:
        return None
    return [cut(as_text(part), 256) for part in parts[:32]]


def fit_event(event: dict[str, Any]) -> bytes:
    """Shrink an event until its JSON is within MAX_EVENT_BYTES, least useful parts first."""
    data = encode_event(event)
    steps = (_drop_context_lines, _drop_context, _shorten_frames, _shorten_chain)
    for step in steps:
        if len(data) <= MAX_EVENT_BYTES:
            break
        step(event)
        data = encode_event(event)
    return data


def _drop_context_lines(event: dict[str, Any]) -> None:
    for exc in event["exceptions"]:
        for frame in exc["frames"]:
            frame["context_line"] = None


def _drop_context(event: dict[str, Any]) -> None:
    event["context"] = {"[Trimmed]": "context left out: the event was over 256 KiB"}


def _shorten_frames(event: dict[str, Any]) -> None:
    for exc in event["exceptions"]:
        frames = exc["frames"]
        if len(frames) > 20:
            exc["frames_omitted"] += len(frames) - 20
            exc["frames"] = frames[:10] + frames[-10:]


def _shorten_chain(event: dict[str, Any]) -> None:
    # The last ones of a tree are the raised exception and the first it holds, depth first:
    # every kept exception's parent is kept too.
    event["exceptions"] = event["exceptions"][-3:]


def finish_event(
    event: dict[str, Any], scrubber: Scrubber, *, names_within_limits: bool = False
) -> tuple[bytes, bool]:
    """Scrub a built event in place, cut its texts to their limits (after scrubbing: a secret
    cut in half may no longer be recognisable) and shrink it to fit; its wire bytes, and
    whether they are clean to ``scrubber``. Usually so; but a cut can make a secret of what
    was not one whole (a run of digits cut to a card number): then the event is checked
    again, and may not be (the consumer then scrubs it).

    ``names_within_limits``: the short texts (names, paths, source lines, release, host)
    were built within their limits, so they need cutting only where scrubbing changed
    something (``[Filtered]`` may be longer than the secret it stands for)."""
    changed = scrubber.scrub(event)
    message = event["message"]
    event["message"] = truncate_utf8(message, MAX_MESSAGE_BYTES)
    shortened = event["message"] is not message
    names = changed or not names_within_limits
    if names:
        shortened = _cut_fields(event, _EVENT_LIMITS) or shortened
    for exc in event["exceptions"]:
        value = exc["value"]
        exc["value"] = truncate_utf8(value, MAX_EXCEPTION_VALUE_BYTES)
        shortened = shortened or exc["value"] is not value
        if names:
            shortened = _cut_fields(exc, _EXCEPTION_LIMITS) or shortened
            for frame in exc["frames"]:
                shortened = _cut_fields(frame, _FRAME_LIMITS) or shortened
    data = encode_event(event)
    if len(data) > MAX_CONTEXT_BYTES:  # below that, no part can be over its own limit
        event["context"] = fit_context(event["context"])
        data = fit_event(event)
        shortened = True
    return data, not shortened or scrubber.is_clean(event)


# The contract's length limits of the short texts, in characters: a scrubbed text may be
# longer than what it replaced ("[Filtered]" for a short secret), so they are cut after.
_EVENT_LIMITS = (("environment", 200), ("release", 200), ("host", 255), ("logger", MAX_NAME))
_EXCEPTION_LIMITS = (("type", MAX_NAME), ("module", MAX_NAME))
_FRAME_LIMITS = (
    ("filename", 1024),
    ("module", MAX_NAME),
    ("function", MAX_NAME),
    ("context_line", MAX_LINE),
    ("abs_path", 1024),
    ("package", MAX_NAME),
)


def _cut_fields(part: dict[str, Any], limits: tuple[tuple[str, int], ...]) -> bool:
    """Cut ``part``'s texts to their limits; whether any was cut."""
    cut_any = False
    for name, limit in limits:
        value = part.get(name)
        if isinstance(value, str) and len(value) > limit:
            part[name] = cut(value, limit)
            cut_any = True
    return cut_any
