"""The audit page: the audit trail, filterable, with the chain's verification; its JSON API."""

from __future__ import annotations

from aiohttp import web

__all__ = ["routes"]

routes = web.RouteTableDef()
