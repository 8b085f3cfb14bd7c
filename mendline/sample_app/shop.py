"""The shop's own code: ordinary functions, each with the bug one endpoint runs into."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx

__all__ = [
    "BESTSELLERS",
    "GIFT_WRAP_FEE",
    "PRICES",
    "PRODUCTS",
    "SHIPPING_TIMEOUT",
    "TEMPLATES",
    "PaymentDeclined",
    "add_points",
    "average_basket",
    "cached_recommendations",
    "cart_total",
    "charge",
    "checkout",
    "create_user",
    "fetch_shipping_quote",
    "gift_wrap_fee",
    "load_order",
    "load_price",
    "open_database",
    "order_totals",
    "parse_cart_item",
    "parse_day",
    "parse_quantity",
    "place_order",
    "quote_cart",
    "read_price_list",
    "record_order",
    "render_receipt",
    "reserve_stock",
    "shelf_label",
    "staging_bucket",
    "user_profile",
]


class PaymentDeclined(Exception):
    """The payment provider refused a charge."""


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
GIFT_WRAP_FEE = 3.5  # euros


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


def cart_total(cart: Mapping[str, Any]) -> float:
    """What a cart costs, with its options (gift wrapping)."""
    subtotal = int(cart["qty"]) * load_price(PRICES, str(cart["sku"]))
    return subtotal + gift_wrap_fee(cart)


def gift_wrap_fee(options: Mapping[str, Any]) -> float:
    """What the gift wrapping an order's options ask for costs."""
    return GIFT_WRAP_FEE if options["gift_wrap"] else 0.0


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
