"""The review rule about SQL: a query built with an f-string, ``%``, ``.format()`` or ``+``
from a value that is not a constant, passed to ``execute()``, ``fetch*()``, ``raw()`` or
SQLAlchemy's ``text()`` (MR108). Only text that looks like SQL counts, and an interpolation
is safe when it cannot carry SQL: a constant, an UPPER_CASE name, an enum member's
``.value``, a number (``int()``, ``len()``, a parameter annotated ``int``), a quoted
identifier, a value validated by a regular expression or found in a fixed collection
(``if col not in ("name", "email"): raise ...``), a ``join`` of placeholders, or a
parameter every call in the module gives a constant (SQL text the module writes itself).

Also which queries always return a row (``one_row``), after which MR104 does not take
``.fetchone()`` for None."""

from __future__ import annotations

import ast
import re
from typing import TypeGuard

from mendline.analyzers.review._inputs import path_key
from mendline.analyzers.review._rules_scope import Hit, Scope, Site, Source

__all__ = ["one_row", "sql_hit"]

_SQL_METHODS = frozenset(
    {
        "execute",
        "executemany",
        "executescript",
        "execute_fetchall",
        "fetch",
        "fetchrow",
        "fetchval",
        "raw",
        "read_sql",
        "read_sql_query",
        "mogrify",
    }
)
_SQL_FUNCTIONS = frozenset(
    {"sqlalchemy.text", "sqlalchemy.sql.text", "sqlalchemy.sql.expression.text"}
)
_SQL = re.compile(
    r"\b(?:select\b.*\bfrom|insert\s+into|update\b.*\bset\b|delete\s+from|replace\s+into"
    r"|(?:create|drop|alter|truncate)\s+(?:table|index|view|database|schema|role|user)\b"
    r"|where\b.*[=<>]|order\s+by|group\s+by|values\s*\()",
    re.IGNORECASE | re.DOTALL,
)
# The constant text of a join that only makes placeholders: ", ".join(["%s"] * n).
_PLACEHOLDERS = re.compile(r"[\s,()%s?$:\d]*")
# A query that always returns a row: an aggregate without GROUP BY (count, sum, min, max,
# avg, exists), a SELECT without FROM, an INSERT ... VALUES ... RETURNING that cannot skip
# its row (no DO NOTHING, no WHERE, no OR IGNORE).
_ONE_ROW = re.compile(
    r"\s*(?:select\s+(?:count|sum|min|max|avg|exists)\s*\((?!.*\b(?:group\s+by|having|over"
    r"|limit|offset|union|intersect|except)\b)"
    r"|select\b(?!.*\b(?:from|where|having|limit|offset|union|intersect|except)\b)"
    r"|insert\s+into\b(?!.*\b(?:select|where|nothing)\b).*\bvalues\b.*\breturning\b)",
    re.IGNORECASE | re.DOTALL,
)
_NUMERIC = frozenset({"int", "float", "len", "bool", "round", "abs", "range", "min", "max"})
_SAFE_WORDS = ("quote", "ident", "escape", "placeholder")


def sql_hit(
    call: ast.Call, name: str | None, site: Site, scope: Scope, source: Source
) -> Hit | None:
    func = call.func
    method = func.attr if isinstance(func, ast.Attribute) else None
    if method not in _SQL_METHODS and name not in _SQL_FUNCTIONS:
        return None
    query = _query(call)
    if query is None:
        return None
    built = _built(query, scope, source)
    if built is None:
        return None
    how, part = built
    value = source.text(part, 40)
    return Hit(
        "MR108",
        call,
        f"`{source.text(call, 60)}` runs SQL built with {how} from `{value}`: a quote in the "
        "value breaks the query, and a crafted one rewrites it (SQL injection).",
        f"Pass `{value}` as a query parameter (`%s` or `?`; `$1` with asyncpg) among the "
        "call's arguments; if it is a table or column name, check it against a fixed list "
        "and quote it (psycopg's `sql.Identifier`).",
    )


