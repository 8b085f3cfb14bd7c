"""The health page: every check and heartbeat with its state, since when, flapping, 90 days
of uptime bars, its last response time; one check's page with its response-time chart
(p50/p95/p99), recent results with the value each condition read, its maintenance windows,
and a heartbeat's check-ins; their JSON API (``/api/v1/checks``, ``/api/v1/checks/{name}``).
One read function serves each page and its JSON."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiohttp import web

from mendline.analyzers.health import active_window, next_window_change
from mendline.analyzers.metrics import (
    DEFINITIONS,
    CheckShown,
    DayCounts,
    WindowFigures,
    check_shown,
    short_duration,
    uptime_days,
    window_figures,
)
from mendline.schemas.checks import Maintenance
from mendline.schemas.errors import CheckNotFound
from mendline.sinks.postgres import (
    CheckCheckin,
    CheckSummary,
    HealthStore,
    HourlyResponse,
    StoredResult,
)
from mendline.web._context import api_json, deps, require
from mendline.web._status import fragment_asked, page_or_fragment, query_choice, query_number

__all__ = [
    "CheckDetail",
    "CheckView",
    "HealthView",
    "check_detail",
    "check_views",
    "health_view",
    "routes",
]

routes = web.RouteTableDef()

#: Days of uptime bars on the health page.
BAR_DAYS = 90
#: Days the uptime and p95 figures cover.
FIGURE_DAYS = 30
#: The response-time chart's ranges, in hours.
CHART_RANGES = {"24h": 24, "7d": 24 * 7, "30d": 24 * 30}
#: The most recent results a check's page (and its JSON) may ask for.
MAX_RESULTS = 500


@dataclass(frozen=True)
class CheckView:
    """One check as the dashboard shows it: its summary, the state shown (``maintenance``
    while one of its windows is open), its figures over the last 30 days, and (with bars)
    one uptime figure per day of the last 90, oldest first (None: no data that day)."""

    check: CheckSummary
    state: CheckShown
    in_maintenance: bool
    last_30d: WindowFigures
    days: tuple[tuple[date, float | None], ...]


@dataclass(frozen=True)
class HealthView:
    """Every check of the file (probed ones and heartbeats apart), at ``now``."""

    now: datetime
    checks: tuple[CheckView, ...]
    heartbeats: tuple[CheckView, ...]
    definitions: dict[str, str]


@dataclass(frozen=True)
class WindowShown:
    """One maintenance window of a check: what it is, whether it is open now."""

    window: Maintenance
    description: str
    open_now: bool


@dataclass(frozen=True)
class CheckDetail:
    """One check's page: its view, the chart's range and hours, its recent results, its
    maintenance windows (and when the next one opens or closes), a heartbeat's check-ins."""

    now: datetime
    view: CheckView
    range: str
    hours: tuple[HourlyResponse, ...]
    results: tuple[StoredResult, ...]
    windows: tuple[WindowShown, ...]
    next_window_change: datetime | None
    checkins: tuple[CheckCheckin, ...]


# -- reads ----------------------------------------------------------------------------------


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def check_views(
    summaries: Sequence[CheckSummary],
    rollups: Iterable[DayCounts],
    now: datetime,
    *,
    bar_days: int = 0,
) -> list[CheckView]:
    """The checks as shown at ``now``, from their summaries and day rollups (those of the
    last ``bar_days`` for the bars, of the last 30 for the figures)."""
    today = now.astimezone(UTC).date()
    first_counted = today - timedelta(days=FIGURE_DAYS - 1)
    by_check: dict[str, list[DayCounts]] = defaultdict(list)
    for rollup in rollups:
        by_check[rollup.check].append(rollup)
    views = []
    for summary in summaries:
        days = by_check.get(summary.name, [])
        figures = window_figures(d for d in days if d.day >= first_counted)
        bars = uptime_days(
            {d.day: (d.observed_seconds, d.downtime_seconds) for d in days}, today, bar_days
        )
        open_now = active_window(summary.maintenance, now) is not None
        views.append(
            CheckView(
                summary,
                check_shown(summary.status, in_maintenance=open_now),
                open_now,
                figures,
                tuple(bars) if bar_days else (),
            )
        )
    return views


async def health_view(store: HealthStore, *, bar_days: int = BAR_DAYS) -> HealthView:
    """Every check with its state, figures and ``bar_days`` of uptime bars."""
    now = datetime.now(UTC)
    since = _midnight(now.date() - timedelta(days=max(bar_days, FIGURE_DAYS) - 1))
    summaries = await store.summaries()
    views = check_views(summaries, await store.day_rollups(since), now, bar_days=bar_days)
    return HealthView(
        now=now,
        checks=tuple(v for v in views if v.check.kind != "heartbeat"),
        heartbeats=tuple(v for v in views if v.check.kind == "heartbeat"),
        definitions=DEFINITIONS,
    )


