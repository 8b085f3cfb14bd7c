"""A small structlog web shop with realistic, deterministic bugs: `mendline demo` drives it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import sqlite3
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TextIO

import httpx
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from structlog.contextvars import bind_contextvars, clear_contextvars

from mendline.ingest import ErrorEventProcessor
from mendline.schemas.settings import load_settings

__all__ = [
    "FAILURES",
    "TRAFFIC",
    "DriveResult",
    "PaymentDeclined",
    "RequestSpec",
    "configure_logging",
    "drive",
    "main",
    "run_failures",
    "serving",
]


class PaymentDeclined(Exception):
    """The payment provider refused a charge."""


# -- the shop's code: ordinary functions, each with the bug one endpoint runs into -------------

#: SKU -> product. The mug's stock is below its reorder level, so every order warns about it.
PRODUCTS: dict[str, dict[str, Any]] = {
    "mug-01": {"name": "Enamel mug", "price": 9.5, "stock": 3, "reorder_level": 5},
    "tee-02": {"name": "Organic tee", "price": 19.0, "stock": 40, "reorder_level": 10},
    "cap-03": {"name": "Canvas cap", "price": 14.0, "stock": 12, "reorder_level": 4},
}
PRICES: dict[str, float] = {sku: product["price"] for sku, product in PRODUCTS.items()}
BESTSELLERS = ("tee-02", "mug-01")
TEMPLATES = Path(__file__).parent / "templates"  # never shipped: receipts cannot render
SHIPPING_TIMEOUT = 0.3  # seconds the shipping-quote service is given


def parse_quantity(query: Mapping[str, str]) -> int:
    """Read the order quantity from a query string."""
    return int(query["qty"])


def load_price(catalog: dict[str, float], sku: str) -> float:
    """Look a product's price up in the catalog."""
    return catalog[sku]


def average_basket(totals: list[float]) -> float:
    """Mean basket value of a list of order totals."""
    return sum(totals) / len(totals)


def charge(card: str, amount: float) -> None:
    """Charge a card through a provider that always declines."""
    try:
        json.loads("{'status': 'declined'}")
    except json.JSONDecodeError as exc:
        raise PaymentDeclined(f"provider answer unreadable for amount {amount}") from exc


def place_order(query: dict[str, str]) -> float:
    """Parse, price and charge an order."""
    qty = parse_quantity(query)
    price = load_price({"sku-1": 9.5}, query.get("sku", "sku-1"))
    charge("4111 1111 1111 1111", qty * price)
    return qty * price


def quote_cart(query: Mapping[str, str]) -> dict[str, Any]:
    """Price a quantity of one product, as the cart page shows it."""
    qty = parse_quantity(query)
    price = load_price(PRICES, query.get("sku", "mug-01"))
    return {"sku": query.get("sku", "mug-01"), "qty": qty, "total": qty * price}


def checkout(order: Mapping[str, Any]) -> float:
    """Price an order and charge the customer's card for it."""
    amount = int(order["qty"]) * load_price(PRICES, order["sku"])
    charge(order["card"], amount)
    return amount


def parse_cart_item(body: bytes) -> dict[str, Any]:
    """Read the item a client adds to its cart."""
    item = json.loads(body)
    return {"sku": str(item["sku"]), "qty": int(item["qty"])}


def parse_day(text: str) -> date:
    """Read a day given as YYYY-MM-DD."""
    return datetime.strptime(text, "%Y-%m-%d").date()


def shelf_label(product: Mapping[str, Any]) -> str:
    """The text printed on a product's shelf label."""
    label: str = product["name"] + " - EUR " + product["price"]
    return label


def read_price_list(data: bytes) -> list[tuple[str, str]]:
    """Read an uploaded price list: ``sku;name;price`` lines."""
    text = data.decode("utf-8")
    return [(line.split(";")[0], line) for line in text.splitlines()[1:] if line]


def render_receipt(order: SimpleNamespace) -> str:
    """An order's receipt as HTML."""
    with open(TEMPLATES / "receipt.html", encoding="utf-8") as template:
        return template.read().format(order=order)


def staging_bucket() -> str:
    """Where warehouse syncs stage their files."""
    return os.environ["SHOP_STAGING_BUCKET"]


