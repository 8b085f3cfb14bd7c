"""Findings in PostgreSQL: the analysis queue on triggers, stored findings, LLM usage."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg

from mendline.analyzers.policy import (
    BudgetDecision,
    Spend,
    decide_reservation,
    reservation_estimate,
)
from mendline.schemas.errors import FindingNotFound
from mendline.schemas.finding import (
    Finding,
    HealthEvidence,
    IssueContext,
    IssueSummary,
    LLMCall,
    PastIssue,
)
from mendline.sinks.postgres._errors import is_bad_data, translating

__all__ = [
    "FINDINGS_CHANNEL",
    "Claim",
    "FindingNotFound",
    "FindingStore",
    "Reservation",
    "StoredFinding",
]

#: The NOTIFY channel told when a finding is stored (the alert stage updates its messages).
FINDINGS_CHANNEL = "mendline_findings"

log = logging.getLogger("mendline.sinks")

_SAMPLE_EVENTS = 3
_SIMILAR = 3
# Taken by the transaction that reserves LLM budget: reservations are granted one at a time,
# each seeing the ones before.
_BUDGET_LOCK = 0x6D6C627564676574  # "mlbudget"


@dataclass(frozen=True)
class Claim:
    """A trigger a worker holds the lease of, to analyse its issue."""

    trigger_id: int
    issue_id: int
    kind: Literal["new_issue", "regression", "health_down"]
    attempts: int


@dataclass(frozen=True)
class Reservation:
    """LLM budget taken for one analysis (``id``), or refused (``id`` None), and why."""

    id: int | None
    decision: BudgetDecision


@dataclass(frozen=True)
class StoredFinding:
    """A finding as stored: its id, its issue, and whether it was served from another."""

    id: int
    issue_id: int
    finding: Finding
    cached_from: int | None
    verdict: str | None
    verdict_note: str | None

    def as_json(self, served: bool = False) -> dict[str, Any]:
        """The finding as JSON values (what ``--json`` prints and the dashboard's API
        answers): its ids, whether it was ``served_from_store`` (not made for this ask),
        the verdict, and every field of the Finding."""
        return {
            "id": self.id,
            "issue_id": self.issue_id,
            "served_from_store": served,
            "cached_from": self.cached_from,
            "verdict": self.verdict,
            "verdict_note": self.verdict_note,
            **self.finding.model_dump(mode="json"),
        }


@translating
class FindingStore:
    """The analysis stage's reads and writes, over a connection pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._unrecorded: list[LLMCall] = []

    # -- the queue ----------------------------------------------------------------------

    async def claim(self, owner: str, limit: int, lease: float) -> list[Claim]:
        """Take up to ``limit`` triggers waiting for analysis, for ``lease`` seconds.

        SKIP LOCKED lets any number of workers claim side by side; the lease is committed at
        once, so the long LLM call holds no lock, and a killed worker's triggers come back
        when its lease has run out.
        """
        rows = await self.pool.fetch(
            """WITH free AS (
                   SELECT id FROM mendline.triggers
                   -- The same kinds as the partial index triggers_to_analyse (0013).
                   WHERE analysed_at IS NULL
                     AND kind IN ('new_issue', 'regression', 'health_down')
                     AND (analysis_lease_until IS NULL OR analysis_lease_until < now())
                   ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
               UPDATE mendline.triggers t
               SET analysis_owner = $2,
                   analysis_lease_until = now() + make_interval(secs => $3),
                   analysis_attempts = t.analysis_attempts + 1
               FROM free WHERE t.id = free.id
               RETURNING t.id, t.issue_id, t.kind, t.analysis_attempts""",
            limit,
            owner,
            lease,
        )
        return [Claim(r["id"], r["issue_id"], r["kind"], r["analysis_attempts"]) for r in rows]

    async def renew(self, owner: str, trigger_ids: list[int], lease: float) -> None:
        """Extend the lease of triggers this owner still holds, and of its analyses in
        flight and budget reservations."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """UPDATE mendline.triggers
                   SET analysis_lease_until = now() + make_interval(secs => $3)
                   WHERE id = ANY($1::bigint[]) AND analysis_owner = $2
                     AND analysed_at IS NULL""",
                trigger_ids,
                owner,
                lease,
            )
            for table in _LEASED_BY_OWNER:
                await conn.execute(table, owner, lease)

    async def release(self, owner: str, trigger_ids: list[int]) -> None:
        """Give back unfinished triggers at once (a clean shutdown, an outage), not after the
        lease; the attempt is not counted against them."""
        await self.pool.execute(
            """UPDATE mendline.triggers SET analysis_lease_until = NULL, analysis_owner = NULL,
                      analysis_attempts = greatest(analysis_attempts - 1, 0)
               WHERE id = ANY($1::bigint[]) AND analysis_owner = $2 AND analysed_at IS NULL""",
            trigger_ids,
            owner,
        )

    # -- one analysis per fingerprint and release ----------------------------------------

    async def hold_analysis(
        self, cache_key: str, owner: str, trigger_id: int | None, lease: float
    ) -> bool:
        """Take ``cache_key`` (a fingerprint and release) to analyse it, for ``lease`` seconds,
        unless another worker analyses it now (its lease still runs): False then, and the
        caller waits for that worker's finding instead of asking the LLM again."""
        taken = await self.pool.fetchval(
            """INSERT INTO mendline.analyses_in_flight AS a
                   (cache_key, owner, trigger_id, expires_at)
               VALUES ($1, $2, $3, now() + make_interval(secs => $4))
               ON CONFLICT (cache_key) DO UPDATE
                   SET owner = EXCLUDED.owner, trigger_id = EXCLUDED.trigger_id,
                       expires_at = EXCLUDED.expires_at
                   WHERE a.owner = EXCLUDED.owner OR a.expires_at < now()
               RETURNING true""",
            cache_key,
            owner,
            trigger_id,
            lease,
        )
        return bool(taken)

    async def let_go_analysis(self, cache_key: str, owner: str) -> None:
        """The analysis of ``cache_key`` is over (its finding stored, or given up): a worker
        waiting for it may go on."""
        await self.pool.execute(
            "DELETE FROM mendline.analyses_in_flight WHERE cache_key = $1 AND owner = $2",
            cache_key,
            owner,
        )

    # -- the LLM budget --------------------------------------------------------------------

    async def reserve_budget(
        self,
        owner: str,
        *,
        prompt_chars: int,
        prices: tuple[float, float],
        limits: Spend,
        lease: float,
    ) -> Reservation:
        """Reserve LLM budget for one analysis (see analyzers.policy.reservation_estimate)
        when today's calls and the reservations of the analyses in flight leave room under
        ``limits``; granted one at a time, so that workers cannot together overshoot it.
        Settle it with settle_budget once the calls are recorded."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _BUDGET_LOCK)
            await conn.execute("DELETE FROM mendline.llm_reservations WHERE expires_at < now()")
            spent = await self._spent(conn)
            row = await conn.fetchrow(
                """SELECT coalesce(sum(tokens), 0)::bigint AS tokens,
                          coalesce(sum(cost_usd), 0)::float8 AS cost,
                          (SELECT avg(prompt_tokens + completion_tokens)::float8
                           FROM mendline.llm_calls
                           WHERE outcome = 'ok' AND created_at >= now() - interval '1 day')
                              AS average
                   FROM mendline.llm_reservations"""
            )
            assert row is not None
            reserved = Spend(int(row["tokens"]), float(row["cost"]))
            decision = decide_reservation(spent, reserved, limits)
            if not decision.granted:
                return Reservation(None, decision)
            estimate = reservation_estimate(prompt_chars, row["average"], *prices)
            reservation_id = await conn.fetchval(
                """INSERT INTO mendline.llm_reservations (owner, tokens, cost_usd, expires_at)
                   VALUES ($1, $2, $3, now() + make_interval(secs => $4)) RETURNING id""",
                owner,
                estimate.tokens,
                _money(estimate.cost),
                lease,
            )
        return Reservation(int(reservation_id), decision)

    async def settle_budget(self, reservation: Reservation) -> None:
        """The analysis is over and its calls recorded: its reservation is given back."""
        if reservation.id is not None:
            await self.pool.execute(
                "DELETE FROM mendline.llm_reservations WHERE id = $1", reservation.id
            )

    # -- what the analysers are given ----------------------------------------------------

    async def context(
        self,
        issue_id: int,
        trigger: Literal["new_issue", "regression", "health_down", "on_demand"],
        *,
        trigger_id: int | None = None,
    ) -> IssueContext:
        """The issue, its newest events and similar past issues that people judged.

        An issue merged into another is analysed as that other one (its events and its
        fingerprints moved there): ``context.issue.id`` says which issue it is. A health
        check's issue has no events: its context holds the evidence that the down trigger
        ``trigger_id`` recorded (else its newest down trigger's).
        """
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                """WITH RECURSIVE chain AS (
                       SELECT i.*, 0 AS depth FROM mendline.issues i WHERE i.id = $1
                       UNION ALL
                       SELECT i.*, c.depth + 1 FROM mendline.issues i
                       JOIN chain c ON i.id = c.merged_into
                       WHERE c.status = 'merged' AND c.depth < 50)
                   SELECT id, service, title, culprit, level, status, times_seen, first_seen,
                          last_seen, first_release, last_release, environments, regressions,
                          kind
                   FROM chain ORDER BY depth DESC LIMIT 1""",
                issue_id,
            )
            if row is None:
                raise FindingNotFound(f"there is no issue {issue_id}")
            issue_id = row["id"]
            if row["kind"] == "health":
                return await self._health_context(conn, row, trigger, trigger_id)
            events = [
                _as_dict(r["payload"])
                for r in await conn.fetch(
                    """SELECT payload FROM mendline.events WHERE issue_id = $1
                       ORDER BY received_at DESC LIMIT $2""",
                    issue_id,
                    _SAMPLE_EVENTS,
                )
            ]
            similar = await conn.fetch(
                """SELECT i.id, i.title, i.culprit, i.resolution_note, f.root_cause, f.category,
                          f.suggested_fix, f.verdict, f.verdict_note
                   FROM mendline.issues i
                   LEFT JOIN LATERAL (
                       SELECT * FROM mendline.findings f WHERE f.issue_id = i.id
                       ORDER BY f.verdict IS NOT NULL DESC, f.id DESC LIMIT 1) f ON true
                   WHERE i.id <> $1 AND i.status <> 'merged'
                     AND (f.verdict IS NOT NULL OR i.resolution_note IS NOT NULL)
                     AND (split_part(i.title, ':', 1) = split_part($2, ':', 1)
                          OR i.culprit = $3)
                   ORDER BY i.culprit IS NOT DISTINCT FROM $3 DESC, i.service = $4 DESC,
                            i.last_seen DESC
                   LIMIT $5""",
                issue_id,
                row["title"],
                row["culprit"],
                row["service"],
                _SIMILAR,
            )
        return IssueContext(
            issue=_summary(row),
            trigger=trigger,
            events=[e for e in events if e is not None],
            similar=[PastIssue(**dict(r)) for r in similar],
        )

    async def _health_context(
        self,
        conn: Any,
        row: asyncpg.Record,
        trigger: Literal["new_issue", "regression", "health_down", "on_demand"],
        trigger_id: int | None,
    ) -> IssueContext:
        details = await conn.fetchval(
            """SELECT details::text FROM mendline.triggers
               WHERE issue_id = $1 AND kind = 'health_down'
                 AND ($2::bigint IS NULL OR id = $2)
               ORDER BY id DESC LIMIT 1""",
            row["id"],
            trigger_id,
        )
        return IssueContext(
            issue=_summary(row),
            trigger=trigger,
            health=HealthEvidence.of(_as_dict(details) or {}),
        )

    async def cache_key(self, context: IssueContext) -> str:
        """The fingerprint and release a finding for ``context`` is made for; for a health
        check, its issue and the evidence (the same evidence, the same finding)."""
        primary = await self.pool.fetchval(
            "SELECT primary_hash FROM mendline.issues WHERE id = $1", context.issue.id
        )
        if context.health is not None:
            evidence = context.health.model_dump_json(exclude={"scheduled_at", "timings"})
            digest = hashlib.sha256(evidence.encode()).hexdigest()[:16]
            return f"{primary}@evidence:{digest}"
        newest = context.events[0] if context.events else {}
        release = newest.get("release") or context.issue.last_release or ""
        return f"{primary}@{release}"

    async def cached(self, cache_key: str, analyser: str) -> StoredFinding | None:
        """A finding already made by ``analyser`` for this fingerprint and release, that no
        person marked wrong and that did not fall back: a re-analysis is served from it."""
        row = await self.pool.fetchrow(
            f"""{_SELECT_FINDING} WHERE cache_key = $1 AND cached_from IS NULL
                  AND analyser = $2 AND fallback_code IS NULL
                  AND verdict IS DISTINCT FROM 'wrong'
                ORDER BY id DESC LIMIT 1""",
            cache_key,
            analyser,
        )
        return _stored(row) if row else None

    # -- findings ------------------------------------------------------------------------

    async def save(
        self,
        finding: Finding,
        *,
        issue_id: int,
        cache_key: str,
        trigger_id: int | None = None,
        cached_from: int | None = None,
    ) -> int:
        """Store a finding and, for a trigger, mark it analysed, in one transaction.

        A trigger gets one finding whatever happens: a second worker that finishes the same
        trigger (its lease ran out meanwhile) changes nothing and gets the first one's id.
        """
        finding = _storable(finding)
        async with self.pool.acquire() as conn, conn.transaction():
            finding_id = await conn.fetchval(
                """INSERT INTO mendline.findings
                       (issue_id, trigger_id, cache_key, analyser, rule, root_cause, confidence,
                        category, severity, suggested_fix, fix_patch, fix_kind, evidence, model,
                        prompt_tokens, completion_tokens, cost_usd, latency_ms, fallback_reason,
                        prompt, cached_from, fallback_code, risks)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb, $14,
                           $15, $16, $17, $18, $19, $20::jsonb, $21, $22, $23)
                   ON CONFLICT (trigger_id) DO NOTHING RETURNING id""",
                issue_id,
                trigger_id,
                cache_key,
                finding.analyser,
                finding.rule,
                finding.root_cause,
                finding.confidence,
                finding.category,
                finding.severity,
                finding.suggested_fix,
                finding.fix_patch,
                finding.fix_kind,
                json.dumps([e.model_dump() for e in finding.evidence]),
                finding.model,
                finding.prompt_tokens,
                finding.completion_tokens,
                finding.cost_usd,
                finding.latency_ms,
                finding.fallback_reason,
                json.dumps(finding.prompt) if finding.prompt is not None else None,
                cached_from,
                finding.fallback_code,
                list(finding.risks),
            )
            if trigger_id is not None:
                if finding_id is None:
                    finding_id = await conn.fetchval(
                        "SELECT id FROM mendline.findings WHERE trigger_id = $1", trigger_id
                    )
                await conn.execute(
                    """UPDATE mendline.triggers
                       SET analysed_at = coalesce(analysed_at, now()), analysis_lease_until = NULL
                       WHERE id = $1""",
                    trigger_id,
                )
            await conn.execute("SELECT pg_notify($1, '')", FINDINGS_CHANNEL)
        return int(finding_id)

    async def get(self, finding_id: int) -> StoredFinding:
        """One stored finding."""
        row = await self.pool.fetchrow(f"{_SELECT_FINDING} WHERE id = $1", finding_id)
        if row is None:
            raise FindingNotFound(f"there is no finding {finding_id}")
        return _stored(row)

    async def list(self, issue_id: int | None = None, limit: int = 50) -> list[StoredFinding]:
        """The newest findings, of one issue or of all."""
        rows = await self.pool.fetch(
            f"""{_SELECT_FINDING} WHERE $1::bigint IS NULL OR issue_id = $1
                ORDER BY id DESC LIMIT $2""",
            issue_id,
            limit,
        )
        return [_stored(r) for r in rows]

    # -- the LLM ledger -----------------------------------------------------------------

    async def record(self, call: LLMCall) -> None:
        """Record one LLM call (a Ledger). Never raises: a call that cannot be written now
        (the database is down) is kept, counted by spent_today, and written with the next."""
        self._unrecorded.append(_storable_call(call))
        calls, self._unrecorded = self._unrecorded, []
        try:
            await self.pool.executemany(
                """INSERT INTO mendline.llm_calls
                       (issue_id, model, outcome, prompt_tokens, completion_tokens, cost_usd,
                        latency_ms)
                   VALUES ($1, $2, $3, $4, $5, $6, $7)""",
                [
                    (
                        c.issue_id,
                        c.model,
                        c.outcome,
                        c.prompt_tokens,
                        c.completion_tokens,
                        c.cost_usd,
                        c.latency_ms,
                    )
                    for c in calls
                ],
            )
        except Exception as exc:
            if is_bad_data(exc):  # cannot happen with _storable_call; never block the ledger
                log.error("mendline: %d LLM call(s) could not be recorded: %s", len(calls), exc)
                return
            self._unrecorded = calls + self._unrecorded
            log.warning(
                "mendline: %d LLM call(s) not recorded yet (%s); kept for later",
                len(self._unrecorded),
                exc,
            )

    async def spent_today(self) -> tuple[int, float]:
        """Tokens and US dollars spent on LLM calls since midnight UTC, by every worker."""
        async with self.pool.acquire() as conn:
            spent = await self._spent(conn)
        return spent.tokens, spent.cost

    async def _spent(self, conn: Any) -> Spend:
        row = await conn.fetchrow(
            """SELECT coalesce(sum(prompt_tokens + completion_tokens), 0)::bigint AS tokens,
                      coalesce(sum(cost_usd), 0)::float8 AS cost
               FROM mendline.llm_calls
               WHERE created_at >= date_trunc('day', now() AT TIME ZONE 'UTC')
                                   AT TIME ZONE 'UTC'"""
        )
        assert row is not None
        pending = self._unrecorded  # calls not written yet (the database was down) count
        return Spend(
            int(row["tokens"]) + sum(c.prompt_tokens + c.completion_tokens for c in pending),
            float(row["cost"]) + sum(c.cost_usd for c in pending),
        )


# What a worker holds besides its triggers, renewed with them: $1 the owner, $2 the lease.
_LEASED_BY_OWNER = (
    """UPDATE mendline.analyses_in_flight SET expires_at = now() + make_interval(secs => $2)
       WHERE owner = $1""",
    """UPDATE mendline.llm_reservations SET expires_at = now() + make_interval(secs => $2)
       WHERE owner = $1""",
)

# confidence is a real: as numeric first, 0.8 stays 0.8 rather than 0.800000011920929.
_SELECT_FINDING = """SELECT id, issue_id, analyser, rule, root_cause,
    confidence::numeric::float8 AS confidence, category,
    severity, suggested_fix, fix_patch, fix_kind, evidence::text AS evidence, model,
    prompt_tokens, completion_tokens, cost_usd::float8 AS cost_usd, latency_ms,
    fallback_reason, fallback_code, prompt::text AS prompt, cached_from, verdict, verdict_note,
    risks
    FROM mendline.findings"""


def _stored(row: asyncpg.Record) -> StoredFinding:
    values = dict(row)
    finding = Finding.model_validate(
        {
            **{k: v for k, v in values.items() if k in Finding.model_fields},
            "evidence": json.loads(values["evidence"]),
            "prompt": json.loads(values["prompt"]) if values["prompt"] else None,
            "risks": list(values["risks"] or ()),
        }
    )
    return StoredFinding(
        id=values["id"],
        issue_id=values["issue_id"],
        finding=finding,
        cached_from=values["cached_from"],
        verdict=values["verdict"],
        verdict_note=values["verdict_note"],
    )


_INT_MAX = 2**31 - 1


def _no_nul(value: Any) -> Any:
    """``value`` with NUL characters replaced: PostgreSQL text and jsonb refuse them."""
    if isinstance(value, str):
        return value.replace("\0", "\ufffd") if "\0" in value else value
    if isinstance(value, list):
        return [_no_nul(item) for item in value]
    if isinstance(value, dict):
        return {_no_nul(k): _no_nul(v) for k, v in value.items()}
    return value


def _storable(finding: Finding) -> Finding:
    """The finding as PostgreSQL takes it: no NULs (an LLM may answer with one), counts
    within an integer."""
    document = _no_nul(finding.model_dump())
    for name in ("prompt_tokens", "completion_tokens", "latency_ms"):
        if document[name] is not None:
            document[name] = max(0, min(document[name], _INT_MAX))
    if document["cost_usd"] is not None:
        document["cost_usd"] = _money(document["cost_usd"])
    return Finding.model_validate(document)


def _money(value: float) -> float:
    # numeric(14, 6) holds less than 10**8 dollars: more is a misconfigured price anyway.
    return max(0.0, min(value, 99_999_999.0)) if value == value else 0.0


def _storable_call(call: LLMCall) -> LLMCall:
    return LLMCall(
        issue_id=call.issue_id,
        model=_no_nul(call.model)[:200],
        outcome=_no_nul(call.outcome)[:100],
        prompt_tokens=max(0, min(call.prompt_tokens, _INT_MAX)),
        completion_tokens=max(0, min(call.completion_tokens, _INT_MAX)),
        cost_usd=_money(call.cost_usd),
        latency_ms=max(0, min(call.latency_ms, _INT_MAX)),
    )


def _summary(row: asyncpg.Record) -> IssueSummary:
    return IssueSummary(**{k: v for k, v in dict(row).items() if k != "kind"})


def _as_dict(payload: Any) -> dict[str, Any] | None:
    value = json.loads(payload) if isinstance(payload, str | bytes) else payload
    return value if isinstance(value, dict) else None
