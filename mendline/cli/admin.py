"""The commands that set mendline up and look after it, one-shot: ``migrate``, ``grants``,
``fingerprint``, ``dlq``, ``devstack``, ``topics``, ``config`` and ``schema``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from mendline.cli._connections import connect_database, reaching_kafka
from mendline.cli._options import AS_JSON, Commands, positive
from mendline.cli.output import print_done, print_json, printable, shorten, table
from mendline.schemas.errors import (
    DEAD_LETTER_REASONS,
    NEVER_REDRIVEN,
    ConfigError,
    DevStackError,
    UsageError,
)
from mendline.schemas.redaction import redact_url
from mendline.schemas.settings import Settings

__all__ = ["register"]


def register(commands: Commands) -> None:
    """Add ``migrate``, ``grants``, ``fingerprint``, ``dlq``, ``devstack``, ``topics``,
    ``config`` and ``schema`` to the top-level ``commands``."""
    migrate = commands.add_parser(
        "migrate", parents=[AS_JSON], help="apply the database migrations"
    )
    migrate.set_defaults(run=_migrate)

    grants = commands.add_parser(
        "grants",
        parents=[AS_JSON],
        help="print the GRANT statements that let ROLE run mendline without owning its tables",
    )
    grants.add_argument("role", metavar="ROLE", help="the role of the workers' database URL")
    grants.add_argument(
        "--read-only",
        action="store_true",
        help="SELECT only: for `mendline review` in CI, which reads production",
    )
    grants.set_defaults(run=_grants)

    fingerprint = commands.add_parser(
        "fingerprint",
        parents=[AS_JSON],
        help="ErrorEvent JSON lines on stdin -> '<event_id> <fingerprint>' lines on stdout",
    )
    fingerprint.set_defaults(run=_fingerprint)

    _register_dlq(commands)

    devstack = commands.add_parser(
        "devstack",
        parents=[AS_JSON],
        help="run the embedded Kafka broker and PostgreSQL until interrupted",
    )
    devstack.set_defaults(run=_devstack)

    topics = commands.add_parser("topics", help="manage mendline's Kafka topics")
    topic_commands = topics.add_subparsers(dest="topics_command", required=True)
    ensure = topic_commands.add_parser(
        "ensure", parents=[AS_JSON], help="create the errors and DLQ topics"
    )
    ensure.set_defaults(run=_topics_ensure)

    _register_config(commands)

    schema = commands.add_parser(
        "schema", parents=[AS_JSON], help="print the ErrorEvent v1 JSON Schema"
    )
    schema.add_argument(
        "--checkin", action="store_true", help="the CheckIn v1 (heartbeat check-in) schema instead"
    )
    schema.add_argument(
        "--webhook",
        action="store_true",
        help="the webhook payload v1 (webhook and log receivers) schema instead",
    )
    schema.add_argument(
        "--write", action="store_true", help="rewrite the schema file shipped in the package"
    )
    schema.set_defaults(run=_schema)


def _register_dlq(commands: Commands) -> None:
    dlq = commands.add_parser("dlq", help="inspect and re-drive the dead-letter topic")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True)
    dlq_list = dlq_commands.add_parser(
        "list", parents=[AS_JSON], help="the rejected records and why"
    )
    dlq_list.add_argument("--limit", type=positive, default=100, help="at most this many")
    dlq_list.add_argument(
        "--reason", choices=DEAD_LETTER_REASONS, metavar="REASON", help="only this reason"
    )
    dlq_list.add_argument(
        "--oldest", action="store_true", help="the oldest first (default: the newest first)"
    )
    dlq_list.set_defaults(run=_dlq_list)
    dlq_redrive = dlq_commands.add_parser(
        "redrive",
        parents=[AS_JSON],
        help="send the rejected records through the pipeline again, after a fix",
    )
    dlq_redrive.add_argument(
        "--reason",
        choices=DEAD_LETTER_REASONS,
        metavar="REASON",
        help="only this reason (progress is then not saved)",
    )
    dlq_redrive.set_defaults(run=_dlq_redrive)


def _register_config(commands: Commands) -> None:
    config = commands.add_parser("config", help="inspect the settings")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    show = config_commands.add_parser(
        "show", parents=[AS_JSON], help="the effective settings, secrets masked"
    )
    show.set_defaults(run=_config_show)
    reference = config_commands.add_parser(
        "reference",
        parents=[AS_JSON],
        help="every setting with its default, as a Markdown table",
    )
    reference.set_defaults(run=_config_reference)


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


def _grants(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.sinks.postgres import app_grants

    async def go() -> list[str]:
        conn = await connect_database(settings)  # a clear error when not migrated
        try:
            return list(await app_grants(conn, args.role, read_only=args.read_only))
        finally:
            await conn.close()

    statements = asyncio.run(go())
    if args.json:
        print_json({"role": args.role, "statements": statements})
        return 0
    may = (
        "read mendline's rows and views, and nothing more."
        if args.read_only
        else "read and change mendline's rows,\n"
        "-- read and append to the audit log, and nothing more."
    )
    print(
        f"-- Run as the owner of schema mendline (who ran `mendline migrate`), again after\n"
        f"-- each migration: {printable(args.role)} may then {may}"
    )
    print("\n".join(statements))
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
            print(f"{printable(event.event_id)} {event.fingerprint}", flush=False)
    sys.stdout.flush()
    return 1 if bad else 0


def _dlq_list(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.ingest import read_dead_letters

    with reaching_kafka(settings):
        letters = asyncio.run(
            read_dead_letters(settings, args.limit, args.reason, newest_first=not args.oldest)
        )
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

    if args.reason in NEVER_REDRIVEN:  # said before the topic is read, not "0 records"
        raise UsageError(
            f"{args.reason} records are never redriven: {NEVER_REDRIVEN[args.reason]}",
            hint=f"see them with `mendline dlq list --reason {args.reason}`",
        )
    with reaching_kafka(settings):
        count = asyncio.run(redrive(settings, args.reason))
    print_done(
        args,
        f"re-drove {count} record(s) to {settings.errors_topic}",
        redriven=count,
        topic=settings.errors_topic,
    )
    return 0


#: Seconds between looks at whether the dev stack's servers still run.
_DEVSTACK_POLL = 0.5


def _devstack(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.devstack import DevStack

    with DevStack() as stack:
        variables = stack.shown_environ  # the password stays in PGPASSFILE's file
        print_done(args, "\n".join(f"{k}={v}" for k, v in variables.items()), **variables)
        sys.stdout.flush()  # a script reading a pipe needs them now, not at exit
        try:
            # In the try: a Ctrl-C sent as soon as this line is read is a clean stop too.
            print("running; press Ctrl-C to stop", file=sys.stderr, flush=True)
            while not (stopped := stack.stopped()):
                time.sleep(_DEVSTACK_POLL)
        except KeyboardInterrupt:
            return 0
    raise DevStackError(
        f"{' and '.join(stopped)} stopped running; the dev stack is down",
        hint="start `mendline devstack` again",
    )


def _topics_ensure(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.ingest import ensure_topics

    with reaching_kafka(settings):
        outcome = asyncio.run(ensure_topics(settings))
    print_done(args, "\n".join(f"{t}: {state}" for t, state in outcome.items()), topics=outcome)
    return 0


def _settings_values(settings: Settings) -> dict[str, Any]:
    """The settings as JSON values, secrets masked."""
    values: dict[str, Any] = json.loads(settings.model_dump_json())  # secrets: "**********"
    # The URL is worth seeing, with its password filtered; so is every other setting, with
    # whatever URL-like secret it holds (a Kafka bootstrap or LLM URL with user info or a key).
    values["database_url"] = settings.database_url.get_secret_value()
    return {
        name: redact_url(value) if isinstance(value, str) else value
        for name, value in values.items()
    }


def _variable(name: str) -> str:
    return f"{Settings.model_config.get('env_prefix', '')}{name}".upper()


def _config_show(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.ingest import app_setting_problems
    from mendline.ingest.consumer import producer_check

    unusable = app_setting_problems(settings)  # what the app's processor would refuse
    if unusable:
        raise ConfigError(
            "invalid settings: " + "; ".join(str(problem) for problem in unusable),
            hint="fix these: an app with them ships no error events (or uses the default)",
        )
    producer_check(settings)  # a bad producer keys file is an error now, not at consume's start
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


def _schema(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.schemas.checkin import CHECKIN_JSON_SCHEMA_PATH, checkin_json_schema_text
    from mendline.schemas.event import JSON_SCHEMA_PATH, json_schema_text
    from mendline.schemas.webhook import WEBHOOK_JSON_SCHEMA_PATH, webhook_json_schema_text

    if args.webhook:
        path, text = WEBHOOK_JSON_SCHEMA_PATH, webhook_json_schema_text()
    elif args.checkin:
        path, text = CHECKIN_JSON_SCHEMA_PATH, checkin_json_schema_text()
    else:
        path, text = JSON_SCHEMA_PATH, json_schema_text()
    if args.write:
        path.write_text(text)
        print_done(args, f"wrote {path}", wrote=str(path))
    else:
        sys.stdout.write(text)  # JSON already, with or without --json
    return 0
