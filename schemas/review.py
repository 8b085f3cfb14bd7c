"""A code review's contracts: the files a diff changes, the functions it changes, the rules a
review applies, the comments it makes, the production context of a changed function, and the
review itself (what every output writes)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

__all__ = [
    "AI_RULE",
    "LEARNED_PREFIX",
    "LIKELY_FIX_RULE",
    "PRODUCTION_RULE",
    "REGRESSION_RULE",
    "REVIEW_SEVERITIES",
    "ChangedFile",
    "ChangedFunction",
    "CommentSource",
    "FileStatus",
    "FrameRef",
    "FunctionContext",
    "IssueRecord",
    "LearnedRule",
    "ProductionSource",
    "Review",
    "ReviewComment",
    "ReviewRule",
    "ReviewSeverity",
    "ReviewUsage",
    "SkippedFile",
    "learned_rule_id",
    "severity_rank",
]

ReviewSeverity = Literal["info", "warning", "error"]
#: Severities from least to most severe; the index is the rank (``--fail-on``).
REVIEW_SEVERITIES: tuple[ReviewSeverity, ...] = ("info", "warning", "error")

#: Where a comment comes from: a built-in rule, a rule learned from a finding marked right,
#: the production context (an issue in a changed function, a likely fix or regression), or
#: the LLM's review.
CommentSource = Literal["rule", "learned", "production", "llm"]

#: Ids of the comments that are not a built-in rule's (built-in rules are ``MR1xx``).
REGRESSION_RULE = "MRP001"  # the diff writes again the culprit line of a resolved issue
PRODUCTION_RULE = "MRP002"  # a changed function fails in production (an open issue)
LIKELY_FIX_RULE = "MRP003"  # the change looks like the fix a finding proposed
AI_RULE = "MRA001"  # the LLM's review
#: A learned rule's id is this prefix and its number in PostgreSQL: ``MRL12``.
LEARNED_PREFIX = "MRL"

#: What a diff did to a file. ``renamed`` may change lines too; ``binary`` and ``mode`` files
#: have no lines to read.
FileStatus = Literal["added", "modified", "deleted", "renamed", "copied", "binary", "mode"]


def severity_rank(severity: ReviewSeverity) -> int:
    """0 for info, 1 for warning, 2 for error."""
    return REVIEW_SEVERITIES.index(severity)


def learned_rule_id(number: int) -> str:
    """A learned rule's id from its number: ``MRL12``."""
    return f"{LEARNED_PREFIX}{number}"


@dataclass(frozen=True)
class ChangedFile:
    """One file of a diff. ``path`` is its path after the change (before it, for a deleted
    file), relative to the repository's root, ``/``-separated; ``added`` holds the line
    numbers (after the change, from 1) of the lines added or changed, the only lines a
    review reports on; ``hunks`` the (first, last) line ranges after the change of each hunk,
    context included: a line in one of them is "in the diff" (where a forge can comment);
    ``removed`` the text of the lines it removed."""

    path: str
    old_path: str | None
    status: FileStatus
    added: frozenset[int] = frozenset()
    hunks: tuple[tuple[int, int], ...] = ()
    #: The text of the removed lines (before the change), in order.
    removed: tuple[str, ...] = ()
    #: The text of the added lines, in the order of their numbers (empty when unknown).
    added_text: tuple[str, ...] = ()

    @property
    def language(self) -> str | None:
        """``python`` for ``.py`` and ``.pyi`` files; None for what is not reviewed yet."""
        return "python" if self.path.endswith((".py", ".pyi")) else None

    def in_diff(self, line: int) -> bool:
        """True when ``line`` (after the change) is within one of the hunks."""
        return any(first <= line <= last for first, last in self.hunks)


@dataclass(frozen=True)
class SkippedFile:
    """A changed file the review did not read, and why (``not Python``, ``binary``,
    ``deleted``, ``cannot be parsed: ...``)."""

    path: str
    reason: str


@dataclass(frozen=True)
class ChangedFunction:
    """A function (or method) with added or changed lines: its ``qualname`` as Python's
    ``co_qualname`` spells it (``Orders.create``, ``outer.<locals>.inner``; ``<module>`` for
    lines outside any function), its lines after the change (``first`` to ``last``, the
    decorators included) and the changed lines in it."""

    path: str
    qualname: str
    first: int
    last: int
    changed: tuple[int, ...]


@dataclass(frozen=True)
class ReviewRule:
    """A rule a review can report: its ``id`` (``MR101``; ``MRL12`` learned; ``MRP001``
    production; ``MRA001`` the LLM), a kebab-case ``name``, its default severity, a one-line
    ``summary`` and a ``help`` text saying why it matters and what to do."""

    id: str
    name: str
    severity: ReviewSeverity
    summary: str
    help: str
    source: CommentSource


