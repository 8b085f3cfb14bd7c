"""``mendline demo``: the whole pipeline on the dev stack, fed by a sample web app's errors."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mendline.cli._connections import reaching_kafka
from mendline.cli._demo_summary import (
    Progress,
    Summary,
    explore,
    read_progress,
    show,
    summarise,
)
from mendline.cli._hints import connect_failure, or_doctor
from mendline.cli._options import Commands
from mendline.cli.output import Screen, print_json
from mendline.schemas.errors import MendlineError
from mendline.schemas.redaction import redact_url, url_secrets
from mendline.schemas.settings import Settings, load_settings

if TYPE_CHECKING:
    # The drivers and the stand-ins are imported where used: not for every command's help.
    import asyncpg

    from mendline.cli._demo_fix import FixSetup
    from mendline.cli._demo_parts import SampleApp
    from mendline.devstack import DevStack
    from mendline.sample_app import DriveResult

__all__ = ["SLACK_WEBHOOK_ENV", "Progress", "Summary", "demo", "demo_routes", "register"]

#: The variable the demo's routes name for the stand-in Slack webhook.
SLACK_WEBHOOK_ENV = "MENDLINE_DEMO_SLACK_WEBHOOK_URL"

_SERVICE = "shop"
_RELEASE = "1.4.2"
_ENVIRONMENT = "demo"
_ROUNDS = 3
_TIMEOUT = 90.0  # seconds from the first request until everything must have settled
_INTERRUPTED = 130


def demo_routes(smtp_port: int) -> str:
    """The demo's routing file: errors to the stand-in Slack, everything to an email digest."""
    return f"""\
# mendline demo: short waits so that the whole story fits in a minute.
[defaults]
group_wait = "3s"
group_interval = "5s"
repeat_interval = "1h"

[receivers.demo-slack]
type = "slack"
webhook_url_env = "{SLACK_WEBHOOK_ENV}"

[receivers.demo-email]
type = "email"
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
security = "none"
sender = "mendline@demo.invalid"
to = ["oncall@demo.invalid"]
digest = true

[[routes]]
severity_at_least = "error"
receivers = ["demo-slack"]
continue = true

[[routes]]
severity_at_least = "warning"
receivers = ["demo-email"]
group_wait = "5s"
"""


def register(commands: Commands) -> None:
    """Add ``demo`` to the top-level ``commands``."""
    command = commands.add_parser(
        "demo",
        help="the whole pipeline on the dev stack, fed by a sample web app's real errors",
    )
    command.add_argument(
        "--keep", action="store_true", help="leave the broker and database running at the end"
    )
    command.add_argument(
        "--no-interactive",
        action="store_true",
        help="plain progress lines, no colours or redrawing (for logs and CI)",
    )
    command.add_argument(
        "--json", action="store_true", help="print the summary as one JSON object on stdout"
    )
    command.set_defaults(run=demo)


def demo(args: argparse.Namespace, settings: Settings) -> int:
    """Run the demo; 0 when every event became an issue with a finding and its alerts went
    out, 130 when interrupted first, 1 otherwise."""
    from mendline.devstack import DevStack

    as_json: bool = args.json
    if hasattr(signal, "SIGPIPE"):  # a reader going away ends the story, not the clean-up
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    screen = Screen(
        sys.stderr if as_json else sys.stdout,
        interactive=not args.no_interactive and not as_json and sys.stdout.isatty(),
    )
    screen.say(
        "mendline demo: errors from a web app become issues, root causes, alerts and a fix",
        "bold",
    )
    stack = DevStack()
    embedded = [
        n for n, p in (("a Kafka broker", stack.broker), ("PostgreSQL", stack.postgres)) if p
    ]
    screen.say(
        f"starting the dev stack ({' and '.join(embedded)})..."
        if embedded
        else "using the broker and database of MENDLINE_KAFKA_BOOTSTRAP and MENDLINE_DATABASE_URL"
    )
    workdir = Path(tempfile.mkdtemp(prefix="mendline-demo-"))
    summary: Summary | None = None
    try:
        with stack, _environ(SLACK_WEBHOOK_ENV), _logs_on(screen):
            summary = asyncio.run(_demo(args, settings, stack, workdir, screen))
    except asyncio.CancelledError:  # a second Ctrl-C: everything above was still closed
        return _INTERRUPTED
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    assert summary is not None
    if as_json and summary.database_url is None:  # --keep printed it while it waited
        print_json(asdict(summary))
    if summary.complete:
        return 0
    return _INTERRUPTED if summary.problem == _STOPPED else 1


_STOPPED = "stopped before the pipeline had settled"


