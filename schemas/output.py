"""Programs' output as mendline keeps it: when too long, its head and its tail, with a line
that says how much was left out between them."""

from __future__ import annotations

__all__ = ["join_trimmed", "trim_output"]


def trim_output(text: str, limit: int) -> str:
    """``text`` when it has at most ``limit`` characters; else its first ``limit // 2`` and
    its last ``limit - limit // 2``, joined by ``join_trimmed``."""
    if len(text) <= limit:
        return text
    head = limit // 2
    tail = limit - head
    return join_trimmed(text[:head], text[len(text) - tail :], len(text) - limit)


def join_trimmed(head: str, tail: str, omitted: int) -> str:
    """The head and tail of an output with ``omitted`` characters between them left out:
    ``[... N characters left out ...]`` on a line of its own between them."""
    if omitted <= 0:
        return head + tail
    return f"{head}\n[... {omitted} characters left out ...]\n{tail}"
