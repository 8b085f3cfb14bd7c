"""The switch behind ``mendline.testing.capture_error_events``: where captures go instead."""

from __future__ import annotations

from typing import Any

from mendline.ingest.app._builder import EventBuilder
from mendline.ingest.app._capture import Capture

__all__ = ["active", "pop", "push", "record"]

#: The lists that receive built events while a capture is active; innermost last.
_sinks: list[list[dict[str, Any]]] = []
active = False


def push(sink: list[dict[str, Any]]) -> None:
    """Start sending built events to ``sink`` instead of Kafka."""
    global active
    _sinks.append(sink)
    active = True


def pop(sink: list[dict[str, Any]]) -> None:
    """Stop sending to ``sink``."""
    global active
    _sinks.remove(sink)
    active = bool(_sinks)


def record(builder: EventBuilder, capture: Capture) -> None:
    """Build the event now, on the caller's thread, and append it to every active sink."""
    event = builder.build(capture)
    for sink in _sinks:
        sink.append(event)
