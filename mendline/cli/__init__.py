"""The ``mendline`` command line: one module per group of commands, each adding its own with
``register(commands)``, and :func:`main`, which parses, loads the settings, runs the command
and turns what went wrong into one line and a hint."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, Protocol

from mendline.cli import (
    admin,
    audit,
    checkin,
    checks,
    demo,
    doctor,
    emit,
    fix,
    issues,
    keys,
    people,
    pipeline,
    remediations,
    review,
    routes,
    silences,
)
from mendline.cli._hints import DEBUG_HINT, hint_on
from mendline.cli._options import Command, Commands
from mendline.cli.output import print_error, print_traceback
from mendline.schemas.errors import ConfigError, MendlineError, UsageError
from mendline.schemas.settings import Settings, load_settings
from mendline.sinks.routing import RoutingTable, load_routes

__all__ = [
    "COMMAND_GROUPS",
    "Command",
    "CommandGroup",
    "Commands",
    "build_parser",
    "console",
    "main",
]

_SETTINGS_HINT = (
    "check the --config file and the MENDLINE_* variables;"
    " `mendline config reference` lists the settings"
)


class CommandGroup(Protocol):
    """A group of commands (a module of this package): ``register`` adds its commands to the
    top-level ``commands`` and binds each to what it runs, with ``set_defaults(run=...)``;
    a command that can say itself what is wrong with settings that do not load also binds
    ``run_without_settings``, which gets the ConfigError instead of the settings."""

    def register(self, commands: Commands) -> None:
        """Add this group's commands to ``commands``."""


#: The groups of ``mendline``'s commands, in the order its help lists them.
COMMAND_GROUPS: tuple[CommandGroup, ...] = (
    demo,
    doctor,
    pipeline,
    emit,
    routes,
    silences,
    checks,
    checkin,
    issues,
    fix,
    people,
    keys,
    admin,
    audit,
    remediations,
    review,
)


def build_parser(groups: Sequence[CommandGroup] = COMMAND_GROUPS) -> argparse.ArgumentParser:
    """The argument parser of every mendline command (of ``groups``); the global options
    (``--config``, ``--debug``, ``--json``) go before the command or after it."""
    parser = _Parser(
        prog="mendline",
        description="Errors your apps log -> grouped issues, root causes and alerts.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {importlib.metadata.version('mendline')}"
    )
    _add_global_options(parser)
    parser.add_argument(
        "--json",
        dest=_GLOBAL_JSON,
        action="store_true",
        default=argparse.SUPPRESS,
        help="the command's --json (results, or a worker's log lines, as JSON)",
    )
    parser.set_defaults(run_without_settings=None, warn_of_variables=True)
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=argparse.ArgumentParser
    )
    for group in groups:
        group.register(commands)
    for command in _parsers_below(parser):
        _add_global_options(command)
    return parser


#: Where the top-level ``--json`` is kept, apart from a command's own (whose default, parsed
#: after it, would overwrite it).
_GLOBAL_JSON = "global_json"
#: The global options' values when they are not given (their own defaults are SUPPRESS, so
#: that a command's parser, parsed after the top-level one, keeps what was given before it).
_GLOBAL_DEFAULTS: dict[str, Any] = {"config": None, "debug": False}


def _add_global_options(parser: argparse.ArgumentParser) -> None:
    """``--config`` and ``--debug`` on ``parser``, with no default of their own."""
    group = parser.add_argument_group("global options")
    group.add_argument(
        "--config", type=Path, default=argparse.SUPPRESS, help="a TOML settings file"
    )
    group.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show tracebacks on errors",
    )


def _parsers_below(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every command's parser under ``parser`` (a command and its own commands), once each."""
    seen: set[int] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                if id(command) not in seen:
                    seen.add(id(command))
                    yield command
                    yield from _parsers_below(command)


class _Parser(argparse.ArgumentParser):
    """The top-level parser: after parsing, the global options not given get their defaults,
    and a ``--json`` before the command is the command's own (a usage error for a command
    that has none)."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, rest = super().parse_known_args(args, namespace)
        for name, default in _GLOBAL_DEFAULTS.items():
            if not hasattr(parsed, name):
                setattr(parsed, name, default)
        if getattr(parsed, _GLOBAL_JSON, False):
            if not hasattr(parsed, "json"):
                self.error("--json: this command has no JSON output")
            parsed.json = True
        return parsed, rest


def console() -> NoReturn:
    """The ``mendline`` executable (and ``python -m mendline``): :func:`main`, with SIGPIPE's
    default action so that ``mendline ... | head`` ends quietly. Only here, never in
    ``main()``: a program (or a test run) that calls ``main()`` keeps its own handling."""
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    raise SystemExit(main())


def main(
    argv: Sequence[str] | None = None, *, groups: Sequence[CommandGroup] = COMMAND_GROUPS
) -> int:
    """Run the command line (the commands of ``groups``); returns the exit status.

    An error is one line on stderr, ``mendline: <what went wrong>``, then ``hint: <what to
    do>``; the status is 1 (or the command's ``error_status``), or 2 for a wrong use of the
    command line, or 130 when interrupted. ``--debug`` shows the traceback instead, with the
    secrets of URLs and DSNs in it filtered (``redact_url``), and the same status.
    """
    args = build_parser(groups).parse_args(argv)
    if not args.debug:  # our one-line errors say it; the client's own retry logs would not
        import logging

        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 130
    except UsageError as exc:
        if args.debug:
            print_traceback(exc)
            return 2
        command = f"mendline {args.command}"
        print_error(f"error: {exc}", exc.hint or f"see `{command} --help`", prog=command)
        return 2
    except MendlineError as exc:
        if args.debug:
            print_traceback(exc)
            return _error_status(args)
        print_error(str(exc), exc.hint or DEBUG_HINT)
        return _error_status(args)
    except Exception as exc:
        if args.debug:
            print_traceback(exc)
            return _error_status(args)
        print_error(f"{type(exc).__name__}: {exc}", DEBUG_HINT)
        return _error_status(args)


def _error_status(args: argparse.Namespace) -> int:
    """The exit status of an error: 1, or what the command set (``mendline review`` says
    2, since its 1 means comments)."""
    status: int = getattr(args, "error_status", 1)
    return status


def _run(args: argparse.Namespace) -> int:
    """The command, with the settings it runs on; settings that do not load are a
    ConfigError, unless the command says itself what is wrong with them."""
    run: Command = args.run
    without_settings: Callable[[argparse.Namespace, ConfigError], int] | None
    without_settings = args.run_without_settings
    try:
        with hint_on(ConfigError, _SETTINGS_HINT):
            settings = load_settings(args.config)
    except ConfigError as exc:
        if without_settings is None:
            raise
        return without_settings(args, exc)
    if args.warn_of_variables:
        _warn_of_misspelt_variables(settings)
    return run(args, settings)


def _warn_of_misspelt_variables(settings: Settings) -> None:
    """One line on stderr for each MENDLINE_* variable that is no setting but looks like one
    (doctor's check): the settings ignore it, the command runs without what it meant."""
    try:
        routes: RoutingTable | ConfigError = load_routes(settings.routes_file)
    except ConfigError as exc:  # said by the commands that route; here, no secrets' names
        routes = exc
    for problem, hint in doctor.misspelt_variables(os.environ, routes):
        print(f"mendline: warning: {problem} (ignored); {hint}", file=sys.stderr)
