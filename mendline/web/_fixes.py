"""The fixes: the review queue (with the policy's decision and its reasons), the fixes in
flight and the history with outcomes; each fix with its issue, finding, coloured diff,
verification, delivery and state history; approve, reject, apply and roll back; the patch
as a download; their JSON API.

Apply and Rollback run what ``mendline fix apply`` and ``fix rollback`` run, the heal stage's
``Healer``: Apply approves the fix first when the clicker's approval is the one it lacks,
claims it with this process's lease at once (``applying``, audited as the clicker's, answered
before any git work), and applies it in a background task that renews the lease; should the
web process stop meanwhile, the lease runs out and a heal worker claims the fix again.
Rollback checks the move, then reverts in a background task (nothing is recorded until the
revert is delivered; one stopped halfway is clicked again: a retried revert makes the same
commit). What a task of this process is doing, or how it ended, is shown on the fix's page.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import urlsplit

from aiohttp import web

from mendline.analyzers.patch import diff_lines
from mendline.analyzers.policy import FixMove, explain, fix_moves
from mendline.schemas.errors import (
    ConfigError,
    FindingNotFound,
    ForgeError,
    IllegalTransition,
    UsageError,
)
from mendline.schemas.finding import RISK_WORDS, confidence_label
from mendline.schemas.fix import FIX_STATES, FIX_STEPS, FixState, check_transition
from mendline.schemas.people import Actor, StoredAuditEntry
from mendline.schemas.printable import printable
from mendline.sinks.postgres import (
    AuditStore,
    FindingStore,
    FixStore,
    Handover,
    StoredFinding,
    StoredFix,
)
from mendline.web._audit import add_filters, history_json, page_or_fragment, whole_number
from mendline.web._context import (
    actor_of,
    api_json,
    deps,
    is_htmx,
    may,
    origin,
    params,
    render_fragment,
    require,
)

if TYPE_CHECKING:
    from mendline.stages.heal import Healer

__all__ = ["TABS", "FixJob", "FixJobs", "routes", "setup", "web_link"]

log = logging.getLogger("mendline.web")

routes = web.RouteTableDef()

#: The tabs of the fixes page: their name, label and the states of the fixes they show.
TABS: dict[str, tuple[str, tuple[FixState, ...]]] = {
    "queue": ("Review queue", ("proposed", "approved")),
    "active": ("In flight", ("applying", "applied", "deployed")),
    "history": ("History", ("verified", "regressed", "failed", "rejected", "rolled_back")),
}
_PAGE = 50
_MAX_PAGE = 200
_MOVES: tuple[FixMove, ...] = ("approve", "reject", "apply", "rollback")
_LIST_FRAGMENTS = frozenset({"list"})
_FIX_FRAGMENTS = frozenset({"state", "outcome"})
_HISTORY_ROWS = 200

JobKind = Literal["apply", "rollback"]


# -- what this process is doing to fixes -------------------------------------------------


@dataclass
class FixJob:
    """Applying or rolling back one fix, in a task of this web process: who asked, when,
    and once it ended, how (``outcome``, for people; ``failed`` when it did not do it)."""

    fix_id: int
    kind: JobKind
    actor: str
    started_at: datetime
    ended_at: datetime | None = None
    outcome: str | None = None
    failed: bool = False
    task: asyncio.Task[None] | None = field(default=None, repr=False, compare=False)

    @property
    def running(self) -> bool:
        """Whether it has not ended yet."""
        return self.ended_at is None

    def as_json(self) -> dict[str, Any]:
        """The job as JSON values (the API's ``job``)."""
        return {
            "fix_id": self.fix_id,
            "kind": self.kind,
            "actor": self.actor,
            "started_at": self.started_at.isoformat(),
            "running": self.running,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "outcome": self.outcome,
            "failed": self.failed,
        }


class FixJobs:
    """The fixes this web process applies or rolls back, each in a task: the newest job of
    each fix (running, or how it ended). One job a fix at a time; ``stop`` cancels the
    running ones (an apply's lease then runs out and a heal worker takes the fix over)."""

    def __init__(self) -> None:
        self._jobs: dict[int, FixJob] = {}

    def of(self, fix_id: int) -> FixJob | None:
        """The newest job of fix ``fix_id`` in this process, when it had one."""
        return self._jobs.get(fix_id)

    def check_free(self, fix_id: int) -> None:
        """IllegalTransition when this process is applying or rolling back the fix now."""
        job = self._jobs.get(fix_id)
        if job is not None and job.running:
            raise IllegalTransition(
                f"fix {fix_id} is being {_DOING[job.kind]} by {job.actor} (since"
                f" {job.started_at:%H:%M:%S} UTC)",
                current="applying" if job.kind == "apply" else "rolling back",
                wanted=job.kind,
                hint="wait for it to end: the fix's page shows how it went",
            )

    def start(
        self,
        fix_id: int,
        kind: JobKind,
        actor: Actor,
        work: Coroutine[Any, Any, str],
    ) -> FixJob:
        """Run ``work`` (which answers how it went, for people) as fix ``fix_id``'s job;
        IllegalTransition (``work`` closed unrun) while another job of the fix runs."""
        try:
            self.check_free(fix_id)
        except IllegalTransition:
            work.close()
            raise
        job = FixJob(fix_id, kind, actor.name, datetime.now(UTC))
        job.task = asyncio.create_task(self._run(job, work), name=f"fix {fix_id} {kind}")
        self._jobs[fix_id] = job
        return job

    async def _run(self, job: FixJob, work: Coroutine[Any, Any, str]) -> None:
        try:
            job.outcome = await work
        except asyncio.CancelledError:
            job.outcome, job.failed = "stopped with the web process", True
            raise
        except Exception as exc:  # shown on the fix's page; the log has the trace
            log.warning("mendline: %s of fix %d failed: %s", job.kind, job.fix_id, exc)
            job.outcome, job.failed = str(exc), True
        finally:
            job.ended_at = datetime.now(UTC)

    async def stop(self, app: web.Application | None = None) -> None:
        """Cancel the running jobs and wait for them (``on_cleanup`` of the app)."""
        tasks = [job.task for job in self._jobs.values() if job.task and not job.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


_DOING: dict[JobKind, str] = {"apply": "applied", "rollback": "rolled back"}
_JOBS = web.AppKey("fix_jobs", FixJobs)


def setup(app: web.Application) -> None:
    """Keep the fix jobs of this process for the app's life (cancelled at its cleanup) and
    give the templates the filters the fix pages use."""
    jobs = FixJobs()
    app[_JOBS] = jobs
    app.on_cleanup.append(jobs.stop)
    add_filters(app)


# -- reading -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FixList:
    """A page of fixes: those of ``states`` (None: all) of issue ``issue_id`` (None: any),
    newest first, their issues' titles, how many fixes each tab has, and the id to list
    before for the next page (None: the last page)."""

    tab: str | None
    states: tuple[FixState, ...] | None
    issue_id: int | None
    fixes: list[StoredFix]
    titles: dict[int, str]
    tab_counts: dict[str, int]
    next_before: int | None


async def _fix_list(request: web.Request, default_tab: str | None) -> FixList:
    require(request, "fix.read")
    query = request.query
    tab = query.get("tab") or (None if "state" in query else default_tab)
    states: tuple[FixState, ...] | None = None
    if tab is not None:
        if tab not in TABS:
            raise UsageError(f"no tab {tab!r}: one of {', '.join(TABS)}")
        states = TABS[tab][1]
    elif query.get("state"):
        states = _states(query["state"])
    issue_id = whole_number(query.get("issue"), "issue")
    before = whole_number(query.get("before"), "before")
    limit = min(whole_number(query.get("limit"), "limit") or _PAGE, _MAX_PAGE)
    fixes = _store(request)
    found = await fixes.list(states, issue_id, before, limit + 1)
    page, more = found[:limit], len(found) > limit
    counts = await fixes.counts(issue_id)
    return FixList(
        tab=tab,
        states=states,
        issue_id=issue_id,
        fixes=page,
        titles=await fixes.issue_titles({fix.issue_id for fix in page}),
        tab_counts={name: sum(counts.get(s, 0) for s in tab[1]) for name, tab in TABS.items()},
        next_before=page[-1].id if more and page else None,
    )


def _states(text: str) -> tuple[FixState, ...]:
    states = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in states if s not in FIX_STATES]
    if unknown:
        raise UsageError(f"no fix state {unknown[0]!r}: one of {', '.join(FIX_STATES)}")
    return tuple(cast("FixState", state) for state in states)


@dataclass(frozen=True)
class FixView:
    """One fix as its page shows it: its issue's title, its finding (None when gone), its
    audit rows oldest first, the moves the one asking may make now, and this process's
    newest job on it."""

    fix: StoredFix
    title: str | None
    finding: StoredFinding | None
    history: list[StoredAuditEntry]
    moves: tuple[FixMove, ...]
    job: FixJob | None


async def _fix_view(request: web.Request, fix_id: int) -> FixView:
    actor = require(request, "fix.read")
    # The job as it is before the fix is read: one that has ended shows its fix's change.
    job = request.app[_JOBS].of(fix_id)
    job = replace(job) if job is not None else None
    fixes = _store(request)
    fix = await fixes.get(fix_id)
    try:
        finding: StoredFinding | None = await FindingStore(fixes.pool).get(fix.finding_id)
    except FindingNotFound:
        finding = None
    rows = await AuditStore(fixes.pool).list(target=f"fix:{fix.id}", limit=_HISTORY_ROWS)
    return FixView(
        fix=fix,
        title=await fixes.issue_title(fix.issue_id),
        finding=finding,
        history=rows[::-1],
        moves=_allowed_moves(request, actor, fix),
        job=job,
    )


def _allowed_moves(request: web.Request, actor: Actor, fix: StoredFix) -> tuple[FixMove, ...]:
    """The moves the fix's state lets ``actor`` ask for and their role (and the dashboard's
    read-only mode) allows; applying a fix that lacks their approval needs both."""
    moves = fix_moves(
        fix.state, fix.decision.verdict, fix.approvals, fix.approvals_needed, actor.name
    )
    approving = fix.state == "proposed" and fix.decision.verdict == "approval"
    return tuple(
        move
        for move in moves
        if may(request, f"fix.{move}")
        and not (move == "apply" and approving and not may(request, "fix.approve"))
    )


def _store(request: web.Request) -> FixStore:
    return FixStore(deps(request).pool, deps(request).audit, origin=origin(request))


def _fix_id(request: web.Request) -> int:
    fix_id = whole_number(request.match_info["id"], "the fix's id")
    assert fix_id is not None  # the route matches digits only
    return fix_id


# -- what is shown -----------------------------------------------------------------------


def web_link(url: str | None) -> str | None:
    """``url`` when it may be a link on a page (http or https, with a host); None for
    anything else (``javascript:``, ``data:``, a path), which is shown as text."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return url.strip()


def _fix_context(view: FixView) -> dict[str, Any]:
    """What the fix's page shows of ``view`` (its diff lines escaped for people)."""
    fix = view.fix
    patch = fix.mapped_patch if fix.mapped_patch is not None else fix.patch
    finding = view.finding.finding if view.finding is not None else None
    return {
        "view": view,
        "fix": fix,
        "diff": [(kind, printable(line, lines=True)) for kind, line in diff_lines(patch)],
        "mapped": fix.mapped_patch is not None,
        "verdict_said": explain(fix.decision)[0],
        "steps": [(said, getattr(fix, name)) for name, said in FIX_STEPS if getattr(fix, name)],
        "finding": finding,
        "confidence": confidence_label(finding.confidence) if finding else None,
        "risks": [f"{RISK_WORDS[risk]} [{risk}]" for risk in finding.risks] if finding else [],
        "links": {
            "delivery": web_link(fix.delivery.pr_url if fix.delivery else None),
            "rollback": web_link(fix.rollback_delivery.pr_url if fix.rollback_delivery else None),
        },
        "live_topics": [f"fix-{fix.id}"],
    }


def fix_json(view: FixView) -> dict[str, Any]:
    """A fix as the API answers it: what ``mendline fix show --json`` prints (every field,
    its issue, its finding), its state history from the audit trail, the moves the one
    asking may make now, and this process's newest job on it."""
    shown = None
    if view.finding is not None:
        shown = view.finding.as_json()
        shown.pop("prompt", None)
    return {
        **view.fix.as_json(),
        "verdict_label": view.fix.verdict_label,
        "issue": {"id": view.fix.issue_id, "title": view.title},
        "finding": shown,
        "history": [history_json(row) for row in view.history],
        "moves": list(view.moves),
        "job": view.job.as_json() if view.job else None,
    }


# -- pages -------------------------------------------------------------------------------


@routes.get("/fixes")
async def fixes_page(request: web.Request) -> web.Response:
    """The fixes: a tab (queue, in flight, history) of them, newest first."""
    page = await _fix_list(request, default_tab="queue")
    context = {"page": page, "tabs": TABS, "live_topics": ["fixes"]}
    return page_or_fragment(request, "fixes.html", _LIST_FRAGMENTS, context)


@routes.get(r"/fixes/{id:\d+}")
async def fix_page(request: web.Request) -> web.Response:
    """One fix, whole, with the buttons the one asking may press."""
    view = await _fix_view(request, _fix_id(request))
    return page_or_fragment(request, "fix.html", _FIX_FRAGMENTS, _fix_context(view))


@routes.get(r"/fixes/{id:\d+}/patch")
async def fix_patch(request: web.Request) -> web.Response:
    """The fix's patch (on the repository's paths when it maps) as a file to download."""
    require(request, "fix.read")
    fix = await _store(request).get(_fix_id(request))
    patch = fix.mapped_patch if fix.mapped_patch is not None else fix.patch
    return web.Response(
        text=patch,
        content_type="text/x-diff",
        headers={
            "Content-Disposition": f'attachment; filename="mendline-fix-{fix.id}.patch"',
            "Cache-Control": "no-store",
        },
    )


@routes.post(r"/fixes/{id:\d+}/{move:approve|reject|apply|rollback}")
async def fix_move_form(request: web.Request) -> web.Response:
    """A button of the fix's page: the move, then the page again (303), or the fix's state
    fragment for htmx."""
    fix_id = _fix_id(request)
    await _move(request, fix_id, request.match_info["move"])  # type: ignore[arg-type]
    if is_htmx(request):
        view = await _fix_view(request, fix_id)
        return render_fragment(request, "fix.html", "state", _fix_context(view))
    raise web.HTTPSeeOther(f"/fixes/{fix_id}")


# -- the JSON API ------------------------------------------------------------------------


@routes.get("/api/v1/fixes")
async def fixes_api(request: web.Request) -> web.Response:
    """The fixes, newest first: ``state`` (one, or several comma-separated) or ``tab``,
    ``issue``, ``before`` (the next page), ``limit``."""
    page = await _fix_list(request, default_tab=None)
    return api_json(
        {
            "fixes": [
                {**fix.as_json(), "issue_title": page.titles.get(fix.issue_id)}
                for fix in page.fixes
            ],
            "counts": page.tab_counts,
            "next_before": page.next_before,
        }
    )


@routes.get(r"/api/v1/fixes/{id:\d+}")
async def fix_api(request: web.Request) -> web.Response:
    """One fix, whole."""
    return api_json(fix_json(await _fix_view(request, _fix_id(request))))


@routes.post(r"/api/v1/fixes/{id:\d+}/{move:approve|reject|apply|rollback}")
async def fix_move_api(request: web.Request) -> web.Response:
    """A move of the fix: the fix as it is now, what was done, and the job started (apply
    and rollback run on: answered 202 then)."""
    fix_id = _fix_id(request)
    moved = await _move(request, fix_id, request.match_info["move"])  # type: ignore[arg-type]
    view = await _fix_view(request, fix_id)
    body = {"fix": fix_json(view), "message": moved.message}
    return api_json(body, status=202 if moved.job is not None else 200)


# -- the moves ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Moved:
    """What a move did: the fix as it left it, in words, and the job it started."""

    fix: StoredFix
    message: str
    job: FixJob | None = None


async def _move(request: web.Request, fix_id: int, move: FixMove) -> Moved:
    """One move of a fix by the one asking: the role checked here and again by the store,
    every change audited with the request's origin."""
    require(request, f"fix.{move}")
    fields = await params(request)
    if move == "approve":
        return await _approve(request, fix_id, _text(fields, "note"))
    if move == "reject":
        reason = _text(fields, "reason", required=True)
        assert reason is not None
        fix = await _store(request).reject(actor_of(request), fix_id, reason)
        return Moved(fix, f"rejected fix {fix.id}")
    if move == "apply":
        return await _apply(request, fix_id)
    reason = _text(fields, "reason", required=True)
    assert reason is not None
    return await _rollback(request, fix_id, reason)


def _text(fields: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = fields.get(name)
    if value is not None and not isinstance(value, str):
        raise UsageError(f"{name} must be text")
    value = (value or "").strip()
    if not value and required:
        raise UsageError(f"say why: {name} is required", hint="it goes on the audit trail")
    if len(value) > 2000:
        raise UsageError(f"{name} is longer than 2000 characters")
    return value or None


async def _approve(request: web.Request, fix_id: int, note: str | None) -> Moved:
    fix = await _store(request).approve(actor_of(request), fix_id, note)
    return Moved(fix, _approved(fix))


def _approved(fix: StoredFix) -> str:
    have, needed = len(fix.approvals), fix.approvals_needed
    if fix.state == "approved":
        return f"approved fix {fix.id}: {have} of {needed} approvals"
    return (
        f"approved fix {fix.id}: {have} of {needed} approvals; it needs {needed - have} more,"
        " from someone else, before it is applied"
    )


def _healer(request: web.Request, fixes: FixStore) -> Healer:
    """A heal worker of this web process (the fix policy read now; ConfigError when it is
    broken), acting through ``fixes`` (the request's origin on its audit rows)."""
    from mendline.stages.heal import Healer, check

    settings = deps(request).settings
    owner = f"web {socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    return Healer(settings, check(settings), fixes, FindingStore(fixes.pool), owner=owner)


def _here(healer: Healer, fix: StoredFix, what: str) -> None:
    """ConfigError when this process's fix policy has no repository for the fix: it could
    not apply or revert it here."""
    try:
        healer.repository(fix)
    except ForgeError as exc:
        raise ConfigError(
            f"this dashboard cannot {what} fix {fix.id}: {exc}",
            hint="the heal stage applies approved fixes where the repository's clone is;"
            f" `mendline fix {what} {fix.id}` there does it by hand",
        ) from None


async def _apply(request: web.Request, fix_id: int) -> Moved:
    """Apply: approve first when the one asking gives the approval it lacks, claim it for
    them with this process's lease, and apply it in a job."""
    actor = actor_of(request)
    jobs = request.app[_JOBS]
    jobs.check_free(fix_id)
    fixes = _store(request)
    fix = await fixes.get(fix_id)
    healer = _healer(request, fixes)
    _here(healer, fix, "apply")
    approved_now = fix.state == "proposed" and fix.decision.verdict == "approval"
    if approved_now:
        require(request, "fix.approve")
        fix = await fixes.approve(actor, fix_id)
        if fix.state != "approved":
            return Moved(fix, _approved(fix))
    try:
        claimed = await healer.claim_for(actor, fix_id)
    except IllegalTransition:
        now = await fixes.get(fix_id)
        if approved_now and now.state == "applying":  # a heal worker took it meanwhile
            return Moved(now, f"approved fix {fix_id}; {now.owner} is applying it")
        raise
    job = jobs.start(fix_id, "apply", actor, _applying(healer, claimed, actor))
    return Moved(claimed, f"applying fix {fix_id}", job)


async def _applying(healer: Healer, fix: StoredFix, actor: Actor) -> str:
    return _applied(fix.id, await healer.apply_claimed(fix, actor))


def _applied(fix_id: int, handover: Handover | None) -> str:
    """How an apply ended, for people."""
    if handover is None:
        return (
            f"fix {fix_id} was not applied for now: git or the forge failed (the log says why);"
            " a heal worker tries it again once its lease runs out"
        )
    fix = handover.fix
    if not handover.done:
        return f"fix {fix_id} was not finished here: {handover.reason}"
    if fix.state == "applied" and fix.delivery is not None:
        where = fix.delivery.pr_url or fix.delivery.patch_path or fix.delivery.branch
        return f"applied fix {fix_id}: {fix.delivery.commit[:12]} on {where}"
    if fix.state == "proposed":
        return f"fix {fix_id} was given back: the fix policy now wants a person"
    return f"fix {fix_id} {fix.state}: {fix.error or ''}".rstrip(": ")


async def _rollback(request: web.Request, fix_id: int, reason: str) -> Moved:
    """Rollback: the move checked now, the revert made, verified and delivered in a job."""
    actor = actor_of(request)
    jobs = request.app[_JOBS]
    jobs.check_free(fix_id)
    fixes = _store(request)
    fix = await fixes.get(fix_id)
    check_transition(fix.state, "rolled_back")
    healer = _healer(request, fixes)
    _here(healer, fix, "rollback")
    job = jobs.start(fix_id, "rollback", actor, _rolling_back(healer, actor, fix_id, reason))
    return Moved(fix, f"rolling back fix {fix_id}", job)


async def _rolling_back(healer: Healer, actor: Actor, fix_id: int, reason: str) -> str:
    fix = await healer.rollback(actor, fix_id, reason)
    delivery = fix.rollback_delivery
    assert delivery is not None  # a fix rolled back was
    where = delivery.pr_url or delivery.patch_path or delivery.branch
    return f"rolled back fix {fix_id}: {delivery.commit[:12]} on {where}"
