"""What the issue pages ask for and show, as pure functions: the list's query read from a
request's parameters (the search line, the filters, the sort and the cursor), an action's
parameters, and an event, a patch and scrubbed values as the templates show them."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from mendline.analyzers.grouping import FILTERED
from mendline.analyzers.patch import diff_lines
from mendline.schemas.ending import ends_at
from mendline.schemas.errors import ConfigError, UsageError
from mendline.schemas.event import chain_link, headline
from mendline.schemas.issue import IgnoreCondition
from mendline.schemas.issue_query import IssueCursor, IssueQuery, IssueSearch, IssueSort
from mendline.schemas.printable import printable
from mendline.schemas.tomlfile import parse_duration

__all__ = [
    "IGNORE_FOR",
    "PAGE_SIZE",
    "SORTS",
    "TABS",
    "asked_flag",
    "asked_number",
    "asked_text",
    "diff_view",
    "event_view",
    "ignore_condition",
    "list_query",
    "scrub_parts",
    "validation_message",
]

#: The rows of a page of the list.
PAGE_SIZE = 50

#: The tabs of the list: (status asked for, label, what it holds). Escalating is Sentry's
#: "spiking": ignored issues whose ignore ended as their events picked up again.
TABS = (
    ("unresolved", "Unresolved", "every unresolved issue, regressed and escalating included"),
    ("regressed", "Regressed", "resolved issues seen again"),
    ("escalating", "Escalating", "spiking: ignored issues whose ignore ended as they grew"),
    ("ignored", "Ignored", "issues ignored, forever or until a condition"),
    ("resolved", "Resolved", "issues resolved, now, in the next release or by a fix"),
)
#: The sorts people choose from: (sort, label, what it orders by).
SORTS: tuple[tuple[IssueSort, str, str], ...] = (
    ("last_seen", "Last seen", "newest event first"),
    ("first_seen", "First seen", "newest issue first"),
    ("events", "Events", "most events ever first"),
    ("events_1h", "Events (1h)", "most events in the last hour first"),
    ("trend", "Trend", "events in the last hour minus the hour before, rising first"),
)
#: Ignore durations the forms offer (the API takes any duration or time).
IGNORE_FOR = (
    ("30m", "30 minutes"),
    ("1h", "1 hour"),
    ("6h", "6 hours"),
    ("24h", "24 hours"),
    ("7d", "7 days"),
    ("30d", "30 days"),
)


def list_query(asked: Mapping[str, str], tags: list[str], limit: int = PAGE_SIZE) -> IssueQuery:
    """The IssueQuery a list page or ``GET /api/v1/issues`` asks for: ``tab`` (or
    ``status``), the search line ``q`` (see IssueSearch), the filters ``service``,
    ``environment``, ``release``, ``text``, ``assignee``, ``first_seen_since`` and
    ``last_seen_since`` (an ISO time, or a duration back from now: ``24h``), ``tags``
    (``key:value`` each), ``sort``, ``limit`` and ``cursor``. UsageError for what is not
    one, or a filter asked for twice (in the search and on its own)."""
    try:
        search = IssueSearch.parse(asked.get("q", ""))
        fields: dict[str, Any] = search.filters()
        for name in ("service", "environment", "release", "text", "assignee"):
            value = asked.get(name)
            if value:
                _set_once(fields, name, value)
        for name in ("first_seen_since", "last_seen_since"):
            if asked.get(name):
                fields[name] = _since(name, asked[name])
        pairs = [_tag_pair(text) for text in tags]
        if pairs:
            fields["tags"] = tuple(dict.fromkeys((*fields.get("tags", ()), *pairs)))
        sort = asked.get("sort") or "last_seen"
        cursor = asked.get("cursor")
        return IssueQuery.model_validate(
            {
                "status": asked.get("tab") or asked.get("status") or "unresolved",
                "sort": sort,
                "limit": int(asked["limit"]) if asked.get("limit") else limit,
                "cursor": IssueCursor.parse(cursor) if cursor else None,
                **fields,
            }
        )
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    except ValidationError as exc:
        raise UsageError("; ".join(validation_message(e) for e in exc.errors())) from None
    except ValueError:
        raise UsageError("limit is a whole number of rows") from None


def validation_message(error: Mapping[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()))
    return f"{where}: {error['msg']}" if where else str(error["msg"])


def _set_once(fields: dict[str, Any], name: str, value: str) -> None:
    if fields.setdefault(name, value) != value:
        raise UsageError(f"{name} is asked for twice (in the search and on its own): give one")


def _tag_pair(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name:
        raise UsageError(f"a tag filter is key:value, not {text[:60]!r}")
    return name, value


def _since(name: str, text: str) -> datetime:
    """An ISO time with its zone, or a duration back from now."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            return datetime.now(UTC) - timedelta(seconds=parse_duration(text))
        except (ValueError, OverflowError):
            raise UsageError(f"{name} is an ISO time with its zone or a duration (24h)") from None
    if moment.tzinfo is None:
        raise UsageError(f"{name} needs its time zone (2026-12-24T09:00Z)")
    return moment


