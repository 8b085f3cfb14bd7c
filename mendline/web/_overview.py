"""The overview page: the pipeline's stages as PostgreSQL shows them, the error rate per hour
and service, open issues by level, checks up and down, fixes awaiting approval, and the
measures (MTTR, MTTA, error rate, fix success rate, findings' false-positive rate, each
check's uptime and p95); its JSON API (``/api/v1/overview``). One read function serves the
page, each live card and the JSON; it reads the per-minute counts and the issues' columns,
never the events."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from mendline.analyzers.metrics import (
    DEFINITIONS,
    HOUR,
    Spread,
    StageActivity,
    counts_plan,
    events_per_minute,
    fix_success_rate,
    hourly_series,
    ratio,
    short_duration,
    spread,
    stage_verdict,
)
from mendline.schemas.event import LEVEL_RANK
from mendline.schemas.settings import Settings
from mendline.sinks.postgres import (
    CheckSummary,
    DashboardReads,
    FindingVerdicts,
    FixAwaiting,
    FixOutcomes,
    HealthStore,
    LevelCount,
    Pipeline,
)
from mendline.web._context import DEPS, api_json, deps, require
from mendline.web._health import FIGURE_DAYS, CheckView, check_views
from mendline.web._status import fragment_asked, page_or_fragment, query_choice

__all__ = [
    "LIVE_TOPICS",
    "RANGES",
    "ErrorCounts",
    "Overview",
    "overview",
    "routes",
    "setup",
]

routes = web.RouteTableDef()

#: What the overview refreshes on (the cards say which of them each listens to).
LIVE_TOPICS = ["issues", "checks", "fixes", "deliveries"]
#: The error-rate chart's ranges, in hours.
RANGES = {"24h": 24, "7d": 24 * 7}
#: The window of MTTR, MTTA and the fix success rate.
WINDOW = timedelta(days=30)
#: The names of mendline's own checks whose newest result says what the database cannot:
#: the consumer group's lag, and the records dead-lettered lately.
LAG_CHECK = "mendline.consumer-lag"
DEAD_LETTER_CHECKS = ("mendline.dead-letters", "mendline.checkin-dead-letters")

#: Each card of the page: a block of overview.html, and the parts of the overview it shows.
CARDS: dict[str, frozenset[str]] = {
    "pipeline": frozenset({"pipeline", "checks"}),
    "errors": frozenset({"errors"}),
    "issues": frozenset({"issues"}),
    "checks": frozenset({"checks"}),
    "fixes": frozenset({"fixes"}),
    "metrics": frozenset({"metrics"}),
}
_ALL = frozenset().union(*CARDS.values())

#: Seconds after a minute's end before this process keeps its count: a consumer's batch
#: counts into the minute it began by its own clock, which may be behind this one, and a
#: batch held up (a slow commit, a restart) lands late; five minutes of margin, re-read at
#: each refresh, cost little.
LATE_COUNTS = 300.0


@dataclass(frozen=True)
class Reading:
    """A value one of mendline's own checks read (its newest result): the check, when, what
    it read (as the probe wrote it), and whether its condition held."""

    check: str
    at: datetime | None
    value: str | None
    ok: bool | None


@dataclass(frozen=True)
class StageShown:
    """A stage's state and why (analyzers.metrics.stage_verdict), with the traces it was
    judged on: its newest write, the leases it holds, the work waiting for it."""

    stage: str
    state: str
    reasons: tuple[str, ...]
    last_activity: datetime | None
    activity: str
    held: int
    waiting: int
    oldest_waiting: datetime | None
    work: str


@dataclass(frozen=True)
class PipelineView:
    """Each stage's verdict with its traces, the consumer's lag and the dead letters (when
    the self checks recorded them; None: not recorded), and the two queues people watch."""

    stages: tuple[StageShown, ...]
    consumer_lag: Reading | None
    dead_letters: tuple[Reading, ...]
    oldest_unanalysed: datetime | None
    unanalysed: int
    oldest_pending_delivery: datetime | None
    pending_deliveries: int
    overdue_deliveries: int
    stall_after: float
    definition: str


@dataclass(frozen=True)
class ErrorRate:
    """Events per service and hour (UTC), oldest first; "(other services)" sums the rest."""

    range: str
    hours: tuple[datetime, ...]
    series: dict[str, list[float]]


@dataclass(frozen=True)
class OpenIssues:
    """Open issues by level, most severe first, and their total."""

    total: int
    by_level: tuple[LevelCount, ...]


@dataclass(frozen=True)
class ChecksCount:
    """How many checks are in each state, and each check's figures."""

    total: int
    up: int
    down: int
    unknown: int
    maintenance: int
    flapping: int
    checks: tuple[CheckView, ...]


