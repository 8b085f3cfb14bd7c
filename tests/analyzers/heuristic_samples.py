"""Real code that fails, for the heuristic analyser's tests: each function is one failure class.

Where a driver is not installed here (psycopg, SQLAlchemy, requests), a class of the same name
and module stands in for its exception, raised with the message the driver raises.
"""

from __future__ import annotations

import asyncio
import datetime
import decimal
import importlib
import json
import math
import os
import socket
import sqlite3
from typing import Any

import asyncpg
import httpx
import pydantic

# -- parsing input --------------------------------------------------------------------------


def parse_quantity(args: dict[str, str]) -> int:
    """A form's quantity field."""
    return int(args["n"])


def parse_price(text: str) -> float:
    return float(text)


def parse_amount(text: str) -> decimal.Decimal:
    return decimal.Decimal(text)


def parse_day(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, "%Y-%m-%d")


def parse_timestamp(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text)


def load_body(body: str) -> Any:
    return json.loads(body)


def decode_upload(data: bytes) -> str:
    return data.decode("utf-8")


def to_ascii(text: str) -> bytes:
    return text.encode("ascii")


def split_pair(text: str) -> tuple[str, str]:
    left, right = text.split(":")
    return left, right


class LineItem(pydantic.BaseModel):
    sku: str
    quantity: int


def line_item(data: dict[str, Any]) -> LineItem:
    return LineItem.model_validate(data)


# -- lookups --------------------------------------------------------------------------------


def user_id_of(payload: dict[str, Any]) -> Any:
    return payload["user_id"]


def field_of(payload: dict[str, Any], field: str) -> Any:
    return payload[field]


def owner_id_of(payload: dict[str, Any]) -> Any:
    return payload["owner"]["id"]


def forget(sessions: dict[str, Any], key: str) -> None:
    del sessions[key]


def database_url() -> str:
    return os.environ["MENDLINE_SAMPLE_ORDERS_DB_URL"]


def first_item(items: list[Any]) -> Any:
    return items[0]


def next_job(jobs: list[Any]) -> Any:
    return jobs.pop()


def email_of(users: dict[int, Any], user_id: int) -> Any:
    user = users.get(user_id)
    return user.email


def pretty(data: Any) -> Any:
    return json.dumps_pretty(data)


def shout(text: Any) -> Any:
    return text.uppercase()


def untag(tags: list[str], tag: str) -> None:
    tags.remove(tag)


# -- calls and types --------------------------------------------------------------------------


class Invoice:
    def __init__(self, number: str, total: decimal.Decimal) -> None:
        self.number, self.total = number, total


def new_invoice(number: str) -> Invoice:
    return Invoice(number)


def send_receipt(to: str) -> None:
    """Sends nothing: the call to it is wrong."""


def notify(address: str) -> None:
    send_receipt(to=address, cc="billing@example.com")


def add_item(cart: list[Any], item: str) -> None:
    cart.append(item)


def fill(cart: list[Any]) -> None:
    add_item(cart, "sku-1", 2)


def port_of(config: dict[str, Any] | None) -> Any:
    return config["port"]


def discount_of(order: dict[str, Any]) -> Any:
    """A lookup nested in a block: its patch must keep the line's own indentation."""
    if order:
        return order["discount"]
    return None


def total_of(order: dict[str, Any]) -> int:
    total = 0
    for item in order.get("items"):
        total += item["price"]
    return total


def done(hooks: dict[str, Any]) -> Any:
    hook = hooks.get("done")
    return hook()


def with_shipping(subtotal: int, shipping: int | None) -> int:
    return subtotal + shipping


def line_total(price: decimal.Decimal, quantity: float) -> Any:
    return price * quantity


def label(order_id: int) -> str:
    return "order " + order_id


def initial(code: int) -> Any:
    return code[0]


def digits(code: int) -> list[Any]:
    return [digit for digit in code]


def configure(settings: dict[str, Any]) -> Any:
    return settings()


# -- the code's own assumptions -------------------------------------------------------------


def average(values: list[float]) -> float:
    return sum(values) / len(values)


def depth(node: dict[str, Any]) -> int:
    """How far from the root: a node that is its own parent never gets there."""
    return 1 + depth(node["parent"])


def allocate() -> bytearray:
    return bytearray(1 << 62)


def compound(rate: float, years: int) -> float:
    return math.exp(rate * years)


def check_quantity(quantity: int) -> None:
    assert quantity > 0, "quantity must be positive"


class Exporter:
    def export(self) -> str:
        raise NotImplementedError


class CsvExporter(Exporter):
    """Forgot to override export()."""


def export_all() -> str:
    return CsvExporter().export()


def discount(total: float) -> float:
    if total > 100:
        rate = 0.1
    return total * rate


def tax(total: float) -> float:
    return total * TAX_RATE  # noqa: F821


def prune(counts: dict[str, int]) -> None:
    for key in counts:
        if counts[key] == 0:
            del counts[key]


def first_words(lines: list[str]) -> list[str]:
    return list(next(iter(line.split())) for line in lines)


def stop() -> None:
    raise SystemExit(3)


# -- imports and files ------------------------------------------------------------------------


def load_plugin(name: str) -> Any:
    return importlib.import_module(name)


def pretty_printer() -> Any:
    from json import dumps_pretty

    return dumps_pretty


