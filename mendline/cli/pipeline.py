"""The workers, ``mendline consume``, ``analyze``, ``run``, ``alert``, ``monitor``, ``heal`` and
``web``: the pipeline's stages (in ``mendline.stages``) run from the command line; and
``analyze --issue``, one issue analysed now."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from mendline.cli._hints import ISSUES_HINT, hint_on
from mendline.cli._options import LOGS_AS_JSON, Commands, positive
from mendline.cli.output import describe, log_to_stderr, print_json
from mendline.schemas.errors import ConfigError, FindingNotFound, UsageError
from mendline.schemas.settings import Settings

__all__ = ["register"]

_ROUTES_HINT = "`mendline routes check` validates the routing file and names unset secrets"
_CHECKS_HINT = "`mendline checks check` lists every problem of the checks file with its line"
_POLICY_HINT = "`mendline fix policy check` lists every problem of the fix policy with its line"


def register(commands: Commands) -> None:
    """Add ``consume``, ``analyze``, ``run``, ``alert``, ``monitor``, ``heal`` and ``web`` to
    the top-level ``commands``."""
    consume = commands.add_parser(
        "consume",
        parents=[LOGS_AS_JSON],
        help="consume the errors topic into issues in PostgreSQL (a consumer group)",
    )
    consume.set_defaults(run=_consume)

    analyze = commands.add_parser(
        "analyze",
        help="analyse new and regressed issues into findings (a worker; or one --issue)",
    )
    analyze.add_argument("--issue", type=positive, help="analyse this issue now and print it")
    analyze.add_argument(
        "--fresh", action="store_true", help="with --issue: analyse again, not from the store"
    )
    analyze.add_argument(
        "--json",
        action="store_true",
        help="with --issue: the finding as a JSON object; without: log lines as JSON",
    )
    analyze.set_defaults(run=_analyze)

    run = commands.add_parser(
        "run",
        parents=[LOGS_AS_JSON],
        help="relay, consume, analyze, alert, monitor, heal and the dashboard (web) in one"
        " process"
        " (each restarted if it fails)",
    )
    run.add_argument(
        "--only",
        type=_stages,
        help="comma-separated stages to run: relay, consume, analyze, alert, monitor, heal,"
        " web"
        " (default: all)",
    )
    run.set_defaults(run=_run)

    alert = commands.add_parser(
        "alert",
        parents=[LOGS_AS_JSON],
        help="route new, regressed and spiking issues to Slack, email and PagerDuty",
    )
    alert.set_defaults(run=_alert)

    monitor = commands.add_parser(
        "monitor",
        parents=[LOGS_AS_JSON],
        help="run the health checks that are due and judge heartbeats (any number side by side)",
    )
    monitor.set_defaults(run=_monitor)

    heal = commands.add_parser(
        "heal",
        parents=[LOGS_AS_JSON],
        help="propose, apply and verify fixes by the fix policy (any number side by side)",
    )
    heal.set_defaults(run=_heal)

    relay = commands.add_parser(
        "relay",
        parents=[LOGS_AS_JSON],
        help="serve Sentry's ingest API for every Sentry SDK (default http://127.0.0.1:8050/;"
        " DSNs from `mendline keys create`)",
    )
    relay.add_argument("--host", type=_host, help="address to listen on (MENDLINE_RELAY_HOST)")
    relay.add_argument(
        "--port", type=_port, help="port to listen on, 0 for any free one (MENDLINE_RELAY_PORT)"
    )
    relay.set_defaults(run=_relay)

    web = commands.add_parser(
        "web",
        parents=[LOGS_AS_JSON],
        help="serve the dashboard (default http://127.0.0.1:8040/; any number side by side)",
    )
    web.add_argument("--host", type=_host, help="address to listen on (MENDLINE_WEB_HOST)")
    web.add_argument(
        "--port", type=_port, help="port to listen on, 0 for any free one (MENDLINE_WEB_PORT)"
    )
    web.set_defaults(run=_web)


def _consume(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.stages import run_stage

    log_to_stderr(args)
    return asyncio.run(run_stage("consume", settings))


def _analyze(args: argparse.Namespace, settings: Settings) -> int:
    if args.issue is None:
        if args.fresh:
            raise UsageError("--fresh goes with --issue")
        from mendline.stages import run_stage

        log_to_stderr(args)
        return asyncio.run(run_stage("analyze", settings))
    from mendline.cli._connections import finding_store
    from mendline.cli.issues import finding_json
    from mendline.stages.analyze import AnalyzeWorker, make_analysis

    async def go() -> tuple[Any, bool]:
        store = await finding_store(settings)
        analysis = make_analysis(settings, store)
        try:
            worker = AnalyzeWorker(settings, store, analysis)
            return await worker.analyse_issue(args.issue, fresh=args.fresh)
        finally:
            await analysis.aclose()
            await store.pool.close()

    with hint_on(FindingNotFound, ISSUES_HINT):  # the issue is what was not found
        stored, served = asyncio.run(go())
    if args.json:
        print_json(finding_json(stored, served))
    else:
        print(describe(stored, served))
    return 0


def _host(text: str) -> str:
    if not text.strip() or any(c.isspace() for c in text):
        raise argparse.ArgumentTypeError(f"an address to listen on, not {text!r}")
    return text


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a number from 0 to 65535, not {text!r}")
    return port


def _stages(text: str) -> list[str]:
    from mendline.stages import STAGES

    names = [name.strip() for name in text.split(",") if name.strip()]
    known = tuple(STAGES)
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"stages are {', '.join(known)}; not {', '.join(unknown) or 'nothing'}"
        )
    return list(dict.fromkeys(names))


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.stages import heal, monitor, run_stages

    log_to_stderr(args)
    if args.only is None or "monitor" in args.only:
        with hint_on(ConfigError, _CHECKS_HINT):  # the checks file, with a hint of its own
            monitor.check(settings)
    if args.only is None or "heal" in args.only:
        with hint_on(ConfigError, _POLICY_HINT):
            heal.check(settings)
    with hint_on(ConfigError, _ROUTES_HINT):  # the routing file, checked before starting
        return asyncio.run(run_stages(settings, args.only))


def _alert(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.stages import run_stage

    log_to_stderr(args)
    with hint_on(ConfigError, _ROUTES_HINT):
        return asyncio.run(run_stage("alert", settings))


def _monitor(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.stages import run_stage

    log_to_stderr(args)
    with hint_on(ConfigError, _CHECKS_HINT):
        return asyncio.run(run_stage("monitor", settings))


def _heal(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.stages import run_stage

    log_to_stderr(args)
    with hint_on(ConfigError, _POLICY_HINT):
        return asyncio.run(run_stage("heal", settings))


def _web(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.stages import run_stage

    log_to_stderr(args)
    chosen = {"web_host": args.host, "web_port": args.port}
    settings = settings.model_copy(update={k: v for k, v in chosen.items() if v is not None})
    return asyncio.run(run_stage("web", settings))


def _relay(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.stages import run_stage

    log_to_stderr(args)
    chosen = {"relay_host": args.host, "relay_port": args.port}
    settings = settings.model_copy(update={k: v for k, v in chosen.items() if v is not None})
    return asyncio.run(run_stage("relay", settings))
