"""The dashboard's measures, worked out from counts: percentiles as PostgreSQL's
percentile_cont, rates that are None without cases, uptime from seconds, the error-rate
series, which hours to read again, the uptime bars, a check's figures from its day rollups,
the state a check is shown in, and whether a pipeline stage looks alive."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from mendline.analyzers.health import histogram, quantile
from mendline.analyzers.metrics import (
    DEFINITIONS,
    DayCounts,
    StageActivity,
    check_shown,
    counts_plan,
    events_per_minute,
    fix_success_rate,
    hourly_series,
    mean,
    percentile,
    ratio,
    short_duration,
    spread,
    stage_verdict,
    uptime,
    uptime_days,
    window_figures,
)

NOW = datetime(2025, 6, 2, 12, 30, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 0.5, None),
        ([7.0], 0.5, 7.0),
        ([7.0], 0.9, 7.0),
        ([1.0, 2.0, 3.0, 4.0], 0.5, 2.5),  # between the two middle ones
        ([4.0, 1.0, 3.0, 2.0], 0.5, 2.5),  # order does not matter
        ([1.0, 2.0, 3.0, 4.0], 0.9, 3.7),  # 0.9 * 3 = 2.7: 3 + 0.7 * (4 - 3)
        ([1.0, 2.0, 3.0, 4.0, 5.0], 0.9, 4.6),
        ([10.0, 20.0], 0.0, 10.0),
        ([10.0, 20.0], 1.0, 20.0),
        ([10.0, 20.0], 1.5, 20.0),  # clamped
        ([10.0, 20.0], -1.0, 10.0),
    ],
)
def test_percentile_interpolates_as_percentile_cont(
    values: list[float], q: float, expected: float | None
) -> None:
    assert percentile(values, q) == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize(
    ("seconds", "count", "median", "p90", "average"),
    [
        ([], 0, None, None, None),
        ([60.0], 1, 60.0, 60.0, 60.0),
        ([3600.0, 10800.0, 18000.0], 3, 10800.0, 16560.0, 10800.0),
        ([0.0, 0.0, 0.0, 100.0], 4, 0.0, 70.0, 25.0),
    ],
)
def test_spread_gives_median_p90_and_mean(
    seconds: list[float],
    count: int,
    median: float | None,
    p90: float | None,
    average: float | None,
) -> None:
    found = spread(seconds)
    assert (found.count, found.median, found.p90, found.mean) == (
        count,
        pytest.approx(median) if median is not None else None,
        pytest.approx(p90) if p90 is not None else None,
        pytest.approx(average) if average is not None else None,
    )
    assert mean(seconds) == found.mean


@pytest.mark.parametrize(
    ("verified", "regressed", "failed", "expected"),
    [
        (0, 0, 0, None),  # no outcome yet: not 0 %
        (3, 0, 0, 1.0),
        (3, 1, 0, 0.75),
        (1, 1, 2, 0.25),
        (0, 0, 5, 0.0),
    ],
)
def test_fix_success_rate(verified: int, regressed: int, failed: int, expected: float) -> None:
    assert fix_success_rate(verified, regressed, failed) == expected


@pytest.mark.parametrize(
    ("part", "whole", "expected"),
    [(0, 0, None), (1, 4, 0.25), (0, 4, 0.0), (4, 4, 1.0)],
)
def test_ratio_is_none_without_cases(part: int, whole: int, expected: float | None) -> None:
    assert ratio(part, whole) == expected


@pytest.mark.parametrize(
    ("events", "minutes", "expected"),
    [(0, 60, 0.0), (120, 60, 2.0), (30, 60, 0.5), (10, 0, 0.0)],
)
def test_events_per_minute(events: int, minutes: float, expected: float) -> None:
    assert events_per_minute(events, minutes) == expected


@pytest.mark.parametrize(
    ("observed", "down", "expected"),
    [
        (0.0, 0.0, None),  # nothing observed: no figure, not 100 %
        (86400.0, 0.0, 1.0),
        (86400.0, 864.0, 0.99),
        (240.0, 120.0, 0.5),
        (100.0, 150.0, 0.0),  # never below 0
    ],
)
def test_uptime_from_seconds(observed: float, down: float, expected: float | None) -> None:
    found = uptime(observed, down)
    assert found == (pytest.approx(expected) if expected is not None else None)


def test_hourly_series_fills_hours_and_keeps_the_biggest_services_apart() -> None:
    start = datetime(2025, 6, 2, 10, tzinfo=UTC)
    rows = [
        ("api", start, 5),
        ("api", start + 2 * HOUR, 7),
        ("web", start + HOUR, 3),
        ("jobs", start + HOUR, 1),
        ("cron", start + 2 * HOUR, 2),
        ("api", start - HOUR, 100),  # before the range: left out
        ("api", start + 3 * HOUR, 100),  # after it: left out
    ]
    hours, series = hourly_series(rows, start, 3, top=2)
    assert hours == [start, start + HOUR, start + 2 * HOUR]
    assert series == {
        "api": [5.0, 0.0, 7.0],
        "web": [0.0, 3.0, 0.0],
        "(other services)": [0.0, 1.0, 2.0],
    }
    assert list(series) == ["api", "web", "(other services)"]  # the biggest first


def test_hourly_series_without_events_is_empty_and_ties_go_by_name() -> None:
    start = datetime(2025, 6, 2, 10, tzinfo=UTC)
    assert hourly_series([], start, 2) == ([start, start + HOUR], {})
    _, series = hourly_series([("b", start, 1), ("a", start, 1)], start, 1)
    assert list(series) == ["a", "b"]


def _at(hhmm: str) -> datetime:
    hour, minute = hhmm.split(":")
    return NOW.replace(hour=int(hour), minute=int(minute), second=0)


@pytest.mark.parametrize(
    ("now", "known_hours", "known_minutes", "hours", "split", "minutes_from", "edge"),
    [
        # 12:30:20: minutes kept from 11:00 (the last 60 minutes always among them), settled
        # until 12:29; the hours before 11:00 kept whole.
        ("12:30", [], None, ["09:00", "10:00"], "11:00", "11:00", "12:29"),
        ("12:30", ["09:00"], None, ["10:00"], "11:00", "11:00", "12:29"),
        ("12:30", ["09:00", "10:00"], ("11:00", "12:20"), [], "11:00", "12:20", "12:29"),
        # What is kept began before the split: it is extended, the older minutes dropped.
        ("12:30", [], ("10:00", "12:20"), ["09:00", "10:00"], "11:00", "12:20", "12:29"),
        # What is kept does not reach back to the split, or past the edge: read afresh.
        ("12:30", [], ("11:30", "12:20"), ["09:00", "10:00"], "11:00", "11:00", "12:29"),
        ("12:30", [], ("11:00", "12:40"), ["09:00", "10:00"], "11:00", "11:00", "12:29"),
        ("12:59", [], None, ["09:00", "10:00"], "11:00", "11:00", "12:58"),
        ("12:00", [], None, ["09:00", "10:00"], "11:00", "11:00", "11:59"),
        ("13:01", [], None, ["09:00", "10:00", "11:00"], "12:00", "12:00", "13:00"),
    ],
)
def test_the_counts_plan_keeps_settled_counts_and_reads_the_rest(
    now: str,
    known_hours: list[str],
    known_minutes: tuple[str, str] | None,
    hours: list[str],
    split: str,
    minutes_from: str,
    edge: str,
) -> None:
    at = _at(now) + timedelta(seconds=20)
    span = (_at(known_minutes[0]), _at(known_minutes[1])) if known_minutes else None
    plan = counts_plan(_at("09:00"), 5, at, {_at(h) for h in known_hours}, span)
    assert plan.hours == [_at(h) for h in hours]
    assert (plan.split, plan.minutes_from, plan.edge) == (_at(split), _at(minutes_from), _at(edge))


def test_uptime_days_has_one_entry_a_day_oldest_first_and_none_without_data() -> None:
    today = date(2025, 6, 2)
    days = uptime_days(
        {date(2025, 6, 2): (100.0, 25.0), date(2025, 5, 31): (50.0, 0.0), date(2025, 5, 1): (1, 1)},
        today,
        3,
    )
    assert days == [(date(2025, 5, 31), 1.0), (date(2025, 6, 1), None), (date(2025, 6, 2), 0.75)]
    assert uptime_days({}, today, 0) == []


def test_window_figures_sum_the_seconds_and_merge_the_histograms() -> None:
    first = [10.0, 20.0, 30.0, 40.0]
    second = [500.0, 600.0]
    dense_first, dense_second = histogram(first), histogram(second)

    def sparse(dense: list[int]) -> tuple[int, tuple[int, ...]]:
        used = [k for k, count in enumerate(dense) if count]
        return used[0], tuple(dense[used[0] : used[-1] + 1])

    days = [
        DayCounts("api", date(2025, 6, 1), 4, 0, 0, 240.0, 0.0, 4, *sparse(dense_first)),
        DayCounts("api", date(2025, 6, 2), 3, 1, 1, 120.0, 60.0, 2, *sparse(dense_second)),
        DayCounts("api", date(2025, 6, 3), 0, 0, 0, 0.0, 0.0, 0),  # no answer that day
    ]
    figures = window_figures(days)
    merged = [a + b for a, b in zip(dense_first, dense_second, strict=True)]
    assert (figures.results, figures.failures) == (7, 1)
    assert figures.uptime == pytest.approx(1 - 60 / 360)
    assert figures.p50_ms == quantile(merged, 0.5)
    assert figures.p95_ms == quantile(merged, 0.95)
    assert figures.p99_ms == quantile(merged, 0.99)
    assert figures.p95_ms is not None and 500 < figures.p95_ms < 650  # the slow day's


def test_window_figures_of_no_days_have_no_figures() -> None:
    figures = window_figures([])
    assert (figures.uptime, figures.p50_ms, figures.p95_ms, figures.results) == (
        None,
        None,
        None,
        0,
    )


@pytest.mark.parametrize(
    ("status", "in_maintenance", "shown"),
    [
        ("up", False, "up"),
        ("down", False, "down"),
        ("unknown", False, "unknown"),
        ("down", True, "maintenance"),
        ("up", True, "maintenance"),
        ("something new", False, "unknown"),
    ],
)
def test_the_state_a_check_is_shown_in(status: str, in_maintenance: bool, shown: str) -> None:
    assert check_shown(status, in_maintenance=in_maintenance) == shown


def _ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("activity", "state", "why"),
    [
        (StageActivity("heal", None), "no data", "nothing written by it yet"),
        (StageActivity("alert", _ago(30), activity="last alert delivered"), "working", "30s ago"),
        (StageActivity("monitor", _ago(3600), held=2), "working", "holds 2 leases now"),
        (StageActivity("consume", _ago(3600), activity="last event stored"), "idle", "1h ago"),
        (
            StageActivity("analyze", _ago(3600), waiting=3, oldest_waiting=_ago(60)),
            "idle",
            "a stopped stage looks the same",
        ),
        (
            StageActivity(
                "analyze", _ago(10), held=1, waiting=4, oldest_waiting=_ago(1000), work="triggers"
            ),
            "stalled",  # work waited too long, whatever else it does
            "4 triggers, the oldest for 16m 40s (more than 15m)",
        ),
        (
            StageActivity("heal", None, waiting=1, oldest_waiting=_ago(5), work="fixes to apply"),
            "idle",
            "nothing waits long for it",
        ),
    ],
)
def test_a_stages_state_from_what_it_left_in_the_database(
    activity: StageActivity, state: str, why: str
) -> None:
    verdict = stage_verdict(activity, NOW, stall_after=900)
    assert (verdict.stage, verdict.state) == (activity.stage, state)
    assert any(why in reason for reason in verdict.reasons), verdict.reasons


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, "\u2014"),
        (0, "0s"),
        (0.25, "250ms"),
        (45, "45s"),
        (65, "1m 5s"),
        (120, "2m"),
        (3725, "1h 2m"),
        (90000, "1d 1h"),
        (3 * 86400 + 5, "3d"),
    ],
)
def test_short_duration(seconds: float | None, shown: str) -> None:
    assert short_duration(seconds) == shown


def test_every_measure_has_a_definition() -> None:
    assert set(DEFINITIONS) == {
        "mttr",
        "mtta",
        "error_rate",
        "fix_success_rate",
        "false_positive_rate",
        "uptime",
        "p95",
    }
    assert all(len(text) > 40 for text in DEFINITIONS.values())