def read_config(path: str) -> str:
    with open(path) as file:
        return file.read()


def write_report(path: str) -> None:
    with open(path, "w") as file:
        file.write("report\n")


def open_many(path: str, count: int) -> None:
    files = []
    try:
        for _ in range(count):
            files.append(open(path))  # noqa: SIM115
    finally:
        for file in files:
            file.close()


# -- the network ------------------------------------------------------------------------------


def connect_to(port: int) -> None:
    asyncio.run(open_stream(port))


async def open_stream(port: int) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.close()


def plain_connect(port: int) -> None:
    socket.create_connection(("127.0.0.1", port), timeout=1).close()


def resolve() -> Any:
    return socket.getaddrinfo("orders-db.mendline-sample.invalid", 5432)


def read_reply(sock: socket.socket) -> bytes:
    return sock.recv(1024)


def fetch(url: str, **options: Any) -> str:
    with httpx.Client(**options) as client:
        response = client.get(url)
        response.raise_for_status()
        return response.text


def fetch_quote(url: str) -> str:
    try:
        return fetch(url, timeout=httpx.Timeout(1, connect=0.1))
    except httpx.TransportError as exc:
        raise RuntimeError("quote service failed") from exc


def fetch_while_streaming(url: str) -> None:
    limits = httpx.Limits(max_connections=1)
    timeout = httpx.Timeout(1, pool=0.05)
    with httpx.Client(limits=limits, timeout=timeout) as client, client.stream("GET", url):
        client.get(url)


def quote_with_deadline(seconds: float) -> Any:
    return asyncio.run(wait_for_quote(seconds))


async def wait_for_quote(seconds: float) -> Any:
    return await asyncio.wait_for(slow_quote(), timeout=seconds)


async def slow_quote() -> float:
    await asyncio.sleep(5)
    return 9.5


def reuse_closed_loop() -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    loop.call_soon(print)


def await_foreign_future() -> None:
    other = asyncio.new_event_loop()
    try:
        asyncio.run(wait_on(other.create_future()))
    finally:
        other.close()


async def wait_on(future: asyncio.Future[Any]) -> Any:
    return await future


def lookup_then_fetch(cache: dict[str, Any], port: int) -> Any:
    """A cache miss (KeyError, handled) then a refused connection while handling it."""
    try:
        return cache["quote"]
    except KeyError:
        plain_connect(port)


def parse_after_timeout(sock: socket.socket) -> Any:
    """A timeout, then a bug in the code that handles it."""
    reply = None
    try:
        reply = read_reply(sock)
    except TimeoutError:
        return reply.decode()
    return reply


# -- databases ----------------------------------------------------------------------------------


def shop_db(path: str = ":memory:") -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=0)
    db.execute("pragma foreign_keys = on")
    db.executescript(
        """
        create table if not exists users (id integer primary key, email text unique not null);
        create table if not exists orders (
            id integer primary key,
            user_id integer not null references users (id),
            quantity integer check (quantity > 0)
        );
        """
    )
    return db


def add_user(db: sqlite3.Connection, email: str | None) -> None:
    db.execute("insert into users (email) values (?)", (email,))


def add_order(db: sqlite3.Connection, user_id: int, quantity: int = 1) -> None:
    db.execute("insert into orders (user_id, quantity) values (?, ?)", (user_id, quantity))


def add_user_while_locked(path: str) -> None:
    holder = shop_db(path)
    holder.execute("begin immediate")
    try:
        add_user(shop_db(path), "late@example.com")
    finally:
        holder.rollback()
        holder.close()


class UniqueViolation(Exception):
    """psycopg's class of that name (psycopg is not installed here)."""


UniqueViolation.__module__ = "psycopg.errors"


class QueuePoolTimeout(Exception):
    """SQLAlchemy's sqlalchemy.exc.TimeoutError (SQLAlchemy is not installed here)."""


QueuePoolTimeout.__module__, QueuePoolTimeout.__qualname__ = "sqlalchemy.exc", "TimeoutError"


class HTTPError(OSError):
    """requests' requests.exceptions.HTTPError (requests is not installed here)."""


HTTPError.__module__ = "requests.exceptions"


def insert_order_pg(order_id: int) -> None:
    raise UniqueViolation(
        'duplicate key value violates unique constraint "orders_pkey"\n'
        f"DETAIL:  Key (id)=({order_id}) already exists."
    )


def insert_user_asyncpg(email: str) -> None:
    raise asyncpg.exceptions.UniqueViolationError(
        'duplicate key value violates unique constraint "users_email_key"'
    )


def transfer(from_id: int, to_id: int) -> None:
    raise asyncpg.exceptions.DeadlockDetectedError("deadlock detected")


def connect_pg() -> None:
    raise asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already")


def query_pg() -> None:
    raise asyncpg.exceptions.ConnectionDoesNotExistError(
        "connection was closed in the middle of operation"
    )


def checkout_session() -> None:
    raise QueuePoolTimeout(
        "QueuePool limit of size 5 overflow 10 reached, connection timed out, timeout 30.00"
    )


def fetch_with_requests(url: str) -> None:
    raise HTTPError(f"503 Server Error: Service Unavailable for url: {url}")


class InventoryUnavailable(Exception):
    """The application's own error: no rule knows it."""


def reserve(sku: str) -> None:
    raise InventoryUnavailable(f"cannot reserve {sku}")
