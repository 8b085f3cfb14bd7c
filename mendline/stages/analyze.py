"""The analysis stage: claim new-issue, regression and check-down triggers, analyse, store
findings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

from mendline.analyzers.breaker import CircuitBreaker
from mendline.analyzers.grouping.scrubbing import Scrubber
from mendline.analyzers.policy import Spend
from mendline.analyzers.rootcause.analyser import Analyser
from mendline.analyzers.rootcause.heuristic import HeuristicAnalyser
from mendline.analyzers.rootcause.llm import ChatClient, LLMAnalyser
from mendline.analyzers.rootcause.prompt import build_prompt
from mendline.schemas.finding import FallbackCode, Finding, IssueContext, Ledger, LLMCall
from mendline.schemas.settings import Settings
from mendline.sinks.postgres import (
    TRIGGERS_CHANNEL,
    Claim,
    FindingStore,
    Listener,
    StoredFinding,
    connect_findings,
    is_bad_data,
    is_outage,
)
from mendline.stages._telemetry import StageContext, StatsMetric
from mendline.stages._waiting import (
    connect_patiently,
    keep_renewing,
    outage_backoff,
    outage_over,
    pause_for_outage,
    through_outages,
    wait_any,
)

__all__ = [
    "LLM_METRICS",
    "METRICS",
    "Analysis",
    "AnalyzeStats",
    "AnalyzeWorker",
    "CountedLedger",
    "LLMUsage",
    "make_analysis",
    "run",
]

log = logging.getLogger("mendline.analyze")

# A trigger claimed this many times without a finding (its workers were killed, or the
# analysis crashed them) gets the heuristic finding, without another LLM call.
_MAX_ATTEMPTS = 5


@dataclass
class AnalyzeStats:
    """What a worker did: triggers claimed, findings stored, served from a stored finding,
    fallen back to the heuristic (in all, and by ``Finding.fallback_code``), failed (and
    left to be claimed again)."""

    claimed: int = 0
    analysed: int = 0
    cached: int = 0
    fallbacks: int = 0
    errors: int = 0
    fallback_codes: dict[FallbackCode, int] = field(default_factory=dict)
    #: Findings stored, by where they came from: ``llm``, ``heuristic`` or ``stored`` (served
    #: from a stored finding of the same fingerprint and release).
    findings: dict[str, int] = field(default_factory=dict)


#: What the analyze stage counts, read from its AnalyzeStats at each scrape.
METRICS: tuple[StatsMetric[AnalyzeStats], ...] = (
    StatsMetric(
        "mendline_analysis_claimed_total",
        "Triggers claimed for analysis.",
        lambda s: {(): s.claimed},
    ),
    StatsMetric(
        "mendline_findings_total",
        "Findings stored, by analyser: llm, heuristic, or stored (served from a stored one).",
        lambda s: {(source,): n for source, n in s.findings.items()},
        ("analyser",),
    ),
    StatsMetric(
        "mendline_findings_fallback_total",
        "Findings of the heuristic analyser standing in for the LLM, by why.",
        lambda s: {(code,): n for code, n in s.fallback_codes.items()},
        ("code",),
    ),
    StatsMetric(
        "mendline_analysis_errors_total",
        "Analyses that failed and were left to be claimed again.",
        lambda s: {(): s.errors},
    ),
)

# LLM call outcomes kept as they are in the label; other ``http_<status>`` codes become
# ``http_4xx`` or ``http_5xx``, anything else ``other``: the label's values stay few.
_OUTCOMES = frozenset(
    {"ok", "invalid", "timeout", "unreachable", "bad_response", "cancelled", "http_429"}
)
_HTTP = re.compile(r"http_([45])\d\d")


@dataclass
class LLMUsage:
    """The LLM calls of a worker: by outcome, their tokens and their cost."""

    calls: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def count(self, call: LLMCall) -> None:
        """Count one call, its outcome reduced to a small fixed set."""
        http = _HTTP.fullmatch(call.outcome)
        if call.outcome in _OUTCOMES:
            outcome = call.outcome
        elif http is not None:
            outcome = f"http_{http.group(1)}xx"
        else:
            outcome = "other"
        self.calls[outcome] = self.calls.get(outcome, 0) + 1
        self.prompt_tokens += call.prompt_tokens
        self.completion_tokens += call.completion_tokens
        self.cost_usd += call.cost_usd


#: What the analyze stage counts of its LLM calls, read from its LLMUsage at each scrape.
LLM_METRICS: tuple[StatsMetric[LLMUsage], ...] = (
    StatsMetric(
        "mendline_llm_requests_total",
        "Calls to the LLM endpoint, by outcome.",
        lambda u: {(outcome,): n for outcome, n in u.calls.items()},
        ("outcome",),
    ),
    StatsMetric(
        "mendline_llm_tokens_total",
        "Tokens of the LLM calls, by direction: prompt or completion.",
        lambda u: {("prompt",): u.prompt_tokens, ("completion",): u.completion_tokens},
        ("direction",),
    ),
    StatsMetric(
        "mendline_llm_cost_usd_total",
        "US dollars the LLM calls cost, at the configured prices.",
        lambda u: {(): u.cost_usd},
    ),
)


class CountedLedger:
    """A Ledger that counts each call it records into ``usage`` (once it is recorded)."""

    def __init__(self, ledger: Ledger, usage: LLMUsage) -> None:
        self.ledger = ledger
        self.usage = usage

    async def record(self, call: LLMCall) -> None:
        """Record the call in the ledger, then count it."""
        await self.ledger.record(call)
        self.usage.count(call)

    async def spent_today(self) -> tuple[int, float]:
        """The ledger's spending today."""
        return await self.ledger.spent_today()


