"""What the review rules read of a module and of a function besides its bindings: the
module's imports, compiled patterns and app-wide error handlers; the guards and validations
in a test; what mutates a name or an attribute of ``self``; whether a function is a request
handler."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from mendline.analyzers.imports import bind_imports
from mendline.analyzers.review._inputs import path_key, qualname
from mendline.analyzers.review._rules_scope import Located, Scope, Source, exception_names, is_none

__all__ = [
    "CLIENTS",
    "MUTATORS",
    "REQUEST_VERBS",
    "SUPPRESSORS",
    "VALIDATORS",
    "add_path",
    "fixed_collection",
    "is_handler",
    "item_root",
    "mutated_attributes",
    "note_guards",
    "note_mutation",
    "numeric_route_keys",
    "prepare",
    "self_attribute",
    "validating",
]

#: What constructs an HTTP client, and whose.
CLIENTS = {
    "requests.Session": "requests",
    "requests.session": "requests",
    "httpx.Client": "httpx",
    "httpx.AsyncClient": "httpx",
    "aiohttp.ClientSession": "aiohttp",
}
# Methods that change a list, dict, set or deque in place.
MUTATORS = frozenset(
    {
        "append",
        "extend",
        "insert",
        "pop",
        "popitem",
        "remove",
        "clear",
        "update",
        "setdefault",
        "add",
        "discard",
        "sort",
        "reverse",
        "appendleft",
        "extendleft",
        "difference_update",
        "intersection_update",
        "symmetric_difference_update",
    }
)
REQUEST_VERBS = frozenset(
    {"get", "post", "put", "patch", "delete", "head", "options", "request", "ws_connect"}
)
VALIDATORS = frozenset({"isdigit", "isdecimal", "isnumeric", "isidentifier", "isalnum"})
_REGEX = frozenset({"fullmatch", "match", "search"})
# Calls in a test that look at their argument's type or presence, and predicates whose
# name says they validate it (``is_whole(text)``, ``valid_email(x)``).
_TESTS = frozenset({"isinstance", "len", "bool", "type", "hasattr", "callable"})
_PREDICATES = ("is", "valid", "check", "has")
_ROUTES = frozenset(
    {
        "route",
        "get",
        "post",
        "put",
        "patch",
        "delete",
        "head",
        "options",
        "api_route",
        "websocket",
        "api_view",
        "view_config",
        "action",
    }
)
SUPPRESSORS = frozenset({"contextlib.suppress", "suppress", "pytest.raises"})
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
# A path parameter whose pattern admits digits only: {id:\d+}, {id:[0-9]+}, {id:int}.
_DIGITS_ONLY = re.compile(r"\{(\w+):(?:\\d\+|\[0-9\]\+|int)\}")
_EVERYTHING = frozenset({"Exception", "BaseException", "*"})


def prepare(tree: ast.Module, source: Source) -> None:
    """Read what the module's top level says for every function in it: its imports, its
    compiled patterns, the exceptions an app-wide handler answers."""
    source.tree = tree
    handlers = (
        "errorhandler",
        "exception_handler",
        "register_error_handler",
        "add_exception_handler",
    )
    for stmt in _top_level(tree.body):
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            bind_imports(stmt, source.aliases)
        elif (
            isinstance(stmt, ast.Assign)
            and isinstance(stmt.value, ast.Call)
            and qualname(stmt.value.func, source.aliases) in ("re.compile", "regex.compile")
        ):
            source.patterns.update(
                (t.id, stmt.value) for t in stmt.targets if isinstance(t, ast.Name)
            )
        calls: list[ast.expr] = []
        if isinstance(stmt, _FUNCTIONS):
            calls = stmt.decorator_list
        elif isinstance(stmt, ast.Expr):
            calls = [stmt.value]
        for call in calls:
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute):
                named = call.args[:1] if call.func.attr in handlers else []
                if named and isinstance(named[0], ast.Name | ast.Attribute):
                    # A handler of every exception only words the 500; it handles nothing.
                    source.handled.update(exception_names(named[0]) - _EVERYTHING)


def _top_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    for stmt in body:
        yield stmt
        if isinstance(stmt, ast.If | ast.Try):
            yield from _top_level([*stmt.body, *stmt.orelse])
            if isinstance(stmt, ast.Try):
                for handler in stmt.handlers:
                    yield from _top_level(handler.body)


def mutated_attributes(tree: ast.AST) -> set[str]:
    """The attributes ``X`` of ``self`` that some code of ``tree`` changes in place:
    ``self.X.append(...)``, ``self.X[k] = v``, ``del self.X[k]``, ``self.X += ...``."""
    found: set[str] = set()
    for node in ast.walk(tree):
        func = node.func if isinstance(node, ast.Call) else None
        if isinstance(func, ast.Attribute) and func.attr in MUTATORS:
            found.add(self_attribute(func.value) or "")
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign | ast.Delete):
            targets = [t.value for t in node.targets if isinstance(t, ast.Subscript)]
        elif isinstance(node, ast.AugAssign):
            target = node.target
            targets = [target.value if isinstance(target, ast.Subscript) else target]
        found.update(self_attribute(t) or "" for t in targets)
    found.discard("")
    return found


def self_attribute(expr: ast.expr) -> str | None:
    """``X`` for ``self.X``, else None."""
    if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):
        return expr.attr if expr.value.id == "self" else None
    return None


def item_root(expr: ast.expr) -> str | None:
    """The name ``expr`` is, or the name a chain of its items starts from (``d`` of
    ``d[k]`` and ``d[k][j]``); None for anything else."""
    while isinstance(expr, ast.Subscript):
        expr = expr.value
    return expr.id if isinstance(expr, ast.Name) else None


def note_mutation(scope: Scope, name: str, node: Located) -> None:
    """Note that ``node`` mutates ``name`` or lets it escape (the first such in the source
    is the one a message shows)."""
    known = scope.mutated.get(name)
    if known is None or getattr(node, "lineno", 0) < getattr(known, "lineno", 0):
        scope.mutated[name] = node


def add_path(expr: ast.expr, into: set[str]) -> None:
    key = path_key(expr)
    if key is not None:
        into.add(key)


def note_guards(test: ast.expr, scope: Scope) -> None:
    """Note the paths ``test`` checks for None or truthiness (``x``, ``not x``, ``x is
    None``, ``x == None``, ``len(x)``, the target of a walrus) among the scope's guards,
    and those it validates (``isinstance(x, ...)``, a regular expression's match of ``x``)."""
    into = scope.guards
    if isinstance(test, ast.BoolOp):
        for value in test.values:
            note_guards(value, scope)
    elif isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        note_guards(test.operand, scope)
    elif isinstance(test, ast.NamedExpr):
        into.add(test.target.id)
        note_guards(test.value, scope)
    elif isinstance(test, ast.Compare):
        left = test.left
        for op, right in zip(test.ops, test.comparators, strict=True):
            none = is_none(left) or is_none(right)
            if isinstance(op, ast.Is | ast.IsNot) or (none and isinstance(op, ast.Eq | ast.NotEq)):
                note_guards(right if is_none(left) else left, scope)
            left = right
    elif isinstance(test, ast.Call):
        func, args = test.func, test.args
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in _TESTS and args:
            add_path(args[0], into)
        if name in _REGEX or name.startswith(_PREDICATES):
            for arg in args:
                add_path(arg, scope.validated)
        add_path(test, into)
    else:
        add_path(test, into)


def fixed_collection(expr: ast.expr) -> bool:
    """True for a collection the code fixes: a tuple, list or set of constants, or an
    UPPER_CASE name (``ALLOWED_COLUMNS``); a value found in one is one of its items."""
    if isinstance(expr, ast.Tuple | ast.List | ast.Set):
        return all(isinstance(item, ast.Constant) for item in expr.elts)
    last = expr.attr if isinstance(expr, ast.Attribute) else getattr(expr, "id", "")
    return bool(last) and last.strip("_").isupper()


def is_handler(node: ast.FunctionDef | ast.AsyncFunctionDef, params: dict[str, ast.arg]) -> bool:
    """A request handler: decorated as a route or view, or taking a ``request``; not a
    settings or configuration function."""
    name = node.name.lower()
    if "settings" in name or "config" in name:
        return False
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        last = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if last in _ROUTES:
            return True
    return "request" in params or "req" in params


def numeric_route_keys(node: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """The path parameters the function's route decorator only lets digits into:
    ``@routes.get("/users/{user_id:\\d+}")`` gives ``{"user_id"}``."""
    keys: set[str] = set()
    for decorator in node.decorator_list:
        for arg in decorator.args if isinstance(decorator, ast.Call) else ():
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                keys.update(m.group(1) for m in _DIGITS_ONLY.finditer(arg.value))
    return keys


def validating(decorator: ast.expr) -> bool:
    """A decorator that validates the request (a schema, ``@validate``, ``@expects_json``)."""
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    name = (qualname(target, {}) or "").lower()
    return any(
        word in name for word in ("valid", "schema", "expects_json", "use_args", "use_kwargs")
    )
