"""A review's outputs for machines: GitHub workflow annotations, reviewdog's rdjsonl and
plain JSON; and what every output shares (fingerprints with their occurrence, safe links,
suggestions that are a replacement of the commented lines).

GitHub shows at most 10 error, 10 warning and 10 notice annotations per step and 50 per job
(actions/toolkit, docs/problem-matchers.md, "Limitations"); workflow commands are escaped as
the runner reads them back (actions/runner ActionCommand.cs, actions/toolkit command.ts).
"""

from __future__ import annotations

import ast
import json
import textwrap
from collections import Counter
from collections.abc import Sequence
from dataclasses import fields, is_dataclass
from datetime import datetime
from typing import Any

from mendline.schemas.printable import printable
from mendline.schemas.review import (
    REVIEW_SEVERITIES,
    Review,
    ReviewComment,
    ReviewSeverity,
)
from mendline.sinks.forges._render import _URL, markdown_text

__all__ = [
    "ANNOTATIONS_PER_STEP",
    "JSON_VERSION",
    "escape_data",
    "escape_property",
    "occurrence_fingerprints",
    "replacement",
    "review_annotations",
    "review_json",
    "review_rdjsonl",
    "severity_counts",
    "web_link",
]

#: Annotations of each kind (error, warning, notice) GitHub shows for one step.
ANNOTATIONS_PER_STEP = 10
#: The version of review_json's shape; it changes only when a key changes meaning or goes.
JSON_VERSION = 1
_COMMAND: dict[ReviewSeverity, str] = {"error": "error", "warning": "warning", "info": "notice"}
_RDF: dict[ReviewSeverity, str] = {"error": "ERROR", "warning": "WARNING", "info": "INFO"}
_TITLE = 255  # the Checks API's limit for an annotation's title
_MESSAGE = 16_000  # characters of an annotation's message (the Checks API takes 64 KB)


def severity_counts(comments: Sequence[ReviewComment]) -> dict[ReviewSeverity, int]:
    """How many comments of each severity, the most severe first."""
    counted = Counter(c.severity for c in comments)
    return {severity: counted[severity] for severity in reversed(REVIEW_SEVERITIES)}


def occurrence_fingerprints(comments: Sequence[ReviewComment]) -> list[str]:
    """Each comment's fingerprint and ``:n``, its place among the comments with the same
    fingerprint (rule, file, line text) in line order: ``:1`` for the first. Stable when
    lines above move; distinct when the same text is commented on twice."""
    order = sorted(
        range(len(comments)),
        key=lambda i: (comments[i].path, comments[i].line, comments[i].column or 0, i),
    )
    seen: Counter[str] = Counter()
    out = [""] * len(comments)
    for index in order:
        fingerprint = comments[index].fingerprint()
        seen[fingerprint] += 1
        out[index] = f"{fingerprint}:{seen[fingerprint]}"
    return out


def web_link(link: str | None) -> str | None:
    """``link`` when it is a plain http(s) URL (no space, bracket, quote or control
    character), else None: what is never written as a link."""
    return link if link and _URL.fullmatch(link) and link.isprintable() else None


def replacement(comment: ReviewComment) -> str | None:
    """The suggestion as the new text of the commented lines (``line`` to ``last_line``),
    when it is one: the file is Python, the suggestion's first line keeps the indentation of
    the line it replaces (``code``), it reads as Python (a block's first line counts) and it
    changes something. Advice in words, or code we cannot place, is None."""
    suggestion, code = comment.suggestion, comment.code
    if not suggestion or not code.strip() or not comment.path.endswith((".py", ".pyi")):
        return None
    text = suggestion.replace("\r\n", "\n").rstrip("\n")
    first = text.split("\n", 1)[0]
    indent = code[: len(code) - len(code.lstrip())]
    if not first.strip() or first[: len(first) - len(first.lstrip())] != indent:
        return None
    if text.strip() == code.strip() or not _reads_as_python(textwrap.dedent(text)):
        return None
    return text


def _reads_as_python(text: str) -> bool:
    for candidate in (text, text + "\n    pass"):  # "if x is None:" opens a block
        try:
            ast.parse(candidate)
        except (SyntaxError, ValueError):
            continue
        return True
    return False


def escape_data(text: str) -> str:
    """A workflow command's message escaped as actions/toolkit's ``escapeData``."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property escaped as actions/toolkit's ``escapeProperty``."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _lines(text: str) -> str:
    """``text`` with its lines kept and every other control character made visible."""
    return printable(text.replace("\r\n", "\n"), lines=True)


def review_annotations(review: Review) -> str:
    """GitHub workflow commands, one a line: ``::error file=PATH,line=N,endLine=M,col=C,
    title=TITLE::MESSAGE`` (``::warning``, ``::notice`` for info), the most severe first.

    At most 10 of each kind, as GitHub shows no more per step; when some are left out, the
    last line is a ``::notice`` saying how many and where to read them. Properties and
    messages are escaped as the runner reads them back; a message's lines stay lines."""
    kinds = {s: [c for c in review.comments if c.severity == s] for s in REVIEW_SEVERITIES}
    over = any(len(comments) > ANNOTATIONS_PER_STEP for comments in kinds.values())
    names = {rule.id: rule.name for rule in review.rules}
    shown: list[ReviewComment] = []
    for severity in reversed(REVIEW_SEVERITIES):
        room = ANNOTATIONS_PER_STEP - (1 if over and severity == "info" else 0)
        shown.extend(kinds[severity][:room])
    lines = [_annotation(c, names.get(c.rule_id)) for c in shown]
    hidden = len(review.comments) - len(shown)
    if hidden:
        more = (
            f"{hidden} more review comment{'s are' if hidden != 1 else ' is'} not shown as"
            f" annotations (GitHub shows at most {ANNOTATIONS_PER_STEP} of each kind per"
            " step): see the job summary or the pull request's review comment."
        )
        lines.append(f"::notice title=mendline review::{escape_data(more)}")
    return "".join(line + "\n" for line in lines)


