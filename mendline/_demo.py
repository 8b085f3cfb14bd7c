"""``mendline demo``: the whole pipeline on the dev stack, fed by a sample web app's errors."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email
import email.policy
import json
import os
import shutil
import sys
import tempfile
import textwrap
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import asyncpg
from aiohttp import web

from mendline._console import colour_for, shorten
from mendline.schemas.errors import MendlineError
from mendline.schemas.settings import Settings, load_settings

__all__ = ["SLACK_WEBHOOK_ENV", "demo", "demo_routes"]

#: The variable the demo's routes name for the stand-in Slack webhook.
SLACK_WEBHOOK_ENV = "MENDLINE_DEMO_SLACK_WEBHOOK_URL"

_SERVICE = "shop"
_RELEASE = "1.4.2"
_ENVIRONMENT = "demo"
_ROUNDS = 3
_TIMEOUT = 90.0  # seconds from the first request until everything must have settled

_EXPLORE = """\
-- What is broken, most frequent first
SELECT id, title, times_seen, culprit FROM mendline.open_issues ORDER BY times_seen DESC;
-- Each issue's root cause, with the suggested fix
SELECT issue_id, category, severity, confidence, root_cause, suggested_fix
FROM mendline.issue_findings ORDER BY issue_id;
-- What was sent to whom
SELECT issue_id, receiver, kind, severity, status, delivered_at
FROM mendline.alert_deliveries ORDER BY id;
-- The events of one issue, newest first
SELECT received_at, message, context FROM mendline.issue_events
WHERE issue_id = 1 ORDER BY received_at DESC LIMIT 5;"""


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


def demo(args: argparse.Namespace, settings: Settings) -> int:
    """Run the demo; 0 when every event became an issue with a finding and its alerts went out."""
    from mendline.devstack import DevStack

    as_json: bool = args.json
    screen = _Screen(
        sys.stderr if as_json else sys.stdout,
        interactive=not args.no_interactive and not as_json and sys.stdout.isatty(),
    )
    screen.title("mendline demo: errors from a web app become issues, root causes and alerts")
    screen.say("starting the dev stack (a Kafka-protocol broker and PostgreSQL)...")
    tmp = Path(tempfile.mkdtemp(prefix="mendline-demo-"))
    try:
        with DevStack() as stack:
            summary, printed = asyncio.run(
                _demo(args, settings, stack.kafka_bootstrap, stack.database_url, tmp, screen)
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if as_json and not printed:
        print(json.dumps(asdict(summary), default=str))
    return 0 if summary.complete else 1


@dataclass
class _Progress:
    """Where the pipeline is, read from PostgreSQL."""

    events: int = 0
    issues: int = 0
    findings: int = 0
    triggers: int = 0
    unsettled: int = 0  # triggers not yet routed, analysed and followed
    delivered: int = 0
    pending: int = 0
    failed: int = 0


@dataclass
class _Summary:
    """What the demo did, printed as a table or, with --json, as one object."""

    requests: int = 0
    events_logged: int = 0
    progress: _Progress = field(default_factory=_Progress)
    issues: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    received: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    database_url: str | None = None
    complete: bool = False
    problem: str | None = None


async def _demo(
    args: argparse.Namespace,
    settings: Settings,
    kafka_bootstrap: str,
    database_url: str,
    tmp: Path,
    screen: _Screen,
) -> tuple[_Summary, bool]:
    """The demo inside the dev stack; the summary, and whether it was printed already."""
    from mendline._stages import _stop_on_signals, run_pipeline
    from mendline.ingest import ensure_topics
    from mendline.sample_app import drive
    from mendline.sinks import migrated_pool

    stop = asyncio.Event()
    _stop_on_signals(stop)
    async with _StandIns(screen) as stand_ins:
        routes_file = tmp / "routes.toml"
        routes_file.write_text(demo_routes(stand_ins.smtp_port))
        os.environ[SLACK_WEBHOOK_ENV] = stand_ins.slack_url
        demo_settings = load_settings(
            args.config,
            kafka_bootstrap=kafka_bootstrap,
            database_url=database_url,
            llm_base_url=None,  # the heuristic analyser: offline, no key, no cost
            routes_file=routes_file,
            frequency_threshold=20,
            analyze_poll_interval=1.0,
            alert_poll_interval=0.5,
            spool_dir=tmp / "spool",
        )
        await ensure_topics(demo_settings)
        pool = await migrated_pool(database_url, max_size=2)
        started = datetime.now(UTC)
        pipeline = asyncio.create_task(run_pipeline(demo_settings, stop))
        summary = _Summary()
        printed = False
        try:
            screen.say(f"  Kafka        {kafka_bootstrap}, topic {demo_settings.errors_topic}")
            screen.say(f"  PostgreSQL   {_shown_url(database_url)}")
            screen.say("  pipeline     consume -> analyze (heuristic analyser, offline) -> alert")
            screen.say(f"  stand-ins    Slack webhook {stand_ins.slack_url}")
            screen.say(f"               SMTP 127.0.0.1:{stand_ins.smtp_port}")
            async with _sample_app(demo_settings, tmp) as app_url:
                screen.say(
                    f"  sample app   '{_SERVICE}' at {app_url} (structlog + mendline's processor)"
                )
                screen.say(
                    f"\ndriving {_ROUNDS} rounds of requests at the shop;"
                    " what reaches Slack and email:"
                )
                summary = await _watch(pool, started, drive(app_url, rounds=_ROUNDS), screen, stop)
            await _summarise(pool, started, summary)
            summary.received = dict(stand_ins.received)
            _show(screen, summary, database_url)
            if args.keep and not stop.is_set():
                summary.database_url = database_url
                screen.say(
                    f"\nthe dev stack and the pipeline keep running; connect with\n"
                    f"  psql '{database_url}'\n"
                    f"and send more errors with\n"
                    f"  MENDLINE_KAFKA_BOOTSTRAP={kafka_bootstrap} "
                    f"MENDLINE_ERRORS_TOPIC={demo_settings.errors_topic} \\\n"
                    "    mendline emit --service shop --message 'hello'\n"
                    "press Ctrl-C to stop"
                )
                if args.json:  # a script waits for the summary before it connects
                    print(json.dumps(asdict(summary), default=str), flush=True)
                    printed = True
                await stop.wait()
            elif not args.keep:
                screen.say(
                    "\nthe dev stack stops now; `mendline demo --keep` leaves it running for psql."
                )
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pipeline, 30)
            await pool.close()
    return summary, printed


async def _watch(
    pool: asyncpg.Pool,
    started: datetime,
    traffic: Any,
    screen: _Screen,
    stop: asyncio.Event,
) -> _Summary:
    """Drive the traffic and show the pipeline's progress until it has settled."""
    summary = _Summary()
    clock = time.monotonic()
    driving = asyncio.ensure_future(traffic)
    deadline = clock + _TIMEOUT
    progress = _Progress()
    try:
        while not stop.is_set():
            progress = await _progress(pool, started)
            sent = f"requests sent {summary.requests}" if not driving.done() else ""
            if driving.done():
                result = driving.result()
                summary.requests, summary.events_logged = result.requests, result.events_logged
                sent = f"{summary.requests} requests"
            screen.status(
                f"{sent} · events {progress.events}"
                + (f"/{summary.events_logged}" if driving.done() else "")
                + f" · issues {progress.issues} · findings {progress.findings}"
                f" · alerts sent {progress.delivered}"
                + (f", waiting {progress.pending}" if progress.pending else "")
                + (f", failed {progress.failed}" if progress.failed else ""),
                time.monotonic() - clock,
            )
            if driving.done() and _settled(progress, summary.events_logged):
                summary.complete = progress.failed == 0
                if progress.failed:
                    summary.problem = f"{progress.failed} alert deliveries failed"
                break
            if time.monotonic() > deadline:
                summary.problem = _what_is_missing(progress, summary.events_logged, driving.done())
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
        else:
            summary.problem = "stopped before the pipeline had settled"
    finally:
        if not driving.done():
            driving.cancel()
            with contextlib.suppress(BaseException):
                await driving
        screen.end_status()
    summary.progress = progress
    summary.seconds = round(time.monotonic() - clock, 1)
    return summary