async def _demo(
    args: argparse.Namespace, settings: Settings, stack: DevStack, workdir: Path, screen: Screen
) -> Summary:
    from mendline.cli._demo_fix import fix_setup, heal_lines, read_fixes, show_fixes
    from mendline.cli._demo_parts import StandIns, sample_app
    from mendline.cli._demo_web import (
        DEMO_SENTRY_SERVICE,
        dashboard_lines,
        demo_login,
        demo_relay_dsn,
    )
    from mendline.ingest import ensure_topics
    from mendline.stages import run_pipeline, stop_on_signals

    stop = asyncio.Event()
    main = asyncio.current_task()
    assert main is not None  # run by asyncio.run
    # A second Ctrl-C cancels the demo, and the clean-up (the app, the pipeline, the dev
    # stack) still runs.
    stop_on_signals(stop, on_second=main.cancel)
    async with StandIns(screen) as stand_ins:
        routes_file = workdir / "routes.toml"
        routes_file.write_text(demo_routes(stand_ins.smtp_port))
        os.environ[SLACK_WEBHOOK_ENV] = stand_ins.slack_url
        fixes = await fix_setup(workdir)
        demo_settings = _demo_settings(args, stack, routes_file, workdir, fixes)
        with reaching_kafka(demo_settings):
            await ensure_topics(demo_settings)
        pool = await _empty_database(stack)
        dashboard = await demo_login(pool, demo_settings.web_port)
        relay_dsn = await demo_relay_dsn(pool, demo_settings)
        pipeline = asyncio.create_task(run_pipeline(demo_settings, stop))
        summary = Summary()
        try:
            psql = _psql(stack)
            screen.say(
                f"  Kafka        {redact_url(stack.kafka_bootstrap)},"
                f" topic {demo_settings.errors_topic}"
            )
            screen.say(f"  PostgreSQL   {redact_url(stack.database_url)}")
            screen.say("  pipeline     consume -> analyze (heuristic analyser, offline) -> alert")
            screen.say("               monitor: mendline's own health checks (mendline.*)")
            for line in heal_lines(fixes):
                screen.say(line)
            for line in dashboard_lines(dashboard):
                screen.say(line)
            screen.say(f"  relay        Sentry SDKs' DSN {relay_dsn}")
            screen.say(f"               (any language's errors, as '{DEMO_SENTRY_SERVICE}')")
            screen.say(f"  stand-ins    Slack webhook {stand_ins.slack_url}")
            screen.say(f"               SMTP 127.0.0.1:{stand_ins.smtp_port}")
            async with sample_app(
                demo_settings,
                workdir,
                service=_SERVICE,
                release=_RELEASE,
                environment=_ENVIRONMENT,
            ) as app:
                screen.say(f"  sample app   '{_SERVICE}' at {app.url} (structlog + mendline)")
                screen.say(f"\ndriving {_ROUNDS} rounds of requests at the shop;")
                screen.say("what reaches the Slack and email stand-ins:")
                summary = await _watch(pool, app, pipeline, screen, stop, fixes is not None)
            await summarise(pool, summary)
            summary.received = dict(stand_ins.received)
            summary.fixes = await read_fixes(pool)
            summary.dashboard = dashboard.as_json()
            summary.relay_dsn = relay_dsn
            show(screen, summary, psql)
            show_fixes(screen, summary.fixes, fixes)
            explore(screen, psql)
            if args.keep and summary.problem != _STOPPED:
                await _keep(args, summary, demo_settings, stack, screen, stop, fixes)
            elif not args.keep:
                screen.say(
                    "\nthe dev stack and the dashboard stop now; `mendline demo --keep` leaves"
                    " them running."
                )
        finally:
            stop.set()
            try:
                await asyncio.wait_for(pipeline, 30)
            except Exception as exc:  # the outcome is already told; say why it ended badly
                if not isinstance(exc, TimeoutError):
                    screen.say(f"the pipeline stopped with {type(exc).__name__}: {exc}", "red")
            await pool.close()
            if stack.broker is None:  # an external broker keeps no demo topics
                await _drop_topics(demo_settings)
    return summary


