"""The issues list and the issue page, their actions (resolve, ignore, reopen, merge,
unmerge, assign, comment, re-analyse, a finding's verdict, bulk ones) and their JSON API.

One function reads what a page shows and one function does each action; the page, its htmx
fragments and the API call the same ones (a page form is answered 303 back to its page, an
htmx request with the fragment it swaps, an API call with JSON)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard
from urllib.parse import urlencode

from aiohttp import web

from mendline.analyzers.policy import alert_severity
from mendline.schemas.alert import severity_label
from mendline.schemas.errors import ConfigError, EventNotFound, MendlineError, UsageError
from mendline.schemas.finding import RISK_WORDS, confidence_label
from mendline.schemas.issue import describe_state, status_label
from mendline.schemas.issue_query import (
    MAX_PAGE,
    TAB_COUNT_LIMIT,
    EventCursor,
    IssueQuery,
)
from mendline.schemas.people import Actor
from mendline.sinks.postgres import (
    FindingStore,
    FixStore,
    IssueActions,
    IssueReads,
    StoredFinding,
)
from mendline.web._context import (
    DEPS,
    api_json,
    deps,
    is_htmx,
    is_whole,
    origin,
    params,
    render,
    render_fragment,
    require,
)
from mendline.web._issue_views import (
    IGNORE_FOR,
    SORTS,
    TABS,
    asked_flag,
    asked_number,
    asked_text,
    diff_view,
    event_view,
    ignore_condition,
    list_query,
)

__all__ = ["ACTIONS", "BULK_ACTIONS", "ISSUE_BLOCKS", "routes", "setup"]

log = logging.getLogger("mendline.web")

routes = web.RouteTableDef()

_HOURS_7D = 24 * 7
_SHOWN_EVENTS = 10
_SHOWN_FINDINGS = 10
_SHOWN_COMMENTS = 50
_SHOWN_DELIVERIES = 20
# Re-analyses running in this process, by issue (one at a time per issue).
_REANALYSES: web.AppKey[dict[int, asyncio.Task[None]]] = web.AppKey("issue_reanalyses")
# Re-analyses asked for whose audit row is being written (counted against the limit).
_RESERVED: web.AppKey[set[int]] = web.AppKey("issue_reanalyses_reserved")
# How many of them call the analyser at once (the settings' llm_concurrency).
_ANALYSING: web.AppKey[asyncio.Semaphore] = web.AppKey("issue_reanalysis_slots")
#: Re-analyses one web process holds at once (running or waiting for a slot); more are
#: answered 429, so that a script cannot start thousands of analyses.
MAX_REANALYSES = 20


def setup(app: web.Application) -> None:
    """Keep the re-analyses this process runs, and stop them when the app stops."""
    app[_REANALYSES] = {}
    app[_RESERVED] = set()
    app[_ANALYSING] = asyncio.Semaphore(app[DEPS].settings.llm_concurrency)
    app.on_cleanup.append(_stop_reanalyses)


# -- the list --------------------------------------------------------------------------


async def issue_list(reads: IssueReads, query: IssueQuery, *, counts: bool) -> dict[str, Any]:
    """A page of the list as the page and the API show it: its ``items`` (each with its
    24-hour ``sparkline``, read for the whole page in one query, and its ``status_label``),
    the cursors of the next and previous pages, and, when ``counts`` and the filters allow
    counting cheaply (no tag and no release: those read the stored events), each tab's
    count (``TAB_COUNT_LIMIT + 1`` standing for more)."""
    page = await reads.issues(query)
    lines = await reads.sparklines([row["id"] for row in page.issues])
    items = []
    for row in page.issues:
        row.pop("sort_value", None)
        items.append(row | {"sparkline": lines[row["id"]], "status_label": status_label(row)})
    tab_counts = None
    if counts and not query.tags and query.release is None:
        tab_counts = await reads.tab_counts(query)
    return {
        "items": items,
        "next_cursor": page.next_cursor,
        "prev_cursor": page.prev_cursor,
        "tab_counts": tab_counts,
    }


@routes.get("/issues")
async def issues_page(request: web.Request) -> web.Response:
    """The list: tabs with counts, the search line, the sorts, a page of issues with their
    sparklines, the bulk actions and the pages before and after. ``fragment=rows`` or
    ``fragment=tabs`` answers that part alone (what a live update swaps in)."""
    require(request, "issue.read")
    query = list_query(request.query, request.query.getall("tag", []))
    fragment = request.query.get("fragment")
    shown = await issue_list(
        IssueReads(deps(request).pool), query, counts=fragment in (None, "tabs")
    )
    context = shown | _list_context(request, query, shown)
    if fragment in ("rows", "tabs"):
        return render_fragment(request, "issues.html", fragment, context)
    return render(request, "issues.html", context)


@routes.get("/api/v1/issues")
async def issues_api(request: web.Request) -> web.Response:
    """The list as JSON: ``{"items", "next_cursor", "prev_cursor", "tab_counts"}``."""
    require(request, "issue.read")
    query = list_query(request.query, request.query.getall("tag", []))
    return api_json(await issue_list(IssueReads(deps(request).pool), query, counts=True))


def _list_context(request: web.Request, query: IssueQuery, shown: dict[str, Any]) -> dict[str, Any]:
    """What the list's template needs besides the data: the links of its tabs, sorts and
    pages (each keeping the rest of the query), the URLs of its live fragments."""
    kept: dict[str, str | list[str]] = {k: v for k, v in request.query.items() if k in _KEPT_PARAMS}
    if request.query.getall("tag", []):
        kept["tag"] = request.query.getall("tag")
    kept["tab"] = query.status
    here = kept | ({"cursor": request.query["cursor"]} if request.query.get("cursor") else {})
    counts = shown["tab_counts"]
    tab = query.status
    return {
        "tab": tab,
        "q": request.query.get("q", ""),
        "sort": query.sort,
        "tabs": [
            {
                "name": name,
                "label": label,
                "title": title,
                "url": _url("/issues", kept | {"tab": name}),
                "current": name == tab,
                "count": None if counts is None else counts[name],
            }
            for name, label, title in TABS
        ],
        "sorts": SORTS,
        "count_limit": TAB_COUNT_LIMIT,
        "ignore_for": IGNORE_FOR,
        "self_url": _url("/issues", here),
        "rows_url": _url("/issues", here | {"fragment": "rows"}),
        "tabs_url": _url("/issues", here | {"fragment": "tabs"}),
        "next_url": _page_url(kept, shown["next_cursor"]),
        "prev_url": _page_url(kept, shown["prev_cursor"]),
        "live_topics": ["issues"],
        "done": _done_note(request.query),
    }


# What a list's links keep of its query (every filter ``list_query`` reads but the tab, the
# cursor and the tags, which are kept apart: a tag may be given more than once).
_KEPT_PARAMS = (
    "q",
    "sort",
    "limit",
    "service",
    "environment",
    "release",
    "text",
    "assignee",
    "first_seen_since",
    "last_seen_since",
)


def _url(path: str, query: Mapping[str, str | list[str]]) -> str:
    kept = {k: v for k, v in query.items() if v not in ("", [])}
    return f"{path}?{urlencode(kept, doseq=True)}" if kept else path


def _page_url(kept: Mapping[str, str | list[str]], cursor: str | None) -> str | None:
    return None if cursor is None else _url("/issues", {**kept, "cursor": cursor})


def _done_note(query: Mapping[str, str]) -> str | None:
    """What a bulk action did, from the counts its redirect carries (numbers only)."""
    action = query.get("done")
    if action not in BULK_ACTIONS:
        return None
    count = query.get("count", "")
    if not is_whole(count):
        return None
    return f"{BULK_ACTIONS[action][1]} {int(count)} issue{'s' if int(count) != 1 else ''}."


# -- the issue page --------------------------------------------------------------------


async def issue_summary(
    reads: IssueReads, findings: FindingStore, issue_id: int, *, history: int = 1
) -> tuple[dict[str, Any], list[StoredFinding]]:
    """One issue as the API's ``GET /api/v1/issues/{id}`` answers and the page's header
    shows it: its header (every column, ``status_label`` and ``state`` in words), its
    newest finding whole (without the prompt sent), its events per hour over the last 7
    days (``trend_7d``) and 24 hours (``trend``), and ``events_24h``; with its newest
    ``history`` findings as stored, newest first."""
    issue = _shown(await reads.header(issue_id))
    week = await reads.trend(issue_id, _HOURS_7D)
    stored = await findings.list(issue_id, history)
    finding = stored[0].as_json() if stored else None
    if finding is not None:
        finding.pop("prompt", None)
    day = week[-24:]
    summary = {
        "issue": issue,
        "finding": finding,
        "trend": [{"hour": hour, "events": n} for hour, n in day],
        "trend_7d": [{"hour": hour, "events": n} for hour, n in week],
        "events_24h": sum(n for _, n in day),
    }
    return summary, stored


def _shown(issue: dict[str, Any]) -> dict[str, Any]:
    """An issue's header with its status and state in words (``status_label``, ``state``)."""
    return issue | {"status_label": status_label(issue), "state": describe_state(issue)}


