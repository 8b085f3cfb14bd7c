"""active_window() and next_window_change(): weekly windows in their zone across midnight,
the week's end and the DST changes of 2026 in Paris, and one-off windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mendline.analyzers.health import active_window, next_window_change
from mendline.schemas.checks import Maintenance

PARIS = ZoneInfo("Europe/Paris")


def window(**fields: Any) -> Maintenance:
    return Maintenance.model_validate(fields)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def paris(*parts: int, fold: int = 0) -> datetime:
    return datetime(*parts, tzinfo=PARIS, fold=fold)  # type: ignore[misc]


SUNDAY_NIGHT = {"days": ["sun"], "at": "23:00", "duration": "2h"}
NIGHTLY_PARIS = {"at": "02:30", "duration": "1h", "timezone": "Europe/Paris"}


@pytest.mark.parametrize(
    ("fields", "at", "inside"),
    [
        # 2026-12-06 is a Sunday: the window crosses midnight and the week's end.
        (SUNDAY_NIGHT, utc(2026, 12, 6, 22, 59), False),
        (SUNDAY_NIGHT, utc(2026, 12, 6, 23, 0), True),  # its start is in
        (SUNDAY_NIGHT, utc(2026, 12, 7, 0, 30), True),  # Monday 00:30
        (SUNDAY_NIGHT, utc(2026, 12, 7, 1, 0), False),  # its end is out
        (SUNDAY_NIGHT, utc(2026, 12, 5, 23, 30), False),  # Saturday night
        (SUNDAY_NIGHT, utc(2026, 12, 8, 0, 30), False),  # Tuesday 00:30
        # Every day (no `days`) at 02:30 Paris: 01:30 UTC in winter, 00:30 UTC in summer.
        (NIGHTLY_PARIS, utc(2026, 1, 10, 1, 45), True),
        (NIGHTLY_PARIS, utc(2026, 1, 10, 0, 45), False),
        (NIGHTLY_PARIS, utc(2026, 7, 10, 0, 45), True),
        (NIGHTLY_PARIS, utc(2026, 7, 10, 1, 45), False),
        # 29 March 2026: 02:00 -> 03:00, 02:30 does not exist: it starts at 03:00 CEST
        # (01:00 UTC), as cron would, and lasts one real hour.
        (NIGHTLY_PARIS, paris(2026, 3, 29, 1, 59), False),
        (NIGHTLY_PARIS, paris(2026, 3, 29, 3, 0), True),
        (NIGHTLY_PARIS, paris(2026, 3, 29, 3, 59), True),
        (NIGHTLY_PARIS, paris(2026, 3, 29, 4, 0), False),
        # 25 October 2026: 03:00 -> 02:00, 02:30 happens twice: the first one (CEST) counts,
        # once; an hour later (02:30 CET, the second) the window is over.
        (NIGHTLY_PARIS, paris(2026, 10, 25, 2, 29), False),
        (NIGHTLY_PARIS, paris(2026, 10, 25, 2, 30), True),
        (NIGHTLY_PARIS, paris(2026, 10, 25, 2, 59), True),
        (NIGHTLY_PARIS, paris(2026, 10, 25, 2, 15, fold=1), True),  # 00:15 UTC
        (NIGHTLY_PARIS, paris(2026, 10, 25, 2, 30, fold=1), False),  # 01:30 UTC
        # A window over the change lasts its real duration: 01:30 + 3h = 03:30 CET.
        ({**NIGHTLY_PARIS, "at": "01:30", "duration": "3h"}, paris(2026, 10, 25, 3, 29), True),
        ({**NIGHTLY_PARIS, "at": "01:30", "duration": "3h"}, paris(2026, 10, 25, 3, 30), False),
        # The same wall time in UTC is not moved by Paris's changes.
        ({"at": "02:30", "duration": "1h"}, utc(2026, 3, 29, 2, 30), True),
        # Weekdays are those of the window's zone: Monday 00:30 in Paris is Sunday in UTC.
        (
            {"days": ["mon"], "at": "00:00", "duration": "1h", "timezone": "Europe/Paris"},
            utc(2026, 12, 6, 23, 30),
            True,
        ),
        # A window longer than a day, starting two days before.
        ({"days": ["fri"], "at": "20:00", "duration": "3d"}, utc(2026, 12, 6, 12, 0), True),
        ({"days": ["fri"], "at": "20:00", "duration": "3d"}, utc(2026, 12, 7, 20, 0), False),
        # One-off: [start, start + duration).
        ({"start": "2026-12-05T10:00:00+01:00", "duration": "30m"}, utc(2026, 12, 5, 9, 0), True),
        ({"start": "2026-12-05T10:00:00+01:00", "duration": "30m"}, utc(2026, 12, 5, 9, 30), False),
        ({"start": "2026-12-05T10:00:00+01:00", "duration": "30m"}, utc(2026, 12, 5, 8, 59), False),
    ],
)
def test_active_window(fields: dict[str, Any], at: datetime, inside: bool) -> None:
    maintenance = window(**fields)
    assert active_window([maintenance], at) == (maintenance if inside else None)


def test_the_first_covering_window_is_returned() -> None:
    nightly, sunday = window(**NIGHTLY_PARIS), window(**SUNDAY_NIGHT)
    assert active_window([nightly, sunday], utc(2026, 12, 6, 23, 30)) is sunday
    assert active_window([], utc(2026, 12, 6, 23, 30)) is None


@pytest.mark.parametrize(
    ("fields", "at", "change"),
    [
        (SUNDAY_NIGHT, utc(2026, 12, 5, 12, 0), utc(2026, 12, 6, 23, 0)),  # the next start
        (SUNDAY_NIGHT, utc(2026, 12, 7, 0, 30), utc(2026, 12, 7, 1, 0)),  # inside: its end
        (SUNDAY_NIGHT, utc(2026, 12, 6, 23, 0), utc(2026, 12, 7, 1, 0)),  # after, not at
        (NIGHTLY_PARIS, paris(2026, 3, 28, 12, 0), paris(2026, 3, 29, 3, 0)),  # after the jump
        (
            {"start": "2026-12-05T10:00:00Z", "duration": "1h"},
            utc(2026, 12, 5, 10),
            utc(2026, 12, 5, 11),
        ),
        ({"start": "2026-12-05T10:00:00Z", "duration": "1h"}, utc(2026, 12, 5, 11), None),
    ],
)
def test_next_window_change(fields: dict[str, Any], at: datetime, change: datetime | None) -> None:
    assert next_window_change([window(**fields)], at) == change


def test_next_window_change_is_the_earliest_of_all_windows() -> None:
    windows = [window(**SUNDAY_NIGHT), window(at="12:00", duration=60)]
    at = utc(2026, 12, 6, 12, 0, 30)
    assert next_window_change(windows, at) == at.replace(second=0) + timedelta(minutes=1)