@contextlib.contextmanager
def open_database(path: Path, *, timeout: float = 5.0) -> Iterator[sqlite3.Connection]:
    """A connection whose rows read as attributes (``row.email``); committed when the block
    ends without an exception, rolled back otherwise, closed either way."""
    db = sqlite3.connect(path, timeout=timeout)
    db.row_factory = _row
    try:
        with db:
            yield db
    finally:
        db.close()


def _row(cursor: sqlite3.Cursor, values: tuple[Any, ...]) -> SimpleNamespace:
    names = [column[0] for column in cursor.description]
    return SimpleNamespace(**dict(zip(names, values, strict=True)))


def user_profile(db_path: Path, user_id: int) -> dict[str, str]:
    """What the profile page shows of a user."""
    with open_database(db_path) as db:
        user = db.execute("SELECT name, email FROM users WHERE id = ?", (user_id,)).fetchone()
    return {"name": user.name, "email": user.email}


def create_user(db_path: Path, email: str, name: str) -> int:
    """Sign a new customer up; their id."""
    with open_database(db_path) as db:
        cursor = db.execute("INSERT INTO users (email, name) VALUES (?, ?)", (email, name))
        return cursor.lastrowid or 0


def order_totals(db_path: Path, day: date) -> list[float]:
    """The totals of the orders placed on a day."""
    with open_database(db_path) as db:
        rows = db.execute("SELECT total FROM orders WHERE day = ?", (day.isoformat(),))
        return [row.total for row in rows]


def record_order(db_path: Path, sku: str, qty: int, total: float) -> int:
    """Store a placed order; its id."""
    with open_database(db_path) as db:
        cursor = db.execute(
            "INSERT INTO orders (sku, qty, total, day) VALUES (?, ?, ?, ?)",
            (sku, qty, total, date.today().isoformat()),
        )
        return cursor.lastrowid or 0


def load_order(db_path: Path, order_id: int) -> SimpleNamespace | None:
    """An order by id, or None."""
    with open_database(db_path) as db:
        row = db.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
    return row if isinstance(row, SimpleNamespace) else None


def add_points(db_path: Path, user_id: int, points: int) -> None:
    """Credit loyalty points; waits for no lock (the points page must answer at once)."""
    with open_database(db_path, timeout=0) as db:
        db.execute(
            "INSERT INTO points (user_id, balance) VALUES (?, ?)"
            " ON CONFLICT (user_id) DO UPDATE SET balance = balance + excluded.balance",
            (user_id, points),
        )


def reserve_stock(inventory_url: str, sku: str, qty: int) -> str:
    """Reserve stock with the inventory service (its client library is synchronous)."""
    with httpx.Client(base_url=inventory_url, timeout=2.0, trust_env=False) as client:
        response = client.post("/reservations", json={"sku": sku, "qty": qty})
        response.raise_for_status()
        return str(response.json()["reservation_id"])


async def fetch_shipping_quote(shipping_url: str, postcode: str) -> float:
    """Ask the shipping-quote service what a parcel to ``postcode`` costs."""
    async with httpx.AsyncClient(
        base_url=shipping_url, timeout=SHIPPING_TIMEOUT, trust_env=False
    ) as client:
        response = await client.get("/quotes", params={"postcode": postcode})
        response.raise_for_status()
        return float(response.json()["price"])


async def cached_recommendations(cache: tuple[str, int], user_id: int) -> list[str]:
    """A user's recommended SKUs from the cache (a one-line text protocol)."""
    reader, writer = await asyncio.open_connection(*cache)
    try:
        writer.write(f"GET recommendations:{user_id}\r\n".encode())
        return [str(sku) for sku in json.loads(await reader.readline())]
    finally:
        writer.close()


# -- the web app ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _World:
    """The databases and dependencies one running shop uses."""

    shop_db: Path
    loyalty_db: Path
    inventory_url: str  # nothing listens there
    shipping_url: str  # accepts connections and never answers
    cache: tuple[str, int]  # nothing listens there


_WORLD = web.AppKey("world", _World)
_routes = web.RouteTableDef()


def _logger() -> Any:
    # Bound per call, not at import: a logger bound before configure_logging() would keep
    # structlog's default processors, without mendline's.
    return structlog.get_logger().bind(logger="shop.http")


