"""The dashboard (``mendline web``, and a stage of ``mendline run``): server-rendered pages
with htmx for partial updates and Server-Sent Events for live ones, and the same data and
actions as a versioned JSON API under ``/api/v1``. Every action goes through the stores'
audited, role-checked functions; every page is rendered with autoescaping."""

from mendline.web._app import API_PREFIX, build_app, serving_web, templates
from mendline.web._context import WebDeps
from mendline.web._live import readiness

__all__ = ["API_PREFIX", "WebDeps", "build_app", "readiness", "serving_web", "templates"]
