"""What the commands share on the command line: the ``--json`` and ``--tag`` options, bounded
whole numbers, page sizes, ends of a while (--for or --until), and the shapes of a command and
of the set it is added to."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeAlias

from mendline.schemas.errors import UsageError
from mendline.schemas.issue_query import MAX_PAGE
from mendline.schemas.printable import printable
from mendline.schemas.settings import Settings
from mendline.schemas.tomlfile import parse_duration

__all__ = [
    "AS_JSON",
    "LOGS_AS_JSON",
    "LONGEST_WHILE_DAYS",
    "MAX_DAYS",
    "MAX_WHOLE",
    "TAGS",
    "Command",
    "Commands",
    "ends_at",
    "page_size",
    "positive",
    "whole_days",
]

#: What a command runs (bound with ``set_defaults(run=...)``): it gets the parsed arguments
#: and the loaded settings, and returns the exit status.
Command: TypeAlias = Callable[[argparse.Namespace, Settings], int]
#: The top-level commands, to which each group's ``register`` adds its own (a string: the
#: class is generic for type checkers only).
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

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


#: The largest whole number a command takes: PostgreSQL's ``bigint`` (ids, limits, counts).
MAX_WHOLE = 2**63 - 1
#: The most days a command takes (a hundred years): more would take dates out of range.
MAX_DAYS = 36500
#: The longest an ignore or a silence may last (ten years), given with --for or --until.
LONGEST_WHILE_DAYS = 3650


def positive(text: str) -> int:
    """A whole number from 1 to :data:`MAX_WHOLE` (an argparse ``type``)."""
    return _whole(text, MAX_WHOLE)


def whole_days(text: str) -> int:
    """A number of days, from 1 to :data:`MAX_DAYS` (an argparse ``type``)."""
    return _whole(text, MAX_DAYS)


def page_size(text: str) -> int:
    """A number of rows a page holds, from 1 to ``MAX_PAGE`` (an argparse ``type``)."""
    return _whole(text, MAX_PAGE)


def ends_at(
    duration: str | None, until: str | None, now: datetime, *, zone_required: bool
) -> datetime | None:
    """When a while ends: ``duration`` (``--for``) from ``now``, or the ISO 8601 time
    ``until`` (``--until``; without a zone, UTC unless ``zone_required``), at most
    :data:`LONGEST_WHILE_DAYS` days from ``now``; None for neither. UsageError for a value
    that is not one, both given, or one out of range."""
    longest = timedelta(days=LONGEST_WHILE_DAYS)
    if duration is not None and until is not None:
        raise UsageError("give --for or --until, not both")
    if duration is not None:
        try:
            seconds = parse_duration(duration)
        except ValueError as exc:
            raise UsageError(f"--for {exc}") from None
        if not 0 < seconds <= longest.total_seconds():
            raise UsageError(f"--for takes more than 0s and at most {LONGEST_WHILE_DAYS}d")
        return now + timedelta(seconds=seconds)
    if until is None:
        return None
    try:
        moment = datetime.fromisoformat(until)
    except ValueError:
        raise UsageError(
            f"--until {printable(until)!s} is not an ISO 8601 time (2026-12-24T09:00+01:00)"
        ) from None
    if moment.tzinfo is None:
        if zone_required:
            raise UsageError("--until needs its time zone (2026-12-24T09:00Z or +01:00)")
        moment = moment.replace(tzinfo=UTC)
    try:
        in_range = moment.astimezone(UTC) - now <= longest
    except OverflowError:  # past year 9999 in UTC
        in_range = False
    if not in_range:
        raise UsageError(f"--until is at most {LONGEST_WHILE_DAYS}d from now")
    return moment


def _whole(text: str, most: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    if value > most:
        raise argparse.ArgumentTypeError(f"must be at most {most}, not {value}")
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
