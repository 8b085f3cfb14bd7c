"""Turns a Capture into a trimmed, scrubbed ErrorEvent v1 wire dict and its JSON bytes."""

from __future__ import annotations

import json
import linecache
import math
import os
import secrets
import socket
import sysconfig
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pydantic_core import to_json

from mendline.analyzers.grouping.scrubbing import Scrubber
from mendline.ingest.app._capture import Capture, RawException, RawFrame
from mendline.schemas.event import SCHEMA_VERSION
from mendline.schemas.limits import (
    MAX_CONTEXT_BYTES,
    MAX_EVENT_BYTES,
    MAX_EVENT_COUNT,
    MAX_EXCEPTION_VALUE_BYTES,
    MAX_MESSAGE_BYTES,
)

__all__ = [
    "EventBuilder",
    "InApp",
    "encode_event",
    "occurrences",
    "truncate_utf8",
    "wire_fingerprint",
    "wire_tags",
]

_MAX_CONTEXT_STRING = 1024
# Strings are scrubbed before they are cut to their limits (a secret cut in half may no longer
# be recognisable), so they are first cut only to this generous size to bound the cost.
_PRECUT = 32 * 1024
_MAX_CONTEXT_DEPTH = 8
_MAX_CONTEXT_ITEMS = 100
_MAX_LINE = 1024
_MAX_NAME = 512
_FRAME_CACHE = 20_000
_ELLIPSIS = "..."