@web.middleware
async def _request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind the request to the logging context; log a failure once and answer 500."""
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
    clear_contextvars()  # nothing bound before the request (at startup, say) belongs to it
    bind_contextvars(method=request.method, path=request.path, request_id=request_id)
    log = _logger()
    started = time.perf_counter()
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # aiohttp's own answers (404, 405) are not failures
        log.info("request_handled", status=exc.status)
        raise
    except Exception:
        log.exception("request_failed")
        response = web.json_response(
            {"error": "internal server error", "request_id": request_id}, status=500
        )
    else:
        elapsed = round((time.perf_counter() - started) * 1000, 1)
        log.info("request_handled", status=response.status, duration_ms=elapsed)
    response.headers["X-Request-Id"] = request_id
    return response


def _bind_user(request: web.Request, user_id: int) -> None:
    # The raw Authorization header goes into the context "to debug auth": the scrubber's job.
    bind_contextvars(user_id=user_id, authorization=request.headers.get("Authorization"))


@_routes.get("/health")
async def handle_health(request: web.Request) -> web.Response:
    """Liveness."""
    return web.json_response({"status": "ok"})


@_routes.get("/cart/quote")
async def handle_cart_quote(request: web.Request) -> web.Response:
    """Price a quantity of a product: ``?sku=&qty=``."""
    return web.json_response(quote_cart(request.query))


@_routes.post("/cart/items")
async def handle_cart_items(request: web.Request) -> web.Response:
    """Add an item to the cart."""
    item = parse_cart_item(await request.read())
    return web.json_response(item, status=201)


@_routes.get("/products/{sku}/price")
async def handle_product_price(request: web.Request) -> web.Response:
    """A product's price."""
    sku = request.match_info["sku"]
    return web.json_response({"sku": sku, "price": load_price(PRICES, sku)})


@_routes.get("/products/{sku}/label")
async def handle_product_label(request: web.Request) -> web.Response:
    """A product's shelf label."""
    return web.Response(text=shelf_label(PRODUCTS[request.match_info["sku"]]))


@_routes.post("/orders")
async def handle_orders(request: web.Request) -> web.Response:
    """Place an order (paid on delivery)."""
    order = await request.json()
    sku, qty = str(order["sku"]), int(order["qty"])
    total = qty * load_price(PRICES, sku)
    order_id = record_order(request.app[_WORLD].shop_db, sku, qty, total)
    product = PRODUCTS[sku]
    if product["stock"] < product["reorder_level"]:  # below the error level: not an event
        _logger().warning(
            "stock below reorder level",
            sku=sku,
            on_hand=product["stock"],
            reorder_level=product["reorder_level"],
        )
    return web.json_response({"order_id": order_id, "total": total}, status=201)


@_routes.post("/checkout")
async def handle_checkout(request: web.Request) -> web.Response:
    """Pay for an order by card."""
    order = await request.json()
    bind_contextvars(order=order)  # card number included: the scrubber's job
    return web.json_response({"charged": checkout(order)})


@_routes.get("/users/{user_id}/profile")
async def handle_user_profile(request: web.Request) -> web.Response:
    """A user's profile."""
    user_id = int(request.match_info["user_id"])
    _bind_user(request, user_id)
    return web.json_response(user_profile(request.app[_WORLD].shop_db, user_id))


@_routes.post("/signup")
async def handle_signup(request: web.Request) -> web.Response:
    """Create a customer account."""
    form = await request.json()
    user_id = create_user(request.app[_WORLD].shop_db, form["email"], form["name"])
    return web.json_response({"user_id": user_id}, status=201)


@_routes.post("/loyalty/points")
async def handle_loyalty_points(request: web.Request) -> web.Response:
    """Credit loyalty points to a user."""
    credit = await request.json()
    user_id = int(credit["user_id"])
    _bind_user(request, user_id)
    add_points(request.app[_WORLD].loyalty_db, user_id, int(credit["points"]))
    return web.json_response({"credited": credit["points"]})


@_routes.get("/reports/average-basket")
async def handle_average_basket(request: web.Request) -> web.Response:
    """The mean order total of a day: ``?day=YYYY-MM-DD``."""
    day = parse_day(request.query["day"])
    totals = order_totals(request.app[_WORLD].shop_db, day)
    return web.json_response({"day": day.isoformat(), "average": average_basket(totals)})


@_routes.get("/reports/sales")
async def handle_sales(request: web.Request) -> web.Response:
    """Orders placed since a day: ``?since=YYYY-MM-DD``."""
    since = parse_day(request.query["since"])
    return web.json_response({"since": since.isoformat(), "orders": 0})


