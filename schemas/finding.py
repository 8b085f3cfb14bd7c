"""Finding: what an analyser says caused an issue, and what the analysers are given."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "CATEGORIES",
    "FALLBACK_CODES",
    "RISKS",
    "RISK_WORDS",
    "SEVERITIES",
    "Category",
    "Diagnosis",
    "Evidence",
    "FallbackCode",
    "Finding",
    "FixKind",
    "HealthCondition",
    "HealthEvidence",
    "IssueContext",
    "IssueSummary",
    "LLMCall",
    "Ledger",
    "PastIssue",
    "Risk",
    "Severity",
    "confidence_label",
    "without_controls",
]

Category = Literal[
    "bad_input",
    "missing_key_or_attribute",
    "null_reference",
    "type_mismatch",
    "dependency_outage_or_timeout",
    "configuration",
    "resource_exhaustion",
    "concurrency",
    "logic_bug",
    "unknown",
]
#: Every category, in the order the prompt lists them.
CATEGORIES: tuple[Category, ...] = Category.__args__  # type: ignore[attr-defined]

Severity = Literal["low", "medium", "high", "critical"]
#: Severities from least to most severe; the index is the rank.
SEVERITIES: tuple[Severity, ...] = ("low", "medium", "high", "critical")


def confidence_label(confidence: float) -> str:
    """A finding's confidence (0 to 1) as people read it everywhere, a whole percentage:
    ``85%``."""
    return f"{confidence:.0%}"


FixKind = Literal["style", "formatting", "import", "guard", "config", "logic", "dependency"]


#: Why a finding is the heuristic analyser's stand-in for the analysis that was asked for (an
#: LLM's answer, or a finished analysis of a claimed trigger): ``Finding.fallback_code``, a
#: small fixed set fit for a metric label or a SQL filter.
#:
#: - ``budget_spent``: the daily token or cost budget was spent (before a call, or between
#:   the calls of one analysis);
#: - ``breaker_open``: the circuit breaker is open after repeated failures: no call was made;
#: - ``llm_unreachable``: the endpoint could not be reached (refused, reset, DNS...);
#: - ``llm_timeout``: the call did not finish within ``llm_timeout``;
#: - ``llm_http_error``: the endpoint answered an HTTP error status (the reason has it);
#: - ``llm_bad_response``: the endpoint answered something that is no chat completion;
#: - ``invalid_answer``: the model's answer was no valid finding, twice;
#: - ``unexpected_error``: the analysis failed in a way not foreseen (a bug);
#: - ``abandoned_claim``: the trigger was claimed too many times without a finding (its
#:   workers were killed, or it crashed them), so no call was tried again;
#: - ``unstorable``: PostgreSQL refused the finding made, so the heuristic one was stored.
FallbackCode = Literal[
    "budget_spent",
    "breaker_open",
    "llm_unreachable",
    "llm_timeout",
    "llm_http_error",
    "llm_bad_response",
    "invalid_answer",
    "unexpected_error",
    "abandoned_claim",
    "unstorable",
]
#: Every fallback code, in the order above.
FALLBACK_CODES: tuple[FallbackCode, ...] = FallbackCode.__args__  # type: ignore[attr-defined]


#: What a person must look at before acting on a finding (``Finding.risks``), found by
#: ``mendline.analyzers.rootcause.risks`` in its suggested fix and patch, or by the analysis:
#:
#: - ``pipe_to_shell``: a download piped into a shell or an interpreter (``curl ... | sh``);
#: - ``destructive_command``: a command that deletes or overwrites (``rm -rf``, ``dd of=``...);
#: - ``shell_command``: a shell command to run (``curl``, ``bash -c``...), or code that runs a
#:   program (``os.system``, any ``subprocess`` call, ``shell=`` set, ``asyncio``'s subprocesses);
#: - ``code_execution``: code that runs code made at run time (``eval``, ``exec``...);
#: - ``unsafe_deserialization``: ``pickle``/``marshal`` loads, ``yaml.load`` without a safe
#:   loader: code execution for whoever writes the input;
#: - ``world_writable``: permissions for everyone (``chmod 777``, ``0o666``);
#: - ``fetches_url``: the patch adds an http(s) URL or a network client call (``requests``,
#:   ``httpx``, ``urlopen``...), or the fix says to download one;
#: - ``dependency_change``: installs or runs a package (``pip install``, ``npm install``, ``npx``);
#: - ``severity_capped``: the answer asked for a severity above the issue's own level without
#:   high confidence and the heuristic's agreement: it was kept at the issue's level.
#:
#: The fix stage must refuse to apply a finding's patch while it has any of the fix risks.
Risk = Literal[
    "pipe_to_shell",
    "destructive_command",
    "shell_command",
    "code_execution",
    "unsafe_deserialization",
    "world_writable",
    "fetches_url",
    "dependency_change",
    "severity_capped",
]
#: Every risk, in the order above.
RISKS: tuple[Risk, ...] = Risk.__args__  # type: ignore[attr-defined]
#: Each risk in words, for the CLI and the alerts.
RISK_WORDS: dict[Risk, str] = {
    "pipe_to_shell": "pipes a download into a shell",
    "destructive_command": "runs a command that deletes or overwrites",
    "shell_command": "runs a shell command",
    "code_execution": "executes code made at run time (eval/exec)",
    "unsafe_deserialization": "deserialises input unsafely (pickle, torch.load, yaml.load)",
    "world_writable": "makes files writable by everyone",
    "fetches_url": "fetches a URL",
    "dependency_change": "installs or runs a package",
    "severity_capped": "asked for a severity above the issue's level: not trusted, capped",
}


class Evidence(BaseModel):
    """One thing a finding rests on: a frame and its line, and what it shows."""

    model_config = ConfigDict(extra="ignore")

    location: str = Field(
        max_length=600, description='Where: "module.function (file.py:42)", or "message".'
    )
    line: str | None = Field(default=None, max_length=1000, description="The line cited.")
    note: str = Field(max_length=1000, description="What it shows about the cause.")


class Diagnosis(BaseModel):
    """An analyser's answer: the part of a Finding an LLM is asked to fill in."""

    model_config = ConfigDict(extra="ignore")

    root_cause: str = Field(
        min_length=1, max_length=2000, description="What most likely caused the issue, specific."
    )
    confidence: float = Field(ge=0, le=1, description="How sure, from 0 to 1.")
    category: Category
    severity: Severity
    suggested_fix: str = Field(min_length=1, max_length=4000, description="What to change.")
    fix_patch: str | None = Field(
        default=None,
        max_length=20_000,
        description="A unified diff against the files in the frames, when one can be made.",
    )
    fix_kind: FixKind | None = None
    evidence: list[Evidence] = Field(default_factory=list, max_length=20)