async def _chosen_event(reads: IssueReads, issue_id: int, which: str) -> dict[str, Any] | None:
    """The event ``which`` (first, latest, or an event id) of the issue; None when it has
    no stored event (pruned, or merged away); EventNotFound for an id not of it."""
    if which in ("first", "latest"):
        try:
            return await reads.edge_event(issue_id, "first" if which == "first" else "latest")
        except EventNotFound:
            return None
    return await reads.event(which, issue_id)


async def issue_page_data(request: web.Request, issue_id: int, which: str) -> dict[str, Any]:
    """Everything the issue page shows: ``issue_summary``, the finding history, the newest
    fix, the comments, the alert deliveries, the event ``which`` with its neighbours and
    the newest events, and whether a re-analysis runs here now."""
    pool = deps(request).pool
    reads = IssueReads(pool)
    findings = FindingStore(pool)
    shown, history = await issue_summary(reads, findings, issue_id, history=_SHOWN_FINDINGS)
    fixes = await FixStore(pool, deps(request).audit, origin(request)).list(
        issue_id=issue_id, limit=1
    )
    comments, comments_total = await reads.comments(issue_id, _SHOWN_COMMENTS)
    deliveries, deliveries_total = await reads.deliveries(issue_id, _SHOWN_DELIVERIES)
    event = await _chosen_event(reads, issue_id, which)
    older = newer = None
    if event is not None:
        older, newer = await reads.neighbours(event)
    recent = await reads.events(issue_id, _SHOWN_EVENTS)
    return shown | {
        "history": history,
        "newest": history[0] if history else None,
        "fix": fixes[0] if fixes else None,
        "comments": comments,
        "comments_total": comments_total,
        "deliveries": deliveries,
        "deliveries_total": deliveries_total,
        "event": event,
        "older": older,
        "newer": newer,
        "recent_events": recent.events,
        "reanalysing": issue_id in request.app[_REANALYSES],
    }


