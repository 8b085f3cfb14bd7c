"""The chat prompt an LLM analyser sends: the scrubbed issue, and what an answer must hold."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from mendline.analyzers.grouping.scrubbing import Scrubber
from mendline.schemas.event import ExceptionTree
from mendline.schemas.finding import CATEGORIES, Diagnosis, IssueContext, PastIssue

__all__ = ["answer_schema", "build_prompt", "correction"]

_MAX_FRAMES = 30
_MAX_CONTEXT_CHARS = 1500
_MAX_VALUE_CHARS = 1000
_MAX_SAMPLES = 3

_SYSTEM = """\
You are a senior engineer on call. You find the root cause of a production error from its \
stack trace, the source lines of its frames and how often it happens, and you say what to \
change. Be specific: name the function, the line and the value involved, as in \
"orders.parse_quantity passes the raw query string to int(); 'n/a' reached it", not \
"a ValueError happened". Use only what you are given; say how sure you are with confidence \
from 0 to 1, lower when the frames do not show the cause.

Answer with one JSON object and nothing else, with these fields:
- root_cause: what most likely caused the error, in one to three sentences.
- confidence: a number from 0 to 1.
- category: one of {categories}.
- severity: one of low, medium, high, critical (how much harm it does to users, counting \
how often it happens).
- suggested_fix: what to change, in prose.
- fix_patch: a unified diff (--- a/path, +++ b/path, @@ hunks) against the files in the \
frames, only when the lines shown are enough to write it; otherwise null.
- fix_kind: one of style, formatting, import, guard, config, logic, dependency; or null.
- evidence: a list of {{"location": "module.function (file.py:42)", "line": "the line", \
"note": "what it shows"}} for the frames and lines you rely on.

Where people judged findings of similar past issues, or resolved them with a note, take \
that into account: a finding marked wrong was wrong."""


def answer_schema() -> dict[str, Any]:
    """The JSON Schema an answer must satisfy (sent as response_format's json_schema)."""
    return Diagnosis.model_json_schema(mode="validation")


def build_prompt(context: IssueContext, scrubber: Scrubber) -> list[dict[str, str]]:
    """The chat messages for ``context``: a system message and the scrubbed issue.

    Everything taken from events passes through ``scrubber`` again (events from other
    producers, or stored before a scrubbing rule existed, must not carry a secret out).
    Only what the ErrorEvent contract holds is sent: never local variables.
    """
    system = _SYSTEM.format(categories=", ".join(CATEGORIES))
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": _describe(context, scrubber)},
    ]


def correction(answer: str, error: str) -> list[dict[str, str]]:
    """The follow-up messages asking once more after an invalid answer."""
    return [
        {"role": "assistant", "content": answer},
        {
            "role": "user",
            "content": (
                f"That answer is not valid: {error}\n"
                "Answer again with only the JSON object, with every required field."
            ),
        },
    ]


def _describe(context: IssueContext, scrubber: Scrubber) -> str:
    text = scrubber.scrub_text
    issue = context.issue
    lines: list[str] = []
    what = {
        "new_issue": "a new issue",
        "regression": "a regression: it had been resolved and happened again",
        "on_demand": "an issue someone asked about",
    }[context.trigger]
    lines.append(f"Issue #{issue.id} in service {text(issue.service)!r}, {what}.")
    lines.append(f"Title: {text(issue.title)}")
    if issue.culprit:
        lines.append(f"Culprit: {text(issue.culprit)}")
    seen = f"Level {issue.level}; seen {issue.times_seen} times"
    if issue.first_seen and issue.last_seen:
        first, last = issue.first_seen, issue.last_seen
        seen += f", first {first:%Y-%m-%d %H:%M}, last {last:%Y-%m-%d %H:%M} UTC"
    lines.append(seen + ".")
    releases = [r for r in (issue.first_release, issue.last_release) if r]
    if releases:
        lines.append(f"Releases: first {text(releases[0])}, last {text(releases[-1])}.")
    if issue.environments:
        lines.append("Environments: " + ", ".join(text(e) for e in issue.environments) + ".")
    if issue.regressions:
        lines.append(f"It has regressed {issue.regressions} times.")
    samples = context.events[:_MAX_SAMPLES]
    if samples:
        lines.append("")
        lines.extend(_event(samples[0], scrubber))
        others = _other_values(samples[1:], samples[0], scrubber)
        if others:
            lines.append("")
            lines.append("Other recent events of this issue differ in:")
            lines.extend(others)
    if context.similar:
        lines.append("")
        lines.append("Similar past issues, and what people said about them:")
        for past in context.similar:
            lines.extend(_past(past, scrubber))
    return "\n".join(lines)


