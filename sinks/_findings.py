"""Findings in PostgreSQL: the analysis queue on triggers, stored findings, verdicts, usage."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg

from mendline.analyzers.llm import LLMCall
from mendline.schemas.errors import MendlineError
from mendline.schemas.finding import Finding, IssueContext, IssueSummary, PastIssue

__all__ = ["Claim", "FindingNotFound", "FindingStore", "StoredFinding"]

log = logging.getLogger("mendline.sinks")

_SAMPLE_EVENTS = 3
_SIMILAR = 3


class FindingNotFound(MendlineError):
    """No finding (or issue) has that id."""


@dataclass(frozen=True)
class Claim:
    """A trigger a worker holds the lease of, to analyse its issue."""

    trigger_id: int
    issue_id: int
    kind: Literal["new_issue", "regression"]
    attempts: int


@dataclass(frozen=True)
class StoredFinding:
    """A finding as stored: its id, its issue, and whether it was served from another."""

    id: int
    issue_id: int
    finding: Finding
    cached_from: int | None
    verdict: str | None
    verdict_note: str | None


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
                   WHERE analysed_at IS NULL AND kind IN ('new_issue', 'regression')
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
        """Extend the lease of triggers this owner still holds."""
        await self.pool.execute(
            """UPDATE mendline.triggers
               SET analysis_lease_until = now() + make_interval(secs => $3)
               WHERE id = ANY($1::bigint[]) AND analysis_owner = $2 AND analysed_at IS NULL""",
            trigger_ids,
            owner,
            lease,
        )

    async def release(self, owner: str, trigger_ids: list[int]) -> None:
        """Give back unfinished triggers at once (a clean shutdown), not after the lease."""
        await self.pool.execute(
            """UPDATE mendline.triggers SET analysis_lease_until = NULL, analysis_owner = NULL
               WHERE id = ANY($1::bigint[]) AND analysis_owner = $2 AND analysed_at IS NULL""",
            trigger_ids,
            owner,
        )

    # -- what the analysers are given ----------------------------------------------------

    async def context(
        self, issue_id: int, trigger: Literal["new_issue", "regression", "on_demand"]
    ) -> IssueContext:
        """The issue, its newest events and similar past issues that people judged."""
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                """SELECT id, service, title, culprit, level, status, times_seen, first_seen,
                          last_seen, first_release, last_release, environments, regressions
                   FROM mendline.issues WHERE id = $1""",
                issue_id,
            )
            if row is None:
                raise FindingNotFound(f"there is no issue {issue_id}")
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
            issue=IssueSummary(**dict(row)),
            trigger=trigger,
            events=[e for e in events if e is not None],
            similar=[PastIssue(**dict(r)) for r in similar],
        )

    async def cache_key(self, context: IssueContext) -> str:
        """The fingerprint and release a finding for ``context`` is made for."""
        primary = await self.pool.fetchval(
            "SELECT primary_hash FROM mendline.issues WHERE id = $1", context.issue.id
        )
        newest = context.events[0] if context.events else {}
        release = newest.get("release") or context.issue.last_release or ""
        return f"{primary}@{release}"

    async def cached(self, cache_key: str, analyser: str) -> StoredFinding | None:
        """A finding already made by ``analyser`` for this fingerprint and release, that no
        person marked wrong and that did not fall back: a re-analysis is served from it."""
        row = await self.pool.fetchrow(
            f"""{_SELECT_FINDING} WHERE cache_key = $1 AND cached_from IS NULL
                  AND analyser = $2 AND fallback_reason IS NULL
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
        async with self.pool.acquire() as conn, conn.transaction():
            finding_id = await conn.fetchval(
                """INSERT INTO mendline.findings
                       (issue_id, trigger_id, cache_key, analyser, rule, root_cause, confidence,
                        category, severity, suggested_fix, fix_patch, fix_kind, evidence, model,
                        prompt_tokens, completion_tokens, cost_usd, latency_ms, fallback_reason,
                        prompt, cached_from)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb, $14,
                           $15, $16, $17, $18, $19, $20::jsonb, $21)
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

    async def mark(
        self, finding_id: int, verdict: Literal["right", "wrong"], note: str | None
    ) -> None:
        """Record a person's verdict on a finding; later similar issues are analysed with it."""
        status = await self.pool.execute(
            """UPDATE mendline.findings SET verdict = $2, verdict_note = $3, verdict_at = now()
               WHERE id = $1""",
            finding_id,
            verdict,
            note,
        )
        if status.endswith(" 0"):
            raise FindingNotFound(f"there is no finding {finding_id}")

    # -- the LLM ledger -----------------------------------------------------------------

    async def record(self, call: LLMCall) -> None:
        """Record one LLM call (a Ledger). Never raises: a call that cannot be written now
        (the database is down) is kept and written with the next one, so the analysis that
        paid for it goes on and the budget still counts it."""
        self._unrecorded.append(call)
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
            self._unrecorded = calls + self._unrecorded
            log.warning(
                "mendline: %d LLM call(s) not recorded yet (%s); kept for later",
                len(self._unrecorded),
                exc,
            )

    async def spent_today(self) -> tuple[int, float]:
        """Tokens and US dollars spent on LLM calls since midnight UTC, by every worker."""
        row = await self.pool.fetchrow(
            """SELECT coalesce(sum(prompt_tokens + completion_tokens), 0)::bigint AS tokens,
                      coalesce(sum(cost_usd), 0)::float8 AS cost
               FROM mendline.llm_calls
               WHERE created_at >= date_trunc('day', now() AT TIME ZONE 'UTC')
                                   AT TIME ZONE 'UTC'"""
        )
        assert row is not None
        return int(row["tokens"]), float(row["cost"])


_SELECT_FINDING = """SELECT id, issue_id, analyser, rule, root_cause, confidence, category,
    severity, suggested_fix, fix_patch, fix_kind, evidence::text AS evidence, model,
    prompt_tokens, completion_tokens, cost_usd::float8 AS cost_usd, latency_ms,
    fallback_reason, prompt::text AS prompt, cached_from, verdict, verdict_note
    FROM mendline.findings"""


def _stored(row: asyncpg.Record) -> StoredFinding:
    values = dict(row)
    finding = Finding.model_validate(
        {
            **{k: v for k, v in values.items() if k in Finding.model_fields},
            "evidence": json.loads(values["evidence"]),
            "prompt": json.loads(values["prompt"]) if values["prompt"] else None,
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


def _as_dict(payload: Any) -> dict[str, Any] | None:
    value = json.loads(payload) if isinstance(payload, str | bytes) else payload
    return value if isinstance(value, dict) else None
