"""How the ``mendline fix`` commands show a fix to people: its row in a list, and the whole of
it for a reviewer, every stored text escaped for the terminal."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from mendline.analyzers.patch import DiffLineKind
from mendline.analyzers.patch import diff_lines as read_diff
from mendline.analyzers.policy import explain
from mendline.cli.output import printable, shorten, styled
from mendline.schemas.duration import format_duration
from mendline.schemas.finding import RISK_WORDS, confidence_label
from mendline.schemas.fix import FIX_STEPS

if TYPE_CHECKING:
    from mendline.schemas.fix import CommandOutcome, Delivery
    from mendline.sinks.postgres import StoredFinding, StoredFix

__all__ = ["FIX_COLUMNS", "age", "describe_fix", "diff_lines", "fix_row"]

#: The columns of ``fix_row``.
FIX_COLUMNS = ("ID", "ISSUE", "STATE", "REPOSITORY", "VERDICT", "REQUESTED BY", "AGE")

# How each kind of a diff's line is styled.
_DIFF_STYLES: dict[DiffLineKind, str | None] = {
    "file": "bold",
    "hunk": "cyan",
    "add": "green",
    "del": "red",
    "context": None,
}
# The lines of a verification command's output shown (its last ones); --json has it all.
_OUTPUT_LINES = 20


def age(since: datetime, now: datetime) -> str:
    """How long ago ``since`` was, as people glance at it: ``40s``, ``1h5m``, ``3d4h``."""
    seconds = max(0, int((now - since).total_seconds()))
    step = 1 if seconds < 60 else 60 if seconds < 86400 else 3600
    return format_duration(seconds // step * step)


def fix_row(fix: StoredFix, now: datetime) -> tuple[object, ...]:
    """A fix's row under ``FIX_COLUMNS``."""
    return (
        fix.id,
        fix.issue_id,
        fix.state,
        shorten(fix.repository or "-", 30),
        fix.verdict_label,
        shorten(fix.requested_by, 30),
        age(fix.created_at, now),
    )


def diff_lines(patch: str, colour: bool) -> list[str]:
    """A unified diff to print, each line escaped (it came from an event or a model) and,
    with ``colour``, styled as diffs are: headers bold, hunks cyan, additions green,
    removals red."""
    return [styled(printable(line), _DIFF_STYLES[kind], colour) for kind, line in read_diff(patch)]


def describe_fix(
    fix: StoredFix,
    issue_title: str | None,
    finding: StoredFinding | None,
    now: datetime,
    colour: bool,
) -> list[str]:
    """Everything a reviewer reads of a fix, as lines: where it stands and when each step
    happened, its issue and finding, the policy's decision with every reason, approvals, the
    patch as a diff, the verification, the delivery, error and release."""
    p = printable
    lines = [
        styled(f"fix #{fix.id} of issue #{fix.issue_id}: {fix.state}", "bold", colour),
        f"  issue        #{fix.issue_id} {p(issue_title or '(gone)')}",
        *_finding_lines(fix, finding),
        f"  requested    by {p(fix.requested_by)} ({fix.requested_auth})",
        f"  repository   {p(fix.repository or '(none: the patch maps into no repository)')}",
        f"  branch       {fix.branch}",
        "timings",
        *_timing_lines(fix, now),
        "policy",
        *("  " + line for line in explain(fix.decision)),
    ]
    if fix.decision.verdict == "approval":
        who = ", ".join(p(name) for name in fix.approvals) or "none yet"
        lines.append(f"approvals      {len(fix.approvals)} of {fix.approvals_needed}: {who}")
    if fix.rejected_at is not None:
        lines.append(
            f"rejected       by {p(fix.rejected_by or '?')}: {p(fix.rejected_reason or '')}"
        )
    patch = fix.mapped_patch if fix.mapped_patch is not None else fix.patch
    paths = "repository paths" if fix.mapped_patch is not None else "frame paths: not mapped"
    lines.append(f"patch ({paths})")
    lines += ["  " + line for line in diff_lines(patch, colour)]
    if fix.verification is not None:
        passed = "passed" if fix.verification.passed else "failed"
        lines.append(f"verification   {passed}")
        for outcome in fix.verification.commands:
            lines += _command_lines(outcome)
    if fix.delivery is not None:
        lines += _delivery_lines("delivery", fix.delivery)
    if fix.state == "applying" and fix.owner is not None:
        until = f"{fix.lease_until:%Y-%m-%d %H:%M:%S %Z}" if fix.lease_until else "?"
        lines.append(f"applying by    {p(fix.owner)} until {until} (attempt {fix.attempts})")
    if fix.error is not None:
        lines.append(f"error          {p(fix.error)}")
    if fix.release is not None:
        lines.append(f"release        {p(fix.release)}")
    if fix.rollback_delivery is not None:
        lines += _delivery_lines("rolled back", fix.rollback_delivery)
    return lines


def _finding_lines(fix: StoredFix, stored: StoredFinding | None) -> list[str]:
    if stored is None:
        return [f"  finding      #{fix.finding_id} (gone)"]
    f = stored.finding
    lines = [
        f"  finding      #{stored.id}: {printable(f.root_cause)}",
        f"               confidence {confidence_label(f.confidence)}, severity {f.severity},"
        f" kind {f.fix_kind or '(not said)'}, category {f.category}",
    ]
    if f.risks:
        lines.append(
            "  risks        " + "; ".join(f"{RISK_WORDS[risk]} [{risk}]" for risk in f.risks)
        )
    return lines


def _timing_lines(fix: StoredFix, now: datetime) -> list[str]:
    """When each step happened: the proposal with how long ago, the others after it."""
    lines = []
    for name, said in FIX_STEPS:
        at: datetime | None = getattr(fix, name)
        if at is None:
            continue
        when = f"{at:%Y-%m-%d %H:%M:%S %Z}"
        after = (
            f"{age(at, now)} ago"
            if name == "created_at"
            else f"{age(fix.created_at, at)} after the proposal"
        )
        lines.append(f"  {said:12} {when} ({after})")
    return lines


def _command_lines(outcome: CommandOutcome) -> list[str]:
    """A verification command, how it ended, and the last lines of its output."""
    argv = " ".join(printable(arg) for arg in outcome.argv)
    lines = [f"  $ {argv}  ({outcome.ended}, {outcome.seconds:.1f} s)"]
    output = outcome.output.removesuffix("\n").split("\n") if outcome.output else []
    if len(output) > _OUTPUT_LINES:
        lines.append(f"      ... {len(output) - _OUTPUT_LINES} earlier lines (--json has them)")
    lines += ["      " + printable(line) for line in output[-_OUTPUT_LINES:]]
    return lines


def _delivery_lines(what: str, delivery: Delivery) -> list[str]:
    lines = [
        f"{what:14} {delivery.mode}: branch {printable(delivery.branch)}, commit {delivery.commit}"
    ]
    for label, value in (
        ("remote", delivery.remote),
        ("pull request", delivery.pr_url),
        ("patch file", delivery.patch_path),
    ):
        if value is not None:
            lines.append(f"  {label:12} {printable(value)}")
    return lines
