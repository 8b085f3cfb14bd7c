"""The read side of ``mendline issues`` and ``events``: list, show and page what the pipeline
stored, every stored string escaped for the terminal."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from mendline.analyzers.policy import alert_severity
from mendline.cli._connections import on_database
from mendline.cli._hints import ISSUES_HINT, hint_on
from mendline.cli._options import AS_JSON, TAGS, page_size, positive
from mendline.cli.audit import when
from mendline.cli.output import (
    colour_for,
    counted,
    print_json,
    printable,
    shorten,
    styled,
    table,
)
from mendline.schemas.alert import severity_label
from mendline.schemas.errors import ConfigError, EventNotFound, IssueNotFound, UsageError
from mendline.schemas.event import chain_link, headline
from mendline.schemas.finding import confidence_label
from mendline.schemas.issue import LIST_STATUSES, describe_state, status_label
from mendline.schemas.issue_query import (
    ISSUE_SORTS,
    MAX_PAGE,
    EventCursor,
    IssueCursor,
    IssueQuery,
)
from mendline.schemas.settings import Settings

if TYPE_CHECKING:
    from mendline.sinks.postgres import IssueReads

__all__ = ["register_event_reads", "register_reads"]

_T = TypeVar("_T")
_EVENTS_HINT = "`mendline issues events ISSUE_ID` lists an issue's stored events and their ids"
_SPARKS = "▁▂▃▄▅▆▇█"
_COMMENTS_SHOWN = 5
_EDGES = ("first", "latest")


def register_reads(issue_commands: Any) -> None:
    """Add ``list``, ``show`` and ``events`` to the ``issues`` subcommands."""
    issues_list = issue_commands.add_parser(
        "list", parents=[AS_JSON, TAGS], help="issues, filtered and sorted, a page at a time"
    )
    issues_list.add_argument(
        "--status",
        choices=LIST_STATUSES,
        default="unresolved",
        help="which issues: a status, or an unresolved one's substatus; all: every one but the"
        " merged (default: unresolved)",
    )
    issues_list.add_argument("--service", help="only this service's")
    issues_list.add_argument("--environment", help="only those seen in this environment")
    issues_list.add_argument(
        "--release", help="only those first or last seen in this release, or with an event of it"
    )
    issues_list.add_argument(
        "--query", metavar="TEXT", help="only those whose title or culprit holds TEXT"
    )
    issues_list.add_argument("--assignee", help="only those assigned to user:NAME or team:LABEL")
    issues_list.add_argument(
        "--first-seen-since",
        type=when,
        metavar="ISO|DURATION",
        help="only those first seen since this time, or this long ago (24h)",
    )
    issues_list.add_argument(
        "--last-seen-since",
        type=when,
        metavar="ISO|DURATION",
        help="only those last seen since this time, or this long ago (24h)",
    )
    issues_list.add_argument(
        "--sort",
        choices=ISSUE_SORTS,
        default="last_seen",
        help="newest or most first (default: last_seen; events: ever; events_1h: last hour)",
    )
    issues_list.add_argument(
        "--limit", type=page_size, default=50, help=f"at most this many (up to {MAX_PAGE})"
    )
    issues_list.add_argument("--cursor", help="the next page, as the last page said")
    issues_list.set_defaults(run=_issues_list)

    issues_show = issue_commands.add_parser(
        "show",
        parents=[AS_JSON],
        help="one issue: its state, trend, finding, comments and one event whole",
    )
    issues_show.add_argument("id", type=positive)
    issues_show.add_argument(
        "--event",
        default="latest",
        metavar="first|latest|EVENT_ID",
        help="which of its events to show (default: latest)",
    )
    issues_show.set_defaults(run=_issues_show)

    issue_events = issue_commands.add_parser(
        "events", parents=[AS_JSON], help="an issue's stored events, newest first"
    )
    issue_events.add_argument("id", type=positive)
    issue_events.add_argument(
        "--limit", type=page_size, default=20, help=f"at most this many (up to {MAX_PAGE})"
    )
    issue_events.add_argument("--cursor", help="the next page, as the last page said")
    issue_events.set_defaults(run=_issue_events)


def register_event_reads(event_commands: Any) -> None:
    """Add ``show`` to the ``events`` subcommands."""
    show = event_commands.add_parser(
        "show", parents=[AS_JSON], help="one stored event whole (--json: its payload as stored)"
    )
    show.add_argument("event_id", metavar="EVENT_ID")
    show.set_defaults(run=_events_show)


def _reading(settings: Settings, work: Callable[[IssueReads], Awaitable[_T]]) -> _T:
    """``work(reads)`` on a connection to the migrated database, closed after."""
    from mendline.sinks.postgres import IssueReads

    return on_database(settings, lambda conn: work(IssueReads(conn)))


def _query(args: argparse.Namespace) -> IssueQuery:
    """The command line's filters as an IssueQuery; a bad one is a usage error."""
    try:
        return IssueQuery(
            status=args.status,
            service=args.service,
            environment=args.environment,
            release=args.release,
            tags=tuple(args.tag),
            text=args.query,
            assignee=args.assignee,
            first_seen_since=args.first_seen_since,
            last_seen_since=args.last_seen_since,
            sort=args.sort,
            limit=args.limit,
            cursor=IssueCursor.parse(args.cursor) if args.cursor else None,
        )
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    except ValidationError as exc:
        raise UsageError("; ".join(e["msg"] for e in exc.errors())) from None


