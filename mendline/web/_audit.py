"""The audit page: the audit trail newest first, filterable by actor, action (a prefix),
target and time, a page at a time (keyset), each row's before and after; the hash chain's
verification at the top; their JSON API.

Walking the whole chain costs about 27 microseconds a row here (5,000 rows: 0.14 s), too much
for every view of a big trail. So the app keeps the last walk: a whole walk runs in the
background when there is none or it is older than ``FULL_WALK_EVERY`` (the first view waits
for it briefly), and each view walks only the rows appended since, from the last intact row.
A row altered before that point is found by the next whole walk, or at once with "Verify the
whole chain now" (``?verify=full``) and ``GET /api/v1/audit/verify``, which always walk it
all."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from mendline.analyzers.audit import ChainCheck
from mendline.schemas.duration import MOST_DAYS, time_or_ago
from mendline.schemas.errors import UsageError
from mendline.schemas.people import StoredAuditEntry
from mendline.schemas.printable import printable
from mendline.sinks.postgres import AuditStore
from mendline.web._context import (
    TEMPLATES,
    api_json,
    deps,
    is_whole,
    render,
    render_fragment,
    require,
)

__all__ = [
    "FULL_WALK_EVERY",
    "AuditFilters",
    "ChainStatus",
    "ChainWatch",
    "add_filters",
    "history_json",
    "page_or_fragment",
    "routes",
    "setup",
    "target_link",
    "whole_number",
]

log = logging.getLogger("mendline.web")

routes = web.RouteTableDef()

#: Seconds after which a view starts a new walk of the whole chain (in the background).
FULL_WALK_EVERY = 600.0
# How long the first view waits for a whole walk before it shows that one is running.
_FIRST_WAIT = 0.5
_PAGE = 50
_MAX_PAGE = 500
_FRAGMENTS = frozenset({"rows", "chain"})
_TARGET = re.compile(r"(issue|fix):([1-9][0-9]{0,17})")


def setup(app: web.Application) -> None:
    """Keep the chain's last walk for the app's life (a whole walk running is cancelled at
    its cleanup); give the templates the filters the audit rows use."""
    watch = ChainWatch()
    app[_CHAIN] = watch
    app.on_cleanup.append(watch.stop)
    add_filters(app)


def add_filters(app: web.Application) -> None:
    """The templates' filters for text from events and audit rows: ``printable`` (control
    characters as visible escapes; tabs kept) and ``pretty_json`` (indented JSON, escaped
    by autoescaping like any text)."""
    app[TEMPLATES].filters.update(
        printable=lambda text: printable(text, lines=True),
        pretty_json=lambda value: json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True),
    )


# -- the chain ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainStatus:
    """What is known of the chain: the newest walk's result (None before the first ends),
    when the last whole walk ended, and whether one is running now."""

    check: ChainCheck | None
    walked_at: datetime | None
    walking: bool

    def as_json(self) -> dict[str, Any]:
        """The status as JSON values."""
        return {
            **(self.check.as_json() if self.check else {"intact": None}),
            "whole_walk_at": self.walked_at.isoformat() if self.walked_at else None,
            "walking": self.walking,
        }


class ChainWatch:
    """The chain's verification kept for the app's life: the newest walk's result, brought
    up to date on each view by walking only the rows appended since, and a whole walk in the
    background when there was none or the last is older than ``FULL_WALK_EVERY``."""

    def __init__(self) -> None:
        self.check: ChainCheck | None = None
        self.walked_at: datetime | None = None
        self._walk: asyncio.Task[ChainCheck] | None = None

    async def status(self, store: AuditStore) -> ChainStatus:
        """The chain as far as it is known now (see the class)."""
        stale = (
            self.walked_at is None
            or (datetime.now(UTC) - self.walked_at).total_seconds() > FULL_WALK_EVERY
        )
        if stale and not self.walking:
            self._walk = asyncio.create_task(self._walk_all(store), name="audit chain walk")
            self._walk.add_done_callback(_logged)
        if self.check is None and self._walk is not None:
            await asyncio.wait({self._walk}, timeout=_FIRST_WAIT)
        known = self.check
        if known is not None and known.intact:
            later = await store.verify(after=known)
            if self.check is known:  # else a whole walk ended meanwhile: it is newer
                self.check = later
        return ChainStatus(self.check, self.walked_at, self.walking)

    @property
    def walking(self) -> bool:
        """Whether a whole walk is running."""
        return self._walk is not None and not self._walk.done()

    async def walk_now(self, store: AuditStore, expect: str | None = None) -> ChainCheck:
        """Walk the whole chain now (with ``expect``, looking for that row hash) and keep
        what it found."""
        check = await store.verify(expect)
        self._keep(check)
        return check

    async def _walk_all(self, store: AuditStore) -> ChainCheck:
        check = await store.verify()
        self._keep(check)
        return check

    def _keep(self, check: ChainCheck) -> None:
        self.check, self.walked_at = check, datetime.now(UTC)

    async def stop(self, app: web.Application | None = None) -> None:
        """Cancel a whole walk that is running (``on_cleanup`` of the app)."""
        if self._walk is not None and not self._walk.done():
            self._walk.cancel()
            await asyncio.gather(self._walk, return_exceptions=True)


_CHAIN = web.AppKey("audit_chain", ChainWatch)


def _logged(walk: asyncio.Task[ChainCheck]) -> None:
    """A whole walk that failed (the database away): logged; the next view starts another."""
    if not walk.cancelled() and walk.exception() is not None:
        log.warning("mendline: the audit chain's walk failed: %s", walk.exception())


# -- reading -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilters:
    """Which rows are shown: of an actor, with an action starting with a prefix, on a
    target, from ``since`` and before ``until``; ``before`` the id of the next page."""

    actor: str | None = None
    action: str | None = None
    target: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before: int | None = None
    limit: int = _PAGE

    @classmethod
    def of(cls, query: Any) -> AuditFilters:
        """The filters of a query string (times in ISO 8601, UTC when they name no zone,
        or a duration before now: ``2h``, ``7d``); UsageError for one that is not."""
        return cls(
            actor=_text(query, "actor"),
            action=_text(query, "action"),
            target=_text(query, "target"),
            since=_moment(query, "since"),
            until=_moment(query, "until"),
            before=_whole(query, "before"),
            limit=min(_whole(query, "limit") or _PAGE, _MAX_PAGE),
        )

    def query(self, **changes: Any) -> str:
        """The query string of these filters (with ``changes``), for links and fragments."""
        values = {
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "before": self.before,
        } | changes
        return urlencode({k: v for k, v in values.items() if v is not None})


def _text(query: Any, name: str) -> str | None:
    value = (query.get(name) or "").strip()
    if len(value) > 300:
        raise UsageError(f"{name} is longer than 300 characters")
    return value or None


def _moment(query: Any, name: str) -> datetime | None:
    value = _text(query, name)
    if value is None:
        return None
    try:
        return time_or_ago(value, datetime.now(UTC), MOST_DAYS)
    except (ValueError, OverflowError) as exc:
        raise UsageError(f"{name}: {exc}") from None


def _whole(query: Any, name: str) -> int | None:
    return whole_number(_text(query, name), name)


def whole_number(value: str | None, name: str) -> int | None:
    """A positive whole number from a query or a path (None when not given); UsageError
    for anything else, or one too big for the database's ids."""
    if not value:
        return None
    if not is_whole(value) or int(value) < 1:
        raise UsageError(f"{name} must be a positive whole number, not {value[:40]!r}")
    return int(value)