def one_row(receiver: ast.expr, scope: Scope, source: Source) -> bool:
    """True when ``receiver`` (what ``.fetchone()`` is called on) holds the result of a
    query that always returns a row (``SELECT count(*) ...``): ``db.execute(SQL)`` itself,
    a name only ever assigned one, or a cursor every ``execute`` of which in the function
    runs such a query."""
    values = (scope.values(receiver.id) or []) if isinstance(receiver, ast.Name) else [receiver]
    runs = [v for v in values if _executes(v)]
    if not values or len(runs) < len(values):
        key = path_key(receiver)
        node = scope.node
        first, last = getattr(node, "lineno", 0), getattr(node, "end_lineno", None) or 1 << 30
        runs = [
            call
            for call in source.calls_of("execute")
            if first <= call.lineno <= last
            and isinstance(call.func, ast.Attribute)
            and key is not None
            and path_key(call.func.value) == key
        ]
    return bool(runs) and all(_one_row_query(_query(call), scope) for call in runs)


def _callee(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _executes(expr: ast.expr) -> TypeGuard[ast.Call]:
    return (
        isinstance(expr, ast.Call)
        and isinstance(expr.func, ast.Attribute)
        and expr.func.attr == "execute"
    )


def _query(call: ast.Call) -> ast.expr | None:
    """The query ``call`` runs: its first argument or its ``query=`` (``sql=``...)."""
    query = call.args[0] if call.args else None
    for keyword in call.keywords:
        if keyword.arg in ("query", "sql", "statement", "operation"):
            query = keyword.value
    return query


def _one_row_query(query: ast.expr | None, scope: Scope) -> bool:
    """True for a query (its text, ``text(...)`` of it, or a name only ever assigned one)
    that always returns a row."""
    if query is None:
        return False
    if isinstance(query, ast.Name):
        queries = [*(scope.values(query.id) or []), *scope.extended.get(query.id, [])]
    else:
        queries = [query]
    for one in queries:
        if isinstance(one, ast.Call) and one.args and _callee(one) == "text":
            one = one.args[0]  # SQLAlchemy's text("...")
        if _ONE_ROW.match(_constant_text(one)) is None:
            return False
    return bool(queries)


def _built(query: ast.expr, scope: Scope, source: Source) -> tuple[str, ast.expr] | None:
    """How ``query`` interpolates a value that is not a constant into text that looks like
    SQL, and that value; None for a constant or parameterised query."""
    if isinstance(query, ast.Name):
        values = scope.values(query.id)
        if not values:
            return None
        values = values + scope.extended.get(query.id, [])
        text = "".join(_constant_text(v) for v in values)
        for value in values:
            found = _interpolation(value, scope, source)
            if found is not None and _SQL.search(text):
                return found
        return None
    found = _interpolation(query, scope, source)
    return found if found is not None and _SQL.search(_constant_text(query)) else None


def _interpolation(expr: ast.expr, scope: Scope, source: Source) -> tuple[str, ast.expr] | None:
    if isinstance(expr, ast.JoinedStr):
        unsafe = _unsafe_parts(expr, scope, source)
        return ("an f-string", unsafe[0]) if unsafe else None
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Mod) and _is_text(expr.left):
        right = expr.right
        values = right.elts if isinstance(right, ast.Tuple) else [right]
        unsafe = [v for v in values if not _safe(v, scope, source)]
        return ("`%`", unsafe[0]) if unsafe else None
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
        terms = _terms(expr)
        if any(_is_text(t) for t in terms):
            unsafe = [t for t in terms if not _is_text(t) and not _safe(t, scope, source)]
            unsafe += [
                u
                for t in terms
                if isinstance(t, ast.JoinedStr)
                for u in _unsafe_parts(t, scope, source)
            ]
            return ("`+`", unsafe[0]) if unsafe else None
    if (
        isinstance(expr, ast.Call)
        and isinstance(expr.func, ast.Attribute)
        and expr.func.attr == "format"
        and _is_text(expr.func.value)
    ):
        values = [*expr.args, *(k.value for k in expr.keywords)]
        unsafe = [v for v in values if not _safe(v, scope, source)]
        return ("`.format()`", unsafe[0]) if unsafe else None
    return None


def _unsafe_parts(expr: ast.JoinedStr, scope: Scope, source: Source) -> list[ast.expr]:
    return [
        v.value
        for v in expr.values
        if isinstance(v, ast.FormattedValue) and not _safe(v.value, scope, source)
    ]


