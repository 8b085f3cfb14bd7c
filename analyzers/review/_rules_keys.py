"""The review rules about keys: a key looked up in a request's parameters or in parsed JSON,
with nothing to handle its absence (MR102), and the environment read in a request handler
(MR109)."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from mendline.analyzers.review._inputs import FORM, JSON, path_key, qualname
from mendline.analyzers.review._rules_scope import Hit, Scope, Site, Source, catches

__all__ = ["check_keys"]


def check_keys(scope: Scope, source: Source) -> Iterator[Hit]:
    """The key rules' hits among ``scope``'s changed subscripts."""
    for site in scope.subscripts:
        hit = _key(site, scope, source) or _environ(site, scope, source)
        if hit is not None:
            yield hit


def _key(site: Site, scope: Scope, source: Source) -> Hit | None:
    node = site.node
    assert isinstance(node, ast.Subscript)
    key = node.slice
    if not (isinstance(key, ast.Constant) and isinstance(key.value, str)) or scope.checked_all:
        return None  # a list index or a computed key: not clearly a mapping's
    origin = scope.inputs.origin(node.value)
    if origin not in (JSON, FORM) or catches(site.caught, "KeyError"):
        return None
    container = path_key(node.value)
    if scope.checked_from(node.value) or _key_tested(container, key.value, scope):
        return None
    what = "the JSON" if origin == JSON else "the request"
    holder, wanted = source.text(node.value, 40), source.text(key, 30)
    return Hit(
        "MR102",
        node,
        f"`{source.text(node)}` raises KeyError when {what} has no {wanted} key, and nothing "
        "here handles it.",
        f"Use `{holder}.get({wanted})` and handle a missing value, or validate the input where "
        "it comes in (a schema) and answer a 400 that names the missing field.",
    )


def _environ(site: Site, scope: Scope, source: Source) -> Hit | None:
    node = site.node
    assert isinstance(node, ast.Subscript)
    if not scope.is_handler or qualname(node.value, source.aliases) != "os.environ":
        return None
    key = node.slice
    container = path_key(node.value)
    if catches(site.caught, "KeyError") or (
        isinstance(key, ast.Constant) and _key_tested(container, key.value, scope)
    ):
        return None
    name = source.text(key, 40)
    return Hit(
        "MR109",
        node,
        f"`{source.text(node)}` reads the environment in the request handler `{scope.name}`: "
        "if the variable is not set, every request fails with KeyError instead of the app "
        "failing once at startup.",
        f"Read {name} once at startup (a settings object) and fail there with a clear "
        f"message, or use `os.environ.get({name}, default)` where a default is right.",
    )


def _key_tested(container: str | None, key: object, scope: Scope) -> bool:
    """True when the function tests that ``container`` has ``key`` (``key in container``,
    ``if container.get(key):``, ``container.setdefault(key, ...)``) or has each of the keys
    a loop goes through (``[k for k in REQUIRED if k not in container]``)."""
    if container is None:
        return False
    return (
        (container, key) in scope.contains
        or container in scope.contained
        or f"{container}.get({key!r})" in scope.guards
    )
