"""What the calling thread records of a log call: only cheap, immutable facts.

Everything else (source lines, in-app flags, JSON conversion, trimming, scrubbing,
serialisation) happens later on the shipper thread, so a log call costs the app a few
microseconds. Frames are read here because a traceback can grow if the exception is raised
again after it was logged, and ``str(exc)`` because an exception can be mutated.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from mendline.schemas.limits import MAX_EXCEPTIONS, MAX_FRAMES

__all__ = ["Capture", "RawException", "RawFrame", "capture_chain", "exception_of"]

#: (filename, module, function, lineno)
RawFrame = tuple[str, str | None, str, int | None]

_HALF = MAX_FRAMES // 2


@dataclass(slots=True, frozen=True)
class RawException:
    """One exception of a chain as read on the calling thread."""

    type: str
    module: str | None
    value: str
    frames: list[RawFrame]
    frames_omitted: int


@dataclass(slots=True)
class Capture:
    """A log call that will become an ErrorEvent."""

    timestamp: float
    level: str
    logger: str | None
    message: object
    context: dict[str, Any]
    exceptions: list[RawException]
    tags: dict[str, Any] | None = None
    fingerprint: list[Any] | None = None

    @classmethod
    def now(
        cls,
        level: str,
        logger: str | None,
        message: object,
        context: dict[str, Any],
        exc: BaseException | None,
        tags: dict[str, Any] | None = None,
        fingerprint: list[Any] | None = None,
    ) -> Capture:
        """Record a log call made just now, reading the exception chain if there is one."""
        return cls(
            time.time(),
            level,
            logger,
            message,
            context,
            capture_chain(exc) if exc is not None else [],
            tags,
            fingerprint,
        )


def exception_of(exc_info: object) -> BaseException | None:
    """The exception that ``exc_info`` designates: an exception, a sys.exc_info() tuple or True."""
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple):
        return exc_info[1] if len(exc_info) == 3 else None
    if exc_info:
        import sys

        return sys.exc_info()[1]
    return None


def capture_chain(exc: BaseException) -> list[RawException]:
    """Read an exception and its causes, root cause first and the raised exception last.

    Follows ``__cause__``, and ``__context__`` unless suppressed, as Python prints them;
    a cyclic chain stops at the first repeat; at most MAX_EXCEPTIONS are kept (the raised
    one and its nearest causes).
    """
    chain: list[RawException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(chain) < MAX_EXCEPTIONS:
        seen.add(id(current))
        chain.append(_raw_exception(current))
        if current.__cause__ is not None:
            current = current.__cause__
        elif not current.__suppress_context__:
            current = current.__context__
        else:
            current = None
    chain.reverse()
    return chain


def _raw_exception(exc: BaseException) -> RawException:
    cls = type(exc)
    try:
        value = str(exc)
    except Exception as failure:  # an app's __str__ may raise anything
        value = f"<str() failed: {type(failure).__name__}>"
    frames, omitted = _frames(exc.__traceback__)
    return RawException(cls.__qualname__, cls.__module__, value, frames, omitted)


def _frames(tb: TracebackType | None) -> tuple[list[RawFrame], int]:
    """The outermost and innermost MAX_FRAMES/2 frames, and how many were left between."""
    head: list[RawFrame] = []
    tail: deque[RawFrame] | None = None
    omitted = 0
    while tb is not None:
        frame = tb.tb_frame
        code = frame.f_code
        item = (code.co_filename, frame.f_globals.get("__name__"), code.co_qualname, tb.tb_lineno)
        if len(head) < _HALF:
            head.append(item)
        else:
            if tail is None:
                tail = deque(maxlen=_HALF)
            elif len(tail) == _HALF:
                omitted += 1
            tail.append(item)
        tb = tb.tb_next
    if tail:
        head.extend(tail)
    return head, omitted
