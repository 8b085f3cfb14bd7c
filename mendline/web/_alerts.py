"""(Being built.) The alerts page: deliveries by receiver and status, failures and retries, what is
pending; their JSON API."""

from __future__ import annotations

from aiohttp import web

__all__ = ["routes"]

routes = web.RouteTableDef()
