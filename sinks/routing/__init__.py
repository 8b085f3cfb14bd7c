"""Alert routing: which receivers an alert's labels reach, read from a TOML routes file.

Every alert carries flat labels: ``severity`` (info, warning, error, critical), ``service``,
``environment``, ``kind`` (new_issue, regression, frequency, resolved; health_down,
health_recovered, health_flapping for health checks; remediation_failed) and ``tag:<name>``
for each tag (a check's alerts carry ``tag:check`` and ``tag:check_kind`` too). Routes are
tried from the top, as in Alertmanager; the first that matches ends the walk unless it says
``continue = true``; a receiver reached by several routes is sent to once,
with its first route's timing. An alert that no route matches is not sent. The file::

    [defaults]                # optional; Alertmanager's 30s, 5m and 4h when absent
    group_wait = "30s"        # wait after an issue's first alert, so a finding can join it
    group_interval = "5m"     # at least this long between updates of what was sent
    repeat_interval = "4h"    # send again this long after, while the issue stays open
    send_updates = true       # update what was sent when a finding arrives or the count grows

    [receivers.oncall]        # secrets are never written here: name their variables
    type = "pagerduty"
    routing_key_env = "MENDLINE_PAGERDUTY_ROUTING_KEY"

    [receivers.team-slack]
    type = "slack"
    webhook_url_env = "MENDLINE_SLACK_WEBHOOK_URL"   # or bot_token_env and channel

    [receivers.email-digest]
    type = "email"
    smtp_host = "localhost"
    sender = "mendline@localhost"
    to = ["oncall@example.com"]

    [[routes]]
    match = { severity = "critical" }               # equality; a list means any of them
    receivers = ["oncall", "team-slack"]
    group_wait = "0s"                               # any [defaults] key, for this route

    [[routes]]
    severity_at_least = "warning"                   # warning, error and critical
    match = { environment = ["production", "staging"], "tag:team" = "payments" }
    match_re = { service = "^api-.*" }             # the whole value must match (RE2)
    receivers = ["team-slack"]
    continue = true                                 # and keep walking

A missing label matches as "". A route without match, match_re and severity_at_least
matches every alert; ``receivers = []`` ends the walk without sending. Durations are "30s",
"5m", "4h", "1h30m", "500ms", "1d" or a number of seconds. Problems are reported all at once,
one line each, as ``FILE:LINE: field: what is wrong``.

The labels routes match on are built by ``mendline.analyzers.policy.alert_labels``.
"""

from mendline.sinks.routing._plaintext import is_loopback_host, plaintext_warnings
from mendline.sinks.routing._receiver_checks import ReceiverProblem, receiver_problems
from mendline.sinks.routing._routes import (
    ALERT_KINDS,
    Route,
    RoutingTable,
    check_secrets,
    describe,
    disabled_receivers,
    load_routes,
    parse_duration,
)

__all__ = [
    "ALERT_KINDS",
    "ReceiverProblem",
    "Route",
    "RoutingTable",
    "check_secrets",
    "describe",
    "disabled_receivers",
    "is_loopback_host",
    "load_routes",
    "parse_duration",
    "plaintext_warnings",
    "receiver_problems",
]