@_routes.get("/orders/{order_id}/receipt")
async def handle_receipt(request: web.Request) -> web.Response:
    """An order's receipt."""
    order = load_order(request.app[_WORLD].shop_db, int(request.match_info["order_id"]))
    if order is None:
        raise web.HTTPNotFound()
    return web.Response(text=render_receipt(order), content_type="text/html")


@_routes.post("/stock/reservations")
async def handle_reservations(request: web.Request) -> web.Response:
    """Hold stock for a cart."""
    item = await request.json()
    inventory = request.app[_WORLD].inventory_url
    reservation = await asyncio.to_thread(reserve_stock, inventory, item["sku"], item["qty"])
    return web.json_response({"reservation_id": reservation}, status=201)


@_routes.get("/shipping/quote")
async def handle_shipping_quote(request: web.Request) -> web.Response:
    """What shipping to a postcode costs: ``?postcode=``."""
    postcode = request.query["postcode"]
    price = await fetch_shipping_quote(request.app[_WORLD].shipping_url, postcode)
    return web.json_response({"postcode": postcode, "price": price})


@_routes.get("/recommendations")
async def handle_recommendations(request: web.Request) -> web.Response:
    """Products to recommend to a user: ``?user_id=``; bestsellers when the cache is down."""
    user_id = int(request.query["user_id"])
    bind_contextvars(user_id=user_id)
    cache = request.app[_WORLD].cache
    try:
        skus = await cached_recommendations(cache, user_id)
    except ConnectionRefusedError:
        # The page still works, so no exception is logged; the error still wants an issue.
        _logger().error(
            "recommendation cache unreachable (connection refused), serving bestsellers",
            cache=f"{cache[0]}:{cache[1]}",
        )
        skus = list(BESTSELLERS)
    return web.json_response({"user_id": user_id, "skus": skus})


@_routes.post("/catalog/price-list")
async def handle_price_list(request: web.Request) -> web.Response:
    """Upload a CSV price list."""
    rows = read_price_list(await request.read())
    return web.json_response({"rows": len(rows)})


@_routes.post("/admin/warehouse-sync")
async def handle_warehouse_sync(request: web.Request) -> web.Response:
    """Copy the day's orders to the warehouse database."""
    sync = await request.json()
    bind_contextvars(warehouse_url=sync["warehouse_url"])  # with its password: the scrubber's job
    return web.json_response({"staged_in": staging_bucket()}, status=202)


_SHOP_SCHEMA = """
CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT NOT NULL);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY, sku TEXT NOT NULL, qty INTEGER NOT NULL, total REAL NOT NULL,
    day TEXT NOT NULL
);
INSERT INTO users (id, email, name)
    VALUES (1, 'ada@example.com', 'Ada Lovelace'), (2, 'grace@example.com', 'Grace Hopper');
INSERT INTO orders (id, sku, qty, total, day)
    VALUES (1001, 'mug-01', 2, 19.0, '2024-12-24'), (1002, 'tee-02', 1, 19.0, '2024-12-26');
"""


@contextlib.contextmanager
def _stuck_loyalty_db(path: Path) -> Iterator[None]:
    """The loyalty database, with the points-expiry job's write transaction left open."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("CREATE TABLE points (user_id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)")
        db.execute("BEGIN IMMEDIATE")
        db.execute("UPDATE points SET balance = 0 WHERE balance < 0")
        yield
    finally:
        db.close()


@contextlib.contextmanager
def _refusing_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound, so no one else takes it, never listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def _silent_server() -> AsyncIterator[int]:
    """A loopback server that accepts connections, reads what comes and never answers."""
    writers: set[asyncio.StreamWriter] = set()

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.add(writer)
        try:
            with contextlib.suppress(ConnectionError):
                await reader.read()  # until the client gives up and closes
        finally:
            writers.discard(writer)
            writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        for writer in list(writers):
            writer.close()
        await server.wait_closed()
        await asyncio.sleep(0)  # let the handlers see their end


@contextlib.asynccontextmanager
async def serving(host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Run the shop, with its databases and dependencies, for the block; yield its base URL.

    ``port`` 0 takes a free port. The shop brings its own misbehaving world, all on loopback
    and in a temporary folder: SQLite databases (the loyalty one with a write transaction
    left open), an inventory service that refuses connections (a port bound, never
    listening), a shipping-quote service that accepts and never answers, and no
    recommendation cache. Logging is whatever structlog is configured with
    (:func:`configure_logging` for mendline's processor).
    """
    async with contextlib.AsyncExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mendline-shop-")))
        with contextlib.closing(sqlite3.connect(folder / "shop.db")) as db:
            db.executescript(_SHOP_SCHEMA)
        stack.enter_context(_stuck_loyalty_db(folder / "loyalty.db"))
        inventory_port = stack.enter_context(_refusing_port())
        cache_port = stack.enter_context(_refusing_port())
        shipping_port = await stack.enter_async_context(_silent_server())
        app = web.Application(middlewares=[_request_context])
        app[_WORLD] = _World(
            shop_db=folder / "shop.db",
            loyalty_db=folder / "loyalty.db",
            inventory_url=f"http://127.0.0.1:{inventory_port}",
            shipping_url=f"http://127.0.0.1:{shipping_port}",
            cache=("127.0.0.1", cache_port),
        )
        app.add_routes(_routes)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        yield f"http://[{host}]:{bound}" if ":" in host else f"http://{host}:{bound}"