def _issues_list(args: argparse.Namespace, settings: Settings) -> int:
    query = _query(args)
    page = _reading(settings, lambda reads: reads.issues(query))
    if args.json:
        for issue in page.issues:
            issue.pop("sort_value", None)
            print_json(issue)
    elif page.issues:
        print(
            table(
                ("ID", "STATUS", "LEVEL", "SERVICE", "EVENTS", "1H", "LAST SEEN", "TITLE"),
                (
                    (
                        r["id"],
                        status_label(r),
                        r["level"],
                        shorten(r["service"], 24),
                        r["times_seen"],
                        r["events_1h"],
                        f"{r['last_seen']:%Y-%m-%d %H:%M}",
                        shorten(r["title"], 80),
                    )
                    for r in page.issues
                ),
            )
        )
    else:
        print(f"no issues ({args.status})", file=sys.stderr)
    if page.next_cursor:
        print(f"next: --cursor {page.next_cursor}", file=sys.stderr)
    return 0


def _issue_events(args: argparse.Namespace, settings: Settings) -> int:
    try:
        cursor = EventCursor.parse(args.cursor) if args.cursor else None
    except ConfigError as exc:
        raise UsageError(str(exc)) from None

    async def read(reads: IssueReads) -> Any:
        await reads.header(args.id)  # IssueNotFound, not an empty list
        return await reads.events(args.id, args.limit, cursor)

    with hint_on(IssueNotFound, ISSUES_HINT):
        page = _reading(settings, read)
    if args.json:
        for event in page.events:
            print_json(event)
    elif page.events:
        print(
            table(
                ("EVENT", "RECEIVED", "ENVIRONMENT", "RELEASE", "LEVEL", "COUNT", "EXCEPTION"),
                (
                    (
                        e["event_id"],
                        f"{e['received_at']:%Y-%m-%d %H:%M:%S}",
                        shorten(e["environment"], 20),
                        shorten(e["release"] or "-", 20),
                        e["level"],
                        f"{e['count']}{' sample' if e['sampled'] else ''}",
                        shorten(headline(e), 80),
                    )
                    for e in page.events
                ),
            )
        )
    else:
        print(f"issue {args.id} has no stored events", file=sys.stderr)
    if page.next_cursor:
        print(f"next: --cursor {page.next_cursor}", file=sys.stderr)
    return 0


def _events_show(args: argparse.Namespace, settings: Settings) -> int:
    with hint_on(EventNotFound, _EVENTS_HINT):
        event = _reading(settings, lambda reads: reads.event(args.event_id))
    if args.json:
        print_json(event["payload"])
    else:
        print("\n".join(event_lines(event, colour_for(sys.stdout))))
    return 0


