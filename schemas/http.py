"""HTTP facts shared by the LLM client, the alert channels and the forges."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["retriable_status", "retry_after"]


def retriable_status(status: int) -> bool:
    """Whether an HTTP error status may pass if the same request is sent again later: a
    request timeout (408), too many requests (429) or a server error (5xx)."""
    return status in (408, 429) or status >= 500


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: a number of seconds or an HTTP date;
    None when absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
