"""Which timestamp the consumer stores for an event: the emitter's, unless its clock is off."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["FUTURE_TOLERANCE", "TimestampWindow", "stored_timestamp"]

#: How far ahead of the consumer's clock an event's timestamp may be.
FUTURE_TOLERANCE = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class TimestampWindow:
    """The timestamps accepted as they are: [received - retention, received + 1 day]."""

    received: datetime
    earliest: datetime
    latest: datetime

    @classmethod
    def around(cls, received: datetime, retention_days: int) -> TimestampWindow:
        """The window of events received at ``received``, with the events' retention."""
        return cls(received, received - timedelta(days=retention_days), received + FUTURE_TOLERANCE)


def stored_timestamp(timestamp: datetime, window: TimestampWindow) -> datetime:
    """The event's own timestamp when it is inside ``window``, else the time it was received.

    Outside, the emitter's clock is wrong: a year ahead would pin the issue's last_seen (and
    the top of every list) for a year, and 1970 would make it the oldest issue. The time of
    receipt, as Sentry Relay does, rather than the nearer bound: the bound a day ahead would
    still pin last_seen for a day.
    """
    if window.earliest <= timestamp <= window.latest:
        return timestamp
    return window.received