@routes.get(r"/issues/{id:\d+}")
async def issue_page(request: web.Request) -> web.Response:
    """The issue page; ``event=first|latest|<event id>`` picks the event shown (latest),
    ``fragment=header|finding|events|activity`` answers that part alone."""
    require(request, "issue.read")
    issue_id = _id(request)
    which = request.query.get("event") or "latest"
    context = _issue_context(
        request, issue_id, which, await issue_page_data(request, issue_id, which)
    )
    fragment = request.query.get("fragment")
    if fragment in ISSUE_BLOCKS:
        return render_fragment(request, "issue.html", fragment, context)
    return render(request, "issue.html", context)


#: The parts of the issue page that refresh on their own (live, and after an htmx action).
ISSUE_BLOCKS = ("header", "finding", "events", "activity")


def _issue_context(
    request: web.Request, issue_id: int, which: str, data: dict[str, Any]
) -> dict[str, Any]:
    """The page's data with what its template shows of it: the charts' values, the finding
    as shown (its severity for alerts, confidence, risks in words, the patch's lines by
    kind), the event's parts, and the URLs of its fragments and event links."""
    issue = data["issue"]
    newest = data["newest"]
    finding_view = None
    if newest is not None:
        f = newest.finding
        finding_view = {
            "stored": newest,
            "f": f,
            "confidence": confidence_label(f.confidence),
            "alert_severity": severity_label(
                alert_severity(issue["level"], f.severity, "new_issue")
            ),
            "risks": [RISK_WORDS[r] for r in f.risks],
            "patch": diff_view(f.fix_patch) if f.fix_patch else None,
        }
    base = f"/issues/{issue_id}"
    event_query = {} if which == "latest" else {"event": which}
    week = data["trend_7d"]
    return data | {
        "issue_id": issue_id,
        "which": which,
        "finding_view": finding_view,
        "event_view": event_view(data["event"]) if data["event"] is not None else None,
        "chart_24h": (
            [r["events"] for r in data["trend"]],
            [f"{r['hour']:%H:00}" for r in data["trend"]],
        ),
        "chart_7d": (
            {"events per hour": [r["events"] for r in week]},
            [f"{r['hour']:%a %H:00}" for r in week],
        ),
        "fragment_urls": {
            block: _url(base, event_query | {"fragment": block}) for block in ISSUE_BLOCKS
        },
        "event_url": lambda ref: _url(base, {"event": ref}),
        "ignore_for": IGNORE_FOR,
        "live_topics": [f"issue-{issue_id}"],
        "confidence_label": confidence_label,
    }


