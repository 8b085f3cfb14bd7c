"""The review rules about handlers and definitions: a bare ``except:`` (MR105), an ``except
Exception: pass`` (MR106), a mutable default the function changes (MR111), and recursion
without a depth limit over JSON from outside (MR112).

On recursion: ``json.loads`` itself refuses input nested deeper than Python's recursion
limit allows where it parses, so a function recursing one frame per level over what it
returned, from the same depth, is bounded by the parse (tried: a plain ``for`` loop
recursion walks the deepest JSON json.loads accepts). A recursive call made from a
generator expression or a comprehension spends two frames per level and overflows at half
that depth: only those are flagged, and only where the module is seen passing JSON from
outside to the function.

Unlike flake8-bugbear's B006, a mutable default is only flagged when the sharing shows: the
function changes the parameter (or an item of it: ``groups[key].append(...)``) in place,
or stores it on ``self`` as an attribute that some
code of the module changes in place; never when it only reads it. A handler with a comment
on its ``except`` line (or on its ``pass``) says why it is there, and is not flagged."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass

from mendline.analyzers.review._inputs import JSON, qualname
from mendline.analyzers.review._rules_facts import mutated_attributes
from mendline.analyzers.review._rules_scope import Hit, Scope, Source, exception_names
from mendline.analyzers.review._rules_walk import Walk

__all__ = ["Recursion", "check_defs", "fed_from_json", "recursions"]

_MUTABLE = {
    "list": "[]",
    "dict": "{}",
    "set": "set()",
    "bytearray": "bytearray()",
    "collections.defaultdict": "defaultdict(...)",
    "collections.OrderedDict": "OrderedDict()",
    "collections.Counter": "Counter()",
    "collections.deque": "deque()",
}
_LITERALS = {
    ast.List: "[]",
    ast.ListComp: "[]",
    ast.Dict: "{}",
    ast.DictComp: "{}",
    ast.Set: "set()",
    ast.SetComp: "set()",
}
_DEPTH_WORDS = ("depth", "level", "limit", "remaining", "budget", "max", "height", "ttl", "hops")
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


@dataclass(frozen=True)
class Recursion:
    """A changed call of a function to itself on part of its argument, from a frame of its
    own, with no depth limit: flagged once a caller is seen giving it JSON from outside."""

    scope: Scope
    call: ast.Call
    part: ast.expr


def check_defs(scope: Scope, source: Source) -> Iterator[Hit]:
    """The handler and mutable-default hits of ``scope``."""
    for site in scope.handlers:
        handler = site.node
        assert isinstance(handler, ast.ExceptHandler)
        hit = _bare(handler, source) or _silenced(handler, source)
        if hit is not None:
            yield hit
    for name, default in scope.defaults:
        hit = _mutable_default(name, default, scope, source)
        if hit is not None:
            yield hit


def _bare(handler: ast.ExceptHandler, source: Source) -> Hit | None:
    if handler.type is not None or source.commented(handler.lineno, handler.lineno):
        return None
    body = [n for stmt in handler.body for n in ast.walk(stmt)]
    if any(isinstance(n, ast.Raise) for n in body):
        return None
    return Hit(
        "MR105",
        handler,
        "`except:` catches everything, KeyboardInterrupt, SystemExit and asyncio's "
        "CancelledError included, and does not re-raise: a failure here is hidden and the "
        "task cannot be stopped.",
        "Catch what you expect (`except ValueError:`), or `except Exception:` and log it "
        "with `log.exception(...)`.",
    )


def _silenced(handler: ast.ExceptHandler, source: Source) -> Hit | None:
    if handler.type is None:
        return None
    if not exception_names(handler.type) & {"Exception", "BaseException"}:
        return None
    if not all(_empty(stmt) for stmt in handler.body):
        return None
    if source.commented(handler.lineno, handler.end_lineno or handler.lineno):
        return None
    line = source.lines[handler.lineno - 1].strip() if handler.lineno <= len(source.lines) else ""
    body = "pass" if isinstance(handler.body[0], ast.Pass) else "..."
    return Hit(
        "MR106",
        handler,
        f"`{line}` with only `{body}` hides every failure of its `try` block: nothing is "
        "logged or counted, so nobody learns that it fails.",
        "Catch the exceptions you expect and handle them, or log the others "
        "(`log.exception(...)`); if ignoring them is right, say why in a comment on the "
        "`except` line.",
    )


def _empty(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Pass) or (
        isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
    )


def _mutable_default(name: str, default: ast.expr, scope: Scope, source: Source) -> Hit | None:
    if not source.touches(default):
        return None
    empty = _LITERALS.get(type(default))
    if empty is None and isinstance(default, ast.Call):
        empty = _MUTABLE.get(qualname(default.func, source.aliases) or "")
        if empty is not None and (default.args or default.keywords):
            empty = source.text(default, 40)  # made the same way per call: defaultdict(list)
    use = scope.mutated.get(name)
    if empty is None or name in scope.rebound:
        return None
    if use is not None:
        kind = f"changes it (`{source.text(use, 48)}`)"
    elif name in scope.stored:
        attribute = scope.stored[name]
        if source.mutated_attributes is None:
            source.mutated_attributes = mutated_attributes(source.tree or ast.Module([], []))
        if attribute not in source.mutated_attributes:
            return None
        kind = f"stores it as `self.{attribute}`, which the class changes in place"
    else:
        return None
    return Hit(
        "MR111",
        default,
        f"The default `{source.text(default, 40)}` of `{name}` is made once, when "
        f"`def {scope.name}` runs, and shared by every call; this function {kind}, so one "
        "call's data leaks into the next.",
        f"Default to None and make a new one per call: `{name}=None`, then "
        f"`if {name} is None: {name} = {empty}`.",
    )


def recursions(scope: Scope, source: Source) -> list[Recursion]:
    """The changed calls of ``scope``'s function to itself, made from a comprehension, a
    generator or a lambda, that descend into its argument (an item, an attribute, a loop
    variable over it) where no parameter bounds the depth."""
    if not isinstance(scope.node, _FUNCTIONS) or not scope.self_calls:
        return []
    params = set(scope.params) - {"self", "cls"}
    if any(word in p.lower() for p in params for word in _DEPTH_WORDS):
        return []
    derived = set(params)
    grew = True
    while grew:
        grew = False
        for name, values in scope.bindings.items():
            if name not in derived and any(
                _root(v) in derived and (element or not isinstance(v, ast.Name))
                for element, v in values
            ):
                derived.add(name)
                grew = True
    framed = _framed_calls(scope.node)
    found = []
    for call in scope.self_calls:
        if not source.touches(call) or id(call) not in framed:
            continue
        for arg in (*call.args, *(k.value for k in call.keywords)):
            element = isinstance(arg, ast.Name) and arg.id in derived - params
            if element or (not isinstance(arg, ast.Name) and _root(arg) in derived):
                found.append(Recursion(scope, call, arg))
                break
    return found


def _framed_calls(function: ast.AST) -> set[int]:
    """The ids of the calls that run in a frame of their own inside ``function``: in a
    generator expression, a comprehension (a frame up to Python 3.11) or a lambda, except
    in the first iterable, which the enclosing frame evaluates."""
    inside: set[int] = set()
    for node in ast.walk(function):
        if isinstance(node, ast.Lambda):
            parts: list[ast.AST] = [node.body]
        elif isinstance(node, ast.GeneratorExp | ast.ListComp | ast.SetComp | ast.DictComp):
            first, *rest = node.generators
            parts = [*first.ifs, *rest]
            parts += [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        else:
            continue
        inside.update(id(n) for part in parts for n in ast.walk(part) if isinstance(n, ast.Call))
    return inside


def _root(expr: ast.expr) -> str | None:
    """The name a path of items, attributes and method calls starts from."""
    while True:
        if isinstance(expr, ast.Subscript | ast.Attribute):
            expr = expr.value
        elif isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute):
            expr = expr.func.value
        else:
            return expr.id if isinstance(expr, ast.Name) else None


def fed_from_json(
    recursion: Recursion, tree: ast.Module, module: Scope, source: Source
) -> Hit | None:
    """The hit of ``recursion`` when a caller in the module (outside the function) gives the
    function JSON from outside; None when none is seen."""
    target = recursion.scope.node
    assert isinstance(target, _FUNCTIONS)
    for owner, scope in _callers(target, tree, module, source):
        for node in ast.walk(owner):
            if not isinstance(node, ast.Call) or not _calls(node, target.name):
                continue
            if any(scope.inputs.origin(a) == JSON for a in node.args):
                call = recursion.call
                return Hit(
                    "MR112",
                    call,
                    f"`{source.text(call)}` recurses from inside a comprehension or generator, "
                    f"two stack frames for each level of the JSON `{target.name}` is given, "
                    f"with no depth limit, and line {node.lineno} gives it JSON from outside: "
                    "json.loads accepts nesting up to Python's recursion limit, and half of "
                    "that raises RecursionError here.",
                    "Add a depth parameter and refuse input nested deeper than a limit "
                    "(`if depth > 100: raise ValueError(...)`), recurse from a plain `for` "
                    "loop, or walk the data with an explicit stack.",
                )
    return None


def _callers(
    target: ast.AST, tree: ast.Module, module: Scope, source: Source
) -> Iterator[tuple[ast.AST, Scope]]:
    """Each function of the module but ``target`` (and the module's own statements), with
    its facts, that calls ``target`` by name."""
    name = getattr(target, "name", "")
    statements = [s for s in tree.body if not isinstance(s, (*_FUNCTIONS, ast.ClassDef))]
    if any(_calls(n, name) for s in statements for n in ast.walk(s)):
        yield ast.Module(statements, []), module
    for node in ast.walk(tree):
        if node is target or not isinstance(node, _FUNCTIONS):
            continue
        if any(_calls(n, name) for n in ast.walk(node)):
            yield node, Walk(source, lambda _: None).function(node)


def _calls(node: ast.AST, name: str) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    return getattr(func, "id", None) == name or getattr(func, "attr", None) == name
