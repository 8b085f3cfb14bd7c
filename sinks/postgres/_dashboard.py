"""The overview's reads that belong to no one store: what each pipeline stage leaves in
PostgreSQL, events per hour and service from the per-minute counts, open issues by level,
the durations behind MTTR and MTTA, the fixes' outcomes and the findings' verdicts. Read only,
each one statement on an index or a small table: no query reads the events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Literal

from mendline.analyzers.metrics import StageActivity
from mendline.sinks.postgres._errors import translating

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "DashboardReads",
    "FindingVerdicts",
    "FixAwaiting",
    "FixOutcomes",
    "LevelCount",
    "Pipeline",
]

# The analysis queue as its partial index (triggers_to_analyse) says it.
_TO_ANALYSE = "analysed_at IS NULL AND kind IN ('new_issue', 'regression', 'health_down')"

# Each stage's traces, one row: its newest write, the leases it holds now, the work waiting
# for it (count and oldest). Every part is an index lookup or a small table's scan.
_PIPELINE = f"""
SELECT now() AS now,
  (SELECT max(received_at) FROM mendline.event_ids) AS consume_last,
  (SELECT created_at FROM mendline.findings ORDER BY id DESC LIMIT 1) AS analyse_last,
  (SELECT count(*) FROM mendline.triggers
   WHERE {_TO_ANALYSE} AND analysis_lease_until > now()) AS analyse_held,
  (SELECT count(*) FROM mendline.analyses_in_flight WHERE expires_at > now()) AS analyse_flight,
  a.waiting AS analyse_waiting, a.oldest AS analyse_oldest,
  (SELECT max(delivered_at) FROM mendline.deliveries) AS alert_last,
  (SELECT count(*) FROM mendline.receiver_leases WHERE expires_at > now()) AS alert_held,
  r.waiting AS unrouted, r.oldest AS unrouted_oldest,
  p.waiting AS pending, p.oldest AS pending_oldest, p.overdue, p.overdue_oldest,
  (SELECT max(updated_at) FROM mendline.check_state) AS monitor_last,
  (SELECT count(*) FROM mendline.check_schedule WHERE lease_until > now()) AS monitor_held,
  m.waiting AS monitor_waiting, m.oldest AS monitor_oldest,
  (SELECT max(updated_at) FROM mendline.fix_jobs) AS heal_last,
  (SELECT count(*) FROM mendline.fix_jobs
   WHERE state = 'applying' AND lease_until > now()) AS heal_held,
  h.waiting AS heal_waiting, h.oldest AS heal_oldest
FROM
  (SELECT count(*) AS waiting, min(created_at) AS oldest FROM mendline.triggers
   WHERE {_TO_ANALYSE}) a,
  (SELECT count(*) AS waiting, min(created_at) AS oldest FROM mendline.triggers
   WHERE routed_at IS NULL) r,
  (SELECT count(*) AS waiting, min(created_at) AS oldest,
          count(*) FILTER (WHERE due_at < now()) AS overdue,
          min(due_at) FILTER (WHERE due_at < now()) AS overdue_oldest
   FROM mendline.deliveries WHERE status = 'pending') p,
  (SELECT count(*) AS waiting, min(s.next_due) AS oldest FROM mendline.check_schedule s
   JOIN mendline.checks c ON c.name = s.check_name
   WHERE c.retired_at IS NULL AND c.kind <> 'heartbeat' AND s.next_due < now()) m,
  (SELECT count(*) AS waiting, min(coalesce(approved_at, created_at)) AS oldest
   FROM mendline.fix_jobs
   WHERE state = 'approved' OR (state = 'proposed' AND decision ->> 'verdict' = 'auto')) h
"""

# Events per service and hour (or minute: $3) of receipt from $1 (until $2):
# mendline.error_rate_hourly's sums, with the time bounds on the minute itself so that
# issue_counts_minute serves them (the view's hour is an expression no index has).
_EVENT_COUNTS = """
SELECT i.service, date_trunc($3, c.minute) AS bucket, sum(c.count)::bigint AS events
FROM mendline.issue_counts c
JOIN mendline.issues i ON i.id = c.issue_id
WHERE c.minute >= $1 AND ($2::timestamptz IS NULL OR c.minute < $2)
GROUP BY 1, 2
"""

_OPEN_BY_LEVEL = """
SELECT level, count(*) AS open,
       count(*) FILTER (WHERE substatus = 'regressed') AS regressed,
       count(*) FILTER (WHERE substatus = 'escalating') AS escalating
