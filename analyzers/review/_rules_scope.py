"""What the review rules know of a file and of each function in it: the changed lines, the
imports, and per function (flow-insensitively) its bindings, guards, validations, mutations,
HTTP clients and the places a rule may report on, each with the exceptions caught there."""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mendline.analyzers.review._inputs import Binding, Inputs, path_key

__all__ = ["Hit", "Located", "Scope", "Site", "Source", "catches", "exception_names", "is_none"]

#: A node with a place in the source (lines and columns).
Located = ast.expr | ast.stmt | ast.excepthandler

# Exceptions a handler may name, with the classes that catch them.
_ANCESTORS = {
    "ValueError": ("ValueError",),
    "JSONDecodeError": ("JSONDecodeError", "ValueError"),
    "InvalidOperation": ("InvalidOperation", "DecimalException", "ArithmeticError"),
    "KeyError": ("KeyError", "LookupError"),
    "TypeError": ("TypeError",),
    "AttributeError": ("AttributeError",),
}
_EVERYTHING = ("Exception", "BaseException", "*")


@dataclass(frozen=True)
class Hit:
    """One thing a rule found: the rule, the node it is about, what is wrong (naming the
    code) and a concrete change."""

    rule_id: str
    node: Located
    message: str
    suggestion: str


@dataclass(frozen=True, slots=True)
class Site:
    """A node a rule may report on: the exception names caught around it in its function
    (``*`` for a handler whose classes are not known), and ``sync`` when it is in a lambda,
    which its function does not run itself."""

    node: Located
    caught: frozenset[str]
    sync: bool = False


def exception_names(expr: ast.expr | None) -> frozenset[str]:
    """The class names a handler's type catches: ``BaseException`` for a bare ``except:``,
    ``*`` for a name that is not a class (``except RETRIABLE:``, a tuple kept in a
    constant), whose classes the rules cannot see."""
    if expr is None:
        return frozenset({"BaseException"})
    if isinstance(expr, ast.Tuple):
        return frozenset().union(*map(exception_names, expr.elts))
    name = expr.attr if isinstance(expr, ast.Attribute) else getattr(expr, "id", "*")
    return frozenset({"*" if name.lstrip("_").isupper() else name})


def catches(caught: frozenset[str], exception: str) -> bool:
    """True when a handler among ``caught`` catches ``exception`` (one of those this module
    knows the ancestors of)."""
    if not caught:
        return False
    return any(name in caught for name in _ANCESTORS[exception] + _EVERYTHING)


def is_none(expr: ast.expr | None) -> bool:
    """True for the constant None."""
    return isinstance(expr, ast.Constant) and expr.value is None


class Source:
    """A file under review: its lines (after the change), the changed line numbers, the
    names its imports bind (``{"dt": "datetime"}``), its module-level compiled patterns
    and the exceptions an app-wide handler answers (``@app.errorhandler(ValueError)``)."""

    def __init__(self, lines: Sequence[str], changed: frozenset[int]) -> None:
        self.lines = lines
        self.tree: ast.Module | None = None
        self._calls: dict[str, list[ast.Call]] | None = None
        self.aliases: dict[str, str] = {}
        self.patterns: dict[str, ast.Call] = {}
        #: The attributes of ``self`` some method of the module mutates (read when needed).
        self.mutated_attributes: set[str] | None = None
        self.handled: set[str] = set()
        # counts[n]: how many changed lines are at or before line n (O(1) range tests).
        size = len(lines) + 2
        counts = [0] * (size + 1)
        running = 0
        for number in range(size + 1):
            running += number in changed
            counts[number] = running
        self._counts = counts
        self._last = size

    def calls_of(self, name: str) -> list[ast.Call]:
        """The calls in the module of a function or method named ``name``."""
        if self._calls is None:
            self._calls = {}
            for node in ast.walk(self.tree) if self.tree is not None else ():
                if isinstance(node, ast.Call):
                    func = node.func
                    callee = (
                        func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                    )
                    self._calls.setdefault(callee, []).append(node)
        return self._calls.get(name, [])

    def touches(self, node: ast.AST) -> bool:
        """True when one of ``node``'s lines was changed."""
        first = getattr(node, "lineno", 0)
        last = min(getattr(node, "end_lineno", None) or first, self._last)
        return first <= last and self._counts[last] > self._counts[max(first, 1) - 1]

    def touches_lines(self, first: int, last: int) -> bool:
        """True when one of the lines ``first`` to ``last`` was changed."""
        last = min(last, self._last)
        return first <= last and self._counts[last] > self._counts[max(first, 1) - 1]

    def text(self, node: Located, limit: int = 72) -> str:
        """The source of ``node`` (on one line, shortened to ``limit`` characters)."""
        first, last = node.lineno, node.end_lineno or node.lineno
        start, end = node.col_offset, node.end_col_offset
        if last > len(self.lines) or end is None:
            text = ast.unparse(node)
        elif first == last:
            text = _cut(self.lines[first - 1], start, end)
        else:
            parts = [_cut(self.lines[first - 1], start, None)]
            parts += self.lines[first : last - 1]
            parts.append(_cut(self.lines[last - 1], 0, end))
            text = " ".join(" ".join(parts).split())
        return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."

    def commented(self, first: int, last: int) -> bool:
        """True when one of the lines ``first`` to ``last`` carries a comment."""
        return any("#" in line for line in self.lines[first - 1 : last])


