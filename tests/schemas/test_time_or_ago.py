"""A filter's time: a moment or a duration back from now, as the CLI and the dashboard take it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mendline.schemas.duration import time_or_ago

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2h", NOW - timedelta(hours=2)),
        ("7d", NOW - timedelta(days=7)),
        ("2026-12-05T10:00:00Z", datetime(2026, 12, 5, 10, tzinfo=UTC)),
        ("2026-12-05T10:00:00", datetime(2026, 12, 5, 10, tzinfo=UTC)),  # no zone: UTC
        (
            "2026-12-05T10:00:00+02:00",
            datetime(2026, 12, 5, 8, tzinfo=UTC),
        ),
    ],
)
def test_a_time_is_a_moment_or_a_duration_back(text: str, expected: datetime) -> None:
    assert time_or_ago(text, NOW, 36500) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [("yesterday", "expected an ISO 8601 time"), ("400d", "longer than 365d")],
)
def test_what_is_no_time_says_why(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        time_or_ago(text, NOW, 365)
