"""The ``mendline`` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mendline.schemas.errors import ConfigError, MendlineError
from mendline.schemas.settings import Settings, load_settings

if TYPE_CHECKING:
    from mendline.sinks import FindingStore

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every mendline command."""
    parser = argparse.ArgumentParser(
        prog="mendline",
        description="Errors your apps log -> grouped issues, root causes and alerts.",
    )
    parser.add_argument("--config", type=Path, help="a TOML settings file")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="start the dev stack, log real errors from a sample app, show them arrive"
    )
    demo.add_argument("--json", action="store_true", help="print the events as JSON lines")
    demo.set_defaults(run=_demo)

    consume = commands.add_parser(
        "consume", help="consume the errors topic into issues in PostgreSQL (a consumer group)"
    )
    consume.set_defaults(run=_consume)

    analyze = commands.add_parser(
        "analyze",
        help="analyse new and regressed issues into findings (a worker; or one --issue)",
    )
    analyze.add_argument("--issue", type=_positive, help="analyse this issue now and print it")
    analyze.add_argument(
        "--fresh", action="store_true", help="with --issue: analyse again, not from the store"
    )
    analyze.add_argument("--json", action="store_true", help="with --issue: as a JSON object")
    analyze.set_defaults(run=_analyze)

    run = commands.add_parser(
        "run", help="consume, analyze and alert in one process (each restarted if it fails)"
    )
    run.add_argument(
        "--only",
        type=_stages,
        help="comma-separated stages to run: consume, analyze, alert (default: all)",
    )
    run.set_defaults(run=_run)

    alert = commands.add_parser(
        "alert", help="route new, regressed and spiking issues to Slack, email and PagerDuty"
    )
    alert.set_defaults(run=_alert)

    from mendline._routes_cli import add_routes_commands

    add_routes_commands(commands)

    findings = commands.add_parser("findings", help="read and judge root-cause findings")
    finding_commands = findings.add_subparsers(dest="findings_command", required=True)
    findings_list = finding_commands.add_parser("list", help="the newest findings")
    findings_list.add_argument("--issue", type=_positive, help="only this issue's")
    findings_list.add_argument("--limit", type=_positive, default=20, help="at most this many")
    findings_list.add_argument("--json", action="store_true", help="as JSON lines")
    findings_list.set_defaults(run=_findings_list)
    findings_show = finding_commands.add_parser("show", help="one finding, whole")
    findings_show.add_argument("id", type=_positive)
    findings_show.add_argument("--json", action="store_true", help="as a JSON object")
    findings_show.set_defaults(run=_findings_show)
    mark = finding_commands.add_parser(
        "mark", help="say a finding was right or wrong; similar issues are analysed with it"
    )
    mark.add_argument("id", type=_positive)
    mark.add_argument("verdict", choices=["right", "wrong"])
    mark.add_argument("--note", help="what was really going on")
    mark.set_defaults(run=_findings_mark)

    migrate = commands.add_parser("migrate", help="apply the database migrations")
    migrate.set_defaults(run=_migrate)

    fingerprint = commands.add_parser(
        "fingerprint",
        help="ErrorEvent JSON lines on stdin -> '<event_id> <fingerprint>' lines on stdout",
    )
    fingerprint.set_defaults(run=_fingerprint)

    issues = commands.add_parser("issues", help="work with issues")
    issue_commands = issues.add_subparsers(dest="issues_command", required=True)
    issues_list = issue_commands.add_parser("list", help="issues, most recently seen first")
    issues_list.add_argument(
        "--status",
        choices=["unresolved", "resolved", "ignored", "all"],
        default="unresolved",
        help="which issues (default: unresolved)",
    )
    issues_list.add_argument("--service", help="only this service's")
    issues_list.add_argument("--limit", type=_positive, default=50, help="at most this many")
    issues_list.add_argument("--json", action="store_true", help="as JSON lines")
    issues_list.set_defaults(run=_issues_list)
    issues_show = issue_commands.add_parser("show", help="one issue with its newest finding")
    issues_show.add_argument("id", type=_positive)
    issues_show.add_argument("--json", action="store_true", help="as a JSON object")
    issues_show.set_defaults(run=_issues_show)
    ignore = issue_commands.add_parser(
        "ignore", help="stop alerting on an issue; its events are still counted"
    )
    ignore.add_argument("id", type=_positive)
    ignore.set_defaults(run=_issues_ignore)
    merge = issue_commands.add_parser(
        "merge", help="merge issue SOURCE into TARGET; later events of both count on TARGET"
    )
    merge.add_argument("target", type=int)
    merge.add_argument("source", type=int)
    merge.set_defaults(run=_issues_merge)
    resolve = issue_commands.add_parser(
        "resolve", help="mark an issue resolved; a later event reopens it as a regression"
    )
    resolve.add_argument("id", type=_positive)
    resolve.add_argument("--note", help="what fixed it (later similar issues are told)")
    resolve.set_defaults(run=_issues_resolve)

    events = commands.add_parser("events", help="manage stored events")
    event_commands = events.add_subparsers(dest="events_command", required=True)
    prune = event_commands.add_parser(
        "prune", help="drop the days of events older than the retention"
    )
    prune.add_argument(
        "--days", type=_positive, help="keep this many days (default: MENDLINE_RETENTION_DAYS)"
    )
    prune.set_defaults(run=_events_prune)

    dlq = commands.add_parser("dlq", help="inspect and re-drive the dead-letter topic")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True)
    dlq_list = dlq_commands.add_parser("list", help="the rejected records and why")
    dlq_list.add_argument("--limit", type=_positive, default=100, help="at most this many")
    dlq_list.add_argument("--reason", help="only this reason (not_json, invalid, ...)")
    dlq_list.add_argument("--json", action="store_true", help="as JSON lines")
    dlq_list.set_defaults(run=_dlq_list)
    dlq_redrive = dlq_commands.add_parser(
        "redrive", help="send the rejected records through the pipeline again, after a fix"
    )
    dlq_redrive.add_argument("--reason", help="only this reason (progress is then not saved)")
    dlq_redrive.set_defaults(run=_dlq_redrive)

    devstack = commands.add_parser(
        "devstack", help="run the embedded Kafka broker and PostgreSQL until interrupted"
    )
    devstack.set_defaults(run=_devstack)

    topics = commands.add_parser("topics", help="manage mendline's Kafka topics")
    topic_commands = topics.add_subparsers(dest="topics_command", required=True)
    ensure = topic_commands.add_parser("ensure", help="create the errors and DLQ topics")
    ensure.set_defaults(run=_topics_ensure)

    config = commands.add_parser("config", help="inspect the settings")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    show = config_commands.add_parser("show", help="the effective settings, secrets masked")
    show.add_argument("--json", action="store_true", help="as a JSON object")
    show.set_defaults(run=_config_show)
    reference = config_commands.add_parser(
        "reference", help="every setting with its default, as a Markdown table"
    )
    reference.set_defaults(run=_config_reference)

    schema = commands.add_parser("schema", help="print the ErrorEvent v1 JSON Schema")
    schema.add_argument(
        "--write", action="store_true", help="rewrite the schema file shipped in the package"
    )
    schema.set_defaults(run=_schema)
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    if hasattr(signal, "SIGPIPE"):  # `mendline ... | head` ends quietly
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if not args.debug:  # our one-line errors say it; the client's own retry logs would not
        import logging

        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    run: Callable[[argparse.Namespace, Settings], int] = args.run
    try:
        settings = load_settings(args.config)
        return run(args, settings)
    except KeyboardInterrupt:
        return 130
    except MendlineError as exc:
        if args.debug:
            raise
        print(f"mendline: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if args.debug:
            raise
        print(f"mendline: {type(exc).__name__}: {exc}", file=sys.stderr)
        print("hint: run again with --debug for the traceback", file=sys.stderr)
        return 1


def _consume(args: argparse.Namespace, settings: Settings) -> int:
    from mendline._stages import run_consume

    _log_to_stderr(args)
    return asyncio.run(run_consume(settings))


def _log_to_stderr(args: argparse.Namespace) -> None:
    import logging

    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING if args.debug else logging.CRITICAL)


