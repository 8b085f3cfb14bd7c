"""What the commands share: options, JSON for scripts, tables for people, errors with a hint."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

from mendline.schemas.errors import MendlineError, UsageError
from mendline.schemas.settings import Settings

__all__ = [
    "AS_JSON",
    "DATABASE_HINT",
    "DEBUG_HINT",
    "KAFKA_HINT",
    "LOGS_AS_JSON",
    "MIGRATE_HINT",
    "STYLES",
    "TAGS",
    "JsonLogFormatter",
    "UsageError",
    "colour_for",
    "connect_database",
    "counted",
    "hint_on",
    "log_to_stderr",
    "or_doctor",
    "positive",
    "print_done",
    "print_error",
    "print_json",
    "reaching_kafka",
    "shorten",
    "shown_url",
    "styled",
    "table",
]

#: The ``--json`` option of a command that prints a result (a parent parser).
AS_JSON = argparse.ArgumentParser(add_help=False)
AS_JSON.add_argument(
    "--json",
    action="store_true",
    help="print the result as JSON: one object, or one object a line for a list",
)
#: The ``--json`` option of a long-running worker (a parent parser).
LOGS_AS_JSON = argparse.ArgumentParser(add_help=False)
LOGS_AS_JSON.add_argument(
    "--json", action="store_true", help="log to standard error as JSON lines, one a record"
)


def positive(text: str) -> int:
    """A whole number of at least 1 (an argparse ``type``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _tag(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not name or not equals:
        raise argparse.ArgumentTypeError(f"use NAME=VALUE, not {text!r}")
    return name, value


#: The ``--tag NAME=VALUE`` option, repeated: a list of (name, value) (a parent parser).
TAGS = argparse.ArgumentParser(add_help=False)
TAGS.add_argument(
    "--tag",
    type=_tag,
    action="append",
    default=[],
    metavar="NAME=VALUE",
    help="a tag of the event (repeat for several)",
)

DEBUG_HINT = "run again with --debug for the traceback"
#: What to do when Kafka cannot be reached (other commands than doctor add ``or_doctor``).
KAFKA_HINT = (
    "is the broker running? Check MENDLINE_KAFKA_BOOTSTRAP (host:port of the brokers,"
    " comma-separated) and, with TLS or SASL, MENDLINE_KAFKA_SECURITY_PROTOCOL and its"
    " credentials"
)
#: What to do when PostgreSQL cannot be reached (other commands than doctor add ``or_doctor``).
DATABASE_HINT = "is PostgreSQL running there? Check the host and port in MENDLINE_DATABASE_URL"
#: What to do when the database lacks mendline's tables, or some of its migrations.
MIGRATE_HINT = "run `mendline migrate` (`mendline consume` also applies them when it starts)"

#: The named styles of ``styled`` as SGR codes: emphasis, colours, and the level names people
#: scan for (info, the ordinary case, stays plain).
STYLES = {
    "bold": "1",
    "dim": "2",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "magenta": "35",
    "cyan": "36",
    "critical": "1;31",
    "error": "31",
    "warning": "33",
    "info": "",
}
_LEVELS = ("critical", "error", "warning", "info")


def or_doctor(hint: str) -> str:
    """``hint``, then where to check every setting: for the commands other than doctor."""
    return f"{hint}; or run `mendline doctor`"


def shown_url(url: str) -> str:
    """``url`` fit to show: its password filtered by the same rules as events'."""
    from mendline.analyzers.grouping.scrubbing import Scrubber

    return Scrubber().scrub_text(url)


def counted(number: int, thing: str) -> str:
    """``number`` and ``thing``, plural unless one: ``3 routes``, ``1 broker``."""
    return f"{number} {thing}{'' if number == 1 else 's'}"


def print_json(value: Any) -> None:
    """``value`` as one line of JSON on stdout (dates and other objects as their str())."""
    print(json.dumps(value, default=str))


def print_done(args: argparse.Namespace, text: str, **what: object) -> None:
    """What a command changed: ``text`` for people, ``what`` as a JSON object for scripts."""
    if args.json:
        print_json(what)
    else:
        print(text)


def print_error(message: str, hint: str | None, prog: str = "mendline") -> None:
    """An error on stderr: ``<prog>: <message>``, then ``hint: <hint>`` on its own line."""
    print(f"{prog}: {message}", file=sys.stderr)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)


@contextmanager
def hint_on(kind: type[MendlineError], hint: str) -> Iterator[None]:
    """Give errors of ``kind`` raised inside this block ``hint``, unless they have one."""
    try:
        yield
    except kind as exc:
        if exc.hint is None:
            exc.hint = hint
        raise


@contextmanager
def reaching_kafka(settings: Settings) -> Iterator[None]:
    """Translate the Kafka client's errors into one clear MendlineError with a hint."""
    from aiokafka.errors import KafkaConnectionError, KafkaError

    try:
        yield
    except KafkaConnectionError as exc:
        where = settings.kafka_bootstrap
        raise MendlineError(f"cannot reach Kafka at {where}", hint=or_doctor(KAFKA_HINT)) from exc
    except KafkaError as exc:
        where = settings.kafka_bootstrap
        problem = f"{type(exc).__name__}: {exc}".rstrip(": ")
        hint = or_doctor(KAFKA_HINT)
        raise MendlineError(f"Kafka at {where} failed: {problem}", hint=hint) from exc


async def connect_database(settings: Settings, *, for_migrate: bool = False) -> Any:
    """A connection to the database (an asyncpg Connection), once its mendline tables are
    known to be there (``for_migrate``: not needed). A database that cannot be reached, or a
    URL that is not one, is one clear MendlineError with a hint."""
    import asyncpg

    url = settings.database_url.get_secret_value()
    try:
        conn = await asyncpg.connect(url)
    except (OSError, asyncpg.PostgresError) as exc:
        hint = or_doctor(DATABASE_HINT)
        raise MendlineError(
            f"cannot reach PostgreSQL at {shown_url(url)}: {exc}", hint=hint
        ) from exc
    except (asyncpg.ClientConfigurationError, ValueError) as exc:  # a malformed URL
        hint = or_doctor(DATABASE_HINT)
        raise MendlineError(
            f"the database URL {shown_url(url)} is not valid: {exc}", hint=hint
        ) from exc
    has_schema = await conn.fetchval("SELECT to_regclass('mendline.schema_migrations') IS NOT NULL")
    if not has_schema and not for_migrate:
        await conn.close()
        raise MendlineError("the database has no mendline tables yet", hint=MIGRATE_HINT)
    return conn


def colour_for(stream: TextIO) -> bool:
    """Whether to colour ``stream``: a terminal, and NO_COLOR (no-color.org) unset or empty."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


def styled(text: str, style: str | None, colour: bool) -> str:
    """``text`` in the named ``style`` (one of ``STYLES``) when ``colour``; else as it is."""
    code = STYLES[style] if style else ""
    return f"\x1b[{code}m{text}\x1b[0m" if colour and code else text


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Rows as columns aligned under ``header``; numbers to the right, the last column ragged.

    With colour (see ``colour_for``), the header is bold and level names are coloured.
    """
    cells = [[str(c) for c in header], *([str(c) for c in row] for row in rows)]
    numeric = [all(c.isdigit() for c in column[1:]) for column in zip(*cells, strict=True)]
    widths = [max(len(c) for c in column) for column in zip(*cells, strict=True)]
    colour = colour_for(sys.stdout)
    lines = []
    for n, row in enumerate(cells):
        shown = []
        for i, cell in enumerate(row):
            last = i == len(row) - 1
            padded = cell.rjust(widths[i]) if numeric[i] else cell
            padded = padded if last else padded.ljust(widths[i])
            style = "bold" if n == 0 else cell if cell in _LEVELS else None
            shown.append(styled(padded, style, colour))
        lines.append("  ".join(shown).rstrip())
    return "\n".join(lines)


def shorten(text: str | None, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    line = " ".join((text or "").split())
    return line if len(line) <= width else line[: width - 1] + "…"


def log_to_stderr(args: argparse.Namespace) -> None:
    """The workers' logging: lines on stderr, JSON objects with --json, DEBUG with --debug."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonLogFormatter()
        if args.json
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s")
    )
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, handlers=[handler])
    logging.getLogger("aiokafka").setLevel(logging.WARNING if args.debug else logging.CRITICAL)


class JsonLogFormatter(logging.Formatter):
    """A log record as one JSON object: time, level, logger, message, and exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, default=str)
