"""The shop's aiohttp app: a request-context middleware, the handlers, and ``serving()``."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from structlog.contextvars import bind_contextvars, clear_contextvars

from mendline.sample_app._world import World, misbehaving_world
from mendline.sample_app.shop import (
    BESTSELLERS,
    PRICES,
    PRODUCTS,
    add_points,
    average_basket,
    cached_recommendations,
    cart_total,
    checkout,
    create_user,
    fetch_shipping_quote,
    load_order,
    load_price,
    order_totals,
    parse_cart_item,
    parse_day,
    quote_cart,
    read_price_list,
    record_order,
    render_receipt,
    reserve_stock,
    shelf_label,
    staging_bucket,
    user_profile,
)

__all__ = ["serving"]

_WORLD = web.AppKey("world", World)
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


@_routes.post("/cart/total")
async def handle_cart_total(request: web.Request) -> web.Response:
    """What a cart costs with its options: ``{"sku", "qty", "gift_wrap"}`` (the mobile app
    before 2.4 sends no options)."""
    return web.json_response({"total": cart_total(await request.json())})


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
        app = web.Application(middlewares=[_request_context])
        app[_WORLD] = await stack.enter_async_context(misbehaving_world())
        app.add_routes(_routes)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        yield f"http://[{host}]:{bound}" if ":" in host else f"http://{host}:{bound}"