# -- traffic -------------------------------------------------------------------------------------


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
    RequestSpec("GET", "/favicon.ico", status=404),
    RequestSpec("GET", "/cart/quote?sku=mug-01&qty=two", "bad_quantity", 500, repeat=8),
    RequestSpec("GET", "/products/bag-99/price", "unknown_sku", 500, repeat=5),
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


# -- logging and the entry point -----------------------------------------------------------------

#: name -> (function that raises, context bound on the logger when it is logged)
FAILURES: dict[str, tuple[Callable[[], object], dict[str, Any]]] = {
    "bad_quantity": (lambda: place_order({"qty": "n/a"}), {"path": "/orders", "user_id": 42}),
    "unknown_sku": (
        lambda: place_order({"qty": "2", "sku": "sku-404"}),
        {"path": "/orders", "authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"},
    ),
    "empty_report": (lambda: average_basket([]), {"report": "daily"}),
    "payment_declined": (
        lambda: place_order({"qty": "1"}),
        {"db": "postgresql://shop:hunter2@db.internal/shop", "password": "hunter2"},
    ),
}


def configure_logging(
    service: str, stream: TextIO | None = None, **processor_options: Any
) -> ErrorEventProcessor:
    """Configure structlog with the mendline processor before the renderer; return it.

    Context bound with ``structlog.contextvars`` is merged in. The app's own log lines (one a
    log call, the traceback left out for brevity) go to ``stream``, standard error by default.
    """
    processor = ErrorEventProcessor(service, **processor_options)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            processor,
            structlog.processors.KeyValueRenderer(
                key_order=["timestamp", "level", "event"], drop_missing=True
            ),
        ],
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
    return processor


def run_failures(names: list[str] | None = None) -> list[str]:
    """Run the named failures (all by default), logging each with log.exception()."""
    log = structlog.get_logger().bind(logger="shop.orders")
    done = []
    for name in names or list(FAILURES):
        func, context = FAILURES[name]
        try:
            func()
        except Exception:
            log.bind(**context).exception("order_failed", failure=name)
            done.append(name)
    return done


async def _serve_until_stopped(host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with serving(host, port) as url:
        print(f"listening on {url}", flush=True)
        _logger().info("shop_started", url=url)
        await stop.wait()
        _logger().info("shop_stopping")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mendline.sample_app``: serve the shop until SIGTERM or SIGINT, then flush
    the events still queued (or spool them) and return 0.

    mendline's settings come from the environment (``MENDLINE_*``). Prints one line,
    ``listening on http://HOST:PORT``, once the shop accepts connections; its own log lines
    go to standard error.
    """
    parser = argparse.ArgumentParser(
        prog="python -m mendline.sample_app",
        description="A small web shop that logs realistic errors through mendline.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port; 0 takes a free one")
    parser.add_argument("--service", default="shop", help="service name on the events")
    parser.add_argument("--release", default="1.4.2", help="release on the events")
    parser.add_argument("--environment", default="demo", help="environment on the events")
    args = parser.parse_args(argv)
    settings = load_settings()
    processor = configure_logging(
        args.service, settings=settings, release=args.release, environment=args.environment
    )
    try:
        asyncio.run(_serve_until_stopped(args.host, args.port))
    finally:
        processor.shipper.shutdown(settings.shutdown_timeout)
    return 0


if __name__ == "__main__":
    # Run the module's own copy under its real name, so that frames (and so the grouping and
    # the findings) say mendline.sample_app, as in an app that imports its handlers.
    from mendline.sample_app import main as _main

    sys.exit(_main())