def _demo_settings(
    args: argparse.Namespace,
    stack: DevStack,
    routes_file: Path,
    workdir: Path,
    fixes: FixSetup | None,
) -> Settings:
    """The settings of a demo run: its own topics and group (never the ones of a real
    pipeline on the same broker), the heuristic analyser, the stand-ins' routes, and its
    own fix policy (never one that names real repositories), or none without git."""
    from mendline.cli._demo_web import dashboard_port

    run = f"mendline-demo-{secrets.token_hex(4)}"
    overrides: dict[str, Any] = {
        "kafka_bootstrap": stack.kafka_bootstrap,
        "database_url": stack.database_url,
        "errors_topic": run,
        "dlq_topic": f"{run}-dlq",
        "consumer_group": run,
        "checkins_topic": f"{run}-checkins",
        "checkins_dlq_topic": f"{run}-checkins-dlq",
        "checkins_group": f"{run}-checkins",
        "llm_base_url": None,  # the heuristic analyser: offline, no key, no cost
        "routes_file": routes_file,
        "frequency_threshold": 20,
        "analyze_poll_interval": 1.0,
        "alert_poll_interval": 0.5,
        "spool_dir": workdir / "spool",
        "fix_policy_file": fixes.policy_file if fixes is not None else None,
        "fix_work_root": workdir / "worktrees",
        "fix_patch_dir": workdir / "patches",
        "heal_poll_interval": 0.5,
        "web_host": "127.0.0.1",
        "web_port": dashboard_port(),  # 8040, or a free port when a real dashboard holds it
        "web_read_only": False,
        "web_public_url": None,
        # The relay stage runs too: on 8050, or a free port when a real relay holds it.
        "relay_host": "127.0.0.1",
        "relay_port": dashboard_port(8050),
        "relay_public_url": None,
    }
    if stack.broker is not None:  # the embedded broker speaks plaintext, whatever the shell says
        overrides |= {
            "kafka_security_protocol": "PLAINTEXT",
            "kafka_sasl_mechanism": None,
            "kafka_sasl_username": None,
            "kafka_sasl_password": None,
            "kafka_ssl_cafile": None,
        }
    return load_settings(args.config, **overrides)


async def _empty_database(stack: DevStack) -> asyncpg.Pool:
    """A pool on the demo's database, migrated; one with mendline data in it is refused, so
    that the demo never works through (or alerts on) someone's real issues."""
    import asyncpg

    from mendline.sinks.postgres import migrated_pool

    url = stack.database_url
    hint = "point MENDLINE_DATABASE_URL at an empty database, or unset it for an embedded one"
    try:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            used = await conn.fetchval("SELECT to_regclass('mendline.issues') IS NOT NULL")
            if used:
                used = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM mendline.issues)")
        finally:
            await conn.close()
        if used:
            raise MendlineError(
                f"the database at {redact_url(url)} already holds mendline issues", hint=hint
            )
        return await migrated_pool(url, max_size=2)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        message, problem_hint = connect_failure(exc, url)
        raise MendlineError(
            redact_url(message, url_secrets(url)), hint=or_doctor(problem_hint)
        ) from exc


async def _watch(
    pool: asyncpg.Pool,
    app: SampleApp,
    pipeline: asyncio.Task[None],
    screen: Screen,
    stop: Any,
    fixing: bool,
) -> Summary:
    """Drive the traffic and show the pipeline's progress until it has settled (with
    ``fixing``, until every patch was proposed as a fix too)."""
    from mendline.sample_app import drive

    summary = Summary()
    answered = 0

    def count(*_: object) -> None:
        nonlocal answered
        answered += 1

    clock = time.monotonic()
    driving = asyncio.create_task(drive(app.url, rounds=_ROUNDS, on_response=count))
    progress = Progress()
    try:
        while not stop.is_set():
            if pipeline.done():  # a ConfigError, or a bug: say it rather than wait it out
                pipeline.result()
                summary.problem = "the pipeline stopped"
                break
            progress = await read_progress(pool)
            result = _driven(driving, app, summary, screen)
            if summary.problem:
                break
            expected = f"/{summary.events_logged}" if result else ""
            screen.status(
                f"{answered} requests · events {progress.events}{expected}"
                f" · issues {progress.issues} · findings {progress.findings}"
                f" · alerts sent {progress.delivered}"
                + (f", waiting {progress.pending}" if progress.pending else "")
                + (f", failed {progress.failed}" if progress.failed else "")
                + (f" · fixes {progress.fixes}" if fixing else ""),
                time.monotonic() - clock,
            )
            if result and progress.settled(summary.events_logged, fixing=fixing):
                summary.complete = progress.failed == 0 and result.unexpected == 0
                if progress.failed:
                    summary.problem = f"{progress.failed} alert deliveries failed"
                elif result.unexpected:
                    summary.problem = (
                        f"the shop answered {result.unexpected} requests unlike its script,"
                        " so some failures did not happen"
                    )
                break
            if time.monotonic() - clock > _TIMEOUT:
                summary.problem = (
                    progress.missing(summary.events_logged, fixing=fixing)
                    if result
                    else f"the sample app did not answer within {_TIMEOUT:.0f} s"
                )
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
        else:
            summary.problem = _STOPPED
    finally:
        if not driving.done():
            driving.cancel()
            with contextlib.suppress(BaseException):
                await driving
        screen.end_status()
    summary.progress = progress
    summary.seconds = round(time.monotonic() - clock, 1)
    return summary


