"""(Being built.) The issues list and the issue page, their actions (resolve, ignore, merge,
verdicts, re-analyse) and their JSON API."""

from __future__ import annotations

from aiohttp import web

__all__ = ["routes"]

routes = web.RouteTableDef()
