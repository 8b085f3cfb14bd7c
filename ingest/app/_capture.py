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

from mendline.schemas.limits import (
    MAX_EXCEPTIONS,
    MAX_FRAMES,
    MAX_GROUP_DEPTH,
    MAX_GROUP_EXCEPTIONS,
)

__all__ = ["Capture", "RawException", "RawFrame", "capture_chain", "exception_of"]

#: (filename, module, function, lineno)
RawFrame = tuple[str, str | None, str, int | None]

_HALF = MAX_FRAMES // 2


@dataclass(slots=True, frozen=True)
class RawException:
    """One exception of a chain as read on the calling thread.

    The last four fields are set only when the chain holds an exception group: the exceptions
    are then a tree, with ErrorEvent v1's fields of the same names.
    """

    type: str
    module: str | None
    value: str
    frames: list[RawFrame]
    frames_omitted: int
    exception_id: int | None = None
    parent_id: int | None = None
    source: str | None = None
    is_exception_group: bool = False


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
    #: The occurrences it stands for: more than 1 for a roll-up of repeats (see _rollup).
    count: int = 1
    #: With a count over 1: when the first of them happened (``timestamp`` is the last).
    first_timestamp: float | None = None
    #: Events the shipper lost (a full queue or spool) before this one was built.
    lost: int = 0

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
    one and its nearest causes). When an exception group is met, the sub-exceptions are
    read too (see _capture_tree).
    """
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(chain) < MAX_EXCEPTIONS:
        if isinstance(current, BaseExceptionGroup):
            return _capture_tree(exc)
        seen.add(id(current))
        chain.append(current)
        current = _link(current)[0]
    chain.reverse()
    return [_raw_exception(item) for item in chain]


def _link(exc: BaseException) -> tuple[BaseException | None, str]:
    """The exception Python prints as the cause of ``exc``, and how ``exc`` holds it."""
    if exc.__cause__ is not None:
        return exc.__cause__, "__cause__"
    if not exc.__suppress_context__:
        return exc.__context__, "__context__"
    return None, ""


def _capture_tree(exc: BaseException) -> list[RawException]:
    """Read an exception that holds exception groups as a tree, in ErrorEvent v1's order.

    Each exception's children are its cause (or context) and, for a group, its first
    MAX_GROUP_EXCEPTIONS sub-exceptions, read down to MAX_GROUP_DEPTH nested groups. The
    MAX_EXCEPTIONS nearest to the raised exception are kept (breadth first, so every group
    keeps its sub-exceptions before their causes' causes); an exception met twice is kept
    once. The list is the tree depth first with each exception after all it holds, so the
    raised one is last, and ids count from it (0) in the order Sentry uses.
    """
    found: list[tuple[BaseException, int, str]] = []  # (exception, parent index, source)
    children: list[list[int]] = []
    seen: set[int] = set()
    queue: deque[tuple[BaseException, int, str, int]] = deque([(exc, -1, "", 0)])
    while queue and len(found) < MAX_EXCEPTIONS:
        current, parent, source, depth = queue.popleft()
        if id(current) in seen:
            continue
        seen.add(id(current))
        index = len(found)
        found.append((current, parent, source))
        children.append([])
        if parent >= 0:
            children[parent].append(index)
        link, how = _link(current)
        if link is not None:
            queue.append((link, index, how, depth))
        if isinstance(current, BaseExceptionGroup) and depth < MAX_GROUP_DEPTH:
            for number, member in enumerate(current.exceptions[:MAX_GROUP_EXCEPTIONS]):
                queue.append((member, index, f"exceptions[{number}]", depth + 1))
    order: list[int] = []
    stack = [0]
    while stack:
        index = stack.pop()
        order.append(index)
        stack.extend(reversed(children[index]))
    ids = {index: number for number, index in enumerate(order)}
    tree: list[RawException] = []
    for index in reversed(order):
        current, parent, source = found[index]
        raw = _raw_exception(current)
        tree.append(
            RawException(
                raw.type,
                raw.module,
                raw.value,
                raw.frames,
                raw.frames_omitted,
                exception_id=ids[index],
                parent_id=ids[parent] if parent >= 0 else None,
                source=source or None,
                is_exception_group=isinstance(current, BaseExceptionGroup),
            )
        )
    return tree


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