@routes.get(r"/api/v1/issues/{id:\d+}")
async def issue_api(request: web.Request) -> web.Response:
    """One issue: ``{"issue", "finding", "trend", "trend_7d", "events_24h"}``."""
    require(request, "issue.read")
    pool = deps(request).pool
    summary, _ = await issue_summary(IssueReads(pool), FindingStore(pool), _id(request))
    return api_json(summary)


@routes.get(r"/api/v1/issues/{id:\d+}/events")
async def issue_events_api(request: web.Request) -> web.Response:
    """A page of the issue's stored events, newest first: ``{"items", "next_cursor"}``
    (``limit``, ``cursor`` as the last page said)."""
    require(request, "issue.read")
    issue_id = _id(request)
    reads = IssueReads(deps(request).pool)
    try:
        limit = int(request.query.get("limit") or 20)
        cursor_text = request.query.get("cursor")
        cursor = EventCursor.parse(cursor_text) if cursor_text else None
    except (ValueError, ConfigError) as exc:
        raise UsageError(
            str(exc) if isinstance(exc, ConfigError) else "limit is a number"
        ) from None
    if not 1 <= limit <= MAX_PAGE:
        raise UsageError(f"limit is 1 to {MAX_PAGE}")
    await reads.header(issue_id)  # IssueNotFound, not an empty list
    page = await reads.events(issue_id, limit, cursor)
    return api_json({"items": page.events, "next_cursor": page.next_cursor})


@routes.get(r"/api/v1/events/{event_id}")
async def event_api(request: web.Request) -> web.Response:
    """One stored event, whole (its payload decoded), by its id."""
    require(request, "issue.read")
    return api_json(await IssueReads(deps(request).pool).event(request.match_info["event_id"]))


# -- actions -----------------------------------------------------------------------------


def _id(request: web.Request, name: str = "id") -> int:
    try:
        value = int(request.match_info[name])
    except ValueError:
        raise UsageError(f"{name} is a number") from None
    if not 0 < value < 2**63:
        raise UsageError(f"{name} is out of range")
    return value


@dataclass(frozen=True)
class _Action:
    """An action on one issue: the permission it needs, what it does (with the asked
    parameters, giving what its JSON answer adds), and the part of the page it changes."""

    permission: str
    run: Callable[
        [IssueActions, Actor, int, Mapping[str, Any], web.Request], Awaitable[dict[str, Any]]
    ]
    block: str = "header"


async def _resolve(
    actions: IssueActions, actor: Actor, issue_id: int, asked: Mapping[str, Any], _: web.Request
) -> dict[str, Any]:
    in_next = asked_flag(asked, "in_next_release") or asked.get("resolution") == "next_release"
    note = asked_text(asked, "note")
    changed = await actions.resolve(actor, issue_id, note, in_next_release=in_next)
    return {"changed": changed}


async def _ignore(
    actions: IssueActions, actor: Actor, issue_id: int, asked: Mapping[str, Any], _: web.Request
) -> dict[str, Any]:
    condition = ignore_condition(asked)
    changed = await actions.ignore(actor, issue_id, condition)
    return {"changed": changed, "until": condition.describe()}


