"""The review rule about datetimes: a naive datetime compared with or subtracted from an
aware one (MR110), where the code shows which is which: ``datetime.now()``, ``utcnow()``,
``today()``, ``utcfromtimestamp()`` and ``fromtimestamp()``/``datetime(...)``/``.replace()``
without a zone are naive; ``now(tz)``, ``fromtimestamp(ts, tz)``, ``datetime(..., tzinfo=)``,
``.replace(tzinfo=...)``, ``.astimezone()`` and ``fromisoformat()`` of a constant with an
offset are aware; a name is what all its assignments are. Anything else (a parameter, an
ORM's ``created_at``) is not judged."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from mendline.analyzers.review._inputs import qualname
from mendline.analyzers.review._rules_none import ORDERING
from mendline.analyzers.review._rules_scope import Hit, Scope, Site, Source, is_none

__all__ = ["awareness", "check_datetimes"]

_NOW = frozenset({"datetime.datetime.now", "datetime.now"})
_NAIVE = frozenset(
    {
        "datetime.datetime.utcnow",
        "datetime.utcnow",
        "datetime.datetime.today",
        "datetime.today",
        "datetime.datetime.utcfromtimestamp",
        "datetime.utcfromtimestamp",
    }
)
_FROMTIMESTAMP = frozenset({"datetime.datetime.fromtimestamp", "datetime.fromtimestamp"})
_FROMISO = frozenset({"datetime.datetime.fromisoformat", "datetime.fromisoformat"})
_CONSTRUCTORS = frozenset({"datetime.datetime", "datetime"})
NAIVE, AWARE = "naive", "aware"


def check_datetimes(scope: Scope, source: Source) -> Iterator[Hit]:
    """The datetime rule's hits among ``scope``'s changed operations."""
    for site in scope.operations:
        hit = _datetimes(site, scope, source)
        if hit is not None:
            yield hit


def awareness(expr: ast.expr, scope: Scope, source: Source, depth: int = 0) -> str | None:
    """``naive`` or ``aware`` when the code shows which ``expr`` is, else None."""
    if isinstance(expr, ast.Name):
        values = scope.values(expr.id) if depth < 3 else None
        kinds = {awareness(v, scope, source, depth + 1) for v in values or ()}
        return kinds.pop() if len(kinds) == 1 else None
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add | ast.Sub):
        right = expr.right
        delta = isinstance(right, ast.Call) and (qualname(right.func, {}) or "").endswith(
            "timedelta"
        )
        if isinstance(expr.op, ast.Sub) and not delta:
            return None
        return awareness(expr.left, scope, source, depth) or (
            awareness(right, scope, source, depth) if isinstance(expr.op, ast.Add) else None
        )
    if not isinstance(expr, ast.Call):
        return None
    name = qualname(expr.func, source.aliases) or ""
    keywords = {k.arg: k.value for k in expr.keywords}
    if name in _NAIVE:
        return NAIVE
    if name in _NOW:
        return _zone(expr.args[0] if expr.args else keywords.get("tz"))
    if name in _FROMTIMESTAMP:
        return _zone(expr.args[1] if len(expr.args) > 1 else keywords.get("tz"))
    if name in _CONSTRUCTORS and expr.args:
        return _zone(expr.args[7] if len(expr.args) > 7 else keywords.get("tzinfo"))
    if name in _FROMISO and expr.args and isinstance(expr.args[0], ast.Constant):
        text = str(expr.args[0].value)
        offset = text.endswith("Z") or (len(text) > 10 and text[-6] in "+-" and text[-3] == ":")
        return AWARE if offset else NAIVE
    if isinstance(expr.func, ast.Attribute):
        if expr.func.attr == "replace" and "tzinfo" in keywords:
            return _zone(keywords["tzinfo"])
        if expr.func.attr == "astimezone":
            return AWARE
    return None


def _zone(tz: ast.expr | None) -> str:
    return NAIVE if tz is None or is_none(tz) else AWARE


def _datetimes(site: Site, scope: Scope, source: Source) -> Hit | None:
    node = site.node
    pairs: list[tuple[ast.expr, ast.cmpop | None, ast.expr]]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub):
        pairs = [(node.left, None, node.right)]
    elif isinstance(node, ast.Compare):
        operands = [node.left, *node.comparators]
        pairs = [(operands[i], op, operands[i + 1]) for i, op in enumerate(node.ops)]
    else:
        return None
    for left, op, right in pairs:
        if op is not None and not isinstance(op, (*ORDERING, ast.Eq, ast.NotEq)):
            continue
        kinds = (awareness(left, scope, source), awareness(right, scope, source))
        if kinds not in ((NAIVE, AWARE), (AWARE, NAIVE)):
            continue
        naive, aware = (left, right) if kinds[0] == NAIVE else (right, left)
        if op is None:
            outcome = "subtracting one from the other raises TypeError"
        elif isinstance(op, ast.Eq | ast.NotEq):
            outcome = "they never compare equal, whatever the times"
        else:
            outcome = "comparing them raises TypeError"
        return Hit(
            "MR110",
            node,
            f"`{source.text(naive, 40)}` is a naive datetime and `{source.text(aware, 40)}` an "
            f"aware one: {outcome}.",
            "Use aware datetimes throughout: `datetime.now(UTC)` (`from datetime import UTC`) "
            "instead of `datetime.now()` or `datetime.utcnow()`.",
        )
    return None
