"""The LLM's review: the changed functions and their production issues in, comments on the
added lines out; on the analyser's client, budget, breaker and ledger."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from mendline.analyzers.breaker import CircuitBreaker
from mendline.analyzers.grouping.scrubbing import Scrubber
from mendline.analyzers.review._llm_prompt import (
    MAX_MESSAGE_CHARS,
    MAX_SUGGESTION_CHARS,
    comments_schema,
    pack,
    review_messages,
    review_units,
)
from mendline.analyzers.rootcause.llm import ChatClient, answer_document
from mendline.analyzers.rootcause.metered import (
    BreakerOutcome,
    MeteredChat,
    OverBudget,
    failure_outcome,
    settle,
)
from mendline.schemas.errors import DatabaseError, LLMError
from mendline.schemas.finding import Ledger, LLMCall
from mendline.schemas.review import (
    AI_RULE,
    REVIEW_SEVERITIES,
    ChangedFile,
    ChangedFunction,
    FunctionContext,
    ReviewComment,
    ReviewRule,
    ReviewSeverity,
    ReviewUsage,
)
from mendline.schemas.settings import Settings

__all__ = ["AI_REVIEW_RULE", "LLMReviewer", "Proposal", "kept_comments", "read_proposals"]

log = logging.getLogger("mendline.analyzers")

AI_REVIEW_RULE = ReviewRule(
    id=AI_RULE,
    name="llm-review",
    severity="warning",
    summary="The LLM's review of the changed lines: a second opinion, which may be wrong.",
    help=(
        "An LLM read the changed functions and the production issues that fail in them, and "
        "commented on the added lines it thinks will fail or are unsafe, with how sure it is. "
        "It can be wrong: judge each comment on its merits. Comments under the confidence "
        "threshold, or about lines the change did not touch, are not shown."
    ),
    source="llm",
)

_MAX_READ = 100  # comments of one answer read at the most; the rest are dropped unread
_MAX_PATH = 500
_SEVERITY_OF: dict[str, ReviewSeverity] = {s: s for s in REVIEW_SEVERITIES}


@dataclass(frozen=True)
class Proposal:
    """A comment as the LLM's answer proposes it, well-formed but not checked against the
    diff yet."""

    path: str
    line: int
    end_line: int | None
    severity: ReviewSeverity
    confidence: float
    message: str
    suggestion: str | None


def read_proposals(content: str) -> tuple[list[Proposal], int]:
    """The well-formed comments of an answer, and how many were not (of the wrong types,
    missing a field, or beyond the first 100). Unknown fields are ignored; long texts are
    cut. Raises ValueError when the answer holds no ``{"comments": [...]}`` object."""
    document = answer_document(content)
    items = document.get("comments")
    if not isinstance(items, list):
        raise ValueError("the answer has no list of comments")
    proposals = [p for p in map(_proposal, items[:_MAX_READ]) if p is not None]
    return proposals, len(items) - len(proposals)


def kept_comments(
    proposals: Sequence[Proposal],
    files: Sequence[ChangedFile],
    sources: Mapping[str, Sequence[str]],
    *,
    min_confidence: float,
    max_comments: int,
) -> list[ReviewComment]:
    """The proposals that become comments: on an added line of a changed file that was
    reviewed (one of ``sources``), at least ``min_confidence`` sure, not said twice; the
    ``max_comments`` surest of them. A range whose end is not in the same hunk becomes a
    one-line comment."""
    by_path = {f.path: f for f in files if f.path in sources}
    seen: set[tuple[str, int, str]] = set()
    kept: list[ReviewComment] = []
    for p in sorted(proposals, key=lambda p: -p.confidence):
        file = by_path.get(p.path.removeprefix("./"))
        if file is None or p.line not in file.added or p.confidence < min_confidence:
            continue
        key = (file.path, p.line, p.message)
        if key in seen:
            continue
        seen.add(key)
        lines = sources[file.path]
        end = p.end_line
        if end is not None and not any(a <= p.line < end <= b for a, b in file.hunks):
            end = None
        kept.append(
            ReviewComment(
                rule_id=AI_RULE,
                source="llm",
                # An opinion never fails a build set to --fail-on error: at most a warning.
                severity="info" if p.severity == "info" else "warning",
                path=file.path,
                line=p.line,
                message=p.message,
                code=lines[p.line - 1].strip() if p.line <= len(lines) else "",
                end_line=end,
                suggestion=p.suggestion,
                confidence=p.confidence,
            )
        )
    return sorted(kept[:max_comments], key=lambda c: (c.path, c.line))


class LLMReviewer:
    """Asks the LLM to review a change, within the analyser's daily budget and behind its
    circuit breaker, every call recorded in the ledger (with no issue), and never fails the
    review: what it could not do becomes a note.

    The budget and retry knobs are LLMAnalyser's (``max_retries``, ``backoff``, prices in US
    dollars per million tokens, ``daily_tokens``, ``daily_cost``; 0 is no limit). A prompt
    holds at most ``max_prompt_chars`` characters: a larger change is split by function into
    up to ``max_calls`` calls, made one after the other; what does not fit in them is not
    reviewed, and a note says how much. Comments under ``min_confidence`` or not on an added
    line are dropped; at most ``max_comments`` are kept.
    """

    def __init__(
        self,
        client: ChatClient,
        *,
        ledger: Ledger,
        breaker: CircuitBreaker | None = None,
        scrubber: Scrubber | None = None,
        max_retries: int = 2,
        input_price: float = 0.0,
        output_price: float = 0.0,
        daily_tokens: int = 0,
        daily_cost: float = 0.0,
        backoff: float = 1.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        min_confidence: float = 0.7,
        max_prompt_chars: int = 24_000,
        max_calls: int = 4,
        max_comments: int = 20,
    ) -> None:
        self.client = client
        self.ledger = ledger
        self.breaker = breaker or CircuitBreaker(failures=5, cooldown=60.0)
        self._scrubber = scrubber or Scrubber()
        self._metered = partial(
            MeteredChat,
            client,
            max_retries=max_retries,
            input_price=input_price,
            output_price=output_price,
            daily_tokens=daily_tokens,
            daily_cost=daily_cost,
            backoff=backoff,
            sleep=sleep,
        )
        self.min_confidence = min_confidence
        self.max_prompt_chars = max_prompt_chars
        self.max_calls = max_calls
        self.max_comments = max_comments
        self._schema = comments_schema(max_comments)

    @classmethod
    def from_settings(
        cls, settings: Settings, client: ChatClient, ledger: Ledger, **options: Any
    ) -> LLMReviewer:
        """The reviewer the settings ask for, on ``client`` (built as the analyse stage
        builds its own) and ``ledger``: the analyser's breaker, scrubbing, retries, prices
        and daily budget; ``options`` set the review's own knobs (``min_confidence``...)."""
        return cls(
            client,
            ledger=ledger,
            breaker=CircuitBreaker(settings.llm_breaker_failures, settings.llm_breaker_cooldown),
            scrubber=Scrubber(settings.scrub_extra_keys, settings.scrub_extra_patterns),
            max_retries=settings.llm_max_retries,
            input_price=settings.llm_input_price,
            output_price=settings.llm_output_price,
            daily_tokens=settings.llm_daily_token_budget,
            daily_cost=settings.llm_daily_cost_budget,
            **options,
        )

    async def review(
        self,
        files: Sequence[ChangedFile],
        sources: Mapping[str, Sequence[str]],
        functions: Sequence[ChangedFunction],
        contexts: Sequence[FunctionContext],
    ) -> tuple[list[ReviewComment], ReviewUsage, list[str]]:
        """The LLM's comments on the added lines of ``files`` (``sources``: each reviewed
        file's lines after the change), what it cost, and notes on what it could not do.

        In the usage, ``comments`` counts what the LLM proposed (an invalid answer counts
        as one) and ``dropped`` those not kept: outside the diff, under the threshold,
        malformed, beyond ``max_comments``. Raises only when cancelled."""
        units = review_units(files, sources, functions, contexts, self._scrubber)
        groups = pack(units, self.max_prompt_chars, self.max_comments)
        tally = _Tally(self.ledger)
        meter = self._metered(tally)
        notes: list[str] = []
        proposed: list[Proposal] = []
        malformed = 0
        for done, group in enumerate(groups[: self.max_calls]):
            try:
                asked = await self._ask(meter, review_messages(group, self.max_comments))
            except DatabaseError as exc:  # the ledger's: the budget cannot be checked
                asked = _Asked(note=f"the LLM budget cannot be checked: {exc}", stop=True)
            proposed += asked.proposals
            malformed += asked.malformed
            if asked.stop:
                notes.append(_stopped(asked.note or "", done, len(groups)))
                break
            if asked.note:
                notes.append(f"LLM review: {asked.note}")
        else:
            left = sum(len(g) for g in groups[self.max_calls :])
            if left:
                notes.append(
                    f"LLM review: {left} of {len(units)} changed functions not reviewed"
                    f" (at most {self.max_calls} calls)"
                )
        comments = kept_comments(
            proposed,
            files,
            sources,
            min_confidence=self.min_confidence,
            max_comments=self.max_comments,
        )
        usage = ReviewUsage(
            calls=len(tally.calls),
            prompt_tokens=sum(c.prompt_tokens for c in tally.calls),
            completion_tokens=sum(c.completion_tokens for c in tally.calls),
            comments=len(proposed) + malformed,
            dropped=len(proposed) + malformed - len(comments),
        )
        return comments, usage, notes

    async def _ask(self, meter: MeteredChat, messages: list[dict[str, str]]) -> _Asked:
        """One call's proposals, or a note on why there are none."""
        over = await meter.over_budget()
        if over:
            return _Asked(note=over, stop=True)
        if not self.breaker.allow():
            return _Asked(note="the LLM circuit breaker is open after repeated failures", stop=True)
        outcome: BreakerOutcome = "none"
        try:
            reply = await meter.call(messages, self._schema, None, [])
            outcome = "success"  # the endpoint answered, whatever its answer is worth
            try:
                proposals, malformed = read_proposals(reply.content)
            except ValueError as exc:
                await meter.record(None, reply, "invalid")
                return _Asked(malformed=1, note=f"an answer was invalid ({exc}): none of it kept")
            await meter.record(None, reply, "ok")
            return _Asked(proposals, malformed)
        except LLMError as exc:
            outcome = failure_outcome(exc)
            # A failure of that one request (too long, say) leaves the other calls to try.
            return _Asked(note=f"the LLM call failed: {exc}", stop=outcome == "failure")
        except OverBudget as exc:
            return _Asked(note=str(exc), stop=True)
        except DatabaseError:
            raise
        except Exception as exc:  # a bug of ours or an answer we did not foresee
            log.exception("mendline: the LLM review failed")
            outcome = "failure"
            return _Asked(note=f"the LLM review failed: {type(exc).__name__}", stop=True)
        finally:
            settle(self.breaker, outcome)