def asked_text(asked: Mapping[str, Any], name: str) -> str | None:
    value = asked.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise UsageError(f"{name} is text")
    return value.strip() or None


def asked_flag(asked: Mapping[str, Any], name: str) -> bool:
    value = asked.get(name)
    return value is True or (isinstance(value, str) and value.lower() in ("1", "true", "on", "yes"))


def asked_number(asked: Mapping[str, Any], name: str) -> int | None:
    value = asked.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise UsageError(f"{name} is a whole number")
    try:
        number = int(str(value).strip().lstrip("#"))
    except ValueError:
        raise UsageError(f"{name} is a whole number, not {str(value)[:40]!r}") from None
    if not 0 < number < 2**63:
        raise UsageError(f"{name} is a whole number above 0")
    return number


def ignore_condition(asked: Mapping[str, Any]) -> IgnoreCondition:
    """The end of an ignore a form or an API call asks for: ``for`` (a duration), ``until``
    (an ISO time with its zone), ``until_events`` (N more events), ``until_rate`` (N events
    within an hour); none of them: forever. UsageError for a value that is not one."""
    until = ends_at(
        asked_text(asked, "for"),
        asked_text(asked, "until"),
        datetime.now(UTC),
        zone_required=True,
        names=("for", "until"),
    )
    try:
        return IgnoreCondition(
            until=until,
            events=asked_number(asked, "until_events"),
            per_hour=asked_number(asked, "until_rate"),
        )
    except ValidationError as exc:
        raise UsageError("; ".join(validation_message(e) for e in exc.errors())) from None


def scrub_parts(value: object) -> list[tuple[str, bool]]:
    """A value from an event as text (JSON for what is not text) cut at the scrubber's
    marker: (text, scrubbed) pieces, the markers themselves scrubbed, for a template to show
    each marker as such (``class="scrubbed"``). Never marks anything safe: the template
    escapes every piece."""
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False)
    pieces = re.split(f"({re.escape(FILTERED)})", value)
    return [(piece, piece == FILTERED) for piece in pieces if piece]


def diff_view(patch: str) -> list[tuple[str, str]]:
    """The lines of a patch with their kind (file, hunk, add, del, context), each a CSS
    class of ``.diff`` (``analyzers.patch.diff_lines``); control and bidi characters written
    as escapes, as the fixes page shows a patch, so that no line reads other than it is."""
    return [(kind, printable(line, lines=True)) for kind, line in diff_lines(patch)]


def event_view(event: dict[str, Any]) -> dict[str, Any]:
    """A stored event as the page shows it, as ``mendline issues show`` prints it: its
    message, its exception chain (root cause first, as stored) with how each led to the
    next, each exception's frames (in-app ones marked) with their source line, its context
    and tags sorted by key; every value from the event cut into scrubbed and plain pieces."""
    payload = event["payload"]
    chain = []
    exceptions = payload.get("exceptions") or []
    for n, exc in enumerate(exceptions):
        name = str(exc.get("type", "?"))
        if exc.get("module") and exc["module"] != "builtins":
            name = f"{exc['module']}.{name}"
        chain.append(
            {
                "link": chain_link(exceptions[n - 1].get("source")) if n else None,
                "name": name,
                "value": scrub_parts(exc.get("value", "")),
                "group": bool(exc.get("is_exception_group")),
                "frames": _frames(exc),
            }
        )
    return {
        "event": event,
        "headline": headline(
            {
                "exception_type": exceptions[-1].get("type") if exceptions else None,
                "exception_value": exceptions[-1].get("value") if exceptions else None,
                "message": event.get("message"),
            }
        ),
        "message": scrub_parts(event.get("message") or ""),
        "logger": payload.get("logger"),
        "app_timestamp": payload.get("timestamp"),
        "chain": chain,
        "context": _mapping(payload.get("context") or {}),
        "tags": _mapping(payload.get("tags") or {}),
    }


def _frames(exc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """An exception's frames as shown, with the omitted ones' count where they were."""
    frames = exc.get("frames") or []
    omitted = exc.get("frames_omitted") or 0
    shown: list[dict[str, Any]] = []
    for k, frame in enumerate(frames):
        if omitted and k == len(frames) // 2:
            shown.append({"omitted": omitted})
        where = str(frame.get("filename") or frame.get("module") or "?")
        if frame.get("lineno") is not None:
            where += f":{frame['lineno']}"
        line = frame.get("context_line")
        shown.append(
            {
                "omitted": None,
                "where": where,
                "function": str(frame.get("function", "?")),
                "in_app": bool(frame.get("in_app")),
                "line": scrub_parts(line.strip(" ")) if line else None,
            }
        )
    return shown


def _mapping(
    values: Mapping[str, Any],
) -> list[tuple[list[tuple[str, bool]], list[tuple[str, bool]]]]:
    return [(scrub_parts(str(key)), scrub_parts(values[key])) for key in sorted(values)]
