"""LLM calls within a daily budget: retried, each recorded in a ledger, and what a circuit
breaker is told of them. One implementation for every user of the LLM (the analyser, the
review)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

from mendline.analyzers.backoff import Backoff
from mendline.analyzers.breaker import CircuitBreaker
from mendline.schemas.errors import LLMError
from mendline.schemas.finding import Ledger, LLMCall

if TYPE_CHECKING:
    from mendline.analyzers.rootcause.llm import ChatClient, ChatReply

__all__ = [
    "BreakerOutcome",
    "MeteredChat",
    "OverBudget",
    "failure_outcome",
    "settle",
    "tokens_or_estimate",
]

log = logging.getLogger("mendline.analyzers")

_MAX_RETRY_AFTER = 120.0  # a server asking for longer is treated as down
_BACKOFF_CAP = 30.0
# Statuses about one request (too long, malformed), not about the endpoint: they do not
# count towards the circuit breaker.
_REQUEST_SPECIFIC = {400, 413, 422}
_MAX_TOKENS = 2**31 - 1  # what the ledger's integer columns hold

#: What a circuit breaker is told of a call it let through.
BreakerOutcome = Literal["success", "failure", "none"]


def tokens_or_estimate(value: object, fallback_chars: int) -> int:
    """The token count a server reported (``value``), or, when it reported none, an
    estimate of about 4 characters a token for ``fallback_chars`` characters."""
    if type(value) is int and value >= 0:
        return min(value, _MAX_TOKENS)
    return min((fallback_chars + 3) // 4, _MAX_TOKENS)


def failure_outcome(exc: LLMError) -> BreakerOutcome:
    """What a breaker is told of a call that failed with ``exc``: a failure, unless the
    status is about that one request (too long, malformed), not the endpoint."""
    return "none" if exc.status in _REQUEST_SPECIFIC else "failure"


def settle(breaker: CircuitBreaker, outcome: BreakerOutcome) -> None:
    """Tell ``breaker`` how a call it let through ended."""
    if outcome == "success":
        breaker.success()
    elif outcome == "failure":
        breaker.failure()
    else:
        breaker.release()


class OverBudget(Exception):
    """The daily budget ran out between the calls of one piece of work."""


class MeteredChat:
    """Calls a ChatClient within the daily budget (``daily_tokens``, ``daily_cost`` in US
    dollars; 0 is no limit) read from ``ledger``, retries a retriable failure
    ``max_retries`` times with jittered exponential backoff (from up to ``backoff`` seconds,
    doubling, up to 30 s; a Retry-After is honoured up to 120 s), and records every call in
    ``ledger``, failures and cancellations included, priced at ``input_price`` and
    ``output_price`` US dollars per million tokens."""

    def __init__(
        self,
        client: ChatClient,
        ledger: Ledger,
        *,
        max_retries: int = 2,
        input_price: float = 0.0,
        output_price: float = 0.0,
        daily_tokens: int = 0,
        daily_cost: float = 0.0,
        backoff: float = 1.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.client = client
        self.ledger = ledger
        self._max_retries = max_retries
        self._prices = (input_price / 1e6, output_price / 1e6)
        self._daily = (daily_tokens, daily_cost)
        # Full jitter: concurrent workers do not retry in step.
        # backoff=0 retries at once, and more than the cap waits the cap, as it always did.
        self._backoff = Backoff(min(backoff, _BACKOFF_CAP), _BACKOFF_CAP, jitter=1.0)
        self._sleep = sleep

    async def over_budget(self) -> str | None:
        """Why no call may be made now (the daily budget is spent), or None."""
        tokens_limit, cost_limit = self._daily
        if not tokens_limit and not cost_limit:
            return None
        tokens, cost = await self.ledger.spent_today()
        if tokens_limit and tokens >= tokens_limit:
            return f"the daily LLM budget is spent ({tokens} of {tokens_limit} tokens)"
        if cost_limit and cost >= cost_limit:
            return f"the daily LLM budget is spent (${cost:.4f} of ${cost_limit:.4f})"
        return None

    async def call(
        self,
        messages: list[dict[str, str]],
        schema: dict[str, Any],
        issue_id: int | None,
        spent: list[ChatReply],
    ) -> ChatReply:
        """One answer to ``messages``, appended to ``spent`` (the replies of this piece of
        work). The budget is checked again before every call but the first of a piece of
        work (its caller checked it): OverBudget when it is spent. Failed calls are recorded
        under ``issue_id`` and retried when retriable; the last failure is raised."""
        for attempt in range(self._max_retries + 1):
            if attempt or spent:
                over = await self.over_budget()
                if over:
                    raise OverBudget(over)
            started = time.perf_counter()
            try:
                reply = await self.client.complete(messages, schema=schema)
            except LLMError as exc:
                latency_ms = int((time.perf_counter() - started) * 1000)
                await self.record_failure(issue_id, exc.code, latency_ms)
                if not exc.retriable or attempt == self._max_retries:
                    raise
                if exc.retry_after is not None:
                    if exc.retry_after > _MAX_RETRY_AFTER:
                        raise
                    delay = exc.retry_after
                else:
                    delay = self._backoff.delay(attempt)
                log.info("mendline: LLM call failed (%s); retrying in %.1f s", exc, delay)
                await self._sleep(delay)
                continue
            except asyncio.CancelledError:
                # Stopped mid-call: the call may still be paid for. Count an estimate.
                latency_ms = int((time.perf_counter() - started) * 1000)
                estimate = tokens_or_estimate(None, sum(len(m["content"]) for m in messages))
                await asyncio.shield(
                    self.record_failure(issue_id, "cancelled", latency_ms, estimate)
                )
                raise
            spent.append(reply)
            return reply
        raise AssertionError("unreachable")  # pragma: no cover

    def cost(self, reply: ChatReply) -> float:
        """What ``reply`` cost, in US dollars."""
        return reply.prompt_tokens * self._prices[0] + reply.completion_tokens * self._prices[1]

    def usage(self, spent: list[ChatReply]) -> dict[str, Any]:
        """The tokens, cost and latency of the replies ``spent``, as a Finding's fields."""
        return {
            "prompt_tokens": sum(r.prompt_tokens for r in spent),
            "completion_tokens": sum(r.completion_tokens for r in spent),
            "cost_usd": round(sum(self.cost(r) for r in spent), 6),
            "latency_ms": sum(r.latency_ms for r in spent),
        }

    async def record(self, issue_id: int | None, reply: ChatReply, outcome: str) -> None:
        """Record a call that was answered, and what came of its answer (``ok``,
        ``invalid``)."""
        await self.ledger.record(
            LLMCall(
                issue_id=issue_id,
                model=reply.model,
                outcome=outcome,
                prompt_tokens=reply.prompt_tokens,
                completion_tokens=reply.completion_tokens,
                cost_usd=self.cost(reply),
                latency_ms=reply.latency_ms,
            )
        )

    async def record_failure(
        self, issue_id: int | None, code: str, latency_ms: int, prompt_tokens: int = 0
    ) -> None:
        """Record a call that failed with ``code`` (``timeout``, ``http_429``...)."""
        cost = prompt_tokens * self._prices[0]
        await self.ledger.record(
            LLMCall(issue_id, self.client.model, code, prompt_tokens, 0, cost, latency_ms)
        )
