"""Durations as people write them in the routes file and read them in messages: "30s", "5m",
"1h30m", "500ms", "1d"; and a time given as either a moment or a duration back from now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["MOST_DAYS", "UNIT_SECONDS", "format_duration", "time_or_ago"]

#: The most days back a time may be given as (a hundred years): more would take dates out of
#: range.
MOST_DAYS = 36500

#: Seconds in each unit a duration may be written in, largest first.
UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def format_duration(seconds: float) -> str:
    """The shortest way to write ``seconds`` as a duration: ``1h30m``, ``500ms``, ``0s``."""
    millis = round(seconds * 1000)
    parts = []
    for unit in ("d", "h", "m", "s", "ms"):
        count, millis = divmod(millis, round(UNIT_SECONDS[unit] * 1000))
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or f"{seconds:g}s"


def time_or_ago(text: str, now: datetime, max_days: int) -> datetime:
    """A time as people give it to a filter: ISO 8601 (UTC when it names no zone), or a
    duration (``2h``, ``7d``) before ``now``, of at most ``max_days`` days; ValueError saying
    what is wrong."""
    from mendline.schemas.tomlfile import parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError:
        pass
    else:
        if seconds > max_days * 86400:  # more would take the time out of range
            raise ValueError(f"{text!r} is longer than {max_days}d")
        return now - timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"expected an ISO 8601 time (2026-12-05T10:00:00Z) or a duration (2h), not {text!r}"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
