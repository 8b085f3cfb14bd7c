"""The size limits of ErrorEvent v1: emitters trim to them, consumers reject what is over."""

from __future__ import annotations

__all__ = [
    "MAX_CONTEXT_BYTES",
    "MAX_EVENT_BYTES",
    "MAX_EVENT_COUNT",
    "MAX_EXCEPTIONS",
    "MAX_EXCEPTION_VALUE_BYTES",
    "MAX_FRAMES",
    "MAX_GROUP_DEPTH",
    "MAX_GROUP_EXCEPTIONS",
    "MAX_MESSAGE_BYTES",
]

#: The message, in UTF-8 bytes.
MAX_MESSAGE_BYTES = 8 * 1024
#: One exception's ``value``, in UTF-8 bytes.
MAX_EXCEPTION_VALUE_BYTES = 8 * 1024
#: Frames kept per exception: the 50 outermost and the 50 innermost.
MAX_FRAMES = 100
#: ``context`` serialised as compact JSON, in bytes.
MAX_CONTEXT_BYTES = 16 * 1024
#: The whole event serialised as JSON, in bytes.
MAX_EVENT_BYTES = 256 * 1024
#: Exceptions kept in one event: the raised one and its nearest causes, and with exception
#: groups their sub-exceptions and the sub-exceptions' causes, nearest first.
MAX_EXCEPTIONS = 25
#: Sub-exceptions an emitter reads from one exception group (ExceptionGroup, TaskGroup): the
#: first ones; the group's value still counts them all. They share MAX_EXCEPTIONS with the chain.
MAX_GROUP_EXCEPTIONS = 10
#: Exception groups nested in one another whose sub-exceptions an emitter reads (the raised
#: group is the first); a group deeper than that is kept without its sub-exceptions.
MAX_GROUP_DEPTH = 3
#: The most occurrences one event may stand for (``count``) or report lost (``lost``): an
#: emitter's roll-up window never comes near it; a PostgreSQL integer holds it.
MAX_EVENT_COUNT = 1_000_000_000
