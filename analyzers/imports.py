"""What Python's import statements bind: each local name to the dotted name it stands for,
so that code reading a tree knows ``sp.run`` is ``subprocess.run`` and ``get`` is
``requests.get`` (the fix policy's dangerous calls, the review's rules)."""

from __future__ import annotations

import ast

__all__ = ["bind_imports"]


def bind_imports(node: ast.Import | ast.ImportFrom, names: dict[str, str]) -> None:
    """Record in ``names`` each name ``node`` binds, to the dotted name it stands for:
    ``import a.b`` binds ``a``; ``import a.b as c``, ``c`` to ``a.b``; ``from a import b``,
    ``b`` to ``a.b``. Relative imports and ``*`` bind nothing that can be named here."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.asname:
                names[alias.asname] = alias.name
            else:
                top = alias.name.partition(".")[0]
                names[top] = top
    elif node.module and not node.level:
        for alias in node.names:
            if alias.name != "*":
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
