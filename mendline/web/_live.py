"""(Being built.) Live updates: one LISTEN connection per web process, its notifications fanned out
to the pages as Server-Sent Events."""

from __future__ import annotations

from aiohttp import web

__all__ = ["routes"]

routes = web.RouteTableDef()