def _settled(progress: _Progress, expected_events: int) -> bool:
    return (
        progress.events >= expected_events
        and progress.unsettled == 0
        and progress.pending == 0
        and progress.findings >= progress.issues
    )


def _what_is_missing(progress: _Progress, expected_events: int, driven: bool) -> str:
    if not driven:
        return f"the sample app did not answer its requests within {_TIMEOUT:.0f} s"
    if progress.events < expected_events:
        return f"only {progress.events} of {expected_events} events were stored"
    if progress.findings < progress.issues:
        return f"only {progress.findings} of {progress.issues} issues have a finding"
    return f"{progress.pending + progress.unsettled} alerts were still on their way"


_PROGRESS = """
SELECT (SELECT count(*) FROM mendline.events WHERE received_at >= $1) AS events,
       (SELECT count(DISTINCT issue_id) FROM mendline.events WHERE received_at >= $1) AS issues,
       (SELECT count(DISTINCT issue_id) FROM mendline.findings WHERE created_at >= $1)
           AS findings,
       (SELECT count(*) FROM mendline.triggers WHERE created_at >= $1) AS triggers,
       (SELECT count(*) FROM mendline.triggers t WHERE t.created_at >= $1
          AND (t.routed_at IS NULL
               OR (t.kind IN ('new_issue', 'regression')
                   AND (t.followed_at IS NULL
                        OR NOT EXISTS (SELECT 1 FROM mendline.findings f
                                       WHERE f.trigger_id = t.id))))) AS unsettled,
       (SELECT count(*) FILTER (WHERE status = 'delivered') FROM mendline.deliveries
          WHERE created_at >= $1) AS delivered,
       (SELECT count(*) FILTER (WHERE status = 'pending') FROM mendline.deliveries
          WHERE created_at >= $1) AS pending,
       (SELECT count(*) FILTER (WHERE status IN ('failed', 'dead')) FROM mendline.deliveries
          WHERE created_at >= $1) AS failed
"""