async def _reopen(
    actions: IssueActions, actor: Actor, issue_id: int, asked: Mapping[str, Any], _: web.Request
) -> dict[str, Any]:
    return {"changed": await actions.reopen(actor, issue_id)}


async def _merge(
    actions: IssueActions, actor: Actor, issue_id: int, asked: Mapping[str, Any], _: web.Request
) -> dict[str, Any]:
    into = asked_number(asked, "into")
    if into is None:
        raise UsageError("merge needs the issue to merge into (into)")
    await actions.merge(actor, into, issue_id)
    return {"changed": True, "merged_into": into}


async def _unmerge(
    actions: IssueActions, actor: Actor, issue_id: int, asked: Mapping[str, Any], _: web.Request
) -> dict[str, Any]:
    done = await actions.unmerge(actor, issue_id)
    return {
        "changed": True,
        "taken_from": done.holder,
        "fingerprints": done.fingerprints,
        "events": done.events,
    }


async def _assign(
    actions: IssueActions, actor: Actor, issue_id: int, asked: Mapping[str, Any], _: web.Request
) -> dict[str, Any]:
    assignee = asked_text(asked, "assignee")
    return {"changed": await actions.assign(actor, issue_id, assignee), "assignee": assignee}


async def _unassign(
    actions: IssueActions, actor: Actor, issue_id: int, asked: Mapping[str, Any], _: web.Request
) -> dict[str, Any]:
    return {"changed": await actions.assign(actor, issue_id, None), "assignee": None}


async def _comment(
    actions: IssueActions, actor: Actor, issue_id: int, asked: Mapping[str, Any], _: web.Request
) -> dict[str, Any]:
    body = asked.get("body")
    if not isinstance(body, str):
        raise UsageError("a comment needs its body (text)")
    return {"changed": True, "comment_id": await actions.comment(actor, issue_id, body)}


async def _reanalyse(
    actions: IssueActions,
    actor: Actor,
    issue_id: int,
    asked: Mapping[str, Any],
    request: web.Request,
) -> dict[str, Any]:
    running = request.app[_REANALYSES]
    if issue_id in running:
        return {"changed": False, "queued": False, "running": True}
    reserved = request.app[_RESERVED]
    if len(running) + len(reserved) >= MAX_REANALYSES:
        raise _busy(request, f"{len(running)} re-analyses are under way here; try again soon")
    reserved.add(issue_id)  # held across the audit's await: parallel requests count it
    try:
        previous = await actions.reanalyse(actor, issue_id)
    finally:
        reserved.discard(issue_id)
    if issue_id not in running:  # another request may have started it meanwhile
        running[issue_id] = asyncio.create_task(_analyse_now(request.app, issue_id))
        running[issue_id].add_done_callback(lambda _: running.pop(issue_id, None))
    return {"changed": True, "queued": True, "running": True, "previous_finding": previous}


#: Every action on one issue, by the name in its URL.
ACTIONS: dict[str, _Action] = {
    "resolve": _Action("issue.resolve", _resolve),
    "ignore": _Action("issue.ignore", _ignore),
    "reopen": _Action("issue.reopen", _reopen),
    "merge": _Action("issue.merge", _merge),
    "unmerge": _Action("issue.unmerge", _unmerge),
    "assign": _Action("issue.assign", _assign),
    "unassign": _Action("issue.assign", _unassign),
    "comment": _Action("issue.comment", _comment, "activity"),
    "reanalyse": _Action("issue.reanalyse", _reanalyse, "finding"),
}
_ACTION_NAMES = "|".join(ACTIONS)


async def issue_action(request: web.Request, name: str, issue_id: int) -> dict[str, Any]:
    """Do the action ``name`` on issue ``issue_id`` as the one asking (refused with 403
    unless their role may, or when the dashboard is read-only), with the request's
    parameters; its JSON answer: the action, what it changed, and the issue after it."""
    action = ACTIONS[name]
    actor = require(request, action.permission)
    asked = await params(request)
    actions = IssueActions(deps(request).pool, deps(request).audit, origin=origin(request))
    done = await action.run(actions, actor, issue_id, asked, request)
    issue = await IssueReads(deps(request).pool).header(issue_id)
    return {"action": name, **done, "issue": _shown(issue)}


