"""Real code that raises, for the grouping tests: each function is one call site of a bug."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def capture(fn: Callable[..., object], *args: object) -> BaseException:
    """Call ``fn`` and return what it raised; fail the test when it raises nothing."""
    try:
        fn(*args)
    except Exception as exc:
        return exc
    raise AssertionError(f"{fn.__name__}{args!r} raised nothing")


class PaymentDeclined(Exception):
    """The card issuer said no."""


def charge(order_id: int, amount: float) -> None:
    """Always declined: the same bug whatever the order."""
    raise PaymentDeclined(f"card declined for order {order_id}: amount {amount}")


# Two call sites of the same builtin with the same exception type (ValueError from int()).
def parse_quantity(text: str) -> int:
    """A form's quantity field."""
    return int(text)


def parse_age(text: str) -> int:
    """A form's age field."""
    return int(text)


# Two call sites of the same library function (json.loads, JSONDecodeError)...
def load_settings(text: str) -> Any:
    """The settings document."""
    return json.loads(text)


def load_profile(text: str) -> Any:
    """The profile document."""
    return json.loads(text)


# ...and two in the same function, told apart by their source lines only.
def load_pair(first: str, second: str) -> tuple[Any, Any]:
    """Two documents at once."""
    left = json.loads(first)
    right = json.loads(second)
    return left, right


def sort_by_price(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The bug is in a lambda: an item without a price."""
    return sorted(items, key=lambda item: item["price"])


def sort_by_name(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Another lambda with the same bug shape, elsewhere."""
    return sorted(items, key=lambda item: item["name"])


class ConfigError(Exception):
    """A setting is missing or wrong."""


def read_setting(settings: dict[str, str], name: str) -> int:
    """Chains the cause: KeyError when the setting is missing, ValueError when it is no int."""
    try:
        return int(settings[name])
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"setting {name!r} is missing or not a number") from exc


def reject_order(reason: str) -> None:
    """Raised with a cause that was never raised itself: the cause has no frames."""
    raise ConfigError("order rejected") from ValueError(reason)


def connect(port: int) -> None:
    """The database is down."""
    raise ConnectionRefusedError(f"connection to 10.0.0.7:{port} refused")


def fetch_with_retries(attempts: int, port: int = 5432) -> None:
    """Retries while handling the last failure, so each failure chains the one before."""
    try:
        connect(port)
    except ConnectionRefusedError:
        if attempts <= 1:
            raise
        fetch_with_retries(attempts - 1, port)


def nested(depth: int, leaf: object) -> object:
    """``leaf`` inside ``depth`` one-item lists."""
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def flatten(value: object) -> list[int]:
    """Recursion through a comprehension (two frames a level): a leaf that is no int raises."""
    if isinstance(value, list):
        return [leaf for item in value for leaf in flatten(item)]
    if not isinstance(value, int):
        raise TypeError(f"not a number: {value!r}")
    return [value]


def chain_of(depth: int) -> dict[str, Any]:
    """Nodes linked to their parents, ``depth`` deep; the root has no "parent" key."""
    node: dict[str, Any] = {"name": "root"}
    for level in range(depth):
        node = {"name": f"node-{level}", "parent": node}
    return node


def root_of(node: dict[str, Any]) -> dict[str, Any]:
    """Plain self-recursion; the bug: the root has no parent, so KeyError at the top."""
    parent = node["parent"]
    return root_of(parent)


class ParseError(ValueError):
    """The input is not an expression."""


def parse(text: str) -> object:
    """A recursive-descent parser: expression -> term -> factor -> expression (a 3-cycle)."""
    return parse_expression(list(text))


def parse_expression(tokens: list[str]) -> object:
    """expression := term ('+' term)*"""
    left = parse_term(tokens)
    while tokens and tokens[0] == "+":
        tokens.pop(0)
        left = ("+", left, parse_term(tokens))
    return left


def parse_term(tokens: list[str]) -> object:
    """term := factor ('*' factor)*"""
    left = parse_factor(tokens)
    while tokens and tokens[0] == "*":
        tokens.pop(0)
        left = ("*", left, parse_factor(tokens))
    return left


def parse_factor(tokens: list[str]) -> object:
    """factor := digit | '(' expression ')'"""
    token = tokens.pop(0) if tokens else "end of input"
    if token == "(":
        inner = parse_expression(tokens)
        if not tokens or tokens.pop(0) != ")":
            raise ParseError("expected ')'")
        return inner
    if token.isdigit():
        return int(token)
    raise ParseError(f"unexpected {token!r}")
