"""Alert routing: the routes file, which receivers an alert's labels reach, and durations."""

from mendline.sinks.routing._routes import (
    ALERT_KINDS,
    LABEL_NAMES,
    Route,
    RoutingTable,
    alert_labels,
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