FROM mendline.open_issues GROUP BY level
"""

# MTTR's cases: the issues resolved since $1 (and resolved still), each from the start of
# its open episode (its last regression, else its first event) to its resolution.
_RESOLVE_SECONDS = """
SELECT coalesce(array_agg(greatest(0, extract(epoch FROM
           i.resolved_at - greatest(i.first_seen, coalesce(i.regressed_at, i.first_seen))))
       ::float8), '{}')
FROM mendline.issues i
WHERE i.status = 'resolved' AND i.resolved_at >= $1
"""

# MTTA's cases: the issues first seen since $1 (not merged away), each from its first event
# to the first audit row on it or on one of its findings by anyone but mendline itself;
# those nobody acted on are counted apart. Targets are matched as text ('issue:' || id), so
# no target is ever cast.
_ACKNOWLEDGE_SECONDS = """
WITH recent AS (
    SELECT id, first_seen FROM mendline.issues WHERE first_seen >= $1 AND status <> 'merged'),
acts AS (
    SELECT target, at FROM mendline.audit_log WHERE at >= $1 AND actor_auth <> 'system'),
firsts AS (
    SELECT r.id, min(x.at) AS at FROM recent r JOIN acts x ON x.target = 'issue:' || r.id
    GROUP BY r.id
    UNION ALL
    SELECT r.id, min(x.at) FROM recent r
    JOIN mendline.findings f ON f.issue_id = r.id
    JOIN acts x ON x.target = 'finding:' || f.id
    GROUP BY r.id)
SELECT coalesce(array_agg(greatest(0, extract(epoch FROM a.at - r.first_seen))::float8)
                FILTER (WHERE a.at IS NOT NULL), '{}') AS acknowledged,
       count(*) FILTER (WHERE a.at IS NULL) AS unacknowledged
FROM recent r
LEFT JOIN (SELECT id, min(at) AS at FROM firsts GROUP BY id) a ON a.id = r.id
"""

_FIX_OUTCOMES = """
SELECT coalesce(sum(verified), 0)::bigint AS verified,
       coalesce(sum(regressed), 0)::bigint AS regressed,
       coalesce(sum(failed), 0)::bigint AS failed,
       coalesce(sum(rolled_back), 0)::bigint AS rolled_back
FROM mendline.fix_outcomes_daily WHERE day >= $1
"""

_FINDING_VERDICTS = """
SELECT analyser, findings, judged, marked_right, marked_wrong
FROM mendline.finding_accuracy ORDER BY analyser
"""

# Fixes the policy left to people, not yet approved enough; through the public view.
_AWAITING = """
SELECT id, issue_id, service, title, proposed_at, approvals, approvals_needed,
       count(*) OVER () AS total
FROM mendline.fixes
WHERE state = 'proposed' AND verdict = 'approval'
ORDER BY id LIMIT $1
"""


@dataclass(frozen=True)
class Pipeline:
    """What PostgreSQL shows of the stages, at the database's ``now``; and the two queues
    people ask about: the oldest trigger not analysed and the oldest delivery pending."""

    now: datetime
    stages: tuple[StageActivity, ...]
    oldest_unanalysed: datetime | None
    unanalysed: int
    oldest_pending_delivery: datetime | None
    pending_deliveries: int
    overdue_deliveries: int


@dataclass(frozen=True)
class LevelCount:
    """Open issues of one level, and how many of them regressed or escalated."""

    level: str
    open: int
    regressed: int
    escalating: int


@dataclass(frozen=True)
class FixOutcomes:
    """Fixes that reached each outcome within a window."""

    verified: int
    regressed: int
    failed: int
    rolled_back: int


@dataclass(frozen=True)
class FindingVerdicts:
    """One analyser's findings (those served from another's cache not counted again), how
    many people judged, and how they judged them."""

    analyser: str
    findings: int
    judged: int
    marked_right: int
    marked_wrong: int


@dataclass(frozen=True)
class FixAwaiting:
    """A fix waiting for people's approval."""

    id: int
    issue_id: int
    service: str
    title: str
    proposed_at: datetime
    approvals: int
    approvals_needed: int


