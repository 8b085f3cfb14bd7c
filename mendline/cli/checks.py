"""The ``mendline checks`` commands: whether a checks file is valid and what it runs, the
shipped example to start one from, and pruning what the checks stored past its retention."""

from __future__ import annotations

import argparse
import os
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from mendline.analyzers.health import (
    CheckSet,
    check_env,
    check_target,
    default_conditions,
    load_checks,
)
from mendline.cli._options import AS_JSON, Commands
from mendline.cli.output import (
    counted,
    print_done,
    print_json,
    print_problems,
    printable,
    table,
)
from mendline.schemas.checks import (
    Check,
    CheckResult,
    HeartbeatCheck,
)
from mendline.schemas.duration import format_duration
from mendline.schemas.errors import ConfigError
from mendline.schemas.settings import Settings

__all__ = ["example_text", "register"]

_HINT = (
    "the README's section on the checks file shows the format;"
    " `mendline checks example` prints a file to start from"
)
_NO_FILE_HINT = (
    "give the file (`mendline checks check FILE`) or set MENDLINE_CHECKS_FILE;"
    " `mendline checks example > checks.toml` writes one to start from"
)


def register(commands: Commands) -> None:
    """Add ``checks check``, ``checks run``, ``checks example`` and ``checks prune`` to the
    top-level ``commands``."""
    checks = commands.add_parser(
        "checks", help="check the health checks file, run a check once, print an example"
    )
    check_commands = checks.add_subparsers(dest="checks_command", required=True)

    check = check_commands.add_parser(
        "check",
        parents=[AS_JSON],
        help="validate a checks file; list its checks and the variables it names that are unset",
    )
    check.add_argument(
        "file", nargs="?", type=Path, metavar="FILE", help="default: MENDLINE_CHECKS_FILE"
    )
    check.set_defaults(run=_checks_check)

    example = check_commands.add_parser("example", help="print the shipped example checks file")
    # It reads no setting: it works even when they do not load.
    example.set_defaults(run=_checks_example, run_without_settings=_example_anyway)

    run = check_commands.add_parser(
        "run",
        parents=[AS_JSON],
        help="run one check now and print what it saw (nothing is stored); exit 1 if it failed",
    )
    run.add_argument("name", metavar="NAME", help="the check's name in the checks file")
    run.add_argument(
        "--file", type=Path, metavar="FILE", help="the checks file; default: MENDLINE_CHECKS_FILE"
    )
    run.set_defaults(run=_checks_run)

    prune = check_commands.add_parser(
        "prune",
        parents=[AS_JSON],
        help="remove the check results, rollups and check-ins past their retention"
        " (the monitor does it daily); print what was removed",
    )
    prune.add_argument(
        "--dry-run", action="store_true", help="remove nothing: print what would be removed"
    )
    prune.set_defaults(run=_checks_prune)


def example_text() -> str:
    """The shipped example checks file."""
    shipped = resources.files("mendline.analyzers.health").joinpath("checks.example.toml")
    return shipped.read_text("utf-8")


def _checks_example(args: argparse.Namespace, settings: Settings) -> int:
    sys.stdout.write(example_text())
    return 0


def _example_anyway(args: argparse.Namespace, error: ConfigError) -> int:
    sys.stdout.write(example_text())
    return 0


def _checks_file(args: argparse.Namespace, settings: Settings) -> Path:
    path: Path | None = args.file if args.file is not None else settings.checks_file
    if path is None:
        raise ConfigError("no checks file: MENDLINE_CHECKS_FILE is unset", hint=_NO_FILE_HINT)
    return path


def _checks_run(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio
    from datetime import UTC, datetime

    from mendline.ingest.probes import run_check

    checks = load_checks(_checks_file(args, settings))
    found = [check for check in checks.checks if check.name == args.name]
    if not found:
        names = ", ".join(check.name for check in checks.checks)
        raise ConfigError(f"no check named {args.name!r} in {checks.source} (it has: {names})")
    check = found[0]
    if isinstance(check, HeartbeatCheck):
        raise ConfigError(
            f"{check.name} is a heartbeat: it is judged on the check-ins jobs send, not run",
            hint=f"`mendline checkin {check.name} --status ok` sends one",
        )
    result = asyncio.run(run_check(check, datetime.now(UTC), settings, os.environ))
    if args.json:
        print_json({"target": check_target(check), **result.model_dump(mode="json")})
    else:
        print(_described(check, result))
    return 0 if result.success else 1


def _checks_prune(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from mendline.sinks.postgres import connect_checkins, connect_health
    from mendline.stages.monitor import Pruned, prune_health

    async def prune() -> Pruned:
        health = await connect_health(settings, 1)
        try:
            checkins = await connect_checkins(settings, 1)
            try:
                return await prune_health(settings, health, checkins, dry_run=args.dry_run)
            finally:
                await checkins.close()
        finally:
            await health.close()

    pruned = asyncio.run(prune())
    print_done(
        args,
        pruned.describe(),
        dry_run=args.dry_run,
        results_skipped=pruned.results.skipped,
        partitions=list(pruned.results.partitions),
        rollups=pruned.results.rollups,
        checkins=pruned.checkins,
        results_retention_days=pruned.raw_days,
        rollups_retention_days=pruned.rollup_days,
    )
    return 0


def _described(check: Check, result: CheckResult) -> str:
    """A run as people read it: the verdict, the error, the timings, each condition."""
    verdict = "success" if result.success else "FAILURE"
    lines = [f"{check.name} ({check.kind} {check_target(check)}): {verdict}"]
    if result.error is not None:
        lines.append(f"  error ({result.error_kind}): {result.error}")
    if result.timings:
        timings = ", ".join(
            f"{phase} {seconds * 1000:.1f} ms" for phase, seconds in result.timings.items()
        )
        lines.append(f"  timings: {timings}")
    for condition in result.conditions:
        mark = "ok  " if condition.success else "FAIL"
        lines.append(f"  {mark} {condition.condition}  (observed: {condition.observed})")
    return "\n".join(printable(line) for line in lines)


def _checks_check(args: argparse.Namespace, settings: Settings) -> int:
    path = _checks_file(args, settings)
    try:
        checks = load_checks(path)
    except ConfigError as exc:
        return print_problems(args, str(path), exc, _HINT)
    warnings = check_env(checks, os.environ)
    if args.json:
        print_json(_check_json(checks, warnings))
        return 0
    print(f"{printable(checks.source)}: valid, {counted(len(checks.checks), 'check')}")
    print(
        table(
            ("name", "kind", "every", "target", "conditions"),
            (
                (
                    check.name,
                    check.kind,
                    _every(check),
                    check_target(check),
                    str(len(default_conditions(check))),
                )
                for check in checks.checks
            ),
        )
    )
    for warning in warnings:
        print(f"warning: {printable(warning)}", file=sys.stderr)
    return 0


def _check_json(checks: CheckSet, warnings: list[str]) -> dict[str, Any]:
    return {
        "source": checks.source,
        "valid": True,
        "checks": [
            {
                "name": check.name,
                "kind": check.kind,
                "line": checks.lines[check.name],
                "every": _every(check),
                "target": check_target(check),
                "conditions": default_conditions(check),
            }
            for check in checks.checks
        ],
        "warnings": warnings,
    }


def _every(check: Check) -> str:
    """How often it runs: its interval; a heartbeat's schedule."""
    if isinstance(check, HeartbeatCheck):
        if check.cron is not None:
            return f"cron {check.cron} ({check.timezone})"
        return format_duration(check.every or 0)
    return format_duration(check.interval)