@dataclass(frozen=True)
class FixesAwaiting:
    """Fixes the policy left to people, not yet approved: how many, and the oldest."""

    total: int
    oldest: tuple[FixAwaiting, ...]


@dataclass(frozen=True)
class Measures:
    """The measures, each with its definition (``definitions``): MTTR (resolve), MTTA
    (acknowledge; ``unacknowledged`` issues left out), the error rate (events per minute in
    the last hour), the fix success rate with the outcomes it is made of, and the findings'
    false-positive rate with each analyser's verdicts."""

    mttr: Spread
    mtta: Spread
    unacknowledged: int
    events_last_hour: int
    error_rate: float
    fix_outcomes: FixOutcomes
    fix_success_rate: float | None
    finding_verdicts: tuple[FindingVerdicts, ...]
    false_positive_rate: float | None
    definitions: dict[str, str]


@dataclass(frozen=True)
class Overview:
    """The overview at ``now``: each part is None when it was not asked for (a live card
    asks for its own)."""

    now: datetime
    pipeline: PipelineView | None = None
    errors: ErrorRate | None = None
    issues: OpenIssues | None = None
    checks: ChecksCount | None = None
    fixes: FixesAwaiting | None = None
    metrics: Measures | None = None


_Counts = list[tuple[str, datetime, int]]


class ErrorCounts:
    """The per-minute counts the overview reads, kept by the web process: settled hours
    whole and the last two hours' settled minutes (analyzers.metrics.counts_plan), so a
    refresh reads only the minutes not settled yet, not a week of counts. A merge that moves
    a settled minute's events to another service's issue shows once the process restarts."""

    def __init__(self) -> None:
        self._hours: dict[datetime, list[tuple[str, int]]] = {}
        self._minutes: dict[datetime, list[tuple[str, int]]] = {}
        self._span: tuple[datetime, datetime] | None = None

    async def read(
        self, reads: DashboardReads, start: datetime, hours: int, now: datetime
    ) -> tuple[_Counts, int]:
        """(service, hour, events) of the ``hours`` from ``start`` (an hour may come in
        several rows: they add up), and the events of the last 60 minutes, the current one
        included."""
        plan = counts_plan(start, hours, now, self._hours.keys(), self._span, settle=LATE_COUNTS)
        settled, minutes, fresh = await asyncio.gather(
            reads.event_counts("hour", min(plan.hours), max(plan.hours) + HOUR)
            if plan.hours
            else _nothing(),
            reads.event_counts("minute", plan.minutes_from, plan.edge)
            if plan.minutes_from < plan.edge
            else _nothing(),
            reads.event_counts("minute", plan.edge),
        )
        _keep(self._hours, plan.hours, settled)
        if plan.minutes_from == plan.split:
            self._minutes = {}
        _keep(self._minutes, [], minutes)
        for minute in [m for m in self._minutes if m < plan.split]:
            del self._minutes[minute]
        self._span = (plan.split, max(plan.edge, plan.minutes_from))
        for hour in [h for h in self._hours if h < start - timedelta(hours=max(RANGES.values()))]:
            del self._hours[hour]
        recent = [(s, m, n) for m, counts in self._minutes.items() for s, n in counts] + fresh
        rows = [
            (service, hour, events)
            for hour, counts in self._hours.items()
            if start <= hour < plan.split
            for service, events in counts
        ]
        rows += [(s, m.replace(minute=0), n) for s, m, n in recent if m >= start]
        since = now.replace(second=0, microsecond=0) - timedelta(minutes=60)
        return rows, sum(n for _, m, n in recent if m > since)


def _keep(
    kept: dict[datetime, list[tuple[str, int]]], buckets: list[datetime], rows: _Counts
) -> None:
    """Keep ``rows`` by bucket; each of ``buckets`` is kept even without rows (no events)."""
    read: dict[datetime, list[tuple[str, int]]] = {bucket: [] for bucket in buckets}
    for service, bucket, events in rows:
        read.setdefault(bucket, []).append((service, events))
    kept.update(read)


async def _nothing() -> _Counts:
    return []


