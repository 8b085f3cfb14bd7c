"""The built-in review rules run on a snippet of code, as a review of it as a new file (or
with some lines changed) runs them: what the rule tables of the tests compare."""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterable

from mendline.analyzers.review import check_python, source_lines
from mendline.schemas.review import ReviewComment

#: A path in neither a tests nor a bench folder.
PATH = "shop/views.py"


def snippet(code: str) -> str:
    """``code`` without its common indentation nor its first newline: line 1 is the line
    after the opening quotes."""
    return textwrap.dedent(code).removeprefix("\n")


def comments(
    code: str, changed: Iterable[int] | None = None, path: str = PATH
) -> list[ReviewComment]:
    """The built-in rules' comments on ``code`` (taken as written: no dedent), every line
    changed unless ``changed`` says which."""
    lines = source_lines(code)
    lines_changed = frozenset(range(1, len(lines) + 1) if changed is None else changed)
    return check_python(path, ast.parse(code), lines, lines_changed)


def found(code: str, changed: Iterable[int] | None = None) -> list[tuple[str, int]]:
    """(rule, line) of each comment on the snippet ``code``, in the rules' order."""
    return [(c.rule_id, c.line) for c in comments(snippet(code), changed)]
