"""A review as markdown: the pull request comment (found again by a hidden marker) and the
job summary. Everything from the review is anyone's text (code, an LLM's words, issue titles
from events): it is escaped, one line in a table cell, and only the http(s) issue links we
make are links."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from mendline.schemas.review import (
    REGRESSION_RULE,
    FunctionContext,
    IssueRecord,
    Review,
    ReviewComment,
    ReviewRule,
    severity_rank,
)
from mendline.sinks.forges._render import code_span, fenced, markdown_text
from mendline.sinks.forges._review_output import replacement, severity_counts, web_link

__all__ = ["REVIEW_MARKER", "review_markdown"]

#: The hidden line that starts our pull request comment, so the next run finds it again.
REVIEW_MARKER = "<!-- mendline-review -->"
_SMALLEST = 2_000  # a limit under this cannot hold the title, the notes and one row
_CELL = 500  # characters of a message in the table
_SUGGESTION = 3_000
_ROOT_CAUSE = 400
_TITLE = 200
_HELP = 300
_NOTE = 500
_TABLE = "| | Where | Rule | Comment |\n| --- | --- | --- | --- |"


def _one_line(text: str, limit: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _cell(text: str, limit: int = _CELL) -> str:
    """Escaped, on one line: ``|`` cannot end the cell, a newline cannot end the row."""
    return markdown_text(_one_line(text, limit))


def _code_cell(text: str, limit: int) -> str:
    """A code span in a table cell: GFM reads ``\\|`` there as a ``|`` that ends no cell."""
    return code_span(_one_line(text, limit)).replace("|", "\\|")


def _issue_ref(issue_id: int, link: str | None) -> str:
    """``#14``, never a reference to the forge's own issue 14; a link when it is http(s)."""
    label = markdown_text(f"#{issue_id}")
    url = web_link(link)
    return f"[{label}](<{quote(url, safe=':/?&=%#+,;@!$*')}>)" if url else label


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


@dataclass(frozen=True)
class _Section:
    """A part of the comment whose items can be left out from the end: ``render(k)`` is
    the part with its first ``k`` items (and a line saying how many more there are)."""

    items: Sequence[str]
    render: Callable[[int], str]

    def fit(self, budget: int) -> str:
        """The part with as many whole items as ``budget`` characters hold ("" for none)."""
        if not self.items:
            return ""
        whole = self.render(len(self.items))
        if len(whole) <= budget:
            return whole
        lo, hi = 0, len(self.items) - 1
        while lo < hi:  # the largest k that fits: each item makes the text longer
            mid = (lo + hi + 1) // 2
            if len(self.render(mid)) <= budget:
                lo = mid
            else:
                hi = mid - 1
        text = self.render(lo)
        return text if len(text) <= budget else ""


def _more(left: int, noun: str, shown: int) -> str:
    nouns = noun if left == 1 else noun + "s"
    more = " more" if shown else ""
    return f"_{left:,}{more} {nouns} left out here (the comment's length limit)._"


def review_markdown(review: Review, *, marker: bool = True, limit: int = 65_000) -> str:
    """The review as markdown, at most ``limit`` characters: the verdict, the notes (what
    could not be done), a table of the comments (the most severe first) with their suggested
    changes, the production context of the changed functions, the skipped files, the LLM's
    usage and the help of the rules that fired. Over ``limit``, whole rows are left out from
    the end of each part, and a line says how many. With ``marker``, the first line is
    REVIEW_MARKER. GitHub takes 65,536 characters in a comment, GitLab 1,000,000."""
    if limit < _SMALLEST:
        raise ValueError(f"a review comment needs a limit of at least {_SMALLEST} characters")
    title, usage = _title(review), _usage(review)
    fixed = [part for part in (REVIEW_MARKER if marker else "", title, usage) if part]
    budget = limit - len("\n\n".join(fixed))
    sections = [
        _notes(review),
        _comments(review),
        _production(review),
        _skipped(review),
        _rules(review),
    ]
    # Each part takes what it needs in this order of importance, but leaves the parts after
    # it the room to say how many of their items are left out.
    least = [len(section.render(0)) + 2 if section.items else 0 for section in sections]
    parts: list[str] = []
    for index, section in enumerate(sections):
        text = section.fit(budget - 2 - sum(least[index + 1 :]))
        budget -= len(text) + 2 if text else 0
        parts.append(text)
    notes, comments, production, skipped, rules = parts
    mark = REVIEW_MARKER if marker else ""
    order = [mark, title, notes, comments, production, skipped, usage, rules]
    body = "\n\n".join(part for part in order if part)
    return body + "\n" if len(body) < limit else body


def _title(review: Review) -> str:
    counts = severity_counts(review.comments)
    found = [
        f"{n:,} {severity}" if severity == "info" else _plural(n, severity)
        for severity, n in counts.items()
        if n
    ]
    verdict = ", ".join(found) if found else "nothing to say about the changed lines"
    reviewed = _plural(len(review.files), "changed file")
    if review.skipped:
        reviewed += f" ({len(review.skipped):,} not reviewed)"
    span = ""
    if review.base or review.head:
        span = f" {code_span((review.base or '?')[:40])}..{code_span((review.head or '?')[:40])}"
    return f"### mendline review: {verdict}\n\nReviewed{span}: {reviewed}."


def _notes(review: Review) -> _Section:
    items = [f"- {_cell(note, _NOTE)}" for note in review.notes]

    def render(count: int) -> str:
        out = ["**Notes**\n" + "\n".join(items[:count])]
        if count < len(items):
            out.append(_more(len(items) - count, "note", count))
        return "\n\n".join(out)

    return _Section(items, render)