def _issues_show(args: argparse.Namespace, settings: Settings) -> int:
    which = args.event

    async def read(reads: IssueReads) -> dict[str, Any]:
        shown: dict[str, Any] = {"issue": await reads.header(args.id)}
        shown["trend"] = await reads.trend(args.id)
        shown["finding"] = await reads.finding(args.id)
        shown["comments"], shown["comments_total"] = await reads.comments(args.id, _COMMENTS_SHOWN)
        if which in _EDGES:
            try:
                shown["event"] = await reads.edge_event(args.id, which)
            except EventNotFound:
                shown["event"] = None  # pruned or merged away: the issue is still worth showing
        else:
            shown["event"] = await reads.event(which, args.id)
        return shown

    with hint_on(IssueNotFound, ISSUES_HINT), hint_on(EventNotFound, _EVENTS_HINT):
        shown = _reading(settings, read)
    if args.json:
        trend = shown.pop("trend")
        # The issue's own fields at the top, as before the rest was added.
        print_json(
            {
                **shown.pop("issue"),
                **shown,
                "trend": [{"hour": hour, "events": n} for hour, n in trend],
                "events_24h": sum(n for _, n in trend),
            }
        )
        return 0
    colour = colour_for(sys.stdout)
    lines = _header_lines(shown["issue"], shown["trend"], colour)
    lines += _finding_lines(shown["issue"], shown["finding"])
    lines += _comment_lines(shown["comments"], shown["comments_total"])
    if shown["event"] is None:
        lines.append(f"issue {args.id} has no stored events")
    else:
        lines += event_lines(shown["event"], colour, which if which in _EDGES else None)
    print("\n".join(lines))
    return 0


def _header_lines(
    issue: dict[str, Any], trend: list[tuple[datetime, int]], colour: bool
) -> list[str]:
    p = printable
    lines = [styled(f"issue #{issue['id']}  {p(issue['title'])}", "bold", colour)]
    state = p(describe_state(issue))
    lines.append(f"  status        {state}")
    lines.append(f"  assignee      {p(issue['assignee']) if issue['assignee'] else 'nobody'}")
    if issue["resolution_note"]:
        lines.append(f"  resolution    {p(issue['resolution_note'])}")
    if issue["culprit"]:
        lines.append(f"  culprit       {p(issue['culprit'])}")
    lines.append(f"  service       {p(issue['service'])}    level {p(issue['level'])}")
    total_24h = sum(n for _, n in trend)
    lines.append(
        f"  events        {issue['times_seen']} in all, {issue['events_1h']} in the last hour,"
        f" {issue['regressions']} regression(s)"
    )
    lines.append(
        f"  last 24h      {sparkline([n for _, n in trend])}  {counted(total_24h, 'event')}"
    )
    for name in ("first", "last"):
        release = issue[f"{name}_release"]
        seen = f"{issue[f'{name}_seen']:%Y-%m-%d %H:%M:%S %Z}"
        lines.append(
            f"  {name} seen{' ' * (9 - len(name))}{seen}"
            + (f" in release {p(release)}" if release else "")
        )
    if issue["environments"]:
        lines.append(f"  environments  {', '.join(p(e) for e in issue['environments'])}")
    return lines


def _finding_lines(issue: dict[str, Any], finding: dict[str, Any] | None) -> list[str]:
    if finding is None:
        return ["  root cause    not analysed yet"]
    p = printable
    # The severity its alerts carry, in their words; the finding's own judgement beside it.
    severity = severity_label(alert_severity(issue["level"], finding["severity"], "new_issue"))
    return [
        f"  root cause    {p(finding['root_cause'])}",
        f"                severity {severity} (the finding says {p(finding['severity'])}),"
        f" {p(finding['category'])}, {confidence_label(finding['confidence'])} confidence,"
        f" finding #{finding['finding_id']}"
        + (f", judged {p(finding['verdict'])}" if finding["verdict"] else ""),
        f"  fix           {p(finding['suggested_fix'])}",
    ]


