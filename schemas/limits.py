"""The size limits of ErrorEvent v1: emitters trim to them, consumers reject what is over."""

from __future__ import annotations

__all__ = [
    "MAX_CONTEXT_BYTES",
    "MAX_EVENT_BYTES",
    "MAX_EXCEPTIONS",
    "MAX_EXCEPTION_VALUE_BYTES",
    "MAX_FRAMES",
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
#: Exceptions kept in one chain (the raised one and its nearest causes).
MAX_EXCEPTIONS = 25