def _usage(review: Review) -> str:
    usage = review.llm
    if usage is None:
        return ""
    return (
        f"LLM review: {_plural(usage.calls, 'call')}, {usage.prompt_tokens:,} prompt and"
        f" {usage.completion_tokens:,} completion tokens; {_plural(usage.comments, 'comment')}"
        f" made, {usage.dropped:,} dropped."
    )


def _rule_names(review: Review) -> dict[str, ReviewRule]:
    rules: dict[str, ReviewRule] = {}
    for rule in review.rules:
        rules.setdefault(rule.id, rule)
    return rules


def _comments(review: Review) -> _Section:
    rules = _rule_names(review)
    ordered = sorted(review.comments, key=lambda c: (-severity_rank(c.severity), c.path, c.line))
    rows = [_row(c, rules.get(c.rule_id)) for c in ordered]
    changes = [_suggestion(c) for c in ordered]

    def render(count: int) -> str:
        out = ["#### Comments"]
        if count:
            out.append(_TABLE + "\n" + "\n".join(rows[:count]))
        if count < len(rows):
            out.append(_more(len(rows) - count, "comment", count))
        shown = [change for change in changes[:count] if change]
        if shown:
            summary = f"<summary>Suggested changes ({len(shown):,})</summary>"
            out.append(f"<details>{summary}\n\n" + "\n\n".join(shown) + "\n\n</details>")
        return "\n\n".join(out)

    return _Section(rows, render)


def _where(comment: ReviewComment) -> str:
    lines = f"{comment.line}" + (
        f"-{comment.last_line}" if comment.last_line != comment.line else ""
    )
    return f"{comment.path}:{lines}"


def _row(comment: ReviewComment, rule: ReviewRule | None) -> str:
    name = f" {_cell(rule.name, 80)}" if rule else ""
    message = _cell(comment.message)
    if comment.confidence is not None:
        message += f" (confidence {comment.confidence:.2f})"
    if comment.issue_id is not None:
        message += f" (issue {_issue_ref(comment.issue_id, comment.link)})"
    where = _code_cell(_where(comment), 300)
    return f"| {comment.severity} | {where} | {_cell(comment.rule_id, 40)}{name} | {message} |"


def _suggestion(comment: ReviewComment) -> str:
    if not comment.suggestion:
        return ""
    head = f"{code_span(_one_line(_where(comment), 300))} ({_cell(comment.rule_id, 40)})"
    change = replacement(comment)
    if change is not None:
        return head + "\n\n" + fenced(change[:_SUGGESTION], "python")
    return head + ": " + _cell(comment.suggestion, _SUGGESTION)


def _production(review: Review) -> _Section:
    regressions = {
        c.issue_id for c in review.comments if c.rule_id == REGRESSION_RULE and c.issue_id
    }
    items = [_context(f, regressions) for f in review.functions if f.issues]

    def render(count: int) -> str:
        out = ["#### In production", *items[:count]]
        if count < len(items):
            out.append(_more(len(items) - count, "function", count))
        return "\n\n".join(out)

    return _Section(items, render)


def _when(moment: datetime) -> str:
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _context(context: FunctionContext, regressions: set[int]) -> str:
    function = context.function
    span = f"lines {function.first}-{function.last}"
    lines = [f"- {code_span(function.qualname)} in {code_span(function.path)}, {span}"]
    for issue in context.issues:
        lines.append("  - " + _issue(issue, context.likely_fixes, regressions))
    return "\n".join(lines)


def _issue(issue: IssueRecord, likely_fixes: Sequence[int], regressions: set[int]) -> str:
    facts = [
        _cell(issue.status, 40),
        f"{_plural(issue.events_7d, 'event')} in 7 days",
        f"last seen {_when(issue.last_seen)}",
    ]
    if issue.issue_id in regressions:
        resolved = f" (resolved {_when(issue.resolved_at)})" if issue.resolved_at else ""
        facts.append(f"**likely regression**{resolved}")
    elif issue.issue_id in likely_fixes:
        facts.append(f"**likely fixes {markdown_text(f'#{issue.issue_id}')}**")
    text = f"{_issue_ref(issue.issue_id, issue.link)}: {_cell(issue.title, _TITLE)}"
    text += " · " + " · ".join(facts)
    if issue.root_cause:
        text += f"; root cause: {_cell(issue.root_cause, _ROOT_CAUSE)}"
    return text


def _skipped(review: Review) -> _Section:
    items = [f"- {code_span(s.path)}: {_cell(s.reason, 200)}" for s in review.skipped]

    def render(count: int) -> str:
        out = ["#### Not reviewed", "\n".join(items[:count])]
        if count < len(items):
            out.append(_more(len(items) - count, "file", count))
        return "\n\n".join(o for o in out if o)

    return _Section(items, render)


def _rules(review: Review) -> _Section:
    fired = {c.rule_id for c in review.comments}
    items = [
        f"- **{_cell(r.id, 40)}** {_cell(r.name, 80)} ({r.severity}): {_cell(r.summary, _HELP)}"
        + (f" {_cell(r.help, _HELP)}" if r.help else "")
        for r in _rule_names(review).values()
        if r.id in fired
    ]

    def render(count: int) -> str:
        out = ["<details><summary>The rules that fired</summary>", "\n".join(items[:count])]
        if count < len(items):
            out.append(_more(len(items) - count, "rule", count))
        return "\n\n".join(o for o in out if o) + "\n\n</details>"

    return _Section(items, render)
