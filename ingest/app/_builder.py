"""Turns a Capture into a trimmed, scrubbed ErrorEvent v1 wire dict and its JSON bytes."""

from __future__ import annotations

import json
import linecache
import os
import socket
import sysconfig
from collections.abc import Iterable
from typing import Any

from mendline.analyzers.grouping.scrubbing import Scrubber
from mendline.ingest._wire import (
    MAX_LINE,
    MAX_NAME,
    PRECUT,
    as_text,
    cut,
    encode_event,
    finish_event,
    jsonable,
    rfc3339,
    truncate_utf8,
    uuid4_hex,
    wire_fingerprint,
    wire_tags,
)
from mendline.ingest.app._capture import Capture, RawException, RawFrame
from mendline.schemas.event import SCHEMA_VERSION
from mendline.schemas.limits import (
    MAX_EVENT_COUNT,
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

_FRAME_CACHE = 20_000


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
        self.service = cut(service, 200)
        self._environment = cut(environment, 200)
        self._release = cut(release, 200) if release else None
        self._host = cut(host if host is not None else socket.gethostname(), 255)
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
            "event_id": uuid4_hex(),
            "timestamp": rfc3339(capture.timestamp),
            "service": self.service,
            "environment": self._environment,
            "release": self._release,
            "host": self._host,
            "level": capture.level,
            "logger": cut(str(capture.logger), MAX_NAME) if capture.logger else None,
            "message": cut(as_text(capture.message), PRECUT),
            "exceptions": [self._exception(raw) for raw in capture.exceptions],
            "context": jsonable(capture.context),
            "tags": wire_tags(capture.tags),
            "fingerprint": wire_fingerprint(capture.fingerprint),
        }
        if capture.count > 1:  # after the others, in the contract's order: see parse_event_exact
            event["count"] = min(capture.count, MAX_EVENT_COUNT)
            if capture.first_timestamp is not None:
                event["first_timestamp"] = rfc3339(capture.first_timestamp)
        if capture.lost:
            event["lost"] = min(capture.lost, MAX_EVENT_COUNT)
        if not isinstance(event["context"], dict):
            event["context"] = {"context": event["context"]}
        data, clean = finish_event(event, self._scrubber, names_within_limits=True)
        return event, data, clean

    def _exception(self, raw: RawException) -> dict[str, Any]:
        exc = {
            "type": cut(raw.type, MAX_NAME),
            "module": cut(raw.module, MAX_NAME) if raw.module else None,
            "value": cut(raw.value, PRECUT),
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
                "filename": cut(filename, 1024),
                "module": cut(module_name, MAX_NAME) if module_name else None,
                "function": cut(function, MAX_NAME),
                "lineno": lineno,
                # Indentation kept (as Sentry does): a fix is written against the real line.
                "context_line": cut(line.rstrip(), MAX_LINE) if line.strip() else None,
                "in_app": self._in_app(filename, module_name),
            }
            if len(self._frames) >= _FRAME_CACHE:
                self._frames.clear()
            self._frames[raw] = known
        return known.copy()  # scrubbing and trimming change frames in place


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
