"""Which timestamp the consumers store for an event or a check-in: the sender's, unless its
clock is off."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = [
    "CHECKIN_FUTURE_TOLERANCE",
    "FUTURE_TOLERANCE",
    "TimestampWindow",
    "checkin_timestamp",
    "first_occurrence",
    "stored_timestamp",
]

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


def first_occurrence(
    first: datetime | None, last: datetime, window: TimestampWindow | None
) -> datetime:
    """When the first of a rolled-up event's occurrences happened: its ``first_timestamp``
    when that is at or before its (stored) ``timestamp`` and inside ``window``; else the
    timestamp itself (no roll-up, or a first occurrence a wrong clock put elsewhere)."""
    if first is None or first > last:
        return last
    if window is not None and not window.earliest <= first <= window.latest:
        return last
    return first


#: How far ahead of its Kafka record's timestamp a check-in's own may be.
CHECKIN_FUTURE_TOLERANCE = timedelta(minutes=5)


def checkin_timestamp(
    sent: datetime, record_time: datetime, received: datetime
) -> tuple[datetime, bool]:
    """The timestamp stored for a check-in, and whether it was clamped: the sender's, unless
    it is more than CHECKIN_FUTURE_TOLERANCE ahead of the time Kafka gave its record; then
    the record's time. Missed runs are judged against the newest check-in timestamp consumed
    (the stream clock), so one sender's clock a day ahead would otherwise make every other
    heartbeat look a day late. A record's time is the producer's clock on a topic with
    CreateTime timestamps (Kafka's default), so it counts only up to ``received`` (the
    consumer's clock). A timestamp in the past is kept: it cannot move the clock; one ahead
    within the tolerance is kept too, but moves the clock only up to the time the check-in
    was stored (``CheckinStore.store``)."""
    bound = min(record_time, received)
    if sent - bound > CHECKIN_FUTURE_TOLERANCE:
        return bound, True
    return sent, False
