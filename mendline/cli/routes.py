"""The ``mendline routes`` commands: where an alert would go, and whether a routes file is valid."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from mendline.analyzers.policy import alert_labels
from mendline.cli._hints import hint_on
from mendline.cli._options import AS_JSON, TAGS, Commands
from mendline.cli.output import counted, print_json
from mendline.schemas.alert import ALERT_SEVERITIES
from mendline.schemas.duration import format_duration
from mendline.schemas.errors import ConfigError
from mendline.schemas.settings import Settings
from mendline.sinks.routing import (
    ALERT_KINDS,
    RoutingTable,
    check_secrets,
    describe,
    load_routes,
    plaintext_warnings,
    receiver_problems,
)

__all__ = ["register"]

_HINT = "the README's routing section shows the format; `mendline routes check FILE` checks one"


def register(commands: Commands) -> None:
    """Add ``routes test`` and ``routes check`` to the top-level ``commands``."""
    routes = commands.add_parser("routes", help="test and check the alert routing file")
    route_commands = routes.add_subparsers(dest="routes_command", required=True)

    test = route_commands.add_parser(
        "test",
        parents=[AS_JSON, TAGS],
        help="which routes and receivers an alert with these labels would reach",
    )
    test.add_argument("--severity", required=True, choices=ALERT_SEVERITIES)
    test.add_argument("--service", help="the service that logged the error")
    test.add_argument("--environment", help="production, staging, ...")
    test.add_argument("--kind", choices=ALERT_KINDS, default="new_issue")
    test.add_argument(
        "--routes", type=Path, metavar="FILE", help="this file rather than MENDLINE_ROUTES_FILE"
    )
    test.set_defaults(run=_routes_test)

    check = route_commands.add_parser(
        "check",
        parents=[AS_JSON],
        help="validate a routes file; list its routes, receivers and unset secrets",
    )
    check.add_argument(
        "file",
        nargs="?",
        type=Path,
        metavar="FILE",
        help="default: MENDLINE_ROUTES_FILE, else the shipped default",
    )
    check.set_defaults(run=_routes_check)


def _load(path: Path | None) -> RoutingTable:
    with hint_on(ConfigError, _HINT):
        return load_routes(path)


def _routes_test(args: argparse.Namespace, settings: Settings) -> int:
    table = _load(args.routes if args.routes is not None else settings.routes_file)
    labels = alert_labels(
        severity=args.severity,
        kind=args.kind,
        service=args.service,
        environment=args.environment,
        tags=dict(args.tag),
    )
    if args.json:
        print_json(_test_json(table, labels))
    else:
        print(describe(table, labels))
    return 0


def _test_json(table: RoutingTable, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "source": table.source,
        "labels": labels,
        "matched": [
            {"index": route.index, "line": route.line, "receivers": list(route.receivers)}
            for route in table.matching(labels)
        ],
        "receivers": [
            {
                "receiver": name,
                "type": table.receivers[name].type,
                "route": route.index,
                "line": route.line,
                "group_wait": route.group_wait,
                "group_interval": route.group_interval,
                "repeat_interval": route.repeat_interval,
                "send_updates": route.send_updates,
            }
            for route, name in table.route(labels)
        ],
    }


def _routes_check(args: argparse.Namespace, settings: Settings) -> int:
    table = _load(args.file if args.file is not None else settings.routes_file)
    used = {name for route in table.routes for name in route.receivers}
    warnings = [
        f'receiver "{name}" is not used by any route'
        for name in table.receivers
        if name not in used
    ]
    unset = check_secrets(table, os.environ)
    problems = [
        f'receiver "{name}": {problem} (fix: {fix})'
        for name, receiver in table.receivers.items()
        for problem, fix in receiver_problems(name, receiver, os.environ)
    ]
    if settings.profile == "production":  # `mendline alert` refuses to start without them
        problems += [
            f"{secret} (fix: set it; MENDLINE_PROFILE=production: mendline alert does not"
            " start without it)"
            for secret in unset
        ]
    else:  # in development, that receiver is disabled and its alerts recorded as suppressed
        warnings += unset
    # Warnings, not errors: the file is valid, and a lab on a private network may mean it.
    plaintext = plaintext_warnings(table, os.environ, settings.llm_base_url)
    if args.json:
        print_json(_check_json(table, warnings, plaintext, problems))
        return 1 if problems else 0
    print(
        f"{table.source}: {'invalid' if problems else 'valid'},"
        f" {counted(len(table.routes), 'route')},"
        f" {counted(len(table.receivers), 'receiver')}"
    )
    for route in table.routes:
        timing = "/".join(
            format_duration(seconds)
            for seconds in (route.group_wait, route.group_interval, route.repeat_interval)
        )
        print(
            f"  routes[{route.index}] (line {route.line}): {route.conditions()}"
            f" -> {', '.join(route.receivers) or 'nowhere'}"
            f"{', continue' if route.continue_ else ''}  [wait/interval/repeat {timing}]"
        )
    width = max((len(name) for name in table.receivers), default=0)
    for name, receiver in table.receivers.items():
        print(f"  receiver {name:{width}}  {receiver.type}")
    for warning in [*warnings, *plaintext]:
        print(f"warning: {warning}", file=sys.stderr)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


def _check_json(
    table: RoutingTable, warnings: list[str], plaintext: list[str], problems: list[str]
) -> dict[str, Any]:
    return {
        "source": table.source,
        "valid": not problems,
        "problems": problems,
        "routes": [
            {
                "index": route.index,
                "line": route.line,
                "conditions": route.conditions(),
                "receivers": list(route.receivers),
                "continue": route.continue_,
                "group_wait": route.group_wait,
                "group_interval": route.group_interval,
                "repeat_interval": route.repeat_interval,
            }
            for route in table.routes
        ],
        "receivers": {name: receiver.type for name, receiver in table.receivers.items()},
        "warnings": warnings,
        "plaintext": plaintext,
    }
