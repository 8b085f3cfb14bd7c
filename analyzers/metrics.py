"""The dashboard's measures, worked out from what the stores read: percentiles of durations
(MTTR, MTTA), rates, uptime from observed and down seconds, the error rate's hourly series,
the daily uptime bars, whether a pipeline stage looks alive, and the state a check is shown
in. Pure: the stores count, these decide.

The definitions (docs/api.md repeats them, and each figure's tooltip on the overview):

- MTTR: the time from the start of an issue's open episode to its resolution, for the issues
  resolved (and still resolved) within the window. The episode starts at the issue's last
  regression when it regressed, else at its first event: a bug fixed a year ago that came
  back yesterday and was resolved today took a day, not a year. Median and 90th percentile,
  linearly interpolated (PostgreSQL's ``percentile_cont``).
- MTTA: the mean time from an issue's first event to the first action a person took on it
  (an audit row on the issue or on one of its findings, by any actor but mendline itself:
  resolve, ignore, assign, comment, merge, a verdict), for the issues first seen within the
  window; those nobody acted on yet are counted apart, not in the mean.
- error rate: events received in the last hour per minute (from the per-minute counts).
- fix success rate: verified / (verified + regressed + failed), of the fixes that reached one
  of these outcomes within the window.
- false positive rate: findings marked wrong / findings marked (right or wrong).
- uptime: 1 - seconds down / seconds observed (results in maintenance windows count
  neither), from the daily rollups.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from mendline.analyzers.health import HISTOGRAM_BUCKETS, quantile

__all__ = [
    "DEFINITIONS",
    "HOUR",
    "RECENT_SECONDS",
    "SETTLE_SECONDS",
    "TOP_SERVICES",
    "CheckShown",
    "CountsPlan",
    "DayCounts",
    "Spread",
    "StageActivity",
    "StageState",
    "StageVerdict",
    "WindowFigures",
    "check_shown",
    "counts_plan",
    "events_per_minute",
    "fix_success_rate",
    "hourly_series",
    "mean",
    "percentile",
    "ratio",
    "short_duration",
    "spread",
    "stage_verdict",
    "uptime",
    "uptime_days",
    "window_figures",
]

#: A stage that wrote within this many seconds is working.
RECENT_SECONDS = 300.0
#: Seconds after a minute's end when its count no longer changes: a batch counts into the
#: minute it started in, and commits within seconds.
SETTLE_SECONDS = 60.0
HOUR = timedelta(hours=1)
#: Services drawn apart in the error-rate chart; the others are summed as "other".
TOP_SERVICES = 6

#: Each measure's definition, as the overview's tooltips and the API show it.
DEFINITIONS: dict[str, str] = {
    "mttr": "Mean time to resolve: of the issues resolved in the last 30 days (and still"
    " resolved), the time from the start of the open episode (the last regression, else the"
    " first event) to the resolution; median and 90th percentile.",
    "mtta": "Mean time to acknowledge: of the issues first seen in the last 30 days, the mean"
    " time from the first event to the first action a person took on the issue or its"
    " findings (resolve, ignore, assign, comment, merge, a verdict: the audit trail, any actor"
    " but mendline); issues nobody acted on yet are counted apart.",
    "error_rate": "Events received per minute over the last 60 minutes (the current minute"
    " included), from the per-minute counts.",
    "fix_success_rate": "Of the fixes that were verified, regressed or failed in the last 30"
    " days: verified / (verified + regressed + failed).",
    "false_positive_rate": "Of the findings people judged (all time; a finding served from"
    " another's cache counted once): marked wrong / marked right or wrong.",
    "uptime": "1 - seconds down / seconds observed over the last 30 UTC days (today"
    " included), from the daily rollups; results in maintenance windows count neither.",
    "p95": "95th percentile of the response times over the last 30 UTC days, from the daily"
    " rollups' histograms (within 4.4 %).",
}

#: Where a pipeline stage looks to be, from what it leaves in PostgreSQL.
StageState = Literal["working", "stalled", "idle", "no data"]
#: A check as shown: its judged status, or ``maintenance`` while a window of it is open.
CheckShown = Literal["up", "down", "unknown", "maintenance"]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of ``values``, linearly interpolated between the two
    nearest ranks (as PostgreSQL's ``percentile_cont``); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = min(max(q, 0.0), 1.0) * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def mean(values: Sequence[float]) -> float | None:
    """The arithmetic mean; None for no values."""
    return sum(values) / len(values) if values else None


@dataclass(frozen=True)
class Spread:
    """How long something took, over ``count`` cases: the median, the 90th percentile and
    the mean, in seconds (None: no case)."""

    count: int
    median: float | None
    p90: float | None
    mean: float | None


def spread(seconds: Sequence[float]) -> Spread:
    """The median, 90th percentile and mean of some durations in seconds."""
    return Spread(len(seconds), percentile(seconds, 0.5), percentile(seconds, 0.9), mean(seconds))


def ratio(part: float, whole: float) -> float | None:
    """``part / whole``; None when ``whole`` is 0 (nothing to measure, not 0 %)."""
    return part / whole if whole else None


def fix_success_rate(verified: int, regressed: int, failed: int) -> float | None:
    """verified / (verified + regressed + failed); None before any fix had an outcome."""
    return ratio(verified, verified + regressed + failed)


def events_per_minute(events: int, minutes: float) -> float:
    """The mean rate of ``events`` over ``minutes``."""
    return events / minutes if minutes > 0 else 0.0


def uptime(observed_seconds: float, down_seconds: float) -> float | None:
    """1 - down / observed, at least 0; None when nothing was observed."""
    if observed_seconds <= 0:
        return None
    return max(0.0, 1.0 - down_seconds / observed_seconds)


def hourly_series(
    counts: Iterable[tuple[str, datetime, int]],
    start: datetime,
    hours: int,
    *,
    top: int = TOP_SERVICES,
) -> tuple[list[datetime], dict[str, list[float]]]:
    """The hours from ``start`` (an hour's start) and, per service, its events in each (0
    for an hour without any), from (service, hour, events) rows. The ``top`` services with
    the most events are drawn apart, largest first; the rest are summed as "other" (a name
    no service can take, since it is not a service's name but a label)."""
    hour_list = [start + i * HOUR for i in range(hours)]
    index = {hour: i for i, hour in enumerate(hour_list)}
    per_service: dict[str, list[float]] = {}
    for service, hour, events in counts:
        slot = index.get(hour)
        if slot is None:
            continue
        per_service.setdefault(service, [0.0] * hours)[slot] += events
    ranked = sorted(per_service, key=lambda s: (-sum(per_service[s]), s))
    series = {service: per_service[service] for service in ranked[:top]}
    rest = ranked[top:]
    if rest:
        series["(other services)"] = [sum(per_service[s][i] for s in rest) for i in range(hours)]
    return hour_list, series


@dataclass(frozen=True)
class CountsPlan:
    """What to read of the per-minute counts for an hourly chart and the last hour's rate,
    given what is kept from earlier reads.

    Hours before ``split`` are settled and kept whole: ``hours`` lists those not kept yet.
    From ``split`` on, counts are kept minute by minute (the last hour's rate needs them):
    the settled minutes from ``minutes_from`` to ``edge`` are to be read and kept (from
    ``split`` when what is kept does not reach it; else from where it ends), and the minutes
    from ``edge`` on, not settled, are read each time."""

    hours: list[datetime]
    split: datetime
    minutes_from: datetime
    edge: datetime


def counts_plan(
    start: datetime,
    hours: int,
    now: datetime,
    known_hours: Collection[datetime],
    known_minutes: tuple[datetime, datetime] | None,
    *,
    settle: float = SETTLE_SECONDS,
) -> CountsPlan:
    """The plan for the ``hours`` from ``start`` (an hour's start) at ``now``:
    ``known_hours`` are the whole hours kept, ``known_minutes`` the span [from, to) of
    minutes kept (None: none). A minute is settled ``settle`` seconds after its end: no batch
    counts into it any more, so what was read of it stays true. Minutes are kept from the
    first whole hour of the last two (so the last 60 minutes are always among them)."""
    minute = now.replace(second=0, microsecond=0)
    edge = (now - timedelta(seconds=settle)).replace(second=0, microsecond=0)
    oldest = minute - timedelta(minutes=119)
    split = oldest.replace(minute=0) + (HOUR if oldest.minute else timedelta(0))
    wanted = (start + i * HOUR for i in range(hours))
    missing = [hour for hour in wanted if hour < split and hour not in known_hours]
    if known_minutes is not None and known_minutes[0] <= split <= known_minutes[1] <= edge:
        minutes_from = known_minutes[1]
    else:
        minutes_from = split
    return CountsPlan(missing, split, minutes_from, edge)


def uptime_days(
    rollups: Mapping[date, tuple[float, float]], today: date, days: int
) -> list[tuple[date, float | None]]:
    """One entry per day, oldest first, ending ``today``: its uptime from (observed, down)
    seconds, None for a day without a rollup or with nothing observed."""
    first = today - timedelta(days=days - 1)
    out: list[tuple[date, float | None]] = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        observed, down = rollups.get(day, (0.0, 0.0))
        out.append((day, uptime(observed, down)))
    return out


@dataclass(frozen=True)
class DayCounts:
    """One check's UTC day as its rollup keeps it: results, failures, results in maintenance,
    seconds observed and down, answers, and the response times' histogram from
    ``first_bucket`` on (``buckets[k]`` counts bucket ``first_bucket + k`` of
    analyzers.health.sketch)."""

    check: str
    day: date
    results: int
    failures: int
    maintenance: int
    observed_seconds: float
    downtime_seconds: float
    responses: int
    first_bucket: int = 0
    buckets: tuple[int, ...] = ()


@dataclass(frozen=True)
class WindowFigures:
    """A check over some days: its uptime, results, failures, and its response times'
    percentiles in ms (from the merged histograms: within 4.4 %)."""

    uptime: float | None
    results: int
    failures: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


def window_figures(days: Iterable[DayCounts]) -> WindowFigures:
    """A check's figures over ``days``: uptime from the seconds observed and down, the
    percentiles from the histograms merged (element-wise sums)."""
    observed = down = 0.0
    results = failures = 0
    merged = [0] * HISTOGRAM_BUCKETS
    for day in days:
        observed += day.observed_seconds
        down += day.downtime_seconds
        results += day.results
        failures += day.failures
        for offset, count in enumerate(day.buckets, start=day.first_bucket):
            if 0 <= offset < HISTOGRAM_BUCKETS:
                merged[offset] += count
    return WindowFigures(
        uptime(observed, down),
        results,
        failures,
        quantile(merged, 0.5),
        quantile(merged, 0.95),
        quantile(merged, 0.99),
    )


def check_shown(status: str, *, in_maintenance: bool) -> CheckShown:
    """The state a check is shown in: ``maintenance`` while one of its windows is open (its
    results do not count then), else its judged status (up, down, unknown)."""
    if in_maintenance:
        return "maintenance"
    if status in ("up", "down"):
        return "up" if status == "up" else "down"
    return "unknown"


@dataclass(frozen=True)
class StageActivity:
    """What PostgreSQL shows of one pipeline stage: when it last wrote something
    (``last_activity``), how many leases it holds now (work in hand), and the work waiting
    for it (how much, and since when)."""

    stage: str
    last_activity: datetime | None
    held: int = 0
    waiting: int = 0
    oldest_waiting: datetime | None = None
    #: What ``last_activity`` is, for people ("last event stored").
    activity: str = ""
    #: What waits for it ("triggers not analysed").
    work: str = ""


@dataclass(frozen=True)
class StageVerdict:
    """A stage's state and why, in short sentences."""

    stage: str
    state: StageState
    reasons: tuple[str, ...]


def stage_verdict(
    activity: StageActivity,
    now: datetime,
    *,
    stall_after: float,
    recent: float = RECENT_SECONDS,
) -> StageVerdict:
    """Whether a stage looks alive, from what it leaves in PostgreSQL (no stage writes a
    heartbeat there).

    ``stalled``: work has waited for it longer than ``stall_after`` seconds (the backlog
    self checks' MENDLINE_SELF_CHECK_MAX_AGE), whatever else it does. ``working``: it holds
    leases now, or wrote within ``recent`` seconds. ``no data``: it never wrote anything and
    nothing waits for it. ``idle``: nothing waits and it wrote nothing lately; a stopped stage
    looks the same (``/readyz`` of its process tells them apart).
    """
    reasons: list[str] = []
    if activity.oldest_waiting is not None:
        waited = (now - activity.oldest_waiting).total_seconds()
        if waited > stall_after:
            reasons.append(
                f"{activity.waiting} {activity.work or 'waiting'}, the oldest for"
                f" {short_duration(waited)} (more than {short_duration(stall_after)})"
            )
            return StageVerdict(activity.stage, "stalled", tuple(reasons))
    if activity.held > 0:
        reasons.append(f"holds {activity.held} lease{'s' if activity.held != 1 else ''} now")
    if activity.last_activity is not None:
        ago = (now - activity.last_activity).total_seconds()
        if ago <= recent:
            reasons.append(f"{activity.activity or 'last write'} {short_duration(max(ago, 0))} ago")
    if reasons:
        return StageVerdict(activity.stage, "working", tuple(reasons))
    if activity.last_activity is None and activity.oldest_waiting is None:
        return StageVerdict(activity.stage, "no data", ("nothing written by it yet",))
    if activity.last_activity is not None:
        ago = (now - activity.last_activity).total_seconds()
        reasons.append(f"{activity.activity or 'last write'} {short_duration(ago)} ago")
    reasons.append("nothing waits long for it; a stopped stage looks the same")
    return StageVerdict(activity.stage, "idle", tuple(reasons))


def short_duration(seconds: float | None) -> str:
    """A duration as people read it on a dashboard, to its two largest units: "45s",
    "12m 5s", "3h 20m", "2d 4h", "250ms" below a second; an em dash for None."""
    if seconds is None:
        return "\u2014"
    if 0 < seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    whole = int(max(seconds, 0))
    units = ((86400, "d"), (3600, "h"), (60, "m"), (1, "s"))
    for (size, unit), (smaller, smaller_unit) in itertools.pairwise(units):
        if whole >= size:
            first, rest = divmod(whole, size)
            extra = rest // smaller
            return f"{first}{unit} {extra}{smaller_unit}" if extra else f"{first}{unit}"
    return f"{whole}s"