@routes.post(r"/issues/{id:\d+}/{action:" + _ACTION_NAMES + "}")
@routes.post(r"/api/v1/issues/{id:\d+}/{action:" + _ACTION_NAMES + "}")
async def issue_action_handler(request: web.Request) -> web.StreamResponse:
    """An action on an issue from its page (answered 303 back to it, or to the issue merged
    into), from htmx (the part of the page it changed) or from the API (JSON)."""
    name = request.match_info["action"]
    issue_id = _id(request)
    done = await issue_action(request, name, issue_id)
    if request.path.startswith("/api/"):
        return api_json(done, status=202 if name == "reanalyse" else 200)
    target = done.get("merged_into") or issue_id
    if is_htmx(request) and target == issue_id:
        return await _fragment_after(request, issue_id, ACTIONS[name].block)
    raise web.HTTPSeeOther(f"/issues/{target}")


async def _fragment_after(request: web.Request, issue_id: int, block: str) -> web.Response:
    which = request.query.get("event") or "latest"
    data = await issue_page_data(request, issue_id, which)
    return render_fragment(
        request, "issue.html", block, _issue_context(request, issue_id, which, data)
    )


async def finding_verdict(request: web.Request, finding_id: int) -> dict[str, Any]:
    """Mark a finding right or wrong (``verdict``), with a ``note``; its JSON answer."""
    actor = require(request, "finding.mark")
    asked = await params(request)
    verdict = asked.get("verdict")
    if verdict not in ("right", "wrong"):
        raise UsageError("verdict is right or wrong")
    actions = IssueActions(deps(request).pool, deps(request).audit, origin=origin(request))
    changed = await actions.mark_finding(actor, finding_id, verdict, asked_text(asked, "note"))
    stored = await FindingStore(deps(request).pool).get(finding_id)
    shown = stored.as_json()
    shown.pop("prompt", None)
    return {"action": "verdict", "changed": changed, "finding": shown}


@routes.post(r"/findings/{id:\d+}/verdict")
@routes.post(r"/api/v1/findings/{id:\d+}/verdict")
async def finding_verdict_handler(request: web.Request) -> web.StreamResponse:
    """A verdict on a finding, from the issue page (303 back to it; htmx: its finding part)
    or from the API (JSON)."""
    done = await finding_verdict(request, _id(request))
    if request.path.startswith("/api/"):
        return api_json(done)
    issue_id = done["finding"]["issue_id"]
    if is_htmx(request):
        return await _fragment_after(request, issue_id, "finding")
    raise web.HTTPSeeOther(f"/issues/{issue_id}")


# -- bulk actions --------------------------------------------------------------------------

#: What the list's bulk form does: (permission, what the page says it did).
BULK_ACTIONS = {
    "resolve": ("issue.resolve", "Resolved"),
    "ignore": ("issue.ignore", "Ignored"),
    "reopen": ("issue.reopen", "Reopened"),
    "merge": ("issue.merge", "Merged"),
}
_MOST_BULK = 500


async def _bulk_asked(request: web.Request) -> tuple[list[int], dict[str, Any]]:
    """The issue ids (``ids``: a JSON list, or the form's checked boxes) and the other
    parameters of a bulk action."""
    asked = await params(request)
    if request.content_type == "application/json":
        raw = asked.get("ids")
        if not isinstance(raw, list):
            raise UsageError("ids is a list of issue ids")
    else:
        raw = (await request.post()).getall("ids", [])
    ids = [asked_number({"id": value}, "id") for value in raw]
    unique = list(dict.fromkeys(i for i in ids if i is not None))
    if not unique:
        raise UsageError("choose at least one issue")
    if len(unique) > _MOST_BULK:
        raise UsageError(f"at most {_MOST_BULK} issues at once")
    return unique, asked


