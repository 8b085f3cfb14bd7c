"""The requests ``mendline demo`` sends the shop, and ``drive()``, which sends them and tallies."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["TRAFFIC", "DriveResult", "RequestSpec", "drive"]


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One kind of request :func:`drive` sends, and what the shop does with it."""

    method: str
    #: Path and query string.
    path: str
    #: The bug the request runs into, which logs exactly one error event; None: none.
    failure: str | None = None
    #: The status the shop answers with: 500 for a failure with an exception.
    status: int = 200
    #: How many times one round sends it.
    repeat: int = 1
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def route(self) -> str:
        """The path without the query string: the ``path`` in the logging context."""
        return self.path.partition("?")[0]


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


_JSON = (("Content-Type", "application/json"),)
# A signed JWT as a bearer token: it must never reach an event.
_BEARER = (("Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTcifQ.c2lnbmF0dXJl"),)


def _post(path: str, body: object, failure: str | None = None, **options: Any) -> RequestSpec:
    headers = _JSON + options.pop("headers", ())
    return RequestSpec("POST", path, failure, body=_json(body), headers=headers, **options)


#: What one round of :func:`drive` sends: normal requests, and every failure, some many times.
TRAFFIC: tuple[RequestSpec, ...] = (
    RequestSpec("GET", "/health", repeat=6),
    RequestSpec("GET", "/cart/quote?sku=mug-01&qty=2", repeat=4),
    RequestSpec("GET", "/products/tee-02/price", repeat=3),
    _post("/orders", {"sku": "mug-01", "qty": 1}, status=201, repeat=3),
    RequestSpec("GET", "/users/1/profile", headers=_BEARER, repeat=2),
    _post("/cart/total", {"sku": "tee-02", "qty": 1, "gift_wrap": True}, repeat=2),
    RequestSpec("GET", "/favicon.ico", status=404),
    RequestSpec("GET", "/cart/quote?sku=mug-01&qty=two", "bad_quantity", 500, repeat=8),
    RequestSpec("GET", "/products/bag-99/price", "unknown_sku", 500, repeat=5),
    _post(
        "/cart/total",
        {"sku": "tee-02", "qty": 1},  # an older mobile app sends no options
        "missing_gift_wrap",
        status=500,
        repeat=4,
        headers=(("User-Agent", "shop-ios/2.3.1"),),
    ),
    RequestSpec("GET", "/reports/average-basket?day=2024-12-25", "empty_report", 500),
    _post(
        "/checkout",
        {"sku": "mug-01", "qty": 1, "card": "4111 1111 1111 1111"},
        "payment_declined",
        status=500,
        repeat=2,
    ),
    RequestSpec("GET", "/users/7/profile", "missing_user", 500, repeat=3, headers=_BEARER),
    RequestSpec(
        "POST",
        "/cart/items",
        "invalid_json_body",
        500,
        repeat=2,
        body=b'{"sku": "mug-01", "qty": 2,}',
        headers=_JSON,
    ),
    _post(
        "/stock/reservations", {"sku": "tee-02", "qty": 2}, "inventory_down", status=500, repeat=3
    ),
    RequestSpec("GET", "/shipping/quote?postcode=10115", "shipping_quote_timeout", 500, repeat=2),
    _post(
        "/signup",
        {"email": "ada@example.com", "name": "Ada"},
        "duplicate_signup",
        status=500,
        repeat=2,
    ),
    _post(
        "/loyalty/points",
        {"user_id": 2, "points": 50},
        "loyalty_db_locked",
        status=500,
        headers=_BEARER,
    ),
    _post(
        "/admin/warehouse-sync",
        {"warehouse_url": "postgresql://sync:hunter2@127.0.0.1:5432/warehouse"},
        "missing_env_config",
        status=500,
    ),
    RequestSpec(
        "POST",
        "/catalog/price-list",
        "non_utf8_upload",
        500,
        body="sku;name;price\nmug-01;Tasse émaillée;9,50\n".encode("cp1252"),
        headers=(("Content-Type", "text/csv"),),
    ),
    RequestSpec("GET", "/orders/1001/receipt", "missing_template", 500),
    RequestSpec("GET", "/reports/sales?since=31/12/2024", "bad_date", 500, repeat=2),
    RequestSpec("GET", "/products/mug-01/label", "str_plus_float", 500),
    RequestSpec("GET", "/recommendations?user_id=2", "recommendations_cache_down", repeat=3),
)

_SEED = 1729  # the order of the requests is shuffled, the same way every time


@dataclass(frozen=True, slots=True)
class DriveResult:
    """What :func:`drive` sent and what the shop answered."""

    #: Requests sent (each was answered).
    requests: int
    #: Answered 500: each logged exactly one error event.
    failed: int
    #: Answered 2xx.
    succeeded: int
    #: Error events the shop logged: every 500, and every exception-less failure answered as
    #: its spec says. Exact at the default emit level (``error``).
    events_logged: int
    #: Answered with another status than the spec says (0 when the shop behaves).
    unexpected: int
    #: Error events per failure name.
    by_failure: dict[str, int] = field(default_factory=dict)


async def drive(
    base_url: str,
    *,
    rounds: int = 1,
    concurrency: int = 4,
    on_response: Callable[[RequestSpec, int], None] | None = None,
    traffic: Sequence[RequestSpec] = TRAFFIC,
) -> DriveResult:
    """Send ``traffic`` (each spec ``repeat`` times) ``rounds`` times to the shop at
    ``base_url``, shuffled with a fixed seed, ``concurrency`` requests at a time; call
    ``on_response(spec, status)`` for each answer. A transport error propagates."""
    plan = [spec for _ in range(rounds) for spec in traffic for _ in range(spec.repeat)]
    random.Random(_SEED).shuffle(plan)
    pending = iter(plan)
    statuses: list[tuple[RequestSpec, int]] = []
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base_url, timeout=30.0, limits=limits, trust_env=False
    ) as client:

        async def worker() -> None:
            for spec in pending:  # one iterator shared by the workers
                response = await client.request(
                    spec.method, spec.path, content=spec.body, headers=dict(spec.headers)
                )
                statuses.append((spec, response.status_code))
                if on_response is not None:
                    on_response(spec, response.status_code)

        async with asyncio.TaskGroup() as group:
            for _ in range(max(1, concurrency)):
                group.create_task(worker())
    return _tally(statuses)


def _tally(statuses: list[tuple[RequestSpec, int]]) -> DriveResult:
    by_failure: Counter[str] = Counter()
    events = unexpected = 0
    for spec, status in statuses:
        unexpected += status != spec.status
        # The middleware logs one event for every 500; an exception-less failure logs its
        # one event on the way to the answer its spec names.
        if status == 500 or (spec.failure is not None and status == spec.status):
            events += 1
            by_failure[spec.failure or f"unexpected {spec.method} {spec.route}"] += 1
    return DriveResult(
        requests=len(statuses),
        failed=sum(status == 500 for _, status in statuses),
        succeeded=sum(200 <= status < 300 for _, status in statuses),
        events_logged=events,
        unexpected=unexpected,
        by_failure=dict(by_failure),
    )