@translating
class DashboardReads:
    """The overview's reads, over a pool (or a connection)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def pipeline(self) -> Pipeline:
        """Each stage's traces: consume, analyse, alert, monitor, heal."""
        row = await self.pool.fetchrow(_PIPELINE)
        assert row is not None  # one row, always
        alert_waiting, alert_oldest = _oldest(
            (row["unrouted"], row["unrouted_oldest"]), (row["overdue"], row["overdue_oldest"])
        )
        stages = (
            StageActivity("consume", row["consume_last"], activity="last event stored"),
            StageActivity(
                "analyze",
                row["analyse_last"],
                held=row["analyse_held"] + row["analyse_flight"],
                waiting=row["analyse_waiting"],
                oldest_waiting=row["analyse_oldest"],
                activity="last finding stored",
                work="triggers not analysed",
            ),
            StageActivity(
                "alert",
                row["alert_last"],
                held=row["alert_held"],
                waiting=alert_waiting,
                oldest_waiting=alert_oldest,
                activity="last alert delivered",
                work="triggers not routed or deliveries past due",
            ),
            StageActivity(
                "monitor",
                row["monitor_last"],
                held=row["monitor_held"],
                waiting=row["monitor_waiting"],
                oldest_waiting=row["monitor_oldest"],
                activity="last check result judged",
                work="check slots past due",
            ),
            StageActivity(
                "heal",
                row["heal_last"],
                held=row["heal_held"],
                waiting=row["heal_waiting"],
                oldest_waiting=row["heal_oldest"],
                activity="last fix moved",
                work="fixes to apply",
            ),
        )
        return Pipeline(
            now=row["now"],
            stages=stages,
            oldest_unanalysed=row["analyse_oldest"],
            unanalysed=row["analyse_waiting"],
            oldest_pending_delivery=row["pending_oldest"],
            pending_deliveries=row["pending"],
            overdue_deliveries=row["overdue"],
        )

    async def event_counts(
        self, width: Literal["hour", "minute"], since: datetime, until: datetime | None = None
    ) -> list[tuple[str, datetime, int]]:
        """(service, hour or minute, events) for every hour (or minute: ``width``) from
        ``since`` until ``until`` (not included; None: now) that had events."""
        rows = await self.pool.fetch(_EVENT_COUNTS, since, until, width)
        return [(r["service"], r["bucket"], r["events"]) for r in rows]

    async def open_by_level(self) -> list[LevelCount]:
        """Open issues by level (``mendline.open_issues``)."""
        rows = await self.pool.fetch(_OPEN_BY_LEVEL)
        return [LevelCount(r["level"], r["open"], r["regressed"], r["escalating"]) for r in rows]

    async def resolve_seconds(self, since: datetime) -> list[float]:
        """MTTR's cases: seconds from each open episode's start to its resolution, for the
        issues resolved since ``since``."""
        seconds: list[float] = await self.pool.fetchval(_RESOLVE_SECONDS, since)
        return seconds

    async def acknowledge_seconds(self, since: datetime) -> tuple[list[float], int]:
        """MTTA's cases: seconds from each issue's first event to a person's first action on
        it, for the issues first seen since ``since``; and how many nobody acted on yet."""
        row = await self.pool.fetchrow(_ACKNOWLEDGE_SECONDS, since)
        assert row is not None
        return list(row["acknowledged"]), row["unacknowledged"]

    async def fix_outcomes(self, since: date) -> FixOutcomes:
        """The fixes' outcomes on the UTC days from ``since`` (``mendline.fix_outcomes_daily``)."""
        row = await self.pool.fetchrow(_FIX_OUTCOMES, since)
        assert row is not None
        return FixOutcomes(row["verified"], row["regressed"], row["failed"], row["rolled_back"])

    async def finding_verdicts(self) -> list[FindingVerdicts]:
        """People's verdicts on the findings, per analyser (``mendline.finding_accuracy``)."""
        rows = await self.pool.fetch(_FINDING_VERDICTS)
        return [FindingVerdicts(**dict(r)) for r in rows]

    async def fixes_awaiting(self, limit: int = 10) -> tuple[list[FixAwaiting], int]:
        """The oldest ``limit`` fixes waiting for approval, and how many wait in all."""
        rows = await self.pool.fetch(_AWAITING, limit)
        total = rows[0]["total"] if rows else 0
        fixes = [FixAwaiting(**{k: v for k, v in dict(r).items() if k != "total"}) for r in rows]
        return fixes, total


def _oldest(*queues: tuple[int, datetime | None]) -> tuple[int, datetime | None]:
    """Several queues as one: their counts summed, the oldest of their oldest items."""
    times = [oldest for _, oldest in queues if oldest is not None]
    return sum(count for count, _ in queues), min(times, default=None)
