"""Commit messages and pull-request text for fixes and reverts.

Every string that came from an event or a finding is anyone's. In markdown, mentions and
references (``@user``, ``#12``, ``!3``) cannot notify or link, HTML and markdown links and
images do not form, and code and logs go in fences longer than any backtick run inside. In
commit messages, text is folded into paragraphs, so it cannot forge a trailer.
"""

from __future__ import annotations

import re
import textwrap
from urllib.parse import quote

from mendline.schemas.finding import Diagnosis, confidence_label
from mendline.schemas.fix import Verification
from mendline.schemas.printable import printable
from mendline.sinks.forges._change import FixChange, RevertChange

__all__ = [
    "code_span",
    "commit_message",
    "fenced",
    "markdown_text",
    "neutral_line",
    "pr_body",
    "pr_title",
    "revert_body",
    "revert_message",
    "revert_title",
]

_ZWSP = "\u200b"  # a zero-width space: "@\u200bname" is no mention
# A mention, an issue or merge-request reference, a GitLab label, milestone or snippet.
_REFERENCE = re.compile(r"([@#!~$%&^])(?=\w)")
_AUTOLINK = re.compile(r"(://|(?i:www)\.)")
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()<>|~&!#])")
_LINE_MARK = re.compile(r"^(\s*)([-+=])", re.MULTILINE)
_LINE_NUMBER = re.compile(r"^(\s*\d+)([.])", re.MULTILINE)
_BACKTICKS = re.compile(r"`+")
_URL = re.compile(r"https?://[^\s<>()\[\]`\"']+")
_SUBJECT = 60
_TITLE = 200
_WIDTH = 72
_OUTPUT = 4000  # characters of a command's output in a pull request (its end)
_DIFF = 30_000
_EVIDENCE = 10


def _defused(text: str) -> str:
    text = _REFERENCE.sub(lambda m: m[1] + _ZWSP, text)
    return _AUTOLINK.sub(lambda m: m[1][0] + _ZWSP + m[1][1:], text)


def neutral_line(text: str, limit: int = _TITLE) -> str:
    """``text`` as one line of at most ``limit`` characters, control characters made
    visible, mentions, references and links defused: for titles and commit subjects."""
    line = _defused(printable(" ".join(text.split())))
    return line if len(line) <= limit else line[: limit - 1] + "…"


def markdown_text(text: str) -> str:
    """``text`` as markdown that shows it as it is: its punctuation escaped (no emphasis,
    HTML, link, image, table or heading forms), mentions, references and links defused."""
    text = _MARKDOWN.sub(r"\\\1", printable(text, lines=True))
    text = _LINE_NUMBER.sub(r"\1\\\2", _LINE_MARK.sub(r"\1\\\2", text))
    return _defused(text)


def fenced(text: str, info: str = "") -> str:
    """``text`` in a fenced code block that nothing inside can close: the fence is longer
    than any run of backticks in it."""
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{printable(text, lines=True).rstrip()}\n{fence}"


def code_span(text: str) -> str:
    """``text`` as one inline code span (one line), whatever backticks it holds."""
    text = printable(" ".join(text.split()))
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _paragraph(text: str) -> str:
    return textwrap.fill(_defused(printable(" ".join(text.split()))), _WIDTH)


def _trailers(pairs: list[tuple[str, object]]) -> str:
    return "\n".join(f"{key}: {neutral_line(str(value), 100)}" for key, value in pairs)


def commit_message(change: FixChange) -> str:
    """The fix's commit message: the issue in the subject, the root cause, the suggested fix
    and who approved it, then the trailers ``Mendline-Issue``, ``Mendline-Finding``,
    ``Mendline-Fix`` and one ``Approved-by`` per approver."""
    finding = change.finding
    approved = (
        "Approved by " + ", ".join(neutral_line(a, 100) for a in change.approvers) + "."
        if change.approvers
        else "Applied by the fix policy, without an approval."
    )
    body = [
        f"mendline: fix {neutral_line(change.issue_title, _SUBJECT)}",
        _paragraph(finding.root_cause),
        _paragraph(
            f"Finding {change.finding_id} ({finding.category}, confidence"
            f" {confidence_label(finding.confidence)}) suggests: {finding.suggested_fix}"
        ),
        approved,
        _trailers(
            [
                ("Mendline-Issue", change.issue_id),
                ("Mendline-Finding", change.finding_id),
                ("Mendline-Fix", change.fix_id),
                *(("Approved-by", name) for name in change.approvers),
            ]
        ),
    ]
    return "\n\n".join(body) + "\n"