@dataclass(frozen=True)
class AuditPage:
    """A page of the audit trail: the rows, newest first, and the id to list before for
    the next page (None: the last page)."""

    filters: AuditFilters
    rows: list[StoredAuditEntry]
    next_before: int | None


async def _audit_page(request: web.Request) -> AuditPage:
    require(request, "audit.read")
    filters = AuditFilters.of(request.query)
    found = await AuditStore(deps(request).pool).list(
        actor=filters.actor,
        action=filters.action,
        target=filters.target,
        since=filters.since,
        until=filters.until,
        before_id=filters.before,
        limit=filters.limit + 1,
    )
    rows = found[: filters.limit]
    more = len(found) > filters.limit and rows
    return AuditPage(filters, rows, rows[-1].id if more else None)


async def _chain(request: web.Request) -> ChainStatus:
    watch, store = request.app[_CHAIN], AuditStore(deps(request).pool)
    if request.query.get("verify") == "full":
        await watch.walk_now(store)
    return await watch.status(store)


def page_or_fragment(
    request: web.Request, template: str, fragments: frozenset[str], context: dict[str, Any]
) -> web.Response:
    """The page, or the one of its ``fragments`` the query names (``fragment=``: what a live
    update swaps in)."""
    fragment = request.query.get("fragment")
    if fragment in fragments:
        return render_fragment(request, template, fragment, context)
    return render(request, template, context)


def history_json(row: StoredAuditEntry) -> dict[str, Any]:
    """An audit row as JSON values (what ``mendline audit list --json`` prints)."""
    return row.model_dump(mode="json")


def target_link(target: str) -> str | None:
    """The dashboard's page of an audit row's target (an issue's, a fix's), when it has one."""
    found = _TARGET.fullmatch(target)
    if found is None:
        return None
    return f"/{found[1]}{'es' if found[1] == 'fix' else 's'}/{found[2]}"


# -- pages and API -----------------------------------------------------------------------


@routes.get("/audit")
async def audit_page(request: web.Request) -> web.Response:
    """The audit trail with the chain's status; ``fragment=rows|chain`` for live updates."""
    page = await _audit_page(request)
    context = {
        "page": page,
        "chain": await _chain(request),
        "target_link": target_link,
        "live_topics": ["audit"],
    }
    return page_or_fragment(request, "audit.html", _FRAGMENTS, context)


@routes.get("/api/v1/audit")
async def audit_api(request: web.Request) -> web.Response:
    """The audit trail's rows, newest first, by the page's filters; the chain as known."""
    page = await _audit_page(request)
    return api_json(
        {
            "rows": [history_json(row) for row in page.rows],
            "next_before": page.next_before,
            "chain": (await _chain(request)).as_json(),
        }
    )


@routes.get("/api/v1/audit/verify")
async def audit_verify_api(request: web.Request) -> web.Response:
    """Walk the whole chain now (``expect``: a row hash kept outside the database that the
    intact chain must still hold)."""
    require(request, "audit.read")
    expect = (request.query.get("expect") or "").strip().lower() or None
    if expect is not None and re.fullmatch(r"[0-9a-f]{64}", expect) is None:
        raise UsageError("expect must be a row hash: 64 hexadecimal digits")
    check = await request.app[_CHAIN].walk_now(AuditStore(deps(request).pool), expect)
    return api_json(check.as_json())