def _driven(
    driving: asyncio.Task[DriveResult], app: SampleApp, summary: Summary, screen: Screen
) -> DriveResult | None:
    """The traffic's result once it is all answered; a broken app becomes the problem."""
    if not driving.done():
        return None
    try:
        result = driving.result()
    except Exception as exc:  # the shop stopped answering: show why, from its own log
        errors = exc.exceptions if isinstance(exc, BaseExceptionGroup) else (exc,)
        summary.problem = f"the sample app stopped answering ({errors[0]!r})"
        screen.say(f"the sample app's last lines:\n{app.log_tail()}", "dim")
        return None
    summary.requests, summary.events_logged = result.requests, result.events_logged
    summary.unexpected_answers = result.unexpected
    return result


async def _keep(
    args: argparse.Namespace,
    summary: Summary,
    settings: Settings,
    stack: DevStack,
    screen: Screen,
    stop: asyncio.Event,
    fixes: FixSetup | None,
) -> None:
    """``--keep``: leave the stack and the pipeline running until Ctrl-C."""
    from mendline.cli._demo_fix import keep_lines

    shown = stack.shown_environ  # the password stays in its file (PGPASSFILE)
    summary.database_url = shown["MENDLINE_DATABASE_URL"]
    summary.passfile = shown.get("PGPASSFILE")
    screen.say(
        f"\nthe dev stack and the pipeline keep running; connect with\n"
        f"  {_psql(stack)}\n"
        f"and send more errors with\n"
        f"  MENDLINE_KAFKA_BOOTSTRAP={settings.kafka_bootstrap} "
        f"MENDLINE_ERRORS_TOPIC={settings.errors_topic} \\\n"
        "    mendline emit --service shop --message 'hello'"
    )
    if fixes is not None:
        summary.fix_settings = fixes.environ
        for line in keep_lines(summary.fixes, fixes, shown):
            screen.say(line)
    if summary.dashboard is not None:
        screen.say(
            f"or click through the issues, findings and the proposed fix on the dashboard:\n"
            f"  {summary.dashboard['url']}  (log in as {summary.dashboard['user']},"
            f" password {summary.dashboard['password']})"
        )
    if summary.relay_dsn is not None:
        screen.say(
            "or send errors from an app in any language with its Sentry SDK, the DSN set to\n"
            f"  {summary.relay_dsn}"
        )
    screen.say("press Ctrl-C to stop")
    if args.json:  # a script reads the summary, then connects while the demo waits
        print_json(asdict(summary))
        sys.stdout.flush()
    await stop.wait()


def _psql(stack: DevStack) -> str:
    """The psql command that connects to the stack's database, showing no password."""
    shown = stack.shown_environ
    passfile = f"PGPASSFILE={shown['PGPASSFILE']} " if "PGPASSFILE" in shown else ""
    return f"{passfile}psql '{shown['MENDLINE_DATABASE_URL']}'"


def _topics_of(settings: Settings) -> list[str]:
    return [
        settings.errors_topic,
        settings.dlq_topic,
        settings.checkins_topic,
        settings.checkins_dlq_topic,
    ]


async def _drop_topics(settings: Settings) -> None:
    """Delete a demo run's topics from an external broker (best effort: say if it could not)."""
    from aiokafka.admin import AIOKafkaAdminClient

    from mendline.ingest import kafka_client_options

    admin = AIOKafkaAdminClient(**kafka_client_options(settings))
    try:
        await admin.start()
        await admin.delete_topics(_topics_of(settings))
    except Exception as exc:
        logging.getLogger("mendline").warning(
            "mendline demo: could not delete its topics %s: %s",
            ", ".join(_topics_of(settings)),
            exc,
        )
    finally:
        await admin.close()


@contextlib.contextmanager
def _environ(name: str) -> Iterator[None]:
    """Restore the variable ``name`` as it was when the block ends."""
    before = os.environ.get(name)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


class _ScreenHandler(logging.Handler):
    """The stages' warnings, as lines of the story rather than across the status line."""

    def __init__(self, screen: Screen) -> None:
        super().__init__(logging.WARNING)
        self._screen = screen

    def emit(self, record: logging.LogRecord) -> None:
        """Show one record."""
        self._screen.say(f"  ! {record.getMessage()}", "yellow")


@contextlib.contextmanager
def _logs_on(screen: Screen) -> Iterator[None]:
    """mendline's own warnings on the screen while the block runs."""
    handler = _ScreenHandler(screen)
    logger = logging.getLogger("mendline")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