@dataclass
class Analysis:
    """The analyser the settings ask for, its kind, and what to close after."""

    analyser: Analyser
    kind: str  # "llm" or "heuristic"
    heuristic: HeuristicAnalyser
    client: ChatClient | None = None

    async def aclose(self) -> None:
        """Close the LLM client, if any."""
        if self.client is not None:
            await self.client.aclose()


def make_analysis(
    settings: Settings, store: FindingStore, ledger: Ledger | None = None, **client_options: Any
) -> Analysis:
    """The LLM analyser when ``llm_base_url`` is set, else the heuristic one. Its calls are
    recorded in ``ledger`` (the store when None)."""
    heuristic = HeuristicAnalyser()
    if not settings.llm_base_url:
        return Analysis(heuristic, "heuristic", heuristic)
    client = ChatClient.from_settings(settings, **client_options)
    analyser = LLMAnalyser(
        client,
        store if ledger is None else ledger,
        heuristic=heuristic,
        scrubber=Scrubber(settings.scrub_extra_keys, settings.scrub_extra_patterns),
        concurrency=settings.llm_concurrency,
        max_retries=settings.llm_max_retries,
        breaker=CircuitBreaker(settings.llm_breaker_failures, settings.llm_breaker_cooldown),
        input_price=settings.llm_input_price,
        output_price=settings.llm_output_price,
        daily_tokens=settings.llm_daily_token_budget,
        daily_cost=settings.llm_daily_cost_budget,
    )
    return Analysis(analyser, "llm", heuristic, client)


async def run(settings: Settings, stop: asyncio.Event, context: StageContext) -> None:
    """The analyze stage (one worker) until ``stop``; what is in flight finishes. Ready while
    it holds its database pool and is not waiting out an outage."""
    context.not_ready("connecting to PostgreSQL")
    store = await connect_patiently(
        lambda: connect_findings(settings, settings.llm_concurrency + 2), stop
    )
    if store is None:
        return
    usage = LLMUsage()
    analysis = make_analysis(settings, store, CountedLedger(store, usage))
    worker = AnalyzeWorker(settings, store, analysis)
    context.watch(worker.stats, METRICS)
    context.watch(usage, LLM_METRICS)
    context.ready_when(worker.waiting_for)
    log.info("mendline: analyze worker %s started (%s analyser)", worker.owner, analysis.kind)
    try:
        await worker.run(stop)
    finally:
        await analysis.aclose()
        await store.pool.close()
    stats = worker.stats
    log.info(
        "mendline: analysed %d triggers: %d served from stored findings, %d fell back to the"
        " heuristic analyser (%s), %d errors",
        stats.analysed,
        stats.cached,
        stats.fallbacks,
        ", ".join(f"{code} {n}" for code, n in sorted(stats.fallback_codes.items())) or "none",
        stats.errors,
    )


