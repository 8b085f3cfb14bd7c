"""The functions a change touches: each changed line placed in the innermost function (or
class body, or the module) around it, named as Python's ``co_qualname`` names it, which is
what production frames carry."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from mendline.schemas.review import ChangedFunction

__all__ = ["MODULE", "changed_functions", "scopes"]

#: The qualname of lines outside any function or class: the module's own code.
MODULE = "<module>"

_Scope = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def scopes(tree: ast.Module) -> Iterator[tuple[str, int, int, _Scope]]:
    """Every function and class of ``tree`` as (qualname, first line with its decorators,
    last line, node), outer ones before the ones inside them."""

    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, int, int, _Scope]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, _Scope):
                qualname = prefix + child.name
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                yield qualname, first, child.end_lineno or child.lineno, child
                inner = qualname + (".<locals>." if not isinstance(child, ast.ClassDef) else ".")
                yield from walk(child, inner)
            else:
                yield from walk(child, prefix)

    yield from walk(tree, "")


def changed_functions(
    path: str, tree: ast.Module, changed: frozenset[int], line_count: int
) -> list[ChangedFunction]:
    """The functions (and class bodies, and the module's own code as ``<module>``) that hold
    the ``changed`` lines of ``tree``, in the order of their first line."""
    size = max(line_count, max(changed, default=0), 1)
    module = (MODULE, 1, max(line_count, 1))
    # Pre-order: a scope inside another comes after it and overwrites its lines, so each
    # line ends with its innermost scope.
    owner: list[tuple[str, int, int]] = [module] * (size + 1)
    for qualname, first, last, _ in scopes(tree):
        scope = (qualname, first, last)
        for line in range(first, min(last, size) + 1):
            owner[line] = scope
    grouped: dict[tuple[str, int, int], list[int]] = {}
    for line in changed:
        grouped.setdefault(owner[line], []).append(line)
    return [
        ChangedFunction(path, qualname, first, last, tuple(sorted(lines)))
        for (qualname, first, last), lines in sorted(grouped.items(), key=lambda i: i[0][1:])
    ]
