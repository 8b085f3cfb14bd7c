"""Helpers for your own tests: see which ErrorEvents your code would emit, without Kafka.

In the manner of ``structlog.testing.capture_logs``::

    from mendline.testing import capture_error_events

    def test_bad_quantity_is_reported():
        with capture_error_events() as events:
            handle_order({"qty": "n/a"})
        assert events[0].exceptions[-1].type == "ValueError"
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mendline.ingest.app import start_capturing, stop_capturing
from mendline.schemas.event import ErrorEvent

__all__ = ["CapturedEvents", "capture_error_events"]


class CapturedEvents(list[ErrorEvent]):
    """The ErrorEvents captured so far, validated, oldest first."""


@contextmanager
def capture_error_events() -> Iterator[CapturedEvents]:
    """Capture, instead of shipping, the ErrorEvents that every mendline processor and handler
    in this process builds while the block runs.

    The events are built exactly as they would be shipped (trimmed and scrubbed) and
    validated as ErrorEvent models; nothing is sent to Kafka.
    """
    raw: list[dict[str, object]] = []
    events = CapturedEvents()

    class _Sink(list[dict[str, object]]):
        def append(self, item: dict[str, object]) -> None:
            raw.append(item)
            events.append(ErrorEvent.model_validate(item))

    sink = _Sink()
    start_capturing(sink)
    try:
        yield events
    finally:
        stop_capturing(sink)
