"""Alert routing: the routes file, which receivers an alert's labels reach, and durations.

The labels themselves are built by ``mendline.analyzers.policy.alert_labels`` (re-exported
here with ``LABEL_NAMES`` for the routes' users)."""

from mendline.analyzers.policy import LABEL_NAMES, alert_labels
from mendline.sinks.routing._routes import (
    ALERT_KINDS,
    Route,
    RoutingTable,
    check_secrets,
    describe,
    format_duration,
    load_routes,
    parse_duration,
)

__all__ = [
    "ALERT_KINDS",
    "LABEL_NAMES",
    "Route",
    "RoutingTable",
    "alert_labels",
    "check_secrets",
    "describe",
    "format_duration",
    "load_routes",
    "parse_duration",
]