class AnalyzeWorker:
    """One ``mendline analyze`` worker: any number can share the queue.

    It claims up to ``llm_concurrency`` triggers at a time with a lease, renews the leases
    while it works, wakes on the ingest's NOTIFY (or every ``analyze_poll_interval``), and
    on stop finishes what is in flight (up to ``llm_timeout``), then gives back the rest.

    Across workers, one fingerprint and release is analysed at a time (a trigger of one
    being analysed elsewhere waits for that finding and is served it), and an LLM analysis
    under a daily budget reserves its estimate first, so that workers together stay within it.
    """

    def __init__(
        self,
        settings: Settings,
        store: FindingStore,
        analysis: Analysis,
        *,
        owner: str | None = None,
        grace: float | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.analysis = analysis
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stats = AnalyzeStats()
        #: Seconds a stopping worker waits for analyses in flight before giving them back.
        self.grace = settings.llm_timeout if grace is None else grace
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._stop = asyncio.Event()
        self._listener = Listener(settings.database_url.get_secret_value(), (TRIGGERS_CHANNEL,))
        self._wake = self._listener.wake
        # Cache keys being analysed now: a second trigger of the same fingerprint and release
        # waits for the first and is served its finding, rather than paying for it again.
        self._analysing: dict[str, asyncio.Future[None]] = {}
        # The prompt's size is what a budget reservation is estimated from.
        self._scrubber = Scrubber(settings.scrub_extra_keys, settings.scrub_extra_patterns)
        self._outage = outage_backoff(settings.outage_retry_max)

    def waiting_for(self) -> str | None:
        """None while the worker reaches its database; else what it waits out (a claim or a
        pass failed for an outage, and none succeeded since)."""
        return "waiting out an outage of PostgreSQL" if self._outage.attempts else None

    async def run(self, stop: asyncio.Event) -> None:
        """Analyse triggers until ``stop`` is set."""
        self._stop = stop
        renewer = asyncio.create_task(
            keep_renewing(
                self.settings.analyze_lease,
                lambda: self._in_flight,
                lambda ids: self.store.renew(self.owner, ids, self.settings.analyze_lease),
                "analyses",
            )
        )
        backoff = self._outage
        try:
            while not stop.is_set():
                await self._listener.keep()
                free = self.settings.llm_concurrency - len(self._in_flight)
                self._wake.clear()  # before claiming: a NOTIFY from now on is not missed
                claims: list[Claim] = []
                if free > 0:
                    try:
                        claims = await self.store.claim(
                            self.owner, free, self.settings.analyze_lease
                        )
                        outage_over(backoff, log)
                    except Exception as exc:
                        await pause_for_outage(exc, backoff, stop, log)
                        continue
                for claim in claims:
                    self._start(claim)
                if claims and len(claims) == free:
                    continue  # there may be more waiting
                await wait_any(stop, self._wake, self.settings.analyze_poll_interval)
        finally:
            await self._finish_in_flight()  # the leases are still renewed meanwhile
            renewer.cancel()
            await self._listener.close()

    async def analyse_issue(
        self, issue_id: int, *, fresh: bool = False
    ) -> tuple[StoredFinding, bool]:
        """Analyse one issue on demand; served from a stored finding for the same fingerprint
        and release unless ``fresh``. Returns the stored finding and whether it was served."""
        context = await self.store.context(issue_id, "on_demand")
        key = await self.store.cache_key(context)
        if not fresh:
            cached = await self.store.cached(key, self.analysis.kind)
            if cached is not None:
                return cached, True
        finding = await self._analyse(context)
        finding_id = await self.store.save(finding, issue_id=context.issue.id, cache_key=key)
        return await self.store.get(finding_id), False

    def _start(self, claim: Claim) -> None:
        self.stats.claimed += 1
        task = asyncio.create_task(self._process(claim))
        self._in_flight[claim.trigger_id] = task

        def done(_: asyncio.Task[None], trigger_id: int = claim.trigger_id) -> None:
            self._in_flight.pop(trigger_id, None)
            self._wake.set()

        task.add_done_callback(done)

    async def _process(self, claim: Claim) -> None:
        try:
            context = await self.store.context(
                claim.issue_id, claim.kind, trigger_id=claim.trigger_id
            )
            key = await self.store.cache_key(context)
            # One analysis per fingerprint and release at a time: a second trigger waits for
            # the first and is served its finding rather than paying for it again. The key is
            # taken with no await between the look and the taking, so two cannot both miss.
            while (earlier := self._analysing.get(key)) is not None:
                await asyncio.wait([earlier])
            mine = self._analysing[key] = asyncio.get_running_loop().create_future()
            try:
                await self._analyse_and_save(claim, context, key)
            finally:
                self._done_analysing(key, mine)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.stats.errors += 1
            if not is_outage(exc):  # the lease runs out: tried again, up to a limit
                log.exception("mendline: trigger %d not analysed", claim.trigger_id)
                return
            log.warning(
                "mendline: trigger %d not analysed, database unavailable: %s", claim.trigger_id, exc
            )
            with contextlib.suppress(Exception):  # given back now, or when the lease runs out
                await self.store.release(self.owner, [claim.trigger_id])
            return

    async def _analyse_and_save(self, claim: Claim, context: IssueContext, key: str) -> None:
        if not await self._hold(key, claim.trigger_id):
            with contextlib.suppress(Exception):  # stopping: given back now, or at its lease
                await self.store.release(self.owner, [claim.trigger_id])
            return
        try:
            await self._analyse_held(claim, context, key)
        finally:
            with contextlib.suppress(Exception):  # else the others wait for its lease
                await self.store.let_go_analysis(key, self.owner)

    async def _hold(self, key: str, trigger_id: int) -> bool:
        """Take ``key`` to analyse it, waiting while another worker analyses it (its finding
        is then served from the store); False if the worker stops meanwhile."""
        lease = self.settings.analyze_lease
        while not await self.store.hold_analysis(key, self.owner, trigger_id, lease):
            await wait_any(self._stop, None, self.settings.analyze_poll_interval)
            if self._stop.is_set():
                return False
        return True

    async def _analyse(self, context: IssueContext) -> Finding:
        """The analyser's finding. An LLM analysis under a daily budget reserves its share
        first (the heuristic finding, saying why, when the budget leaves no room) and gives
        it back once its calls are recorded."""
        settings = self.settings
        limits = Spend(settings.llm_daily_token_budget, settings.llm_daily_cost_budget)
        if self.analysis.kind != "llm" or context.health is not None:
            return await self.analysis.analyser.analyse(context)  # a check's: no LLM call
        if not (limits.tokens or limits.cost):
            return await self.analysis.analyser.analyse(context)
        prompt = build_prompt(context, self._scrubber)
        reservation = await self.store.reserve_budget(
            self.owner,
            prompt_chars=sum(len(m["content"]) for m in prompt),
            prices=(settings.llm_input_price, settings.llm_output_price),
            limits=limits,
            lease=settings.analyze_lease,
        )
        if reservation.id is None:
            reason = reservation.decision.reasons[0]
            return self.analysis.heuristic.diagnose(context).as_fallback("budget_spent", reason)
        try:
            return await self.analysis.analyser.analyse(context)
        finally:
            with contextlib.suppress(Exception):  # else it is given back when it expires
                await self.store.settle_budget(reservation)

    async def _analyse_held(self, claim: Claim, context: IssueContext, key: str) -> None:
        cached = await self.store.cached(key, self.analysis.kind)
        cached_from = None
        source: str | None = None  # the finding's own analyser unless served
        if cached is not None:
            cached_from = cached.id
            finding = _served(cached.finding)
            self.stats.cached += 1
            source = "stored"
        elif claim.attempts > _MAX_ATTEMPTS:
            finding = self.analysis.heuristic.diagnose(context).as_fallback(
                "abandoned_claim", f"claimed {claim.attempts} times without finishing"
            )
        else:
            finding = await self._analyse(context)
        try:
            await self._save_patiently(finding, claim, context.issue.id, key, cached_from)
        except Exception as exc:
            if not is_bad_data(exc):
                raise
            # PostgreSQL refused something in the answer: keep the heuristic finding,
            # saying why, rather than analysing (and paying) again and again.
            log.error("mendline: the finding of trigger %d was refused: %s", claim.trigger_id, exc)
            finding = self.analysis.heuristic.diagnose(context).as_fallback(
                "unstorable", f"the finding could not be stored: {exc}"
            )
            await self._save_patiently(finding, claim, context.issue.id, key, None)
            source = None
        self._count(claim, finding, source or finding.analyser)

    def _count(self, claim: Claim, finding: Finding, source: str) -> None:
        self.stats.analysed += 1
        self.stats.findings[source] = self.stats.findings.get(source, 0) + 1
        code = finding.fallback_code
        if code is not None:
            self.stats.fallbacks += 1
            self.stats.fallback_codes[code] = self.stats.fallback_codes.get(code, 0) + 1
            log.info(
                "mendline: issue %d: heuristic finding [%s], %s",
                claim.issue_id,
                code,
                finding.fallback_reason,
            )

    def _done_analysing(self, key: str, mine: asyncio.Future[None]) -> None:
        if self._analysing.get(key) is mine:
            del self._analysing[key]
        if not mine.done():
            mine.set_result(None)

    async def _save_patiently(
        self, finding: Finding, claim: Claim, issue_id: int, key: str, cached_from: int | None
    ) -> None:
        # The finding may have cost an LLM call: a database outage is waited out rather
        # than the finding thrown away (unless the worker is stopping meanwhile).
        await through_outages(
            self.store.save,
            finding,
            issue_id=issue_id,
            cache_key=key,
            trigger_id=claim.trigger_id,
            cached_from=cached_from,
            what=f"store the finding of trigger {claim.trigger_id}",
            stop=self._stop,
            longest=self.settings.outage_retry_max,
        )

    async def _finish_in_flight(self) -> None:
        tasks = list(self._in_flight.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=self.grace)
        unfinished = [tid for tid, task in self._in_flight.items() if task in pending]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if unfinished:
            with contextlib.suppress(Exception):
                await self.store.release(self.owner, unfinished)


def _served(finding: Finding) -> Finding:
    # Served from a stored finding: no call was made, so no tokens, cost or prompt are
    # counted again; cached_from points at the one that has them.
    return finding.model_copy(
        update={
            "prompt_tokens": None,
            "completion_tokens": None,
            "cost_usd": None,
            "latency_ms": None,
            "prompt": None,
        }
    )
