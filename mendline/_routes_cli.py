"""The ``mendline routes`` commands: where an alert would go, and whether a routes file is valid."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sized
from pathlib import Path
from typing import Any

from mendline.schemas.alert import ALERT_SEVERITIES
from mendline.schemas.settings import Settings
from mendline.sinks._routing import (
    ALERT_KINDS,
    RoutingTable,
    alert_labels,
    check_secrets,
    describe,
    format_duration,
    load_routes,
)

__all__ = ["add_routes_commands"]


def add_routes_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``routes test`` and ``routes check`` to the top-level ``commands``."""
    routes = commands.add_parser("routes", help="test and check the alert routing file")
    route_commands = routes.add_subparsers(dest="routes_command", required=True)

    test = route_commands.add_parser(
        "test", help="which routes and receivers an alert with these labels would reach"
    )
    test.add_argument("--severity", required=True, choices=ALERT_SEVERITIES)
    test.add_argument("--service", help="the service that logged the error")
    test.add_argument("--environment", help="production, staging, ...")
    test.add_argument("--kind", choices=ALERT_KINDS, default="new_issue")
    test.add_argument(
        "--tag",
        type=_tag,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a tag of the event (repeat for several)",
    )
    test.add_argument(
        "--routes", type=Path, metavar="FILE", help="this file rather than MENDLINE_ROUTES_FILE"
    )
    test.add_argument("--json", action="store_true", help="as a JSON object")
    test.set_defaults(run=_routes_test)

    check = route_commands.add_parser(
        "check", help="validate a routes file; list its routes, receivers and unset secrets"
    )
    check.add_argument(
        "file",
        nargs="?",
        type=Path,
        metavar="FILE",
        help="default: MENDLINE_ROUTES_FILE, else the shipped default",
    )
    check.set_defaults(run=_routes_check)


def _tag(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not name or not equals:
        raise argparse.ArgumentTypeError(f"use NAME=VALUE, not {text!r}")
    return name, value


def _routes_test(args: argparse.Namespace, settings: Settings) -> int:
    table = load_routes(args.routes if args.routes is not None else settings.routes_file)
    labels = alert_labels(
        severity=args.severity,
        kind=args.kind,
        service=args.service,
        environment=args.environment,
        tags=dict(args.tag),
    )
    if args.json:
        print(json.dumps(_test_json(table, labels), indent=2))
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


def _count(things: Sized, name: str) -> str:
    return f"{len(things)} {name}{'' if len(things) == 1 else 's'}"


def _routes_check(args: argparse.Namespace, settings: Settings) -> int:
    table = load_routes(args.file if args.file is not None else settings.routes_file)
    print(
        f"{table.source}: valid, {_count(table.routes, 'route')},"
        f" {_count(table.receivers, 'receiver')}"
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
    used = {name for route in table.routes for name in route.receivers}
    for name in table.receivers:
        if name not in used:
            print(f'warning: receiver "{name}" is not used by any route', file=sys.stderr)
    for problem in check_secrets(table, os.environ):
        print(f"warning: {problem}", file=sys.stderr)
    return 0