async def _progress(pool: asyncpg.Pool, started: datetime) -> _Progress:
    row = await pool.fetchrow(_PROGRESS, started)
    assert row is not None  # a SELECT without FROM returns its one row
    return _Progress(**dict(row))


async def _summarise(pool: asyncpg.Pool, started: datetime, summary: _Summary) -> None:
    rows = await pool.fetch(
        """SELECT i.id, i.title, i.culprit, i.level, i.times_seen, f.category, f.severity,
                  f.confidence, f.root_cause, f.suggested_fix, f.fix_patch IS NOT NULL AS patch
           FROM mendline.issues i
           LEFT JOIN mendline.issue_findings f ON f.issue_id = i.id
           WHERE i.id IN (SELECT issue_id FROM mendline.events WHERE received_at >= $1)
           ORDER BY i.times_seen DESC, i.id""",
        started,
    )
    summary.issues = [dict(row) for row in rows]
    rows = await pool.fetch(
        """SELECT issue_id, receiver, kind, severity, mode, status, attempts, delivered_at
           FROM mendline.alert_deliveries WHERE issue_id = ANY($1::bigint[]) ORDER BY id""",
        [issue["id"] for issue in summary.issues],
    )
    summary.deliveries = [dict(row) for row in rows]


def _show(screen: _Screen, summary: _Summary, database_url: str) -> None:
    progress = summary.progress
    screen.say(
        f"\n{summary.requests} requests -> {summary.events_logged} errors logged -> "
        f"{progress.events} events stored -> {len(summary.issues)} issues -> "
        f"{progress.findings} findings -> {progress.delivered} alerts delivered in "
        f"{sum(summary.received.values())} messages ({summary.seconds:.1f} s)"
    )
    if summary.problem:
        screen.say(f"not finished: {summary.problem}", style="red")
    width = max(60, min(shutil.get_terminal_size((100, 24)).columns, 120))
    screen.say(f"\n{'#':>3} {'seen':>5}  {'severity':<9}{'category':<29}issue and root cause")
    indent = " " * 48
    for issue in summary.issues:
        severity = issue["severity"] or issue["level"]
        screen.say(
            f"{issue['id']:>3} {issue['times_seen']:>5}  {severity:<9}"
            f"{issue['category'] or '-':<29}{shorten(issue['title'], width - 48)}",
            style=_SEVERITY_STYLE.get(severity),
        )
        if issue["root_cause"]:
            cause = textwrap.fill(
                issue["root_cause"],
                width=width,
                initial_indent=indent + "cause: ",
                subsequent_indent=indent + "       ",
                max_lines=3,
            )
            screen.say(cause, style="dim")
    sent: dict[str, int] = {}
    for delivery in summary.deliveries:
        key = f"{delivery['receiver']} {delivery['status']}"
        sent[key] = sent.get(key, 0) + 1
    screen.say(
        "\nalert deliveries: "
        + (", ".join(f"{count} {key}" for key, count in sorted(sent.items())) or "none")
        + "; the stand-ins received "
        + ", ".join(f"{count} {name} messages" for name, count in sorted(summary.received.items()))
    )
    screen.say(f"\nexplore it with SQL (psql '{database_url}'):", style="bold")
    screen.say(textwrap.indent(_EXPLORE, "  "))


_SEVERITY_STYLE = {"critical": "red", "error": "red", "high": "red", "warning": "yellow"}


def _shown_url(url: str) -> str:
    from mendline.analyzers.scrubbing import Scrubber

    return Scrubber().scrub_text(url)


