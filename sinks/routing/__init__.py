"""Alert routing: the routes file, which receivers an alert's labels reach, and durations.

The labels routes match on are built by ``mendline.analyzers.policy.alert_labels``."""

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
    "Route",
    "RoutingTable",
    "check_secrets",
    "describe",
    "format_duration",
    "load_routes",
    "parse_duration",
]
