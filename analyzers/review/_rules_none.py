"""The review rules about None: a ``.get()`` without a default used in arithmetic, an
ordering comparison or ``int()`` (MR103), and an attribute or item of a value that can be
None (MR104).

"Can be None" is only what the function itself shows: the result of ``re.match`` (or
``search``/``fullmatch``, of ``re`` or of a compiled pattern, unless the pattern matches the
empty text), ``.first()``, ``.one_or_none()``, ``.fetchone()`` (unless the function runs
a query that always returns a row: ``_rules_sql.one_row``), ``find_one()``,
``getattr(x, name, None)``, ``next(it, None)``, and ``.get(key)`` without a default (for
attributes: on a mapping the function knows), directly or through a name every assignment
of which is one of them, and that the function never tests (``if m:``, ``m is None``,
``assert m``, ``m and ...``, ``match m:``)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from typing import Any

from mendline.analyzers.review._inputs import ENVIRON, FORM, JSON, WERKZEUG, path_key, qualname
from mendline.analyzers.review._rules_scope import (
    Hit,
    Located,
    Scope,
    Site,
    Source,
    catches,
    is_none,
)
from mendline.analyzers.review._rules_sql import one_row

__all__ = ["ORDERING", "check_none"]

_ARITHMETIC = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)
ORDERING = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)
_NUMBER_CALLS = frozenset({"int", "float", "decimal.Decimal", "Decimal", "len", "abs", "round"})
_RE = frozenset({"re", "regex"})
_NO_ROW = frozenset({"first", "one_or_none", "scalar_one_or_none", "fetchone"})
_MAPPINGS = frozenset({JSON, FORM, WERKZEUG, ENVIRON})


def check_none(scope: Scope, source: Source) -> Iterator[Hit]:
    """The None rules' hits among ``scope``'s changed subscripts, attributes, operations and
    calls."""
    for site in (*scope.subscripts, *scope.attributes):
        hit = _of_none(site, scope, source)
        if hit is not None:
            yield hit
    for site in scope.operations:
        hit = _arithmetic(site, scope, source)
        if hit is not None:
            yield hit
    for site in scope.calls:
        hit = _number_of_none(site, scope, source)
        if hit is not None:
            yield hit


def _get_call(expr: ast.expr, scope: Scope, mapping: bool) -> ast.Call | None:
    """The ``.get(key)`` (no default, or ``None``) that ``expr`` is; with ``mapping``, only
    on a mapping the function knows."""
    if not isinstance(expr, ast.Call) or not isinstance(expr.func, ast.Attribute):
        return None
    args = expr.args
    if expr.func.attr != "get" or expr.keywords or not 1 <= len(args) <= 2:
        return None
    if len(args) == 2 and not is_none(args[1]):
        return None
    key, receiver = args[0], expr.func.value
    if isinstance(key, ast.Constant) and not isinstance(key.value, str):
        return None  # Queue.get(True), ContextVar.get(0): not a mapping's key
    if not isinstance(key, ast.Constant | ast.Name | ast.Attribute | ast.Subscript | ast.JoinedStr):
        return None
    if _known_mapping(receiver, scope):
        return expr
    if mapping:
        return None
    last = path_key(receiver) or ""
    if last.endswith("var") or last.partition(".")[0] in ("requests", "httpx", "aiohttp"):
        return None
    return None if isinstance(receiver, ast.Name) and receiver.id in scope.clients else expr


def _known_mapping(expr: ast.expr, scope: Scope) -> bool:
    if scope.inputs.origin(expr) in _MAPPINGS:
        return True
    if not isinstance(expr, ast.Name):
        return False
    param = scope.params.get(expr.id)
    if param is not None:
        note = ast.unparse(param.annotation).lower() if param.annotation else ""
        return "dict" in note or "mapping" in note or param is _kwarg(scope)
    values = scope.values(expr.id)
    return values is not None and all(_is_dict(v) for v in values)


def _kwarg(scope: Scope) -> ast.arg | None:
    node = scope.node
    return node.args.kwarg if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) else None


def _is_dict(expr: ast.expr) -> bool:
    if isinstance(expr, ast.Dict | ast.DictComp):
        return True
    return isinstance(expr, ast.Call) and getattr(expr.func, "id", "") == "dict"


def _none_get(expr: ast.expr, scope: Scope) -> tuple[ast.expr, ast.Call] | None:
    """(the operand, the ``.get()`` it comes from) when ``expr`` may be None for want of a
    default: the call itself, or a name only ever assigned such a call, never tested."""
    call = _get_call(expr, scope, mapping=False)
    if call is not None:
        return None if _tested(call, scope) else (expr, call)
    if isinstance(expr, ast.Name) and expr.id not in scope.guards:
        values = scope.values(expr.id)
        calls = [_get_call(v, scope, mapping=False) for v in values or ()]
        found = [c for c in calls if c is not None and not _tested(c, scope)]
        if found and len(found) == len(calls):
            return expr, found[0]
    return None


def _tested(call: ast.Call, scope: Scope) -> bool:
    assert isinstance(call.func, ast.Attribute)
    key = call.args[0]
    container = path_key(call.func.value)
    if path_key(call) in scope.guards:
        return True
    return isinstance(key, ast.Constant) and (container, key.value) in scope.contains


def _arithmetic(site: Site, scope: Scope, source: Source) -> Hit | None:
    node = site.node
    if isinstance(node, ast.BinOp):
        if not isinstance(node.op, _ARITHMETIC):
            return None
        if isinstance(node.op, ast.Mod) and isinstance(node.left, ast.Constant | ast.JoinedStr):
            return None  # "%s" % value formats None fine
        operands = [node.left, node.right]
    elif isinstance(node, ast.AugAssign):
        operands = [node.target, node.value] if isinstance(node.op, _ARITHMETIC) else []
    elif isinstance(node, ast.Compare):
        operands = [node.left, *node.comparators]
        if not any(isinstance(op, ORDERING) for op in node.ops):
            return None
    else:
        return None
    if catches(site.caught, "TypeError"):
        return None
    for operand in operands:
        found = _none_get(operand, scope)
        if found is not None:
            return _none_hit(node, *found, source)
    return None


def _number_of_none(site: Site, scope: Scope, source: Source) -> Hit | None:
    call = site.node
    assert isinstance(call, ast.Call)
    if qualname(call.func, source.aliases) not in _NUMBER_CALLS or not call.args:
        return None
    if catches(site.caught, "TypeError"):
        return None
    found = _none_get(call.args[0], scope)
    return None if found is None else _none_hit(call, *found, source)


def _none_hit(node: Located, operand: ast.expr, get: ast.Call, source: Source) -> Hit:
    assert isinstance(get.func, ast.Attribute)
    key = source.text(get.args[0], 30)
    holder = source.text(get.func.value, 40)
    via = "" if operand is get else f" (`{source.text(operand)}` comes from it)"
    return Hit(
        "MR103",
        node,
        f"`{source.text(get)}` is None when there is no {key}{via}, and `{source.text(node)}` "
        "then raises TypeError.",
        f"Give `.get()` the default that fits (`{holder}.get({key}, 0)`), or handle the "
        "missing value before this line.",
    )


# -- MR104: attribute of None ------------------------------------------------------------


def _may_be_none(expr: ast.expr, scope: Scope, source: Source) -> str | None:
    """Why ``expr`` can be None (naming what returns it), or None."""
    if isinstance(expr, ast.Name):
        values = scope.values(expr.id)
        if not values or expr.id in scope.guards:
            return None
        reasons = [_may_be_none(v, scope, source) for v in values]
        return reasons[0] if all(reasons) else None
    if not isinstance(expr, ast.Call) or path_key(expr) in scope.guards:
        return None
    func, args = expr.func, expr.args
    name = qualname(func, source.aliases) or ""
    text = f"`{source.text(expr, 48)}`"
    module, _, attr = name.rpartition(".")
    if attr in ("match", "search", "fullmatch"):
        if module in _RE:
            compiled = expr if args and attr != "fullmatch" else None
        elif isinstance(func, ast.Attribute) and _compiled(func.value, scope, source):
            compiled = _compile_call(func.value, scope, source) if attr != "fullmatch" else None
        else:
            return None
        if compiled is not None and _matches_empty(compiled, source):
            return None  # the pattern matches the empty text: every text has a match
        return f"{text} returns None when the text does not match"
    if name in ("getattr", "next") and len(args) == (3 if name == "getattr" else 2):
        return f"{text} returns None" if is_none(args[-1]) else None
    if not isinstance(func, ast.Attribute):
        return None
    if func.attr in _NO_ROW and not args:
        if func.attr in ("fetchone", "first") and one_row(func.value, scope, source):
            return None  # the query always returns a row (SELECT count(*) ...)
        return f"{text} returns None when there is no row"
    if func.attr == "find_one":
        return f"{text} returns None when nothing matches"
    if _get_call(expr, scope, mapping=True) is not None and not _tested(expr, scope):
        return f"{text} returns None when the key is missing"
    return None


def _compiled(expr: ast.expr, scope: Scope, source: Source) -> bool:
    """True when ``expr`` is a compiled regular expression."""
    return _compile_call(expr, scope, source) is not None


def _compile_call(expr: ast.expr, scope: Scope, source: Source) -> ast.Call | None:
    """The ``re.compile(...)`` call ``expr`` comes from (directly, as a module constant or
    as the only value of a local name)."""
    if isinstance(expr, ast.Call):
        name = qualname(expr.func, source.aliases)
        return expr if name in ("re.compile", "regex.compile") else None
    if not isinstance(expr, ast.Name):
        return None
    if expr.id in source.patterns:
        return source.patterns[expr.id]
    values = scope.values(expr.id)
    calls = [_compile_call(v, scope, source) for v in values or () if isinstance(v, ast.Call)]
    return calls[0] if calls and len(calls) == len(values or ()) and all(calls) else None


def _matches_empty(call: ast.Call, source: Source) -> bool:
    """True when the pattern of ``call`` (``re.compile(p, flags)`` or ``re.match(p, s,
    flags)``) is a constant that matches the empty text, so that ``match`` and ``search``
    always find something."""
    if not call.args or not isinstance(call.args[0], ast.Constant):
        return False
    pattern = call.args[0].value
    if not isinstance(pattern, str | bytes) or len(pattern) > 2000:
        return False
    is_compile = (qualname(call.func, source.aliases) or "").endswith("compile")
    given = [
        *call.args[1 if is_compile else 2 :][:1],
        *(k.value for k in call.keywords if k.arg == "flags"),
    ]
    flags = 0
    for flag in given:
        for part in _flag_names(flag):
            value = getattr(re.RegexFlag, part, None) if part.isupper() else None
            if value is None:
                return False
            flags |= value
    try:
        compiled: re.Pattern[Any] = re.compile(pattern, flags)
        return compiled.match(pattern[:0]) is not None
    except (re.error, RecursionError, OverflowError, ValueError):
        return False


def _flag_names(expr: ast.expr) -> list[str]:
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.BitOr):
        return _flag_names(expr.left) + _flag_names(expr.right)
    return [expr.attr if isinstance(expr, ast.Attribute) else "?"]


def _of_none(site: Site, scope: Scope, source: Source) -> Hit | None:
    node = site.node
    assert isinstance(node, ast.Attribute | ast.Subscript)
    exception = "AttributeError" if isinstance(node, ast.Attribute) else "TypeError"
    if catches(site.caught, exception):
        return None
    reason = _may_be_none(node.value, scope, source)
    if reason is None:
        return None
    value = source.text(node.value, 40)
    via = f"`{value}` can be None: {reason}" if isinstance(node.value, ast.Name) else reason
    use = f"`.{node.attr}`" if isinstance(node, ast.Attribute) else "the subscript"
    return Hit(
        "MR104",
        node,
        f"{via[0].upper()}{via[1:]}, and `{source.text(node)}` then raises {exception}.",
        f"Handle None before {use}: `if {value} is None:` answer or raise what that case "
        "means (a 404, a clear error).",
    )
