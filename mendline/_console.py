"""What the command line shows: JSON for scripts, tables for people, errors with a hint."""

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

from mendline.schemas.errors import MendlineError
from mendline.schemas.settings import Settings

__all__ = [
    "AS_JSON",
    "DEBUG_HINT",
    "LOGS_AS_JSON",
    "TAGS",
    "JsonLogFormatter",
    "UsageError",
    "colour_for",
    "hint_on",
    "print_error",
    "print_json",
    "reaching_kafka",
    "shorten",
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
_KAFKA_HINT = "is the broker running? Check MENDLINE_KAFKA_BOOTSTRAP, or run `mendline doctor`"
# SGR codes: bold for a table's header, colours for the levels people scan for.
_BOLD = "1"
_STYLES = {"critical": "1;31", "error": "31", "warning": "33"}


class UsageError(MendlineError):
    """The command line was used wrongly in a way its parser cannot see: exit status 2."""


def print_json(value: Any) -> None:
    """``value`` as one line of JSON on stdout (dates and other objects as their str())."""
    print(json.dumps(value, default=str))


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
        raise MendlineError(f"cannot reach Kafka at {where}", hint=_KAFKA_HINT) from exc
    except KafkaError as exc:
        where = settings.kafka_bootstrap
        problem = f"{type(exc).__name__}: {exc}".rstrip(": ")
        raise MendlineError(f"Kafka at {where} failed: {problem}", hint=_KAFKA_HINT) from exc


def colour_for(stream: TextIO) -> bool:
    """Whether to colour ``stream``: a terminal, and NO_COLOR (no-color.org) unset or empty."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


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
            style = _BOLD if n == 0 else _STYLES.get(cell)
            shown.append(f"\x1b[{style}m{padded}\x1b[0m" if colour and style else padded)
        lines.append("  ".join(shown).rstrip())
    return "\n".join(lines)


def shorten(text: str | None, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    line = " ".join((text or "").split())
    return line if len(line) <= width else line[: width - 1] + "…"


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
