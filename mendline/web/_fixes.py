"""(Being built.) The fixes: the review queue, each fix with its diff, verification and delivery,
approve / reject / apply / rollback, and the history; their JSON API."""

from __future__ import annotations

from aiohttp import web

__all__ = ["routes"]

routes = web.RouteTableDef()