async def check_detail(
    store: HealthStore, name: str, *, chart_range: str = "24h", limit: int = 50
) -> CheckDetail:
    """One check's page; CheckNotFound when no check of the file has that name."""
    found = await store.summaries(name)
    if not found:
        raise CheckNotFound(
            f"no check called {name!r} is in the checks file",
            hint="the health page lists the checks",
        )
    now = datetime.now(UTC)
    since = _midnight(now.date() - timedelta(days=BAR_DAYS - 1))
    rollups = await store.day_rollups(since, name)
    (view,) = check_views(found, rollups, now, bar_days=BAR_DAYS)
    hour_start = now.replace(minute=0, second=0, microsecond=0)
    hours = await store.hourly_responses(
        name, hour_start - timedelta(hours=CHART_RANGES[chart_range] - 1)
    )
    results = await store.recent_results(name, limit)
    checkins = await store.recent_checkins(name) if view.check.kind == "heartbeat" else []
    windows = view.check.maintenance
    return CheckDetail(
        now=now,
        view=view,
        range=chart_range,
        hours=tuple(hours),
        results=tuple(results),
        windows=tuple(
            WindowShown(w, describe_window(w), active_window([w], now) is not None) for w in windows
        ),
        next_window_change=next_window_change(windows, now),
        checkins=tuple(checkins),
    )


def describe_window(window: Maintenance) -> str:
    """A maintenance window as people read it: "mon, thu at 02:00 for 2h (Europe/Paris)",
    "from 2025-06-01 22:00 UTC for 4h"."""
    length = short_duration(window.duration)
    if window.start is not None:
        start = window.start.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        return f"once, from {start} for {length}"
    assert window.at is not None
    days = ", ".join(window.days) if window.days else "every day"
    return f"{days} at {window.at.strftime('%H:%M')} for {length} ({window.timezone})"


# -- the chart --------------------------------------------------------------------------------


def response_series(
    hours: Sequence[HourlyResponse], now: datetime, span: int
) -> tuple[list[str], dict[str, list[float | None]]]:
    """The chart's hour labels and its p50, p95 and p99 lines (a gap for an hour without
    answers), over the ``span`` hours ending with the current one."""
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=span - 1)
    by_hour = {h.hour: h for h in hours}
    slots = [start + timedelta(hours=i) for i in range(span)]
    series: dict[str, list[float | None]] = {"p50": [], "p95": [], "p99": []}
    for slot in slots:
        hour = by_hour.get(slot)
        series["p50"].append(hour.p50_ms if hour else None)
        series["p95"].append(hour.p95_ms if hour else None)
        series["p99"].append(hour.p99_ms if hour else None)
    fmt = "%H:00" if span <= 24 else "%m-%d %H:00"
    return [slot.strftime(fmt) for slot in slots], series


def bar_days(view: CheckView) -> list[tuple[str, float | None]]:
    """The uptime bars' (label, uptime) pairs."""
    return [(day.isoformat(), up) for day, up in view.days]


# -- handlers -----------------------------------------------------------------------------------

_LIST_FRAGMENTS = ("checks",)
_DETAIL_FRAGMENTS = ("state", "results")


def _chart_range(request: web.Request) -> str:
    return query_choice(request, "range", CHART_RANGES, "24h")


def _limit(request: web.Request) -> int:
    return query_number(request, "limit", MAX_RESULTS, 50) or 50


def _store(request: web.Request) -> HealthStore:
    return HealthStore(deps(request).pool)


async def _detail(request: web.Request) -> CheckDetail:
    return await check_detail(
        _store(request),
        request.match_info["name"],
        chart_range=_chart_range(request),
        limit=_limit(request),
    )


def _page_context(view: HealthView) -> dict[str, Any]:
    return {"h": view, "bars": bar_days, "live_topics": ["checks"]}


@routes.get("/health")
async def health_page(request: web.Request) -> web.StreamResponse:
    """Every check and heartbeat; ``?fragment=checks`` for the live refresh."""
    require(request, "check.read")
    block = fragment_asked(request, _LIST_FRAGMENTS)
    view = await health_view(_store(request))
    return page_or_fragment(request, "health.html", block, _page_context(view))


@routes.get("/api/v1/checks")
async def checks_api(request: web.Request) -> web.StreamResponse:
    """Every check and heartbeat, as on the health page."""
    require(request, "check.read")
    return api_json(await health_view(_store(request)))


def _detail_context(detail: CheckDetail) -> dict[str, Any]:
    labels, series = response_series(detail.hours, detail.now, CHART_RANGES[detail.range])
    return {
        "d": detail,
        "v": detail.view,
        "c": detail.view.check,
        "chart_labels": labels,
        "chart_series": series,
        "bars": bar_days,
        "ranges": list(CHART_RANGES),
        "definitions": DEFINITIONS,
        "duration": short_duration,
        "live_topics": [f"check-{detail.view.check.name}", "checks"],
    }


@routes.get("/health/checks/{name}")
async def check_page(request: web.Request) -> web.StreamResponse:
    """One check; ``?range=24h|7d|30d`` for the chart, ``?fragment=state|results`` for the
    live refresh."""
    require(request, "check.read")
    block = fragment_asked(request, _DETAIL_FRAGMENTS)
    detail = await _detail(request)
    return page_or_fragment(request, "check.html", block, _detail_context(detail))


@routes.get("/api/v1/checks/{name}")
async def check_api(request: web.Request) -> web.StreamResponse:
    """One check, as on its page."""
    require(request, "check.read")
    return api_json(await _detail(request))
