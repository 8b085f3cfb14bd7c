"""Learned review rules (pure): the culprit line of an event, the comments a diff earns by
writing the shape of a line that failed in production again, and a rule's metadata."""

from __future__ import annotations

import ast
import bisect
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from mendline.analyzers.review._shapes import (
    MIN_WEIGHT,
    normal_shape,
    own_expressions,
    shape_head,
    shape_of,
)
from mendline.schemas.printable import printable
from mendline.schemas.review import LearnedRule, ReviewComment, ReviewRule

__all__ = ["MIN_WEIGHT", "culprit_line", "learned_comments", "learned_review_rule", "shape_of"]

_TITLE_WIDTH = 120


def culprit_line(event: Mapping[str, Any]) -> str | None:
    """The source line where an event's error happened, as the app recorded it: the innermost
    in-app frame of its root cause (the first exception of the chain that has in-app frames:
    root cause first; of an exception group, its first sub-exception's). None when that
    frame is not of a Python file or has no line."""
    for exc in event.get("exceptions") or ():
        frames = [f for f in exc.get("frames") or () if isinstance(f, Mapping) and f.get("in_app")]
        if not frames:
            continue
        frame = frames[-1]
        line, name = frame.get("context_line"), frame.get("filename")
        if isinstance(name, str) and name.endswith((".py", ".pyi")) and isinstance(line, str):
            return line.strip() or None
        return None
    return None


def learned_comments(
    rules: Sequence[LearnedRule],
    path: str,
    tree: ast.Module,
    lines: Sequence[str],
    changed: frozenset[int],
) -> list[ReviewComment]:
    """A warning on each changed line (after the change, ``lines[0]`` is line 1) where an
    expression has the shape of a learned rule: the first changed line of that expression,
    once a rule and line. Code in the body of a ``try`` with handlers is left alone: its
    failure is handled. Disabled rules are not applied."""
    index: dict[str, LearnedRule] = {}
    for rule in sorted(rules, key=lambda r: r.number):
        if rule.disabled_at is None:
            index.setdefault(rule.shape, rule)
    if not index or not changed:
        return []
    heads = _rule_heads(index)
    edited = sorted(changed)
    comments: dict[tuple[str, int], ReviewComment] = {}
    for stmt in _unguarded(tree.body, guarded=False):
        for expr in own_expressions(stmt):
            if _first_in(edited, expr.lineno, expr.end_lineno or expr.lineno) is None:
                continue
            for node in ast.walk(expr):
                if not isinstance(node, ast.expr) or (heads and shape_head(node) not in heads):
                    continue
                try:
                    found = index.get(ast.unparse(normal_shape(node)))
                except RecursionError:  # nested deeper than a culprit line ever is
                    continue
                line = _first_in(edited, node.lineno, node.end_lineno or node.lineno)
                if found is None or line is None or (found.id, line) in comments:
                    continue
                comments[found.id, line] = _comment(found, path, node, line, lines)
    return sorted(comments.values(), key=lambda c: (c.line, c.column or 0, c.rule_id))


def learned_review_rule(rule: LearnedRule) -> ReviewRule:
    """A learned rule's metadata, as outputs list it (SARIF's rules)."""
    title = _one_line(rule.title)
    return ReviewRule(
        id=rule.id,
        name=f"learned-rule-{rule.number}",
        severity="warning",
        summary=f'the shape of the line that caused issue #{rule.issue_id} "{title}"',
        help=(
            f"Learned from a finding marked right on issue #{rule.issue_id}: its culprit line"
            f" `{_one_line(rule.example)}` failed in production. A changed line that writes"
            f" the same shape (`{rule.shape}`, whatever its local names) is flagged. To fix:"
            f" {_suggestion(rule)}. If it does not apply to this project, disable it:"
            f" `mendline review rules disable {rule.id}`."
        ),
        source="learned",
    )


def _rule_heads(index: Mapping[str, LearnedRule]) -> set[tuple[str, str]] | None:
    """The heads of the rules' shapes; None (no filter) if one does not read as Python."""
    heads = set()
    for shape in index:
        try:
            heads.add(shape_head(ast.parse(shape, mode="eval").body))
        except (SyntaxError, ValueError, RecursionError):
            return None
    return heads


def _unguarded(body: Sequence[ast.stmt], *, guarded: bool) -> Iterator[ast.stmt]:
    """The statements of ``body`` and of the bodies within it, but those in the body of a
    ``try`` that has handlers (a function defined there runs later: it is not guarded)."""
    for stmt in body:
        if not guarded:
            yield stmt
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield from _unguarded(stmt.body, guarded=False)
            continue
        if isinstance(stmt, ast.Try | ast.TryStar):
            yield from _unguarded(stmt.body, guarded=guarded or bool(stmt.handlers))
            for handler in stmt.handlers:
                yield from _unguarded(handler.body, guarded=guarded)
            yield from _unguarded(stmt.orelse + stmt.finalbody, guarded=guarded)
            continue
        for field in ("body", "orelse", "finalbody"):
            inner = getattr(stmt, field, None)
            if isinstance(inner, list):
                yield from _unguarded(inner, guarded=guarded)
        for case in getattr(stmt, "cases", ()):
            yield from _unguarded(case.body, guarded=guarded)


def _first_in(edited: Sequence[int], first: int, last: int) -> int | None:
    """The first of the sorted ``edited`` lines from ``first`` to ``last``, or None."""
    at = bisect.bisect_left(edited, first)
    return edited[at] if at < len(edited) and edited[at] <= last else None


def _comment(
    rule: LearnedRule, path: str, node: ast.expr, line: int, lines: Sequence[str]
) -> ReviewComment:
    title = _one_line(rule.title)
    end = node.end_lineno or line
    return ReviewComment(
        rule_id=rule.id,
        source="learned",
        severity="warning",
        path=path,
        line=line,
        message=(
            f'this is the shape of the line that caused issue #{rule.issue_id} "{title}" in'
            f" production ({rule.shape}; learned rule {rule.id})"
        ),
        code=lines[line - 1].strip() if 0 < line <= len(lines) else "",
        end_line=end if end > line else None,
        column=node.col_offset + 1 if line == node.lineno else None,
        suggestion=_suggestion(rule),
        issue_id=rule.issue_id,
        link=rule.link,
    )


def _suggestion(rule: LearnedRule) -> str:
    """How the issue was fixed when that is known, else what guards a shape of its kind."""
    if rule.fix and rule.fix.strip():
        return f"issue #{rule.issue_id} was fixed so: {_one_line(rule.fix, 300)}"
    try:
        root = ast.parse(rule.shape, mode="eval").body
    except (SyntaxError, ValueError, RecursionError):
        root = None
    if isinstance(root, ast.Subscript):
        return "check that the key or index is there first, or use .get() with a default"
    if isinstance(root, ast.BinOp) and isinstance(root.op, ast.Div | ast.FloorDiv | ast.Mod):
        return "check that the divisor is not zero (and the operands not None) first"
    if isinstance(root, ast.BinOp | ast.Compare):
        return "check that the operands are not None (and of the types expected) first"
    if isinstance(root, ast.Attribute):
        return "check that the object is not None before reading its attribute"
    if isinstance(root, ast.Call):
        return "validate what the call is given, or handle the error it raised in production"
    return f"guard it as issue #{rule.issue_id} needed"


def _one_line(text: str, width: int = _TITLE_WIDTH) -> str:
    """``text`` on one line, control characters made visible, cut to ``width``."""
    line = printable(" ".join(text.split()))
    return line if len(line) <= width else line[: width - 1] + "…"