async def _connect(settings: Settings, *, for_migrate: bool = False) -> Any:
    import asyncpg

    from mendline.analyzers.scrubbing import Scrubber

    url = settings.database_url.get_secret_value()
    try:
        conn = await asyncpg.connect(url)
    except (OSError, asyncpg.PostgresError) as exc:
        shown = Scrubber().scrub_text(url)
        raise MendlineError(f"cannot reach PostgreSQL at {shown}: {exc}") from exc
    has_schema = await conn.fetchval("SELECT to_regclass('mendline.schema_migrations') IS NOT NULL")
    if not has_schema and not for_migrate:
        await conn.close()
        raise MendlineError("the database has no mendline tables yet: run `mendline migrate`")
    return conn


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.sinks import migrate

    async def go() -> list[str]:
        conn = await _connect(settings, for_migrate=True)
        try:
            return await migrate(conn)
        finally:
            await conn.close()

    applied = asyncio.run(go())
    print(f"applied {', '.join(applied)}" if applied else "the database is up to date")
    return 0


def _fingerprint(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.analyzers.scrubbing import Scrubber
    from mendline.ingest import prepare_record
    from mendline.schemas.errors import InvalidEvent

    scrubber = Scrubber(settings.scrub_extra_keys, settings.scrub_extra_patterns)
    status = 0
    for number, line in enumerate(sys.stdin.buffer, start=1):
        if not line.strip():
            continue
        try:
            event = prepare_record(line.rstrip(b"\r\n"), scrubber)
        except InvalidEvent as exc:
            print(f"line {number}: {exc.reason}: {exc.detail}", file=sys.stderr)
            status = 1
            continue
        print(f"{event.event_id} {event.fingerprint}", flush=False)
    sys.stdout.flush()
    return status


_ISSUE_COLUMNS = """id, service, title, culprit, level, status, times_seen, first_seen, last_seen,
    first_release, last_release, environments, regressions, resolution_note"""


def _issues_list(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> list[Any]:
        conn = await _connect(settings)
        try:
            return list(
                await conn.fetch(
                    f"""SELECT {_ISSUE_COLUMNS} FROM mendline.issues
                        WHERE ($1 = 'all' AND status <> 'merged' OR status = $1)
                          AND ($2::text IS NULL OR service = $2)
                        ORDER BY last_seen DESC LIMIT $3""",
                    args.status,
                    args.service,
                    args.limit,
                )
            )
        finally:
            await conn.close()

    for row in asyncio.run(go()):
        if args.json:
            print(json.dumps(dict(row), default=str))
        else:
            print(
                f"#{row['id']:<6} {row['level']:8s} {row['service'][:16]:16s}"
                f" {row['times_seen']:>8} {row['last_seen']:%Y-%m-%d %H:%M}  {row['title'][:70]}"
            )
    return 0


def _issues_show(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> tuple[Any, Any]:
        conn = await _connect(settings)
        try:
            issue = await conn.fetchrow(
                f"SELECT {_ISSUE_COLUMNS} FROM mendline.issues WHERE id = $1", args.id
            )
            finding = await conn.fetchrow(
                """SELECT finding_id, analyser, category, severity, confidence, root_cause,
                          suggested_fix FROM mendline.issue_findings WHERE issue_id = $1""",
                args.id,
            )
            return issue, finding
        finally:
            await conn.close()

    issue, finding = asyncio.run(go())
    if issue is None:
        raise MendlineError(f"there is no issue {args.id}")
    if args.json:
        shown = {**dict(issue), "finding": dict(finding) if finding else None}
        print(json.dumps(shown, default=str))
        return 0
    print(f"issue #{issue['id']}  {issue['title']}")
    for name in (
        "service",
        "culprit",
        "level",
        "status",
        "times_seen",
        "first_seen",
        "last_seen",
        "first_release",
        "last_release",
        "environments",
        "regressions",
        "resolution_note",
    ):
        if issue[name] not in (None, [], ""):
            print(f"  {name:16s}{issue[name]}")
    if finding:
        print(
            f"  root cause      {finding['root_cause']}  ({finding['category']},"
            f" {finding['severity']}, {finding['confidence']:.2f}, finding"
            f" #{finding['finding_id']})"
        )
        print(f"  fix             {finding['suggested_fix']}")
    else:
        print("  root cause      not analysed yet")
    return 0


def _issues_ignore(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> str:
        conn = await _connect(settings)
        try:
            return str(
                await conn.execute(
                    """UPDATE mendline.issues SET status = 'ignored', updated_at = now()
                       WHERE id = $1 AND status <> 'merged'""",
                    args.id,
                )
            )
        finally:
            await conn.close()

    if asyncio.run(go()).endswith(" 0"):
        raise MendlineError(f"there is no issue {args.id} (or it was merged)")
    print(f"ignored issue {args.id}")
    return 0


def _issues_merge(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.sinks import merge_issues

    async def go() -> None:
        conn = await _connect(settings)
        try:
            await merge_issues(conn, args.target, args.source)
        finally:
            await conn.close()

    asyncio.run(go())
    print(f"merged issue {args.source} into {args.target}")
    return 0


def _issues_resolve(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.sinks import resolve_issue

    async def go() -> None:
        conn = await _connect(settings)
        try:
            await resolve_issue(conn, args.id, args.note)
        finally:
            await conn.close()

    asyncio.run(go())
    print(f"resolved issue {args.id}")
    return 0


def _analyze(args: argparse.Namespace, settings: Settings) -> int:
    if args.issue is None:
        if args.fresh or args.json:
            raise ConfigError("--fresh and --json go with --issue")
        from mendline._stages import run_analyze

        _log_to_stderr(args)
        return asyncio.run(run_analyze(settings))
    from mendline._analyze import AnalyzeWorker, describe, make_analysis

    async def go() -> tuple[Any, bool]:
        store = await _finding_store(settings)
        analysis = make_analysis(settings, store)
        try:
            worker = AnalyzeWorker(settings, store, analysis)
            return await worker.analyse_issue(args.issue, fresh=args.fresh)
        finally:
            await analysis.aclose()
            await store.pool.close()

    stored, served = asyncio.run(go())
    if args.json:
        print(json.dumps(_finding_json(stored, served)))
    else:
        print(describe(stored, served))
    return 0


async def _finding_store(settings: Settings) -> FindingStore:
    import asyncpg

    from mendline.sinks import FindingStore

    conn = await _connect(settings)  # a clear error when unreachable or not migrated
    await conn.close()
    return FindingStore(await asyncpg.create_pool(settings.database_url.get_secret_value()))


def _finding_json(stored: Any, served: bool = False) -> dict[str, Any]:
    return {
        "id": stored.id,
        "issue_id": stored.issue_id,
        "served_from_store": served,
        "cached_from": stored.cached_from,
        "verdict": stored.verdict,
        "verdict_note": stored.verdict_note,
        **stored.finding.model_dump(mode="json"),
    }


def _stages(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    known = ("consume", "analyze", "alert")
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"stages are {', '.join(known)}; not {', '.join(unknown) or 'nothing'}"
        )
    return list(dict.fromkeys(names))


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from mendline._stages import run_stages

    _log_to_stderr(args)
    return asyncio.run(run_stages(settings, args.only))


def _alert(args: argparse.Namespace, settings: Settings) -> int:
    from mendline._stages import run_alert

    _log_to_stderr(args)
    return asyncio.run(run_alert(settings))


def _findings_list(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> list[Any]:
        store = await _finding_store(settings)
        try:
            return await store.list(args.issue, args.limit)
        finally:
            await store.pool.close()

    for stored in asyncio.run(go()):
        if args.json:
            found = _finding_json(stored)
            found.pop("prompt", None)
            print(json.dumps(found))
        else:
            f = stored.finding
            print(
                f"#{stored.id:<6} issue #{stored.issue_id:<6} {f.severity:8s} {f.category:28s}"
                f" {f.confidence:.2f}  {f.root_cause[:90]}"
            )
    return 0


def _findings_show(args: argparse.Namespace, settings: Settings) -> int:
    from mendline._analyze import describe

    async def go() -> Any:
        store = await _finding_store(settings)
        try:
            return await store.get(args.id)
        finally:
            await store.pool.close()

    stored = asyncio.run(go())
    print(json.dumps(_finding_json(stored)) if args.json else describe(stored))
    return 0


def _findings_mark(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> None:
        store = await _finding_store(settings)
        try:
            await store.mark(args.id, args.verdict, args.note)
        finally:
            await store.pool.close()

    asyncio.run(go())
    print(f"marked finding {args.id} {args.verdict}")
    return 0


def _events_prune(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.sinks import prune_events

    days = args.days if args.days is not None else settings.retention_days

    async def go() -> list[str]:
        conn = await _connect(settings)
        try:
            return await prune_events(conn, days)
        finally:
            await conn.close()

    dropped = asyncio.run(go())
    print(f"dropped {len(dropped)} day(s) of events older than {days} days")
    return 0


def _dlq_list(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.ingest import read_dead_letters

    letters = asyncio.run(read_dead_letters(settings, args.limit, args.reason))
    for d in letters:
        if args.json:
            print(
                json.dumps(
                    {
                        "partition": d.partition,
                        "offset": d.offset,
                        "timestamp": d.timestamp.isoformat(),
                        "reason": d.reason,
                        "message": d.message,
                        "source": d.source,
                        "value": (d.value or b"").decode("utf-8", "replace"),
                    }
                )
            )
        else:
            preview = (d.value or b"").decode("utf-8", "replace")[:80]
            print(f"{d.partition}@{d.offset}  {d.reason:22s} {d.source}  {d.message[:100]}")
            print(f"    {preview}")
    if not args.json:
        print(f"{len(letters)} record(s)", file=sys.stderr)
    return 0


def _dlq_redrive(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.ingest import redrive

    count = asyncio.run(redrive(settings, args.reason))
    print(f"re-drove {count} record(s) to {settings.errors_topic}")
    return 0


def _schema(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.schemas.event import JSON_SCHEMA_PATH, json_schema_text

    if args.write:
        JSON_SCHEMA_PATH.write_text(json_schema_text())
        print(f"wrote {JSON_SCHEMA_PATH}")
    else:
        sys.stdout.write(json_schema_text())
    return 0


def _config_show(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.analyzers.scrubbing import Scrubber

    values = json.loads(settings.model_dump_json())  # SecretStr dumps as "**********"
    # The URL is worth seeing, with its password filtered by the same rules as events.
    values["database_url"] = Scrubber().scrub_text(settings.database_url.get_secret_value())
    if args.json:
        print(json.dumps(values, indent=2))
    else:
        prefix = str(Settings.model_config.get("env_prefix", ""))
        width = max(len(name) for name in values) + len(prefix)
        for name, value in values.items():
            print(f"{(prefix + name).upper():{width}}  {json.dumps(value)}")
    return 0


def _config_reference(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.schemas.settings import settings_reference

    sys.stdout.write(settings_reference())
    return 0


def _topics_ensure(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.ingest import ensure_topics

    outcome = asyncio.run(ensure_topics(settings))
    for topic, state in outcome.items():
        print(f"{topic}: {state}")
    return 0


def _devstack(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.devstack import DevStack

    with DevStack() as stack:
        print(f"MENDLINE_KAFKA_BOOTSTRAP={stack.kafka_bootstrap}")
        print(f"MENDLINE_DATABASE_URL={stack.database_url}")
        print("running; press Ctrl-C to stop", file=sys.stderr, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.devstack import DevStack
    from mendline.sample_app import FAILURES, configure_logging, run_failures

    say = _Say(quiet=args.json)
    say("starting the dev stack (Tansu broker, PostgreSQL)...")
    with DevStack() as stack, tempfile.TemporaryDirectory(prefix="mendline-demo-") as tmp:
        say(f"  Kafka      {stack.kafka_bootstrap}")
        say(f"  PostgreSQL {stack.database_url}")
        demo_settings = load_settings(
            args.config,
            kafka_bootstrap=stack.kafka_bootstrap,
            database_url=stack.database_url,
            spool_dir=Path(tmp) / "spool",
        )
        from mendline.ingest import ensure_topics

        asyncio.run(ensure_topics(demo_settings))
        say(f"\nthe sample app 'shop' logs {len(FAILURES)} real failures through structlog")
        say("(its own log lines, unchanged by mendline, go to standard error):")
        processor = configure_logging("shop", settings=demo_settings, environment="demo")
        started = time.time()
        names = run_failures()
        if not processor.shipper.flush(timeout=30):
            say("  (some events are still on their way)")
        say(f"\nreading them back from topic {demo_settings.errors_topic}:")
        events = asyncio.run(_read_topic(demo_settings, len(names), timeout=30))
        for event in events:
            if args.json:
                print(json.dumps(event))
            else:
                say(_describe(event))
        processor.shipper.shutdown(5)
        say(
            f"\n{len(events)} of {len(names)} events arrived, validated and scrubbed, "
            f"{time.time() - started:.2f} s after the first log call."
        )
        return 0 if len(events) == len(names) else 1


async def _read_topic(settings: Settings, count: int, timeout: float) -> list[dict[str, Any]]:
    from aiokafka import AIOKafkaConsumer

    from mendline.ingest import kafka_client_options
    from mendline.schemas.event import parse_event

    consumer = AIOKafkaConsumer(
        settings.errors_topic,
        **kafka_client_options(settings),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    events: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + timeout
        while len(events) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    parse_event(record.value)  # the consumer's own check of the contract
                    events.append(json.loads(record.value))
    finally:
        await consumer.stop()
    return sorted(events, key=lambda e: e["timestamp"])


def _describe(event: dict[str, Any]) -> str:
    chain = " <- ".join(f"{e['type']}: {e['value']}" for e in reversed(event["exceptions"]))
    culprit = next(
        (
            f"{f['module']}.{f['function']}  `{(f['context_line'] or '').strip()}`"
            for e in reversed(event["exceptions"])
            for f in reversed(e["frames"])
            if f["in_app"]
        ),
        "-",
    )
    return (
        f"\n  {event['event_id']}  {event['level'].upper()}  {event['service']}"
        f"/{event['environment']}  {event['message']}\n"
        f"    exception  {chain}\n"
        f"    culprit    {culprit}\n"
        f"    context    {json.dumps(event['context'])}"
    )


class _Say:
    def __init__(self, quiet: bool) -> None:
        self._quiet = quiet

    def __call__(self, text: str) -> None:
        if not self._quiet:
            print(text, flush=True)
