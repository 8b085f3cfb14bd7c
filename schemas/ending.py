"""When a while ends (an ignore, a silence): a duration from now, or a time, within bounds;
shared by the command line (``--for``/``--until``) and the dashboard's forms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mendline.schemas.errors import UsageError
from mendline.schemas.printable import printable
from mendline.schemas.tomlfile import parse_duration

__all__ = ["LONGEST_WHILE_DAYS", "ends_at"]

#: The longest an ignore or a silence may last (ten years), given as a duration or a time.
LONGEST_WHILE_DAYS = 3650


def ends_at(
    duration: str | None,
    until: str | None,
    now: datetime,
    *,
    zone_required: bool,
    names: tuple[str, str] = ("--for", "--until"),
) -> datetime | None:
    """When a while ends: ``duration`` (``--for``) from ``now``, or the ISO 8601 time
    ``until`` (``--until``; without a zone, UTC unless ``zone_required``), at most
    :data:`LONGEST_WHILE_DAYS` days from ``now``; None for neither. UsageError for a value
    that is not one, both given, or one out of range; its message calls the two by
    ``names``."""
    for_, until_ = names
    longest = timedelta(days=LONGEST_WHILE_DAYS)
    if duration is not None and until is not None:
        raise UsageError(f"give {for_} or {until_}, not both")
    if duration is not None:
        try:
            seconds = parse_duration(duration)
        except ValueError as exc:
            raise UsageError(f"{for_} {exc}") from None
        if not 0 < seconds <= longest.total_seconds():
            raise UsageError(f"{for_} takes more than 0s and at most {LONGEST_WHILE_DAYS}d")
        return now + timedelta(seconds=seconds)
    if until is None:
        return None
    try:
        moment = datetime.fromisoformat(until)
    except ValueError:
        raise UsageError(
            f"{until_} {printable(until)!s} is not an ISO 8601 time (2026-12-24T09:00+01:00)"
        ) from None
    if moment.tzinfo is None:
        if zone_required:
            raise UsageError(f"{until_} needs its time zone (2026-12-24T09:00Z or +01:00)")
        moment = moment.replace(tzinfo=UTC)
    try:
        in_range = moment.astimezone(UTC) - now <= longest
    except OverflowError:  # past year 9999 in UTC
        in_range = False
    if not in_range:
        raise UsageError(f"{until_} is at most {LONGEST_WHILE_DAYS}d from now")
    return moment