async def bulk_action(request: web.Request) -> dict[str, Any]:
    """Do ``action`` (resolve, ignore, reopen, merge) on each issue of ``ids``, each in
    its own audited transaction: ``{"action", "results": [{"id", "changed"} or {"id",
    "error": {"code", "message"}}], "done", "failed"}``. Merge merges every other issue
    into ``into`` when given, else into the one of them with the most events."""
    asked_action = (await params(request)).get("action")
    if asked_action not in BULK_ACTIONS:
        raise UsageError(f"action is one of {', '.join(BULK_ACTIONS)}")
    actor = require(request, BULK_ACTIONS[asked_action][0])
    ids, asked = await _bulk_asked(request)
    actions = IssueActions(deps(request).pool, deps(request).audit, origin=origin(request))
    results: list[dict[str, Any]] = []
    if asked_action == "merge":
        into = asked_number(asked, "into") or await _most_seen(IssueReads(deps(request).pool), ids)
        ids = [i for i in ids if i != into]
        one = ACTIONS["merge"].run
        asked = {**asked, "into": into}
    else:
        one = ACTIONS[asked_action].run
    for issue_id in ids:
        try:
            done = await one(actions, actor, issue_id, asked, request)
            results.append({"id": issue_id, "changed": bool(done.get("changed"))})
        except MendlineError as exc:
            results.append({"id": issue_id, "error": {"code": _code(exc), "message": str(exc)}})
    failed = sum(1 for r in results if "error" in r)
    return {
        "action": asked_action,
        "results": results,
        "done": len(results) - failed,
        "failed": failed,
        **({"merged_into": asked["into"]} if asked_action == "merge" else {}),
    }


def _code(exc: MendlineError) -> str:
    """The error's code, as the API answers it (the app's own mapping)."""
    from mendline.web._app import _code as error_code  # _app imports this module

    return error_code(exc)


async def _most_seen(reads: IssueReads, ids: list[int]) -> int:
    """Of ``ids``, the issue with the most events (the lowest id among equals)."""
    seen = []
    for issue_id in ids:
        issue = await reads.header(issue_id)
        seen.append((-issue["times_seen"], issue_id))
    return min(seen)[1]


@routes.post("/issues/bulk")
@routes.post("/api/v1/issues/bulk")
async def bulk_handler(request: web.Request) -> web.StreamResponse:
    """A bulk action from the list's form (303 back to the list it came from when every
    issue was done, else a page that says which were not) or from the API (JSON)."""
    done = await bulk_action(request)
    if request.path.startswith("/api/"):
        return api_json(done)
    if done["failed"]:
        return render(request, "issues_bulk.html", done, status=409)
    back = (await params(request)).get("back")
    if not _own_list_url(back):
        back = "/issues"
    joiner = "&" if "?" in back else "?"
    raise web.HTTPSeeOther(
        f"{back}{joiner}{urlencode({'done': done['action'], 'count': done['done']})}"
    )


def _own_list_url(url: object) -> TypeGuard[str]:
    """Whether ``url`` is a URL of the list on this site (where a bulk form may send the
    browser back to), not another site's or a header's worth of control characters."""
    return (
        isinstance(url, str)
        and url.startswith("/issues")
        and "//" not in url
        and "\\" not in url
        and url.isprintable()
    )


# -- re-analysis -----------------------------------------------------------------------


async def _analyse_now(app: web.Application, issue_id: int) -> None:
    """Analyse the issue afresh, as ``mendline analyze --issue ID --fresh`` does, with the
    analyser the settings ask for; the finding is stored (and announced) when done."""
    from mendline.stages.analyze import AnalyzeWorker, make_analysis

    web_deps = app[DEPS]
    store = FindingStore(web_deps.pool)
    analysis = make_analysis(web_deps.settings, store)
    try:
        async with app[_ANALYSING]:
            worker = AnalyzeWorker(web_deps.settings, store, analysis)
            await worker.analyse_issue(issue_id, fresh=True)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the request was answered: this one is for the log
        log.warning("mendline: the re-analysis of issue %d failed: %s", issue_id, exc)
    finally:
        await analysis.aclose()


def _busy(request: web.Request, message: str) -> web.HTTPTooManyRequests:
    """A 429 with ``Retry-After``, as JSON under the API and for htmx, as text elsewhere."""
    if request.path.startswith("/api/") or is_htmx(request):
        body = json.dumps({"error": {"code": "too_many_requests", "message": message}})
        return web.HTTPTooManyRequests(
            text=body, content_type="application/json", headers={"Retry-After": "30"}
        )
    return web.HTTPTooManyRequests(text=message + "\n", headers={"Retry-After": "30"})


async def _stop_reanalyses(app: web.Application) -> None:
    tasks = list(app[_REANALYSES].values())
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
