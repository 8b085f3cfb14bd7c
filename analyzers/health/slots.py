"""When a check runs: its slots on a grid of its interval, offset per check so that checks of
the same interval do not all start at once, and the seconds a result stands for in uptime."""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime, timedelta

from mendline.schemas.checks import Check

__all__ = ["cadence", "counted_seconds", "first_slot", "next_slot", "slot_offset"]


def slot_offset(name: str, interval: float) -> float:
    """Seconds into each interval (counted from the Unix epoch) when the check's slots fall:
    from a hash of its name, so the same on every monitor and after every restart."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * interval


def first_slot(name: str, interval: float, now: datetime) -> datetime:
    """The check's first slot after ``now``, within one interval."""
    offset = slot_offset(name, interval)
    k = math.floor((now.timestamp() - offset) / interval) + 1
    return datetime.fromtimestamp(k * interval + offset, UTC)


def next_slot(scheduled_at: datetime, interval: float, now: datetime) -> datetime:
    """The slot after ``max(scheduled_at, now)`` on the grid of ``scheduled_at``: a monitor
    that was down for an hour runs the check once, not once per missed slot."""
    behind = max((now - scheduled_at).total_seconds(), 0.0)
    return scheduled_at + timedelta(seconds=(math.floor(behind / interval) + 1) * interval)


def cadence(check: Check) -> float:
    """Seconds expected between two results: the interval; for a heartbeat, ``every``, or a
    day for a cron schedule."""
    if check.kind == "heartbeat":
        return check.every or 86400.0
    return check.interval


def counted_seconds(previous: datetime | None, at: datetime, cadence: float) -> float:
    """The seconds a result at ``at`` stands for in uptime: the time since the check's
    previous result (one cadence for its first), capped at two cadences so that a monitor's
    own outage is not counted as the check's; 0 for a result older than the previous."""
    if previous is None:
        return cadence
    return min(max((at - previous).total_seconds(), 0.0), 2 * cadence)