class Finding(Diagnosis):
    """A Diagnosis and how it was made: by which analyser, at what cost, from what prompt."""

    analyser: Literal["heuristic", "llm"]
    rule: str | None = Field(default=None, description="The knowledge-base rule (heuristic).")
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    latency_ms: int | None = None
    fallback_reason: str | None = Field(
        default=None,
        description="Why the LLM's answer was not used, when it was not, in words for people.",
    )
    fallback_code: FallbackCode | None = Field(
        default=None,
        description="Why the LLM's answer was not used, as a code: set with fallback_reason.",
    )
    prompt: list[dict[str, str]] | None = Field(
        default=None, description="The exact chat messages sent, for audit."
    )
    risks: list[Risk] = Field(
        default_factory=list,
        description="What to look at before acting on it (RISKS); never applied automatically.",
    )

    @model_validator(mode="after")
    def _code_with_reason(self) -> Finding:
        # Metrics count by the code and people read the reason: one is never without the other.
        if (self.fallback_code is None) != (self.fallback_reason is None):
            raise ValueError("fallback_code and fallback_reason are set together or not at all")
        return self

    def as_fallback(self, code: FallbackCode, reason: str) -> Finding:
        """This finding, standing in for an LLM answer that was not used: ``code`` says why
        for metrics, ``reason`` (cut to 1000 characters) says it in words."""
        # Validated (model_copy is not): a code outside the set fails here, where it is made.
        return Finding.model_validate(
            self.model_dump() | {"fallback_code": code, "fallback_reason": reason[:1000]}
        )