@dataclass(frozen=True)
class _Asked:
    """What came of one call: its well-formed proposals, how many were malformed, and a note
    saying what went wrong, with whether the review stops there."""

    proposals: list[Proposal] = field(default_factory=list)
    malformed: int = 0
    note: str | None = None
    stop: bool = False


class _Tally:
    """A Ledger that records into another and keeps what one review recorded."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.calls: list[LLMCall] = []

    async def record(self, call: LLMCall) -> None:
        """Record the call, and keep it."""
        await self.ledger.record(call)
        self.calls.append(call)

    async def spent_today(self) -> tuple[int, float]:
        """The ledger's spending today."""
        return await self.ledger.spent_today()


def _stopped(reason: str, done: int, total: int) -> str:
    if not done:
        return f"LLM review skipped: {reason}"
    return f"LLM review stopped after {done} of {total} calls: {reason}"


def _proposal(item: object) -> Proposal | None:
    if not isinstance(item, dict):
        return None
    path, line, end_line = item.get("path"), item.get("line"), item.get("end_line")
    severity, confidence = item.get("severity"), item.get("confidence")
    message, suggestion = item.get("message"), item.get("suggestion")
    if not isinstance(path, str) or not path or len(path) > _MAX_PATH:
        return None
    if type(line) is not int or line < 1:
        return None
    known = _SEVERITY_OF.get(severity.lower()) if isinstance(severity, str) else None
    if known is None:
        return None
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        return None
    if not 0 <= confidence <= 1:  # also refuses NaN
        return None
    if not isinstance(message, str) or not message.strip():
        return None
    said = _text(suggestion, MAX_SUGGESTION_CHARS) if isinstance(suggestion, str) else ""
    return Proposal(
        path=path,
        line=line,
        end_line=end_line if type(end_line) is int else None,
        severity=known,
        confidence=float(confidence),
        message=_text(message, MAX_MESSAGE_CHARS),
        suggestion=said or None,
    )


def _text(text: str, limit: int) -> str:
    text = text.replace("\0", "").strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."