#: Where the app keeps its ErrorCounts (``WebDeps.extras``).
_ERROR_COUNTS = "status.error_counts"


def setup(app: web.Application) -> None:
    """Give the app the overview's kept counts."""
    app[DEPS].extras[_ERROR_COUNTS] = ErrorCounts()


async def overview(
    reads: DashboardReads,
    health: HealthStore,
    settings: Settings,
    *,
    range_: str = "24h",
    parts: frozenset[str] = _ALL,
    counts: ErrorCounts | None = None,
) -> Overview:
    """The overview's ``parts`` (all by default), their reads run side by side;
    ``counts``: the per-minute counts the app keeps (None: all read now)."""
    now = datetime.now(UTC)
    kept = counts or ErrorCounts()
    first_hour = _hour(now) - timedelta(hours=RANGES[range_] - 1)
    jobs: dict[str, Callable[[], Awaitable[Any]]] = {
        "pipeline": reads.pipeline,
        "summaries": health.summaries,
        "rollups": lambda: health.day_rollups(_midnight(now - timedelta(days=FIGURE_DAYS - 1))),
        "counts": lambda: kept.read(reads, first_hour, RANGES[range_], now),
        "levels": reads.open_by_level,
        "awaiting": reads.fixes_awaiting,
        "resolve": lambda: reads.resolve_seconds(now - WINDOW),
        "acknowledge": lambda: reads.acknowledge_seconds(now - WINDOW),
        "outcomes": lambda: reads.fix_outcomes((now - WINDOW).date()),
        "verdicts": reads.finding_verdicts,
    }
    needs = {
        "pipeline": {"pipeline", "summaries"},
        "errors": {"counts"},
        "issues": {"levels"},
        "checks": {"summaries", "rollups"},
        "fixes": {"awaiting"},
        "metrics": {"resolve", "acknowledge", "counts", "outcomes", "verdicts"},
    }
    wanted = sorted({job for part in parts for job in needs[part]})
    got = dict(zip(wanted, await asyncio.gather(*(jobs[j]() for j in wanted)), strict=True))
    return Overview(
        now=now,
        pipeline=_pipeline(got["pipeline"], got["summaries"], settings)
        if "pipeline" in parts
        else None,
        errors=_errors(got["counts"][0], now, range_) if "errors" in parts else None,
        issues=_issues(got["levels"]) if "issues" in parts else None,
        checks=_checks(got["summaries"], got["rollups"], now) if "checks" in parts else None,
        fixes=FixesAwaiting(got["awaiting"][1], tuple(got["awaiting"][0]))
        if "fixes" in parts
        else None,
        metrics=_measures(got) if "metrics" in parts else None,
    )


