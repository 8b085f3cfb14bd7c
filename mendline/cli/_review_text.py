"""A review as a terminal shows it: one ``path:line:column: severity rule message`` line a
comment (as compilers and linters print them, so editors jump to them), its suggestion,
production's issues by changed function, what was skipped and what could not be done.
Everything from the code, the events or the LLM is made printable."""

from __future__ import annotations

from mendline.cli.output import counted, styled
from mendline.schemas.printable import printable
from mendline.schemas.review import REVIEW_SEVERITIES, Review

__all__ = ["review_text"]


def review_text(review: Review, *, colour: bool = False) -> str:
    """The review as lines of text, ending with a newline."""
    out = [_headline(review)]
    for c in review.comments:
        where = f"{printable(c.path)}:{c.line}:{c.column or 1}"
        severity = styled(c.severity, c.severity, colour)
        out.append(f"{where}: {severity} {c.rule_id} {printable(c.message)}")
        if c.suggestion:
            out.append(f"    suggestion: {printable(c.suggestion)}")
        if c.link:
            out.append(f"    see: {printable(c.link)}")
    if review.functions:
        out.append("")
        out.append("Production, by changed function:")
        for context in review.functions:
            function = context.function
            out.append(f"  {printable(function.path)} {printable(function.qualname)}:")
            for issue in context.issues:
                fixes = (
                    " (this change likely fixes it)"
                    if issue.issue_id in context.likely_fixes
                    else ""
                )
                out.append(
                    f"    #{issue.issue_id} {printable(issue.title)} [{printable(issue.status)}]:"
                    f" {counted(issue.events_7d, 'event')} in 7 days,"
                    f" last seen {issue.last_seen:%Y-%m-%d %H:%M} UTC{fixes}"
                )
                if issue.root_cause:
                    out.append(f"      root cause: {printable(issue.root_cause)}")
    if review.skipped:
        out.append("")
        out.append("Not reviewed:")
        out += [f"  {printable(s.path)}: {printable(s.reason)}" for s in review.skipped]
    if review.llm is not None:
        usage = review.llm
        out.append("")
        out.append(
            f"LLM: {counted(usage.calls, 'call')}, {usage.prompt_tokens + usage.completion_tokens}"
            f" tokens, {counted(usage.comments, 'comment')} kept, {usage.dropped} dropped"
        )
    if review.notes:
        out.append("")
        out += [f"note: {printable(note)}" for note in review.notes]
    return "\n".join(out) + "\n"


def _headline(review: Review) -> str:
    counts = {s: sum(1 for c in review.comments if c.severity == s) for s in REVIEW_SEVERITIES}
    said = ", ".join(counted(n, s) for s, n in reversed(counts.items()) if n) or "nothing to say"
    reviewed = len(review.files) - len(review.skipped)
    scope = f"{counted(reviewed, 'file')} reviewed"
    if review.skipped:
        scope += f", {len(review.skipped)} not"
    if review.base and review.head:
        scope += f"; {printable(review.base)}..{printable(review.head)}"
    return f"mendline review: {said} ({scope})"