@contextlib.asynccontextmanager
async def _sample_app(settings: Settings, tmp: Path) -> AsyncIterator[str]:
    """The sample app as its own process (as it would run), pointed at the demo's broker."""
    env = {
        **os.environ,
        "MENDLINE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "MENDLINE_ERRORS_TOPIC": settings.errors_topic,
        "MENDLINE_SPOOL_DIR": str(tmp / "app-spool"),
    }
    log_path = tmp / f"{_SERVICE}.log"
    with log_path.open("wb") as app_log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mendline.sample_app",
            "--port",
            "0",
            "--service",
            _SERVICE,
            "--release",
            _RELEASE,
            "--environment",
            _ENVIRONMENT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=app_log,
        )
    try:
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), 30)
        except TimeoutError:
            line = b""
        text = line.decode(errors="replace").strip()
        if not text.startswith("listening on "):
            tail = log_path.read_text(errors="replace")[-2000:]
            raise MendlineError(
                f"the sample app did not start: {text or 'no output'}\n{tail}",
            )
        yield text.removeprefix("listening on ")
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()


class _StandIns:
    """Loopback stand-ins for Slack (an incoming webhook) and an SMTP server that print what
    they receive, as the people on call would see it."""

    def __init__(self, screen: _Screen) -> None:
        self._screen = screen
        self.received: dict[str, int] = {"slack": 0, "email": 0}
        self.slack_url = ""
        self.smtp_port = 0
        self._runner: web.AppRunner | None = None
        self._smtp: asyncio.Server | None = None

    async def __aenter__(self) -> _StandIns:
        from aiosmtpd.smtp import SMTP

        app = web.Application()
        app.router.add_post("/services/demo", self._slack)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.slack_url = f"http://127.0.0.1:{port}/services/demo"
        loop = asyncio.get_running_loop()
        self._smtp = await loop.create_server(
            lambda: SMTP(self, hostname="smtp.demo.invalid"), "127.0.0.1", 0
        )
        self.smtp_port = self._smtp.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._smtp is not None:
            self._smtp.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _slack(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received["slack"] += 1
        text = body.get("text") or ""
        lines = [line for line in text.splitlines() if line.strip()][:4]
        self._screen.say(
            "  slack  " + "\n         ".join(shorten(line, 110) for line in lines), style="cyan"
        )
        return web.Response(text="ok")

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """aiosmtpd's hook: one email arrived."""
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.received["email"] += 1
        self._screen.say(
            f"  email  to {', '.join(envelope.rcpt_tos)}: {message['Subject']}", style="magenta"
        )
        return "250 OK"


class _Screen:
    """The demo's story: lines, and in a terminal a status line redrawn in place, in colour."""

    _STYLES = {
        "bold": "1",
        "dim": "2",
        "red": "31",
        "yellow": "33",
        "cyan": "36",
        "magenta": "35",
    }

    def __init__(self, stream: TextIO, *, interactive: bool) -> None:
        self._stream = stream
        self._interactive = interactive
        self._colour = interactive and colour_for(stream)
        self._status = ""
        self._last_plain = ""
        self._last_plain_at = 0.0
        self._pending = ""

    def title(self, text: str) -> None:
        """The first line."""
        self.say(text, style="bold")

    def say(self, text: str, style: str | None = None) -> None:
        """A line of the story, above the status line."""
        if self._colour and style:
            text = f"\x1b[{self._STYLES[style]}m{text}\x1b[0m"
        if self._interactive and self._status:
            self._stream.write("\r\x1b[K" + text + "\n" + self._status)
        else:
            self._stream.write(text + "\n")
        self._stream.flush()

    def status(self, text: str, seconds: float) -> None:
        """Where things are: redrawn in a terminal, else printed when it changes (1/s at most)."""
        if self._interactive:
            self._status = (
                f"  {_SPINNER[int(seconds * 4) % len(_SPINNER)]} {text}  ({seconds:.1f} s)"
            )
            self._stream.write("\r\x1b[K" + self._status)
            self._stream.flush()
        else:
            self._pending = f"  [{seconds:5.1f} s] {text}"
            if text != self._last_plain and time.monotonic() - self._last_plain_at >= 1.0:
                self._last_plain, self._last_plain_at = text, time.monotonic()
                self._flush_pending()

    def _flush_pending(self) -> None:
        if self._pending:
            self.say(self._pending)
            self._pending = ""

    def end_status(self) -> None:
        """Leave the last status on its own line."""
        if self._interactive and self._status:
            self._stream.write("\n")
            self._stream.flush()
            self._status = ""
        else:
            self._flush_pending()


_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