def _cut(line: str, start: int, end: int | None) -> str:
    # ast's columns count UTF-8 bytes.
    if line.isascii():
        return line[start:end]
    return line.encode()[start:end].decode(errors="replace")


@dataclass(eq=False)
class Scope:
    """One function (or the module, or a class body) as the rules read it: its parameters,
    every binding of each name, the paths it tests for None or truthiness (``guards``), the
    ``(container, key)`` pairs it tests with ``in`` or sets with ``setdefault``
    (``contains``), the containers it tests with ``in`` for a key that varies
    (``contained``), the paths it validates (``.isdigit()``,
    ``isinstance``, a regex) or ``checked`` with a schema, the names it mutates or lets
    escape, its HTTP clients, its calls of itself, and the sites the rules look at."""

    node: ast.AST
    name: str
    is_async: bool = False
    is_handler: bool = False
    checked_all: bool = False
    #: Path parameters the route only lets digits into.
    numeric_keys: set[str] = field(default_factory=set)
    params: dict[str, ast.arg] = field(default_factory=dict)
    bindings: dict[str, list[Binding]] = field(default_factory=dict)
    rebound: set[str] = field(default_factory=set)
    guards: set[str] = field(default_factory=set)
    contains: set[tuple[str, object]] = field(default_factory=set)
    contained: set[str] = field(default_factory=set)
    validated: set[str] = field(default_factory=set)
    checked: set[str] = field(default_factory=set)
    mutated: dict[str, Located] = field(default_factory=dict)
    #: Names stored as an attribute of ``self`` (``self.items = items``), with the attribute.
    stored: dict[str, str] = field(default_factory=dict)
    clients: dict[str, str] = field(default_factory=dict)
    client_calls: list[tuple[str, ast.Call]] = field(default_factory=list)
    self_calls: list[ast.Call] = field(default_factory=list)
    defaults: list[tuple[str, ast.expr]] = field(default_factory=list)
    calls: list[Site] = field(default_factory=list)
    subscripts: list[Site] = field(default_factory=list)
    attributes: list[Site] = field(default_factory=list)
    operations: list[Site] = field(default_factory=list)
    handlers: list[Site] = field(default_factory=list)
    #: The values a name is extended with (``query += " AND ..."``).
    extended: dict[str, list[ast.expr]] = field(default_factory=dict)
    inputs: Inputs = field(default_factory=lambda: Inputs({}))

    def bind(self, name: str, value: ast.expr, element: bool = False) -> None:
        """Record that ``name`` is assigned ``value`` (an element of it: ``element``)."""
        self.bindings.setdefault(name, []).append((element, value))

    def resolve(self, aliases: Mapping[str, str]) -> None:
        """Work out the function's external names, once its body is read."""
        local = frozenset(self.params) | frozenset(self.bindings)
        self.inputs = Inputs(aliases, local, self.clients)
        self.inputs.taint(self.bindings)

    def checked_from(self, expr: ast.expr) -> bool:
        """True when ``expr``, or a value it is an item, attribute or method call of, is
        ``checked`` with a schema: ``validate(data, SCHEMA)`` covers ``data["a"]["b"]``."""
        while self.checked:
            if path_key(expr) in self.checked:
                return True
            if isinstance(expr, ast.Subscript | ast.Attribute):
                expr = expr.value
            elif isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute):
                expr = expr.func.value
            else:
                return False
        return False

    def values(self, name: str) -> list[ast.expr] | None:
        """The values ``name`` is assigned as a whole, or None when it is a parameter, is
        never assigned, or is also bound otherwise (a loop target, unpacking)."""
        bound = self.bindings.get(name)
        if not bound or name in self.params or any(element for element, _ in bound):
            return None
        return [value for _, value in bound]
