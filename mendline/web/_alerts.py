"""The alerts page: deliveries by receiver and status, the failures and retries, what is
pending (oldest first), the silences in effect, and every delivery newest first (filtered by
receiver and status, keyset-paged); its JSON API (``/api/v1/deliveries``). One read function
serves both."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from mendline.analyzers.policy import Silence
from mendline.sinks.postgres import AlertStore, DeliveryCount, DeliveryRow
from mendline.web._context import api_json, deps, may, require
from mendline.web._status import fragment_asked, page_or_fragment, query_choice, query_number

__all__ = ["DELIVERY_STATUSES", "AlertsQuery", "AlertsView", "alerts_view", "routes"]

routes = web.RouteTableDef()

#: A delivery's states, in the order of its life (mendline.deliveries' check).
DELIVERY_STATUSES = ("pending", "delivered", "failed", "dead", "suppressed")
#: The windows the counts may cover.
RANGES = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
#: The most deliveries one page (or one API call) lists.
MAX_LIMIT = 200
#: Rows of the pending and failures lists.
QUEUE_ROWS = 50


@dataclass(frozen=True)
class AlertsQuery:
    """What the page and the API are asked for: the counts' window, a receiver, a status,
    the page of deliveries (``cursor``: those before the delivery of that id; at most
    ``limit``)."""

    range: str = "7d"
    receiver: str | None = None
    status: str | None = None
    cursor: int | None = None
    limit: int = 50


@dataclass(frozen=True)
class ReceiverCounts:
    """One receiver's deliveries in the window, by status (every status present, 0 too)."""

    receiver: str
    counts: dict[str, int]
    total: int


@dataclass(frozen=True)
class SilenceShown:
    """A silence in effect: its matchers as people write them, its window, who made it and
    why."""

    id: int
    matchers: tuple[str, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str


@dataclass(frozen=True)
class AlertsView:
    """The alerts page at ``now``: the counts by receiver (and their totals by status) over
    the window, the pending deliveries oldest first, the failures and retries newest first,
    the silences in effect (None: the asker may not read them), and a page of deliveries
    (``items``) with the cursor of the next (``next_cursor``; None: no more)."""

    now: datetime
    query: AlertsQuery
    statuses: tuple[str, ...]
    by_receiver: tuple[ReceiverCounts, ...]
    totals: dict[str, int]
    pending: tuple[DeliveryRow, ...]
    troubled: tuple[DeliveryRow, ...]
    silences: tuple[SilenceShown, ...] | None
    items: tuple[DeliveryRow, ...]
    next_cursor: str | None


async def alerts_view(
    store: AlertStore, query: AlertsQuery, *, with_silences: bool = True
) -> AlertsView:
    """What the alerts page shows for ``query``."""
    now = datetime.now(UTC)
    counts = await store.delivery_counts(now - RANGES[query.range])
    pending = await store.pending_deliveries(receiver=query.receiver, limit=QUEUE_ROWS)
    troubled = await store.troubled_deliveries(receiver=query.receiver, limit=QUEUE_ROWS)
    page = await store.deliveries(
        receiver=query.receiver,
        status=query.status,
        before_id=query.cursor,
        limit=query.limit + 1,
    )
    silences = [_silence(s) for s in await store.active_silences()] if with_silences else None
    by_receiver = _by_receiver(counts)
    return AlertsView(
        now=now,
        query=query,
        statuses=DELIVERY_STATUSES,
        by_receiver=by_receiver,
        totals={s: sum(r.counts[s] for r in by_receiver) for s in DELIVERY_STATUSES},
        pending=tuple(pending),
        troubled=tuple(troubled),
        silences=tuple(silences) if silences is not None else None,
        items=tuple(page[: query.limit]),
        next_cursor=str(page[query.limit - 1].id) if len(page) > query.limit else None,
    )


def _by_receiver(counts: list[DeliveryCount]) -> tuple[ReceiverCounts, ...]:
    table: dict[str, dict[str, int]] = {}
    for count in counts:
        row = table.setdefault(count.receiver, dict.fromkeys(DELIVERY_STATUSES, 0))
        row[count.status] = row.get(count.status, 0) + count.count
    return tuple(
        ReceiverCounts(receiver, row, sum(row.values())) for receiver, row in sorted(table.items())
    )


def _silence(silence: Silence) -> SilenceShown:
    return SilenceShown(
        id=silence.id,
        matchers=tuple(str(m) for m in silence.matchers),
        starts_at=silence.starts_at,
        ends_at=silence.ends_at,
        created_by=silence.created_by,
        comment=silence.comment,
    )


# -- handlers -----------------------------------------------------------------------------------


def alerts_query(request: web.Request) -> AlertsQuery:
    """The query of a request's parameters; UsageError for one out of its range."""
    status = query_choice(request, "status", ("", *DELIVERY_STATUSES), "")
    return AlertsQuery(
        range=query_choice(request, "range", RANGES, "7d"),
        receiver=request.query.get("receiver") or None,
        status=status or None,
        cursor=query_number(request, "cursor", 2**63 - 1, None),
        limit=query_number(request, "limit", MAX_LIMIT, 50) or 50,
    )


async def _read(request: web.Request) -> AlertsView:
    return await alerts_view(
        AlertStore(deps(request).pool),
        alerts_query(request),
        with_silences=may(request, "silence.read"),
    )


def _context(view: AlertsView) -> dict[str, Any]:
    q = view.query
    filters = {"receiver": q.receiver, "status": q.status, "range": q.range}
    shown = {k: v for k, v in filters.items() if v}
    page = {**shown, "cursor": str(q.cursor)} if q.cursor else shown
    receivers = {r.receiver for r in view.by_receiver} | ({q.receiver} if q.receiver else set())
    return {
        "a": view,
        "ranges": list(RANGES),
        "receivers": sorted(receivers),
        "fragment_url": "/alerts?" + urlencode({**page, "fragment": "alerts"}),
        "next_url": "/alerts?" + urlencode({**shown, "cursor": view.next_cursor or ""}),
        "live_topics": ["deliveries"],
    }


@routes.get("/alerts")
async def alerts_page(request: web.Request) -> web.StreamResponse:
    """The alerts page; ``?receiver=``, ``?status=``, ``?range=24h|7d|30d``, ``?cursor=``
    (the next page), ``?fragment=alerts`` for the live refresh."""
    require(request, "alert.read")
    block = fragment_asked(request, ("alerts",))
    return page_or_fragment(request, "alerts.html", block, _context(await _read(request)))


@routes.get("/api/v1/deliveries")
async def deliveries_api(request: web.Request) -> web.StreamResponse:
    """The alerts page's data: the same parameters."""
    require(request, "alert.read")
    return api_json(await _read(request))
