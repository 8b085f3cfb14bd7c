"""One-line mechanical fixes of a source line, and the unified diffs that carry them.

A fix is made only when the line alone shows it is sound: the line parses as a statement and
the expression to change is found in it, in a place where the change keeps the code valid.
A diff keeps the line's own indentation, which our processor sends. A line from a producer that
strips it is re-indented as a statement directly in the body of its function (4 spaces a
level); nested deeper in blocks, it gets a diff that does not apply, which ``patch`` and
``git apply`` refuse cleanly.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping, Sequence

__all__ = ["PATCHES", "Patch", "diff", "indentation", "relative_path"]

#: Makes the fixed line from the stripped source line and the fields of the finding, or None.
Patch = Callable[[str, Mapping[str, str]], str | None]

# Expressions that `.get(...)` or a call can be appended to without parentheses.
_ATOMS = (ast.Name, ast.Attribute, ast.Subscript, ast.Call)


def get_instead_of_subscript(line: str, fields: Mapping[str, str]) -> str | None:
    """``x["k"]`` read where KeyError 'k' was raised: ``x.get("k")``.

    Not when the item is then indexed, called or read from (None would fail there next),
    nor when the line also assigns or deletes it.
    """
    try:
        key = ast.literal_eval(fields.get("key", ""))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    tree = _parse(line)
    if tree is None:
        return None
    parents = _parents(tree)
    found: list[ast.Subscript] = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Subscript)
            and isinstance(node.slice, ast.Constant)
            and type(node.slice.value) is type(key)
            and node.slice.value == key
        ):
            continue
        if not isinstance(node.ctx, ast.Load) or _used_further(node, parents):
            return None
        if not isinstance(node.value, _ATOMS):
            return None
        found.append(node)
    edits = [
        (node, f"{_segment(line, node.value)}.get({_segment(line, node.slice)})") for node in found
    ]
    return _replace(line, edits)


def next_with_default(line: str, fields: Mapping[str, str]) -> str | None:
    """``next(it)`` where StopIteration was raised: ``next(it, None)``; one such call only."""
    tree = _parse(line)
    if tree is None:
        return None
    parents = _parents(tree)
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "next"
        and len(node.args) == 1
        and not node.keywords
        and not isinstance(node.args[0], ast.Starred)
    ]
    if len(calls) != 1 or _used_further(calls[0], parents):
        return None
    call = calls[0]
    return _replace(line, [(call, f"next({_segment(line, call.args[0])}, None)")])


def iterate_over_copy(line: str, fields: Mapping[str, str]) -> str | None:
    """``for k in d:`` / ``for k, v in d.items():`` that saw d change: iterate over a list."""
    tree = _parse(line)
    if tree is None or not tree.body or not isinstance(tree.body[0], ast.For):
        return None
    iterable = tree.body[0].iter
    target = iterable
    if (
        isinstance(iterable, ast.Call)
        and isinstance(iterable.func, ast.Attribute)
        and iterable.func.attr in {"items", "keys", "values"}
        and not iterable.args
        and not iterable.keywords
    ):
        target = iterable.func.value
    if not isinstance(target, ast.Name | ast.Attribute):
        return None
    return _replace(line, [(iterable, f"list({_segment(line, iterable)})")])


#: The fixes a rule may name, by name.
PATCHES: dict[str, Patch] = {
    "get-instead-of-subscript": get_instead_of_subscript,
    "iterate-over-copy": iterate_over_copy,
    "next-default": next_with_default,
}


def diff(path: str, lineno: int, old: str, new: str) -> str:
    """A unified diff replacing line ``lineno`` of ``path`` (for ``patch -p1``)."""
    return f"--- a/{path}\n+++ b/{path}\n@@ -{lineno},1 +{lineno},1 @@\n-{old}\n+{new}\n"


def relative_path(filename: str, module: str | None) -> str:
    """The file's path from its top-level package: ``.../app/orders.py`` of ``app.orders``
    gives ``app/orders.py``; the file's name alone when the module does not say."""
    path = filename.replace("\\", "/")
    name = path.rpartition("/")[2]
    if module and module != "__main__":
        stem = module.replace(".", "/")
        for tail in (f"{stem}.py", f"{stem}/__init__.py"):
            if path == tail or path.endswith("/" + tail):
                return tail
    return name


def indentation(function: str) -> str:
    """The indentation of a statement directly in the body of ``function`` (a qualified name):
    4 spaces for each enclosing def or class; lambdas and comprehensions add none."""
    depth = sum(
        1 for part in function.split(".") if part and not (part[0] == "<" and part[-1] == ">")
    )
    return "    " * depth


def _parse(line: str) -> ast.Module | None:
    """The line as a statement; a block opener (``for ...:``) gets an empty body."""
    source = line + " pass" if line.endswith(":") else line
    try:
        source.encode("utf-8")  # offsets are counted in UTF-8: a lone surrogate has none
        return ast.parse(source)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _used_further(node: ast.expr, parents: Mapping[ast.AST, ast.AST]) -> bool:
    """Whether the value of ``node`` is indexed, called or has an attribute read."""
    parent = parents.get(node)
    return (isinstance(parent, ast.Subscript | ast.Attribute) and parent.value is node) or (
        isinstance(parent, ast.Call) and parent.func is node
    )


def _segment(line: str, node: ast.AST) -> str:
    return ast.get_source_segment(line, node) or ""


def _replace(line: str, edits: Sequence[tuple[ast.expr, str]]) -> str | None:
    """Apply replacements of single-line nodes, given by their UTF-8 offsets, right to left."""
    if not edits:
        return None
    ordered = sorted(edits, key=lambda edit: edit[0].col_offset)
    end = 0
    for node, _ in ordered:
        if node.lineno != 1 or node.end_lineno != 1 or node.end_col_offset is None:
            return None
        if node.col_offset < end:  # nested or overlapping: not a one-place change
            return None
        end = node.end_col_offset
    data = line.encode("utf-8")
    for node, text in reversed(ordered):
        data = data[: node.col_offset] + text.encode("utf-8") + data[node.end_col_offset :]
    return data.decode("utf-8")
