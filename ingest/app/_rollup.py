"""Rolling up an error storm at the edge: repeats of one error counted, not each sent.

While identical errors repeat (the same level, logger, message template, custom fingerprint
and tags, and the same exception types at the same code positions), the first few of each in
a short window are sent in full and the rest only counted: when the window closes, one event
stands for them with an exact ``count`` and the first and last of their timestamps. Distinct
errors never share a key, so they are never merged; what cannot be keyed (a message that is
not a string, an unhashable fingerprint) is always sent in full.

The app's threads call ``admit`` with the key ``rollup_key`` made outside any lock; the
shipper thread calls ``closed`` to collect the windows that ended, and ``drain`` at exit or a
flush. The caller serialises the calls (the shipper's lock): ``n += 1`` loses increments
between threads.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from mendline.ingest.app._builder import wire_fingerprint, wire_tags
from mendline.ingest.app._capture import Capture, RawException

__all__ = ["Key", "RollUp", "rollup_key"]


#: An error's identity and its hash, worked out once (hashing a stack costs about 2 us, and a
#: tuple does not remember its hash).
Key = tuple[int, Hashable]


def rollup_key(capture: Capture) -> Key | None:
    """What makes two log calls the same error, with its hash; None when ``capture`` cannot
    be keyed (a message that is not a string: it is then sent in full). Exception values
    count only for an exception without frames: with frames, the code positions say which
    error it is (as grouping does). Made of strings, integers and None only, so comparing
    keys runs no code of the app's."""
    if type(capture.message) is not str:
        return None
    exceptions = capture.exceptions
    key = (
        capture.level,
        capture.logger,
        capture.message,
        # As the event will carry them (text): 1, 1.0 and True are equal in Python, not there.
        tuple(wire_fingerprint(capture.fingerprint) or ()),
        tuple(wire_tags(capture.tags).items()),
        tuple(_exception_key(raw) for raw in exceptions) if exceptions else None,
    )
    return hash(key), key


def _exception_key(raw: RawException) -> Hashable:
    return (
        raw.type,
        raw.module,
        tuple(raw.frames),
        None if raw.frames else raw.value,
        raw.exception_id,
        raw.parent_id,
        raw.source,
    )


@dataclass(slots=True)
class _Window:
    parts: Hashable  # the error's key (its hash keys the table)
    opened: float  # when the window opened, on the caller's monotonic clock
    sent: int = 1  # occurrences sent in full
    count: int = 0  # occurrences counted since
    first: float = 0.0  # the first counted one's time
    last: Capture | None = None  # the last counted one


class RollUp:
    """Counts the repeats of each error within a window; not thread-safe by itself (see the
    module docstring)."""

    def __init__(self, window: float, full: int, max_keys: int = 10_000) -> None:
        self._window = window
        self._full = full
        self._max_keys = max_keys
        self._open: dict[int, _Window] = {}

    def __len__(self) -> int:
        return len(self._open)

    def admit(self, key: Key, capture: Capture, now: float) -> bool:
        """True when ``capture`` (of ``key``) is to be sent in full; False when it was counted
        (it will be part of a rolled-up event). ``now`` is a monotonic clock's (windows must
        not follow the wall clock's steps); the capture's own timestamp is only reported.
        Cheap: called on the app's thread."""
        hashed, parts = key
        window = self._open.get(hashed)
        if window is not None and window.parts != parts:
            return True  # another error with the same hash: never merged, sent in full
        if window is None or now - window.opened >= self._window:
            if window is not None and window.count:  # not collected yet: keep counting
                return self._count(window, capture)
            if window is None and len(self._open) >= self._max_keys:
                return True  # too many distinct errors at once: each is sent
            self._open[hashed] = _Window(parts, now)
            return True
        if window.sent < self._full:
            window.sent += 1
            return True
        return self._count(window, capture)

    @staticmethod
    def _count(window: _Window, capture: Capture) -> bool:
        if not window.count:
            window.first = capture.timestamp
        window.count += 1
        window.last = capture
        return False

    def closed(self, now: float) -> list[Capture]:
        """The rolled-up events of the windows that ended by ``now`` (the clock of admit);
        their keys start again."""
        ended = [k for k, w in self._open.items() if now - w.opened >= self._window]
        windows = [self._open.pop(k) for k in ended]
        return _rolled_up(windows)

    def drain(self) -> list[Capture]:
        """Every window's rolled-up event now, ended or not (at exit)."""
        windows = list(self._open.values())
        self._open.clear()
        return _rolled_up(windows)

    def pending(self) -> int:
        """Occurrences counted and not yet collected."""
        return sum(w.count for w in self._open.values())


def _rolled_up(windows: list[_Window]) -> list[Capture]:
    """The events that stand for the windows' counted occurrences: the last of each window's,
    with the count and the first one's time; none for a window sent in full."""
    events = []
    for window in windows:
        last = window.last
        if last is not None:
            last.count = window.count
            last.first_timestamp = window.first
            events.append(last)
    return events
