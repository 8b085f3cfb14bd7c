"""The ``mendline`` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from mendline.cli._console import (
    AS_JSON,
    DEBUG_HINT,
    LOGS_AS_JSON,
    TAGS,
    UsageError,
    connect_database,
    hint_on,
    log_to_stderr,
    positive,
    print_done,
    print_error,
    print_json,
    reaching_kafka,
    shorten,
    shown_url,
    table,
)
from mendline.schemas.errors import ConfigError, MendlineError
from mendline.schemas.event import LEVELS
from mendline.schemas.settings import Settings, load_settings

__all__ = ["build_parser", "console", "main"]

_SETTINGS_HINT = (
    "check the --config file and the MENDLINE_* variables;"
    " `mendline config reference` lists the settings"
)
_ROUTES_HINT = "`mendline routes check` validates the routing file and names unset secrets"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every mendline command."""
    parser = argparse.ArgumentParser(
        prog="mendline",
        description="Errors your apps log -> grouped issues, root causes and alerts.",
    )
    parser.add_argument("--config", type=Path, help="a TOML settings file")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Commands that print a result take --json for scripts; workers, for their log lines.
    result, logs = [AS_JSON], [LOGS_AS_JSON]

    demo = commands.add_parser(
        "demo",
        help="the whole pipeline on the dev stack, fed by a sample web app's real errors",
    )
    demo.add_argument(
        "--keep", action="store_true", help="leave the broker and database running at the end"
    )
    demo.add_argument(
        "--no-interactive",
        action="store_true",
        help="plain progress lines, no colours or redrawing (for logs and CI)",
    )
    demo.add_argument(
        "--json", action="store_true", help="print the summary as one JSON object on stdout"
    )
    demo.set_defaults(run=_demo)

    doctor = commands.add_parser(
        "doctor",
        parents=result,
        help="check the settings, broker, database, LLM endpoint and alert channels",
    )
    doctor.set_defaults(run=_doctor)

    consume = commands.add_parser(
        "consume",
        parents=logs,
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
        parents=logs,
        help="consume, analyze and alert in one process (each restarted if it fails)",
    )
    run.add_argument(
        "--only",
        type=_stages,
        help="comma-separated stages to run: consume, analyze, alert (default: all)",
    )
    run.set_defaults(run=_run)

    alert = commands.add_parser(
        "alert",
        parents=logs,
        help="route new, regressed and spiking issues to Slack, email and PagerDuty",
    )
    alert.set_defaults(run=_alert)

    emit = commands.add_parser(
        "emit",
        parents=[*result, TAGS],
        help="send a test ErrorEvent (or a file of ErrorEvent JSON lines) to the errors topic",
    )
    source = emit.add_mutually_exclusive_group(required=True)
    source.add_argument("--message", help="the event's message (a log message template)")
    source.add_argument(
        "--file",
        type=argparse.FileType("rb"),
        metavar="FILE",
        help="ErrorEvent JSON lines to send ('-': standard input), each checked as the"
        " consumer checks it; a bad line is named and not sent",
    )
    emit.add_argument("--service", help="default: MENDLINE_SERVICE, else mendline-emit")
    emit.add_argument("--level", choices=LEVELS, help="default: error")
    emit.add_argument("--environment", help="default: MENDLINE_ENVIRONMENT")
    emit.add_argument("--release", help="default: MENDLINE_RELEASE")
    emit.add_argument(
        "--exception",
        type=_exception,
        action="append",
        default=[],
        metavar="TYPE:VALUE",
        help="an exception, e.g. 'ValueError:bad input' (repeat for a chain, root cause first)",
    )
    emit.add_argument(
        "--context", type=_json_object, metavar="JSON", help="the logged key-values, an object"
    )
    emit.add_argument(
        "--fingerprint",
        action="append",
        default=[],
        metavar="PART",
        help="custom grouping (repeat for several parts)",
    )
    emit.add_argument("--count", type=positive, help="send this many such events (default 1)")
    emit.set_defaults(run=_emit)

    from mendline.cli.issues import add_issue_commands
    from mendline.cli.routes import add_routes_commands

    add_routes_commands(commands, parents=result)
    add_issue_commands(commands, parents=result)

    migrate = commands.add_parser("migrate", parents=result, help="apply the database migrations")
    migrate.set_defaults(run=_migrate)

    fingerprint = commands.add_parser(
        "fingerprint",
        parents=result,
        help="ErrorEvent JSON lines on stdin -> '<event_id> <fingerprint>' lines on stdout",
    )
    fingerprint.set_defaults(run=_fingerprint)

    dlq = commands.add_parser("dlq", help="inspect and re-drive the dead-letter topic")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True)
    dlq_list = dlq_commands.add_parser("list", parents=result, help="the rejected records and why")
    dlq_list.add_argument("--limit", type=positive, default=100, help="at most this many")
    dlq_list.add_argument("--reason", help="only this reason (not_json, invalid, ...)")
    dlq_list.set_defaults(run=_dlq_list)
    dlq_redrive = dlq_commands.add_parser(
        "redrive",
        parents=result,
        help="send the rejected records through the pipeline again, after a fix",
    )
    dlq_redrive.add_argument("--reason", help="only this reason (progress is then not saved)")
    dlq_redrive.set_defaults(run=_dlq_redrive)

    devstack = commands.add_parser(
        "devstack",
        parents=result,
        help="run the embedded Kafka broker and PostgreSQL until interrupted",
    )
    devstack.set_defaults(run=_devstack)

    topics = commands.add_parser("topics", help="manage mendline's Kafka topics")
    topic_commands = topics.add_subparsers(dest="topics_command", required=True)
    ensure = topic_commands.add_parser(
        "ensure", parents=result, help="create the errors and DLQ topics"
    )
    ensure.set_defaults(run=_topics_ensure)

    config = commands.add_parser("config", help="inspect the settings")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    show = config_commands.add_parser(
        "show", parents=result, help="the effective settings, secrets masked"
    )
    show.set_defaults(run=_config_show)
    reference = config_commands.add_parser(
        "reference",
        parents=result,
        help="every setting with its default, as a Markdown table",
    )
    reference.set_defaults(run=_config_reference)

    schema = commands.add_parser(
        "schema", parents=result, help="print the ErrorEvent v1 JSON Schema"
    )
    schema.add_argument(
        "--write", action="store_true", help="rewrite the schema file shipped in the package"
    )
    schema.set_defaults(run=_schema)
    return parser


