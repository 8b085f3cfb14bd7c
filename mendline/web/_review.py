"""What ``mendline review`` reads of production over HTTP, for CI that has a token and no
database: ``GET /api/v1/review/context``, the issues with in-app frames in files of the names
asked for and the learned review rules in effect (PostgresProductionSource's reads)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from mendline.schemas.errors import UsageError
from mendline.schemas.review import LearnedRule
from mendline.sinks.postgres import PostgresProductionSource
from mendline.web._context import api_json, deps, is_whole, require

__all__ = ["MOST_DAYS", "MOST_FILES", "file_names", "routes"]

routes = web.RouteTableDef()

#: The most file names one call may ask for (a client splits a longer list).
MOST_FILES = 200
#: The most days back a resolved issue may have been resolved to be read.
MOST_DAYS = 365
_DEFAULT_DAYS = 30
# A file's base name: no folder separator, no control character, at most 255 characters.
_BASE_NAME = re.compile(r"[^/\\\x00-\x1f\x7f]{1,255}")


@routes.get("/api/v1/review/context")
async def review_context(request: web.Request) -> web.Response:
    """``{"issues": [...], "rules": [...]}``: the open issues (and those resolved within
    ``resolved_within_days``, 0 to 365, default 30) whose latest event has an in-app frame in
    a file named by a ``file`` parameter (repeated, at most 200 base names), the most
    recently seen first (at most 300); and the learned rules in effect. Any role may read
    it."""
    require(request, "issue.read")
    names = file_names(request.query.getall("file", []))
    days = _days(request.query.get("resolved_within_days", ""))
    settings = deps(request).settings
    source = PostgresProductionSource(deps(request).pool, settings.issue_link_template)
    issues = await source.issues(names, resolved_within_days=days) if names else []
    rules = await source.learned_rules()
    return api_json({"issues": issues, "rules": [_rule(rule) for rule in rules]})


def file_names(asked: Sequence[str]) -> list[str]:
    """The distinct file names asked for, in order; UsageError for more than MOST_FILES or
    one that is no base name (a folder in it, a control character, ``.`` or ``..``)."""
    if len(asked) > MOST_FILES:
        raise UsageError(
            f"at most {MOST_FILES} file names in one call, not {len(asked)}",
            hint="ask for the rest in another call",
        )
    for name in asked:
        if _BASE_NAME.fullmatch(name) is None or name in (".", ".."):
            raise UsageError(
                f"file {name[:60]!r} is not a file's base name",
                hint="give the name alone, without its folders: file=orders.py",
            )
    return list(dict.fromkeys(asked))


def _days(text: str) -> int:
    if text == "":
        return _DEFAULT_DAYS
    if not is_whole(text, 3) or int(text) > MOST_DAYS:
        raise UsageError(f"resolved_within_days must be a whole number from 0 to {MOST_DAYS}")
    return int(text)


def _rule(rule: LearnedRule) -> dict[str, Any]:
    """A learned rule as the API answers it: its fields and its ``id`` (``MRL12``)."""
    return dataclasses.asdict(rule) | {"id": rule.id}
