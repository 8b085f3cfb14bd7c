"""What the status pages (overview, health, alerts) share: a page or one of its blocks (the
live refresh asks for a block by ``?fragment=``), and values from the query string: one of a
few choices, whole numbers within bounds."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from aiohttp import web

from mendline.schemas.errors import UsageError
from mendline.web._context import is_whole, render, render_fragment

__all__ = ["fragment_asked", "page_or_fragment", "query_choice", "query_number"]


def fragment_asked(request: web.Request, blocks: Collection[str]) -> str | None:
    """The block ``?fragment=`` asks for (None: the whole page); UsageError for a block the
    page does not refresh."""
    block = request.query.get("fragment")
    if block is not None and block not in blocks:
        raise UsageError(f"no fragment {block!r} here", hint=f"one of {', '.join(sorted(blocks))}")
    return block


def page_or_fragment(
    request: web.Request, template: str, block: str | None, context: dict[str, Any]
) -> web.Response:
    """``template`` rendered whole, or only its ``block``."""
    if block is not None:
        return render_fragment(request, template, block, context)
    return render(request, template, context)


def query_number(request: web.Request, name: str, most: int, default: int | None) -> int | None:
    """The whole number ``?<name>=`` gives, from 1 to ``most`` (``default`` when absent or
    empty); UsageError for anything else."""
    text = request.query.get(name, "")
    if text == "":
        return default
    if not is_whole(text) or not 1 <= int(text) <= most:
        raise UsageError(f"{name} must be a whole number from 1 to {most}")
    return int(text)


def query_choice(request: web.Request, name: str, choices: Collection[str], default: str) -> str:
    """The value ``?<name>=`` gives, one of ``choices`` (``default`` when absent);
    UsageError for another."""
    chosen = request.query.get(name) or default
    if chosen not in choices:
        named = ", ".join(choice for choice in choices if choice)
        raise UsageError(f"{name} {chosen!r} is not one of {named}")
    return chosen
