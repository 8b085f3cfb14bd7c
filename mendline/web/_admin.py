"""The admin page (admins): users, roles and API tokens; their JSON API."""

from __future__ import annotations

from aiohttp import web

__all__ = ["routes"]

routes = web.RouteTableDef()