def revert_message(change: RevertChange, commit: str) -> str:
    """The revert's commit message: git's "This reverts commit", why, and the trailers
    ``Mendline-Issue``, ``Mendline-Fix`` and ``Approved-by``."""
    body = [
        f"mendline: revert the fix for {neutral_line(change.issue_title, _SUBJECT)}",
        f"This reverts commit {commit}.",
        _paragraph(change.reason),
        _trailers(
            [
                ("Mendline-Issue", change.issue_id),
                ("Mendline-Fix", change.fix_id),
                *(("Approved-by", name) for name in change.approvers),
            ]
        ),
    ]
    return "\n\n".join(body) + "\n"


def pr_title(change: FixChange) -> str:
    """The pull request's title."""
    return f"mendline: fix {neutral_line(change.issue_title)}"


def revert_title(change: RevertChange) -> str:
    """The revert's pull request title."""
    return f"mendline: revert the fix for {neutral_line(change.issue_title)}"


def _issue_line(verb: str, issue_id: int, title: str, link: str | None) -> str:
    where = f"issue {issue_id}"
    if link and _URL.fullmatch(link):
        where = f"[{where}](<{quote(link, safe=':/?&=%#+,;@!$*')}>)"
    return f"mendline {verb} {where}: {markdown_text(' '.join(title.split()))}"


def _finding_sections(change: FixChange) -> list[str]:
    finding: Diagnosis = change.finding
    facts = (
        f"{finding.category}, severity {finding.severity}, confidence"
        f" {confidence_label(finding.confidence)}, finding {change.finding_id}"
    )
    out = [
        "### Root cause",
        markdown_text(finding.root_cause),
        f"_{markdown_text(facts)}_",
        "### Suggested fix",
        markdown_text(finding.suggested_fix),
    ]
    if finding.evidence:
        out.append("### Evidence")
    for item in finding.evidence[:_EVIDENCE]:
        out.append(f"{code_span(item.location)}: {markdown_text(item.note)}")
        if item.line:
            out.append(fenced(item.line))
    return out


def _verification_text(verification: Verification | None) -> list[str]:
    """The verification as markdown: each command, its exit, and the end of its output."""
    if verification is None:
        return []
    out = ["### Verification", "Passed." if verification.passed else "**Failed.**"]
    for command in verification.commands:
        ran = (
            f"timed out after {command.seconds:.1f} s"
            if command.timed_out
            else f"{command.ended}, {command.seconds:.1f} s"
        )
        out.append(f"- {code_span(' '.join(command.argv))}: {ran}")
        if command.output.strip():
            shown = command.output[-_OUTPUT:]
            out.append(f"<details><summary>output</summary>\n\n{fenced(shown)}\n\n</details>")
    return out


def _diff_section(diff: str) -> list[str]:
    cut = "" if len(diff) <= _DIFF else f"\n(the first {_DIFF} characters)"
    return ["### Change" + cut, fenced(diff[:_DIFF], "diff")]


def _footer(pairs: list[tuple[str, object]], approvers: tuple[str, ...]) -> list[str]:
    out = []
    if approvers:
        out.append("Approved by " + ", ".join(markdown_text(name) for name in approvers) + ".")
    out.append("<sub>" + " · ".join(f"{key}: {value}" for key, value in pairs) + "</sub>")
    return out


def pr_body(change: FixChange, verification: Verification | None, diff: str) -> str:
    """The pull request's description: the issue, the root cause, the suggested fix and
    evidence, the verification, the change itself and who approved it."""
    parts = [
        _issue_line("proposes a fix for", change.issue_id, change.issue_title, change.link),
        *_finding_sections(change),
        *_verification_text(verification),
        *_diff_section(diff),
        *_footer(
            [("Mendline-Fix", change.fix_id), ("Mendline-Issue", change.issue_id)],
            change.approvers,
        ),
    ]
    return "\n\n".join(parts) + "\n"


def revert_body(
    change: RevertChange, commit: str, verification: Verification | None, diff: str
) -> str:
    """The revert's pull request description: which commit, why, the verification, the
    change and who approved it."""
    parts = [
        _issue_line("reverts its fix for", change.issue_id, change.issue_title, change.link),
        f"This reverts commit {code_span(commit)}.",
        "### Why",
        markdown_text(change.reason),
        *_verification_text(verification),
        *_diff_section(diff),
        *_footer(
            [("Mendline-Fix", change.fix_id), ("Mendline-Issue", change.issue_id)],
            change.approvers,
        ),
    ]
    return "\n\n".join(parts) + "\n"
