"""(Being built.) The overview page: pipeline status, error rate, open issues by severity, checks,
fixes awaiting approval and the metrics (MTTR, MTTA, fix success rate, findings' false-positive
rate, uptime)."""

from __future__ import annotations

from aiohttp import web

__all__ = ["routes"]

routes = web.RouteTableDef()