class IssueSummary(BaseModel):
    """The issue being analysed, as stored."""

    id: int
    service: str
    title: str
    culprit: str | None = None
    level: str
    status: str = "unresolved"
    times_seen: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    first_release: str | None = None
    last_release: str | None = None
    environments: list[str] = Field(default_factory=list)
    regressions: int = 0


class PastIssue(BaseModel):
    """A similar earlier issue, with what was found and what people said about it."""

    id: int
    title: str
    culprit: str | None = None
    root_cause: str | None = None
    category: str | None = None
    suggested_fix: str | None = None
    verdict: Literal["right", "wrong"] | None = None
    verdict_note: str | None = None
    resolution_note: str | None = None


# Control characters but tab and newline: a terminal escape, a NUL, a carriage return.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def without_controls(text: str) -> str:
    """``text`` without its control characters (tabs and newlines kept): text from outside
    (a checked service's answer, an event) must not steer a terminal, a mail header or a
    message."""
    return _CONTROL.sub("", text)


class HealthCondition(BaseModel):
    """One condition of a check's result as a trigger recorded it (a ConditionResult)."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)

    condition: str = ""
    success: bool = False
    observed: str = ""

    @field_validator("condition", "observed")
    @classmethod
    def _clean(cls, value: str) -> str:
        return without_controls(value)


class HealthEvidence(BaseModel):
    """What a health check's trigger recorded in its ``details``: the check, its target, its
    status and counts, the failing probe's error and conditions, and its timings (seconds).

    The text in it came from the checked service (a body, a header, a job's failure message):
    its control characters are dropped when it is read, and it is shown escaped and clipped,
    never trusted. ``down_since`` is when the check was found
    down, given with a recovery when known.
    """

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)

    check: str = ""
    check_kind: str = ""
    target: str | None = None
    status: str | None = None
    failures: int = 0
    successes: int = 0
    error: str | None = None
    error_kind: str | None = None
    conditions: list[HealthCondition] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    reasons: list[str] = Field(default_factory=list)
    scheduled_at: datetime | None = None
    down_since: datetime | None = None

    @field_validator("check", "check_kind", "target", "status", "error", "error_kind", "reasons")
    @classmethod
    def _clean(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list):
            return [without_controls(item) for item in value]
        return without_controls(value) if value is not None else None

    @classmethod
    def of(cls, details: Mapping[str, Any]) -> HealthEvidence:
        """The evidence in a trigger's ``details``; a malformed field is left out, never
        raised: an alert about a check is sent with what can be read of it."""
        try:
            return cls.model_validate(details)
        except ValidationError:
            kept = {}
            for name in cls.model_fields:
                if name in details:
                    try:
                        cls.model_validate({name: details[name]})
                    except ValidationError:
                        continue
                    kept[name] = details[name]
            return cls.model_validate(kept)

    @property
    def failing(self) -> list[HealthCondition]:
        """The conditions that did not hold."""
        return [c for c in self.conditions if not c.success]


class IssueContext(BaseModel):
    """Everything an analyser is given: the issue, a few of its events, similar past issues.

    ``events`` are ErrorEvent v1 wire dicts as stored (scrubbed), newest first. A health
    check's issue has no events: ``health`` is the evidence its newest down trigger recorded.
    """

    issue: IssueSummary
    trigger: Literal["new_issue", "regression", "health_down", "on_demand"] = "new_issue"
    events: list[dict[str, Any]] = Field(default_factory=list)
    similar: list[PastIssue] = Field(default_factory=list)
    health: HealthEvidence | None = None


@dataclass(frozen=True)
class LLMCall:
    """One call to the LLM endpoint and what came of it (for usage and the budget)."""

    issue_id: int | None
    model: str
    outcome: str  # "ok", "invalid", "timeout", "http_429", "http_500", "unreachable"...
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_ms: int


class Ledger(Protocol):
    """Where LLM calls are recorded, and what they cost today (UTC): the daily budget."""

    async def record(self, call: LLMCall) -> None:
        """Record one call."""
        ...

    async def spent_today(self) -> tuple[int, float]:
        """Tokens and US dollars spent since midnight UTC."""
        ...