@dataclass(frozen=True)
class ReviewComment:
    """One thing a review says about one place in the changed code.

    ``line`` to ``end_line`` are lines after the change (from 1), ``column`` from 1 when
    known; ``code`` is the source line at ``line`` (what the fingerprint is made of, so a
    comment keeps its identity when lines above it move). ``message`` and ``suggestion`` may
    quote code and production data: every output escapes them for where it writes.
    ``issue_id`` and ``link`` name the production issue a comment is about or was learned
    from; ``confidence`` (0 to 1) is the LLM's."""

    rule_id: str
    source: CommentSource
    severity: ReviewSeverity
    path: str
    line: int
    message: str
    code: str = ""
    end_line: int | None = None
    column: int | None = None
    suggestion: str | None = None
    confidence: float | None = None
    issue_id: int | None = None
    link: str | None = None

    @property
    def last_line(self) -> int:
        """``end_line``, or ``line`` when the comment is about one line."""
        return self.end_line if self.end_line is not None else self.line

    def fingerprint(self) -> str:
        """A stable identity across pushes: the rule, the path and the line's text without its
        indentation (not its number), as 32 hex digits. Outputs add an occurrence count for
        the same text twice in one file."""
        basis = "\0".join((self.rule_id, self.path, " ".join(self.code.split())))
        return hashlib.sha256(basis.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass(frozen=True)
class FrameRef:
    """An in-app frame of an issue's latest event, as the app recorded it."""

    filename: str
    module: str | None
    function: str
    lineno: int | None
    context_line: str | None


@dataclass(frozen=True)
class IssueRecord:
    """An issue as the production context reads it: its numbers, its newest finding's root
    cause, verdict and patch (as the analyser wrote it, frame paths), and the in-app frames
    of its latest event (innermost last)."""

    issue_id: int
    title: str
    status: str
    culprit: str | None
    events_7d: int
    times_seen: int
    last_seen: datetime
    resolved_at: datetime | None
    root_cause: str | None
    verdict: str | None
    patch: str | None
    frames: tuple[FrameRef, ...]
    link: str | None = None


@dataclass(frozen=True)
class LearnedRule:
    """A rule learned from a finding marked right: the ``shape`` of its issue's culprit line
    (what analyzers.review's shape function makes of it), the line itself as an example, the
    issue and finding it came from; a disabled rule is kept but not applied."""

    number: int
    shape: str
    example: str
    title: str
    issue_id: int
    finding_id: int | None
    created_at: datetime
    disabled_at: datetime | None = None
    disabled_by: str | None = None
    link: str | None = None
    #: How the issue was fixed, when known: the note it was resolved with, else the suggested
    #: fix of the finding that taught the rule (a comment's suggestion).
    fix: str | None = None

    @property
    def id(self) -> str:
        """``MRL`` and the number."""
        return learned_rule_id(self.number)


class ProductionSource(Protocol):
    """Where a review reads production from: PostgreSQL (read-only) or the dashboard's JSON
    API with a token."""

    async def issues(
        self, file_names: Sequence[str], *, resolved_within_days: int
    ) -> list[IssueRecord]:
        """Open issues, and issues resolved in the last ``resolved_within_days`` days, whose
        latest event has an in-app frame in a file named one of ``file_names`` (base names,
        ``orders.py``); at most a few hundred, the most recently seen first."""
        ...

    async def learned_rules(self) -> list[LearnedRule]:
        """The learned rules that are not disabled."""
        ...


@dataclass(frozen=True)
class ReviewUsage:
    """What the LLM's review cost and what came of it: calls, tokens, comments it made and
    how many of them were dropped (outside the diff, under the confidence threshold,
    malformed)."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    comments: int = 0
    dropped: int = 0


@dataclass(frozen=True)
class FunctionContext:
    """A changed function with the production issues whose in-app frames fall in it, and
    the ids of those the change looks like it fixes."""

    function: ChangedFunction
    issues: tuple[IssueRecord, ...]
    likely_fixes: tuple[int, ...] = ()


@dataclass(frozen=True)
class Review:
    """A whole review: what it read (``base``..``head``), the files, what it skipped, every
    rule it can report (outputs list them), its comments (sorted by path and line), the
    production context of changed functions, ``notes`` saying what it could not do (no
    database, the LLM unavailable), and the LLM's usage when it ran."""

    base: str | None
    head: str | None
    files: tuple[ChangedFile, ...]
    skipped: tuple[SkippedFile, ...]
    rules: tuple[ReviewRule, ...]
    comments: tuple[ReviewComment, ...]
    functions: tuple[FunctionContext, ...] = ()
    notes: tuple[str, ...] = ()
    llm: ReviewUsage | None = None
    #: When the review was made (UTC).
    made_at: datetime | None = field(default=None, compare=False)

    def at_or_above(self, severity: ReviewSeverity) -> tuple[ReviewComment, ...]:
        """The comments of ``severity`` or worse (what ``--fail-on`` counts)."""
        rank = severity_rank(severity)
        return tuple(c for c in self.comments if severity_rank(c.severity) >= rank)