def _given_constants(param: str, scope: Scope, source: Source) -> bool:
    """True when every call of ``scope``'s function in the module (one at least) gives its
    parameter ``param`` a constant: SQL text the module writes itself."""
    node = scope.node
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return False
    positional = [a.arg for a in (*node.args.posonlyargs, *node.args.args)]
    calls = source.calls_of(node.name) if positional else []
    for call in calls:
        given = next((k.value for k in call.keywords if k.arg == param), None)
        if given is None and param in positional:
            index = positional.index(param)
            bound = isinstance(call.func, ast.Attribute) and positional[0] in ("self", "cls")
            # (a method called through an object: its first parameter is bound)
            index -= bound
            if any(isinstance(a, ast.Starred) for a in call.args[: index + 1]):
                return False
            given = call.args[index] if 0 <= index < len(call.args) else None
        if given is None or not _constant(given):
            return False
    return bool(calls)


def _constant(expr: ast.expr) -> bool:
    if isinstance(expr, ast.Constant):
        return True
    if isinstance(expr, ast.Name | ast.Attribute):
        return (expr.id if isinstance(expr, ast.Name) else expr.attr).strip("_").isupper()
    if isinstance(expr, ast.JoinedStr):
        return all(_constant(v.value) for v in expr.values if isinstance(v, ast.FormattedValue))
    if isinstance(expr, ast.BinOp):
        return _constant(expr.left) and _constant(expr.right)
    return isinstance(expr, ast.IfExp) and _constant(expr.body) and _constant(expr.orelse)


def _terms(expr: ast.expr) -> list[ast.expr]:
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
        return _terms(expr.left) + _terms(expr.right)
    return [expr]


def _is_text(expr: ast.expr) -> bool:
    return isinstance(expr, ast.JoinedStr) or (
        isinstance(expr, ast.Constant) and isinstance(expr.value, str)
    )


def _constant_text(expr: ast.expr) -> str:
    """The constant text of a string expression, interpolations left out."""
    if isinstance(expr, ast.Constant):
        return expr.value if isinstance(expr.value, str) else ""
    if isinstance(expr, ast.JoinedStr):
        return " ".join(_constant_text(v) for v in expr.values)
    if isinstance(expr, ast.BinOp):
        return _constant_text(expr.left) + " " + _constant_text(expr.right)
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute):
        return _constant_text(expr.func.value)
    return ""


def _safe(expr: ast.expr, scope: Scope, source: Source, depth: int = 0) -> bool:
    """True for a value that cannot carry SQL: a constant, a CONSTANT name, a number, a
    quoted identifier, a validated name, a join of placeholders."""
    if isinstance(expr, ast.Constant):
        return True
    if isinstance(expr, ast.Name | ast.Attribute):
        last = expr.id if isinstance(expr, ast.Name) else expr.attr
        if last.strip("_").isupper() or path_key(expr) in scope.validated:
            return True
        if last in ("value", "name") and isinstance(expr, ast.Attribute):
            base = expr.value  # an enum member's: Status.OPEN.value
            if isinstance(base, ast.Attribute) and base.attr.strip("_").isupper():
                return True
        if isinstance(expr, ast.Name) and depth < 3:
            param = scope.params.get(expr.id)
            if param is not None:
                note = param.annotation
                numeric = isinstance(note, ast.Name) and note.id in ("int", "float", "bool")
                return numeric or _given_constants(expr.id, scope, source)
            values = scope.values(expr.id)
            return values is not None and all(_safe(v, scope, source, depth + 1) for v in values)
        return False
    if isinstance(expr, ast.JoinedStr):
        return not _unsafe_parts(expr, scope, source)
    if isinstance(expr, ast.IfExp):
        return _safe(expr.body, scope, source, depth) and _safe(expr.orelse, scope, source, depth)
    if isinstance(expr, ast.BoolOp):
        return all(_safe(v, scope, source, depth) for v in expr.values)
    if isinstance(expr, ast.Call):
        func = expr.func
        callee = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if callee in _NUMERIC or any(word in callee.lower() for word in _SAFE_WORDS):
            return True
        if callee == "join" and isinstance(func, ast.Attribute) and _is_text(func.value):
            nodes = ast.walk(expr.args[0]) if expr.args else ()
            texts = [_constant_text(n) for n in nodes if isinstance(n, ast.expr) and _is_text(n)]
            return bool(texts) and all(_PLACEHOLDERS.fullmatch(t) for t in texts)
    return False