def _exception(text: str) -> tuple[str, str | None, str]:
    """``[module.]Type[:value]`` as (type, module, value): an exception for `mendline emit`."""
    kind, _, value = text.partition(":")
    module, _, name = kind.strip().rpartition(".")
    if not name:
        raise argparse.ArgumentTypeError(f"use TYPE:VALUE, e.g. 'ValueError:bad', not {text!r}")
    return name, module or None, value.strip()


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, not {text!r}")
    return value


def console() -> NoReturn:
    """The ``mendline`` executable (and ``python -m mendline``): :func:`main`, with SIGPIPE's
    default action so that ``mendline ... | head`` ends quietly. Only here, never in
    ``main()``: a program (or a test run) that calls ``main()`` keeps its own handling."""
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    raise SystemExit(main())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    An error is one line on stderr, ``mendline: <what went wrong>``, then ``hint: <what to
    do>``; the status is 1, or 2 for a wrong use of the command line. ``--debug`` shows the
    traceback instead.
    """
    args = build_parser().parse_args(argv)
    if not args.debug:  # our one-line errors say it; the client's own retry logs would not
        import logging

        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    run: Callable[[argparse.Namespace, Settings], int] = args.run
    try:
        try:
            with hint_on(ConfigError, _SETTINGS_HINT):
                settings = load_settings(args.config)
        except ConfigError as exc:
            if args.command != "doctor":
                raise
            from mendline.cli.doctor import doctor_without_settings

            return doctor_without_settings(args, exc)  # says so as its first check
        return run(args, settings)
    except KeyboardInterrupt:
        return 130
    except UsageError as exc:
        if args.debug:
            raise
        command = f"mendline {args.command}"
        print_error(f"error: {exc}", exc.hint or f"see `{command} --help`", prog=command)
        return 2
    except MendlineError as exc:
        if args.debug:
            raise
        print_error(str(exc), exc.hint or DEBUG_HINT)
        return 1
    except Exception as exc:
        if args.debug:
            raise
        print_error(f"{type(exc).__name__}: {exc}", DEBUG_HINT)
        return 1


def _consume(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.stages import run_stage

    log_to_stderr(args)
    return asyncio.run(run_stage("consume", settings))


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.sinks.postgres import migrate

    async def go() -> list[str]:
        conn = await connect_database(settings, for_migrate=True)
        try:
            return await migrate(conn)
        finally:
            await conn.close()

    applied = asyncio.run(go())
    text = f"applied {', '.join(applied)}" if applied else "the database is up to date"
    print_done(args, text, applied=applied)
    return 0


def _fingerprint(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.analyzers.grouping.scrubbing import Scrubber
    from mendline.cli.emit import prepared_lines

    scrubber = Scrubber(settings.scrub_extra_keys, settings.scrub_extra_patterns)
    bad: list[int] = []
    for event in prepared_lines(sys.stdin.buffer, scrubber, bad):
        if args.json:
            print_json(
                {
                    "event_id": event.event_id,
                    "fingerprint": event.fingerprint,
                    "basis": event.basis,
                    "title": event.title,
                    "culprit": event.culprit,
                }
            )
        else:
            print(f"{event.event_id} {event.fingerprint}", flush=False)
    sys.stdout.flush()
    return 1 if bad else 0


def _analyze(args: argparse.Namespace, settings: Settings) -> int:
    if args.issue is None:
        if args.fresh:
            raise UsageError("--fresh goes with --issue")
        from mendline.stages import run_stage

        log_to_stderr(args)
        return asyncio.run(run_stage("analyze", settings))
    from mendline.cli.issues import ISSUES_HINT, finding_json, finding_store
    from mendline.sinks.postgres import FindingNotFound
    from mendline.stages.analyze import AnalyzeWorker, describe, make_analysis

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
    from mendline.stages import run_stages

    log_to_stderr(args)
    with hint_on(ConfigError, _ROUTES_HINT):  # the routing file, checked before starting
        return asyncio.run(run_stages(settings, args.only))


def _alert(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.stages import run_stage

    log_to_stderr(args)
    with hint_on(ConfigError, _ROUTES_HINT):
        return asyncio.run(run_stage("alert", settings))


def _emit(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.cli.emit import emit

    return emit(args, settings)


def _dlq_list(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.ingest import read_dead_letters

    with reaching_kafka(settings):
        letters = asyncio.run(read_dead_letters(settings, args.limit, args.reason))
    if args.json:
        for d in letters:
            print_json(
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
        return 0
    if letters:
        print(
            table(
                ("RECORD", "REASON", "SOURCE", "MESSAGE", "VALUE"),
                (
                    (
                        f"{d.partition}@{d.offset}",
                        d.reason,
                        d.source,
                        shorten(d.message, 60),
                        shorten((d.value or b"").decode("utf-8", "replace"), 60),
                    )
                    for d in letters
                ),
            )
        )
    print(f"{len(letters)} record(s)", file=sys.stderr)
    return 0


def _dlq_redrive(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.ingest import redrive

    with reaching_kafka(settings):
        count = asyncio.run(redrive(settings, args.reason))
    print_done(
        args,
        f"re-drove {count} record(s) to {settings.errors_topic}",
        redriven=count,
        topic=settings.errors_topic,
    )
    return 0


def _schema(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.schemas.event import JSON_SCHEMA_PATH, json_schema_text

    if args.write:
        JSON_SCHEMA_PATH.write_text(json_schema_text())
        print_done(args, f"wrote {JSON_SCHEMA_PATH}", wrote=str(JSON_SCHEMA_PATH))
    else:
        sys.stdout.write(json_schema_text())  # JSON already, with or without --json
    return 0


def _settings_values(settings: Settings) -> dict[str, Any]:
    """The settings as JSON values, secrets masked."""
    values: dict[str, Any] = json.loads(settings.model_dump_json())  # secrets: "**********"
    # The URL is worth seeing, with its password filtered by the same rules as events.
    values["database_url"] = shown_url(settings.database_url.get_secret_value())
    return values


def _variable(name: str) -> str:
    return f"{Settings.model_config.get('env_prefix', '')}{name}".upper()


def _config_show(args: argparse.Namespace, settings: Settings) -> int:
    values = _settings_values(settings)
    if args.json:
        print_json(values)
    else:
        print(
            table(
                ("VARIABLE", "VALUE"),
                ((_variable(name), json.dumps(value)) for name, value in values.items()),
            )
        )
    return 0


def _config_reference(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.schemas.settings import settings_reference

    if not args.json:
        sys.stdout.write(settings_reference())
        return 0
    defaults = _settings_values(Settings.model_construct())  # defaults only, no environment
    for name, field in Settings.model_fields.items():
        print_json(
            {
                "variable": _variable(name),
                "setting": name,
                "default": defaults[name],
                "meaning": field.description,
            }
        )
    return 0


def _topics_ensure(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.ingest import ensure_topics

    with reaching_kafka(settings):
        outcome = asyncio.run(ensure_topics(settings))
    print_done(args, "\n".join(f"{t}: {state}" for t, state in outcome.items()), topics=outcome)
    return 0


def _devstack(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.devstack import DevStack

    with DevStack() as stack:
        variables = stack.environ
        print_done(args, "\n".join(f"{k}={v}" for k, v in variables.items()), **variables)
        sys.stdout.flush()  # a script reading a pipe needs them now, not at exit
        print("running; press Ctrl-C to stop", file=sys.stderr, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.cli.demo import demo

    return demo(args, settings)


def _doctor(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.cli.doctor import doctor

    return doctor(args, settings)
