"""Durations as people write them in the routes file and read them in messages: "30s", "5m",
"1h30m", "500ms", "1d"."""

from __future__ import annotations

__all__ = ["UNIT_SECONDS", "format_duration"]

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
