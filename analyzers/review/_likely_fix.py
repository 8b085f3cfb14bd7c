"""What the production context reads in changed code: lines compared whitespace aside,
whether a line does enough to be compared at all, the qualnames of a file's functions, and
the guards a change adds around a line that failed.

A line is *significant* when, without its comment, it has at least 6 characters and a call,
a subscript, an attribute or an operator: ``return None`` or ``pass`` never match a culprit
or a patch. A *guard* of a failed line is, on a line of the function: an ``if`` (or a
conditional expression) testing ``is None``, ``is not None``, ``not``, ``isinstance``,
``hasattr`` or ``in`` of a name the failed line reads; a ``try`` with handlers whose body
holds the failed line; a ``.get(key, default)`` on a name the failed line reads."""

from __future__ import annotations

import ast
import builtins
import keyword
import re
import textwrap
from collections.abc import Iterator, Sequence

from mendline.schemas.printable import printable

__all__ = ["guards", "normal", "qualnames", "shown", "significant"]

_SPACE = re.compile(r"\s+")
_STRINGS = re.compile(r"""(?:'[^']*'|"[^"]*")""")
_CHAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_DOING = re.compile(r"[(\[.+\-*/%<>=&|^~@]")
# Names that say nothing of which value a guard protects.
_NOT_VALUES = frozenset(dir(builtins)) | frozenset(keyword.kwlist) | {"self", "cls"}


def normal(line: str) -> str:
    """``line`` with its whitespace runs made one space, none at its ends."""
    return " ".join(line.split())


def significant(line: str) -> bool:
    """Whether a (normalised) line does enough to be compared with a culprit or a patch."""
    code = line.split("#", 1)[0].strip()
    return len(code) >= 6 and _DOING.search(code) is not None


def shown(text: str, width: int) -> str:
    """Text from events on one line (whitespace runs one space), every control character
    escaped, clipped to ``width`` characters with an ellipsis."""
    line = printable(_SPACE.sub(" ", text).strip())
    return line if len(line) <= width else line[: width - 1] + "…"


def qualnames(lines: Sequence[str]) -> list[str] | None:
    """The qualname of every function of a file's source, as ``co_qualname`` spells it
    (``Orders.create``, ``outer.<locals>.inner``); None when it cannot be parsed."""
    names: list[str] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                names.append(prefix + child.name)
                visit(child, f"{prefix}{child.name}.<locals>.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    try:
        visit(ast.parse("\n".join(lines)), "")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    return names


def guards(source: Sequence[str], first: int, failed: str) -> list[tuple[int, str]]:
    """The guards of the (normalised) ``failed`` line in a function's ``source`` (its lines
    after the change, the first of them line ``first`` of the file), each with its line in
    the file and what it is, in the order of the lines; none when the source cannot be
    parsed on its own."""
    try:
        tree = ast.parse(textwrap.dedent("\n".join(source)))
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return []
    return sorted(_guards(tree, source, first - 1, failed))


def _guards(
    tree: ast.AST, source: Sequence[str], offset: int, failed: str
) -> Iterator[tuple[int, str]]:
    reads = _values(failed)
    for node in ast.walk(tree):
        if isinstance(node, ast.If | ast.IfExp) and _guard_test(node.test):
            test = ast.unparse(node.test)
            if reads & _values(test):
                yield node.lineno + offset, f"a check ({shown(test, 60)})"
        elif isinstance(node, ast.Try | ast.TryStar) and node.handlers:
            body = source[node.body[0].lineno - 1 : node.body[-1].end_lineno or 0]
            if failed in map(normal, body):
                yield node.lineno + offset, "a try/except around it"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            defaults = len(node.args) == 2 or any(k.arg == "default" for k in node.keywords)
            if (
                node.func.attr == "get"
                and defaults
                and reads & _values(ast.unparse(node.func.value))
            ):
                yield node.lineno + offset, "a .get() with a default"


def _guard_test(test: ast.expr) -> bool:
    """Whether a condition tests for None, emptiness, a type or membership."""
    if isinstance(test, ast.BoolOp):
        return any(_guard_test(value) for value in test.values)
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return True
    if isinstance(test, ast.Compare):
        for op, right in zip(test.ops, test.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn):
                return True
            none = isinstance(right, ast.Constant) and right.value is None
            if isinstance(op, ast.Is | ast.IsNot) and none:
                return True
        return False
    return (
        isinstance(test, ast.Call)
        and isinstance(test.func, ast.Name)
        and test.func.id in ("isinstance", "hasattr")
    )


def _values(text: str) -> set[str]:
    """The names and dotted names a line reads (``self.items`` and ``self``...), without
    string literals, builtins, keywords, ``self`` and ``cls`` alone."""
    found: set[str] = set()
    for chain in _CHAIN.findall(_STRINGS.sub('""', text.split("#", 1)[0])):
        parts = chain.split(".")
        found.update(".".join(parts[: n + 1]) for n in range(len(parts)))
    return found - _NOT_VALUES