def _midnight(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _hour(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


_PIPELINE_DEFINITION = (
    "No stage writes a heartbeat to PostgreSQL: each one's state here is read from what it"
    " leaves there. working: it holds leases now (work in hand) or wrote within the last 5"
    " minutes; stalled: work has waited for it longer than MENDLINE_SELF_CHECK_MAX_AGE;"
    " idle: nothing waits and it wrote nothing lately (a stopped stage looks the same:"
    " /readyz of each process tells them apart); no data: it never wrote anything."
)


def _pipeline(found: Pipeline, summaries: list[CheckSummary], settings: Settings) -> PipelineView:
    stall_after = settings.self_check_max_age
    by_name = {s.name: s for s in summaries}
    return PipelineView(
        stages=tuple(_shown(stage, found.now, stall_after) for stage in found.stages),
        consumer_lag=_reading(by_name.get(LAG_CHECK), "[LAG]"),
        dead_letters=tuple(
            reading
            for name in DEAD_LETTER_CHECKS
            if (reading := _reading(by_name.get(name), "[RECENT]")) is not None
        ),
        oldest_unanalysed=found.oldest_unanalysed,
        unanalysed=found.unanalysed,
        oldest_pending_delivery=found.oldest_pending_delivery,
        pending_deliveries=found.pending_deliveries,
        overdue_deliveries=found.overdue_deliveries,
        stall_after=stall_after,
        definition=_PIPELINE_DEFINITION,
    )


def _shown(stage: StageActivity, now: datetime, stall_after: float) -> StageShown:
    verdict = stage_verdict(stage, now, stall_after=stall_after)
    return StageShown(
        stage=stage.stage,
        state=verdict.state,
        reasons=verdict.reasons,
        last_activity=stage.last_activity,
        activity=stage.activity,
        held=stage.held,
        waiting=stage.waiting,
        oldest_waiting=stage.oldest_waiting,
        work=stage.work,
    )


def _reading(check: CheckSummary | None, placeholder: str) -> Reading | None:
    """What a self check's newest result read for ``placeholder``; None when it has no
    result (the self checks are off, or the monitor has not run them yet)."""
    if check is None or check.last_result_at is None:
        return None
    for condition in check.last_conditions:
        if str(condition.get("condition", "")).lstrip().upper().startswith(placeholder):
            return Reading(
                check.name,
                check.last_result_at,
                str(condition.get("observed", "")),
                bool(condition.get("success")),
            )
    # It ran but read nothing (the broker did not answer): its error says why.
    return Reading(check.name, check.last_result_at, None, check.last_success)


def _errors(rows: list[tuple[str, datetime, int]], now: datetime, range_: str) -> ErrorRate:
    hours, series = hourly_series(
        rows, _hour(now) - timedelta(hours=RANGES[range_] - 1), RANGES[range_]
    )
    return ErrorRate(range_, tuple(hours), series)


def _issues(levels: list[LevelCount]) -> OpenIssues:
    ordered = sorted(levels, key=lambda c: (-LEVEL_RANK.get(c.level, -1), c.level))
    return OpenIssues(sum(c.open for c in levels), tuple(ordered))


def _checks(summaries: list[CheckSummary], rollups: Any, now: datetime) -> ChecksCount:
    views = check_views(summaries, rollups, now)
    states = [v.state for v in views]
    return ChecksCount(
        total=len(views),
        up=states.count("up"),
        down=states.count("down"),
        unknown=states.count("unknown"),
        maintenance=states.count("maintenance"),
        flapping=sum(v.check.flapping for v in views),
        checks=tuple(views),
    )


def _measures(got: dict[str, Any]) -> Measures:
    acknowledged, unacknowledged = got["acknowledge"]
    outcomes: FixOutcomes = got["outcomes"]
    verdicts: list[FindingVerdicts] = got["verdicts"]
    return Measures(
        mttr=spread(got["resolve"]),
        mtta=spread(acknowledged),
        unacknowledged=unacknowledged,
        events_last_hour=got["counts"][1],
        error_rate=events_per_minute(got["counts"][1], 60),
        fix_outcomes=outcomes,
        fix_success_rate=fix_success_rate(outcomes.verified, outcomes.regressed, outcomes.failed),
        finding_verdicts=tuple(verdicts),
        false_positive_rate=ratio(
            sum(v.marked_wrong for v in verdicts), sum(v.judged for v in verdicts)
        ),
        definitions=DEFINITIONS,
    )


# -- handlers -----------------------------------------------------------------------------------


def _range(request: web.Request) -> str:
    return query_choice(request, "range", RANGES, "24h")


async def _read(request: web.Request, parts: frozenset[str] = _ALL) -> Overview:
    pool = deps(request).pool
    return await overview(
        DashboardReads(pool),
        HealthStore(pool),
        deps(request).settings,
        range_=_range(request),
        parts=parts,
        counts=deps(request).extras.get(_ERROR_COUNTS),
    )


def _context(data: Overview) -> dict[str, Any]:
    errors = data.errors
    fmt = "%H:00" if errors is None or errors.range == "24h" else "%m-%d %H:00"
    return {
        "o": data,
        "ranges": list(RANGES),
        "range": errors.range if errors else "24h",
        "hour_labels": [h.strftime(fmt) for h in errors.hours] if errors else [],
        "duration": short_duration,
        "definitions": DEFINITIONS,
        "live_topics": LIVE_TOPICS,
    }


@routes.get("/")
async def overview_page(request: web.Request) -> web.StreamResponse:
    """The overview; ``?range=24h|7d`` for the error-rate chart, ``?fragment=<card>`` for a
    card alone (the live refresh)."""
    require(request, "issue.read")
    card = fragment_asked(request, CARDS)
    data = await _read(request, CARDS[card] if card is not None else _ALL)
    return page_or_fragment(request, "overview.html", card, _context(data))


@routes.get("/api/v1/overview")
async def overview_api(request: web.Request) -> web.StreamResponse:
    """The overview, as on the page (``?range=24h|7d``)."""
    require(request, "issue.read")
    return api_json(await _read(request))
