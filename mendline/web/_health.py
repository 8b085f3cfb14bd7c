"""(Being built.) The health page: every check and heartbeat with state, uptime bars, response
times, recent results and maintenance windows; their JSON API."""

from __future__ import annotations

from aiohttp import web

__all__ = ["routes"]

routes = web.RouteTableDef()