def _comment_lines(comments: list[dict[str, Any]], total: int) -> list[str]:
    if not total:
        return []
    head = "comments"
    if total > len(comments):
        head += f" (the last {len(comments)} of {total})"
    lines = [head]
    p = printable
    for c in comments:
        lines.append(f"  {c['created_at']:%Y-%m-%d %H:%M}  {p(c['author'])}: {p(c['body'])}")
    return lines


def sparkline(counts: list[int]) -> str:
    """``counts`` as one bar each, scaled to the largest; an empty slot (0) is the lowest
    bar's baseline ``_``, so an hour with one event still shows."""
    top = max(counts, default=0)
    if top == 0:
        return "_" * len(counts)
    steps = len(_SPARKS) - 1
    return "".join("_" if n == 0 else _SPARKS[round(n / top * steps)] for n in counts)


def event_lines(event: dict[str, Any], colour: bool, which: str | None = None) -> list[str]:
    """A stored event as people read it: when and where, its message, its exception chain
    (root cause first, as stored) with the in-app frames marked ``>`` (and bold in colour),
    each frame's file:line, function and source line where the event has them, then its
    context and tags. Every stored string is shown ``printable``; scrubbed values as stored."""
    p = printable
    payload = event["payload"]
    about = f"{which} event" if which else "event"
    lines = [
        styled(f"{about} {event['event_id']}", "bold", colour),
        f"  received      {event['received_at']:%Y-%m-%d %H:%M:%S %Z}"
        f"    (the app's clock: {p(payload.get('timestamp', '-'))})",
        f"  where         {p(event['service'])}, {p(event['environment'])}"
        + (f", release {p(event['release'])}" if event["release"] else "")
        + (f", host {p(event['host'])}" if event["host"] else ""),
        f"  level         {p(event['level'])}"
        + (f"    logger {p(payload['logger'])}" if payload.get("logger") else ""),
        f"  message       {p(event['message'])}",
    ]
    if event["count"] > 1:
        lines.append(f"  occurrences   {event['count']} (repeats the app rolled up into this one)")
    if event["sampled"]:
        lines.append("  kept as       a sample of its issue's events that hour (the rest counted)")
    exceptions = payload.get("exceptions") or []
    if exceptions:
        lines.append("exception chain (root cause first)")
    for n, exc in enumerate(exceptions):
        if n:  # how the one before is held by this one (its source)
            lines.append(f"  {chain_link(exceptions[n - 1].get('source'))}")
        name = p(exc.get("type", "?"))
        if exc.get("module") and exc["module"] != "builtins":
            name = f"{p(exc['module'])}.{name}"
        group = " [exception group]" if exc.get("is_exception_group") else ""
        lines.append(styled(f"  {name}: {p(exc.get('value', ''))}{group}", "red", colour))
        lines += _frame_lines(exc, colour)
    lines += _mapping_lines("context", payload.get("context") or {})
    lines += _mapping_lines("tags", payload.get("tags") or {})
    return lines


def _frame_lines(exc: dict[str, Any], colour: bool) -> list[str]:
    p = printable
    lines = []
    frames = exc.get("frames") or []
    omitted = exc.get("frames_omitted") or 0
    for k, frame in enumerate(frames):
        if omitted and k == len(frames) // 2:
            lines.append(f"      ... {omitted} frames omitted ...")
        where = p(frame.get("filename") or frame.get("module") or "?")
        if frame.get("lineno") is not None:
            where += f":{frame['lineno']}"
        in_app = bool(frame.get("in_app"))
        text = f"    {'>' if in_app else ' '} {where} in {p(frame.get('function', '?'))}"
        lines.append(styled(text, "bold" if in_app else "dim", colour))
        if frame.get("context_line"):
            # Only the indentation goes: a trailing control character is shown, escaped.
            lines.append(f"          {p(frame['context_line'].strip(' '))}")
    return lines


def _mapping_lines(title: str, values: dict[str, Any]) -> list[str]:
    if not values:
        return []
    lines = [title]
    for key in sorted(values):
        value = values[key]
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        lines.append(f"  {printable(key)} = {printable(shown)}")
    return lines