def truncate_utf8(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` UTF-8 bytes, marking the cut with '...'."""
    if len(text) * 4 <= limit:
        return text
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: limit - len(_ELLIPSIS)].decode("utf-8", "ignore") + _ELLIPSIS


def _clean(text: str) -> str:
    """Replace lone surrogates, which cannot be encoded as UTF-8 JSON."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _cut(text: str, limit: int) -> str:
    return _clean(text if len(text) <= limit else text[: limit - len(_ELLIPSIS)] + _ELLIPSIS)


class InApp:
    """Decides whether a frame is the application's own code.

    Include and exclude module prefixes win, in that order; otherwise the standard library
    and anything under site-packages or dist-packages is not in-app.
    """

    def __init__(self, include: Iterable[str] = (), exclude: Iterable[str] = ()) -> None:
        self._include = tuple(include)
        self._exclude = tuple(exclude)
        paths = sysconfig.get_paths()
        stdlib = {
            os.path.realpath(paths[name]) for name in ("stdlib", "platstdlib") if name in paths
        }
        self._stdlib = tuple(path + os.sep for path in stdlib)
        self._cache: dict[tuple[str, str | None], bool] = {}

    def __call__(self, filename: str, module: str | None) -> bool:
        """True when the frame at ``filename`` in ``module`` is in-app."""
        key = (filename, module)
        found = self._cache.get(key)
        if found is None:
            found = self._decide(filename, module)
            if len(self._cache) < 10_000:
                self._cache[key] = found
        return found

    def _decide(self, filename: str, module: str | None) -> bool:
        if module is not None:
            if _matches(module, self._include):
                return True
            if _matches(module, self._exclude):
                return False
        if filename.startswith("<frozen "):
            return False
        parts = filename.replace("\\", "/").split("/")
        if "site-packages" in parts or "dist-packages" in parts:
            return False
        return not os.path.realpath(filename).startswith(self._stdlib)


def _matches(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


class EventBuilder:
    """Builds ErrorEvent v1 wire dicts for one service, trimmed to the limits and scrubbed."""

    def __init__(
        self,
        service: str,
        environment: str,
        release: str | None = None,
        *,
        host: str | None = None,
        in_app: InApp | None = None,
        scrubber: Scrubber | None = None,
    ) -> None:
        self.service = _cut(service, 200)
        self._environment = _cut(environment, 200)
        self._release = _cut(release, 200) if release else None
        self._host = _cut(host if host is not None else socket.gethostname(), 255)
        self._in_app = in_app or InApp()
        self._scrubber = scrubber or Scrubber()
        self._frames: dict[RawFrame, dict[str, Any]] = {}

    @property
    def environment(self) -> str:
        """The environment of its events."""
        return self._environment

    @property
    def host(self) -> str:
        """The host of its events."""
        return self._host

    @property
    def scrubber(self) -> Scrubber:
        """The scrubber of its events (the settings' extra keys and patterns included)."""
        return self._scrubber

    def build(self, capture: Capture) -> dict[str, Any]:
        """Return the wire dict for ``capture``: within every limit, scrubbed."""
        return self.encode(capture)[0]

    def encode(self, capture: Capture) -> tuple[dict[str, Any], bytes]:
        """Return the wire dict for ``capture`` and its JSON bytes: within every limit, scrubbed."""
        event, data, _ = self.encode_checked(capture)
        return event, data

    def encode_checked(self, capture: Capture) -> tuple[dict[str, Any], bytes, bool]:
        """encode, and whether the event as encoded is clean to this builder's scrubber.
        Usually so; but strings are cut to their limits after scrubbing, and a cut can make
        a secret of what was not one whole (a run of digits cut to a card number): then the
        encoded event is checked again, and may not be (the consumer then scrubs it)."""
        event: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "event_id": _uuid4_hex(),
            "timestamp": _rfc3339(capture.timestamp),
            "service": self.service,
            "environment": self._environment,
            "release": self._release,
            "host": self._host,
            "level": capture.level,
            "logger": _cut(str(capture.logger), _MAX_NAME) if capture.logger else None,
            "message": _cut(_text(capture.message), _PRECUT),
            "exceptions": [self._exception(raw) for raw in capture.exceptions],
            "context": _jsonable(capture.context),
            "tags": wire_tags(capture.tags),
            "fingerprint": wire_fingerprint(capture.fingerprint),
        }
        if capture.count > 1:  # after the others, in the contract's order: see parse_event_exact
            event["count"] = min(capture.count, MAX_EVENT_COUNT)
            if capture.first_timestamp is not None:
                event["first_timestamp"] = _rfc3339(capture.first_timestamp)
        if capture.lost:
            event["lost"] = min(capture.lost, MAX_EVENT_COUNT)
        if not isinstance(event["context"], dict):
            event["context"] = {"context": event["context"]}
        self._scrubber.scrub_event(event)
        message = event["message"]
        event["message"] = truncate_utf8(message, MAX_MESSAGE_BYTES)
        cut = event["message"] is not message
        for exc in event["exceptions"]:
            value = exc["value"]
            exc["value"] = truncate_utf8(value, MAX_EXCEPTION_VALUE_BYTES)
            cut = cut or exc["value"] is not value
        data = encode_event(event)
        if len(data) > MAX_CONTEXT_BYTES:  # below that, no part can be over its own limit
            event["context"] = _fit_context(event["context"])
            data = _fit_event(event)
            cut = True
        return event, data, not cut or self._scrubber.is_clean(event)

    def _exception(self, raw: RawException) -> dict[str, Any]:
        exc = {
            "type": _cut(raw.type, _MAX_NAME),
            "module": _cut(raw.module, _MAX_NAME) if raw.module else None,
            "value": _cut(raw.value, _PRECUT),
            "frames": [self._frame(frame) for frame in raw.frames],
            "frames_omitted": raw.frames_omitted,
        }
        if raw.exception_id is not None:  # a tree: only events with an exception group
            exc["exception_id"] = raw.exception_id
            if raw.parent_id is not None:
                exc["parent_id"] = raw.parent_id
                exc["source"] = raw.source
            if raw.is_exception_group:
                exc["is_exception_group"] = True
        return exc

    def _frame(self, raw: RawFrame) -> dict[str, Any]:
        """A fresh wire dict of one frame; the same code location is only worked out once."""
        known = self._frames.get(raw)
        if known is None:
            filename, module, function, lineno = raw
            module_name = module if isinstance(module, str) else None
            line = linecache.getline(filename, lineno) if lineno else ""
            known = {
                "filename": _cut(filename, 1024),
                "module": _cut(module_name, _MAX_NAME) if module_name else None,
                "function": _cut(function, _MAX_NAME),
                "lineno": lineno,
                # Indentation kept (as Sentry does): a fix is written against the real line.
                "context_line": _cut(line.rstrip(), _MAX_LINE) if line.strip() else None,
                "in_app": self._in_app(filename, module_name),
            }
            if len(self._frames) >= _FRAME_CACHE:
                self._frames.clear()
            self._frames[raw] = known
        return known.copy()  # scrubbing and trimming change frames in place


def _uuid4_hex() -> str:
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


def occurrences(data: bytes) -> int:
    """What an encoded event stands for, should it be dropped: its ``count`` and the
    occurrences it reports ``lost``."""
    if b'"count":' not in data and b'"lost":' not in data:
        return 1  # the usual event: no need to read it
    try:
        doc = json.loads(data)
    except ValueError:
        return 1
    count, lost = doc.get("count", 1), doc.get("lost", 0)
    return (count if type(count) is int else 1) + (lost if type(lost) is int else 0)


def _rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    try:
        return str(value)
    except Exception as failure:
        return f"<str() failed: {type(failure).__name__}>"


def _jsonable(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy of ``value``: containers copied, other objects as their repr."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return _cut(value, _PRECUT)
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
                out[_cut(key if isinstance(key, str) else _text(key), 256)] = _jsonable(
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
        kept = [_jsonable(item, depth + 1) for item in items[:_MAX_CONTEXT_ITEMS]]
        if len(items) > _MAX_CONTEXT_ITEMS:
            kept.append(f"[Trimmed: {len(items) - _MAX_CONTEXT_ITEMS} more items]")
        return kept
    if isinstance(value, bytes | bytearray):
        return _cut(bytes(value).decode("utf-8", "backslashreplace"), _PRECUT)
    try:
        text = repr(value)
    except Exception as failure:
        text = f"<repr() failed: {type(failure).__name__}>"
    return _cut(text, _PRECUT)


def _size(value: Any) -> int:
    return len(to_json(value))


def _shorten_strings(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= _MAX_CONTEXT_STRING else _cut(value, _MAX_CONTEXT_STRING)
    if isinstance(value, dict):
        return {k: _shorten_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shorten_strings(v) for v in value]
    return value


def _fit_context(context: dict[str, Any]) -> dict[str, Any]:
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
    return {_cut(_text(key), 64): _cut(_text(value), 200) for key, value in list(tags.items())[:50]}


def wire_fingerprint(parts: list[Any] | None) -> list[str] | None:
    """A custom fingerprint as an event carries it: text, cut to its limits."""
    if not parts:
        return None
    return [_cut(_text(part), 256) for part in parts[:32]]


def _fit_event(event: dict[str, Any]) -> bytes:
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