def _annotation(comment: ReviewComment, name: str | None) -> str:
    properties = [f"file={escape_property(printable(comment.path))}", f"line={comment.line}"]
    if comment.last_line != comment.line:
        properties.append(f"endLine={comment.last_line}")
    if comment.column:
        properties.append(f"col={comment.column}")
    title = f"mendline {comment.rule_id}" + (f" {name}" if name else "")
    properties.append(f"title={escape_property(_clip(printable(title), _TITLE))}")
    message = comment.message
    if comment.suggestion:
        message += "\n\nSuggestion:\n" + comment.suggestion
    if link := web_link(comment.link):
        issue = "Issue" if comment.issue_id is None else f"Issue {comment.issue_id}"
        message += f"\n\n{issue}: {link}"
    return f"::{_COMMAND[comment.severity]} {','.join(properties)}::" + escape_data(
        _clip(_lines(message), _MESSAGE)
    )


def review_rdjsonl(review: Review) -> str:
    """reviewdog's rdjsonl: one ``Diagnostic`` (proto/rdf/reviewdog.proto) as JSON a line,
    with the message, the location (path, start line and column, end line), the severity,
    the source ``mendline``, the rule as the code (with the issue's URL when there is one)
    and the suggestion when it is a replacement of the commented lines.

    reviewdog posts the message as markdown on pull requests, so it is markdown escaped
    (no mention, link, image or HTML forms); advice that is not a replacement follows it."""
    lines = []
    for comment in review.comments:
        message = markdown_text(comment.message)
        change = replacement(comment)
        if comment.suggestion and change is None:
            message += "\n\nSuggestion: " + markdown_text(comment.suggestion)
        start: dict[str, int] = {"line": comment.line}
        if comment.column:
            start["column"] = comment.column
        code: dict[str, str] = {"value": comment.rule_id}
        if link := web_link(comment.link):
            code["url"] = link
        diagnostic: dict[str, Any] = {
            "message": message,
            "location": {
                "path": comment.path,
                "range": {"start": start, "end": {"line": comment.last_line}},
            },
            "severity": _RDF[comment.severity],
            "source": {"name": "mendline"},
            "code": code,
        }
        if change is not None:
            lines_only = {"start": {"line": comment.line}, "end": {"line": comment.last_line}}
            diagnostic["suggestions"] = [{"range": lines_only, "text": change}]
        lines.append(json.dumps(diagnostic, ensure_ascii=True) + "\n")
    return "".join(lines)


def review_json(review: Review) -> dict[str, Any]:
    """The whole review as plain JSON, keys in this order:

    - ``version``: 1 (JSON_VERSION); ``base``, ``head``: what was compared (or null);
      ``made_at``: ISO 8601 or null;
    - ``counts``: ``{"error": n, "warning": n, "info": n, "total": n}``;
    - ``files``: ``{path, old_path, status, added (sorted line numbers), hunks ([first,
      last] pairs), removed (lines), added_text (lines)}``; ``skipped``: ``{path, reason}``;
    - ``rules``: ``{id, name, severity, summary, help, source}``;
    - ``comments``: ``{rule_id, source, severity, path, line, message, code, end_line,
      column, suggestion, confidence, issue_id, link, fingerprint}``, where ``fingerprint``
      is the comment's fingerprint and ``:n`` its occurrence (as in SARIF's
      ``partialFingerprints``);
    - ``functions``: ``{function: {path, qualname, first, last, changed}, issues: [{issue_id,
      title, status, culprit, events_7d, times_seen, last_seen, resolved_at, root_cause,
      verdict, patch, frames: [{filename, module, function, lineno, context_line}], link}],
      likely_fixes: [issue ids]}``;
    - ``notes``: strings; ``llm``: ``{calls, prompt_tokens, completion_tokens, comments,
      dropped}`` or null.

    Strings are as the review holds them (JSON is safe for any text; a reader that shows
    them escapes them for where it shows them)."""
    counts: dict[str, int] = {k: n for k, n in severity_counts(review.comments).items()}
    counts["total"] = len(review.comments)
    fingerprints = occurrence_fingerprints(review.comments)
    return {
        "version": JSON_VERSION,
        "base": review.base,
        "head": review.head,
        "made_at": _plain(review.made_at),
        "counts": counts,
        "files": _plain(review.files),
        "skipped": _plain(review.skipped),
        "rules": _plain(review.rules),
        "comments": [
            {**_plain(comment), "fingerprint": fingerprint}
            for comment, fingerprint in zip(review.comments, fingerprints, strict=True)
        ],
        "functions": _plain(review.functions),
        "notes": list(review.notes),
        "llm": _plain(review.llm),
    }


def _plain(value: Any) -> Any:
    """A dataclass as a dict of its fields in their order; sets sorted, tuples as lists,
    datetimes in ISO 8601."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, frozenset | set):
        return sorted(value)
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value
