"""Is a check in a maintenance window at a given instant? Weekly windows in their own time
zone (DST included) and one-off windows. Pure.

Daylight saving time follows cron (Debian's, and cronsim's, which heartbeats use): a weekly
start that does not exist that day (in the hour skipped in spring) starts when the clocks
jump, at the first minute that exists (02:30 on the day Paris goes 02:00 -> 03:00 starts at
03:00); a start that happens twice (in the hour repeated in autumn) starts once, at its first
occurrence. ``duration`` is real elapsed time, so a 2h window over a change lasts two hours.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from mendline.schemas.checks import WEEKDAYS, Maintenance

__all__ = ["active_window", "next_window_change"]

_DAY = timedelta(days=1)
# Weekly windows longer than this cover every instant; counting starts further back is useless.
_MAX_DAYS_BACK = 8


def active_window(windows: Sequence[Maintenance], at: datetime) -> Maintenance | None:
    """The first of ``windows`` that ``at`` (aware) falls in, None when none does.

    A window covers [start, start + duration): its start is in, its end is out.
    """
    for window in windows:
        if any(start <= at < end for start, end in _spans(window, at)):
            return window
    return None


def next_window_change(windows: Sequence[Maintenance], at: datetime) -> datetime | None:
    """The first instant after ``at`` when a window starts or ends (when ``active_window``
    may answer differently), None when no window starts or ends within the next 8 days
    (one-off windows: ever)."""
    changes = [
        edge
        for window in windows
        for span in _spans(window, at, ahead=_MAX_DAYS_BACK)
        for edge in span
        if edge > at
    ]
    return min(changes, default=None)


def _spans(
    window: Maintenance, at: datetime, ahead: int = 0
) -> Iterator[tuple[datetime, datetime]]:
    """The window's occurrences that may cover ``at`` (and, with ``ahead``, those starting
    within ``ahead`` days after it), as UTC [start, end)."""
    length = timedelta(seconds=window.duration)
    if window.start is not None:
        start = window.start.astimezone(UTC)
        yield start, start + length
        return
    assert window.at is not None  # the model allows `at` or `start`, never neither
    zone = ZoneInfo(window.timezone)
    today = at.astimezone(zone).date()
    back = min(int(window.duration // 86400) + 1, _MAX_DAYS_BACK)
    for offset in range(-back, ahead + 1):
        day = today + offset * _DAY
        if window.days is None or WEEKDAYS[day.weekday()] in window.days:
            start = _local_start(day, window.at.hour, window.at.minute, zone)
            yield start, start + length


def _local_start(day: date, hour: int, minute: int, zone: ZoneInfo) -> datetime:
    """``hh:mm`` on ``day`` in ``zone`` as a UTC instant, the way cron starts a job: a time
    in the hour skipped in spring becomes the first minute after the jump, a time in the
    hour repeated in autumn its first occurrence."""
    wall = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone, fold=0)
    while _imaginary(wall):
        wall += timedelta(minutes=1)  # naive-wall arithmetic: walks the local clock
    return wall.astimezone(UTC)


def _imaginary(wall: datetime) -> bool:
    return wall.astimezone(UTC).astimezone(wall.tzinfo).replace(tzinfo=None) != wall.replace(
        tzinfo=None
    )