def _event(event: Mapping[str, Any], scrubber: Scrubber) -> list[str]:
    text = scrubber.scrub_text
    lines = []
    if event.get("logger"):
        lines.append(f"Logger: {text(str(event['logger']))}")
    lines.append(f"Log message: {_cut(text(str(event.get('message') or '')), _MAX_VALUE_CHARS)}")
    chain: Sequence[Mapping[str, Any]] = event.get("exceptions") or ()
    held = _held(chain)
    if held:
        lines.append(
            "Exceptions, each before the one it caused or the exception group that holds it "
            "(the last was raised; a group's sub-exceptions failed separately):"
        )
    elif chain:
        lines.append("Exception chain, root cause first (each caused the next):")
    for number, exc in enumerate(chain, 1):
        name = exc.get("type", "?")
        if exc.get("module") and exc["module"] != "builtins":
            name = f"{exc['module']}.{name}"
        value = _cut(text(str(exc.get("value") or "")), _MAX_VALUE_CHARS)
        lines.append(f"{number}. {text(name)}: {value}{held.get(number - 1, '')}")
        frames: Sequence[Mapping[str, Any]] = exc.get("frames") or ()
        shown = [f for f in frames if f.get("in_app")] or list(frames)
        hidden = len(frames) - len(shown)
        if len(shown) > _MAX_FRAMES:
            hidden += len(shown) - _MAX_FRAMES
            shown = shown[-_MAX_FRAMES:]
        if shown:
            kind = "In-app frames" if shown and shown[0].get("in_app") else "Frames"
            lines.append(f"   {kind}, oldest first (the last raised it):")
        for frame in shown:
            where = frame.get("module") or frame.get("filename") or "?"
            place = f"{frame.get('filename', '?')}:{frame.get('lineno') or '?'}"
            lines.append(
                f"   - {text(str(where))}.{text(str(frame.get('function')))} ({text(place)})"
            )
            if frame.get("context_line"):
                lines.append(f"         {text(str(frame['context_line']).strip())}")
        if hidden:
            lines.append(f"   ({hidden} library or older frames not shown)")
    context = event.get("context")
    if context:
        dumped = json.dumps(scrubber.scrub_value(context), default=str, ensure_ascii=False)
        lines.append(f"Logged context (scrubbed): {_cut(dumped, _MAX_CONTEXT_CHARS)}")
    tags = event.get("tags")
    if tags:
        dumped = json.dumps(scrubber.scrub_value(tags), ensure_ascii=False)
        lines.append(f"Tags: {_cut(dumped, _MAX_CONTEXT_CHARS)}")
    where = [f"{k} {text(str(event[k]))}" for k in ("environment", "release") if event.get(k)]
    if where:
        lines.append("Seen in: " + ", ".join(where) + ".")
    return lines


def _held(chain: Sequence[Mapping[str, Any]]) -> dict[int, str]:
    """For an event with an exception group: how each exception is held, by index."""
    if not any(exc.get("is_exception_group") for exc in chain):
        return {}
    tree = ExceptionTree.of(chain)
    held = {}
    for parent, link in enumerate(tree.links):
        if link is not None:
            held[link] = f" (caused {parent + 1})"
        for member in tree.members[parent]:
            held[member] = f" (sub-exception of the group {parent + 1})"
    if tree.groups[tree.raised]:
        held[tree.raised] = " (an exception group, raised)"
    return held


def _other_values(
    others: Sequence[Mapping[str, Any]], first: Mapping[str, Any], scrubber: Scrubber
) -> list[str]:
    lines = []
    shown = {_raised_value(first)}
    for event in others:
        value = _raised_value(event)
        if value not in shown:
            shown.add(value)
            lines.append(f"- {_cut(scrubber.scrub_text(value), _MAX_VALUE_CHARS)}")
    return lines


def _raised_value(event: Mapping[str, Any]) -> str:
    chain = event.get("exceptions") or ()
    if chain:
        return f"{chain[-1].get('type')}: {chain[-1].get('value') or ''}"
    return str(event.get("message") or "")


def _past(past: PastIssue, scrubber: Scrubber) -> list[str]:
    text = scrubber.scrub_text
    head = f"- #{past.id} {text(past.title)}"
    if past.culprit:
        head += f" (in {text(past.culprit)})"
    lines = [head]
    if past.root_cause:
        lines.append(f"  Finding ({text(past.category or 'unknown')}): {text(past.root_cause)}")
    if past.suggested_fix:
        lines.append(f"  Suggested fix: {text(past.suggested_fix)}")
    if past.verdict:
        judged = f"  A person marked this finding {past.verdict.upper()}"
        lines.append(judged + (f": {text(past.verdict_note)}" if past.verdict_note else "."))
    if past.resolution_note:
        lines.append(f"  Resolved with the note: {text(past.resolution_note)}")
    return lines


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
