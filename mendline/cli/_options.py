"""What the commands share on the command line: the ``--json`` and ``--tag`` options, bounded
whole numbers, page sizes, ends of a while (--for or --until), and the shapes of a command and
of the set it is added to."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import timedelta
from typing import TypeAlias

from mendline.schemas.duration import MOST_DAYS
from mendline.schemas.ending import LONGEST_WHILE_DAYS, ends_at
from mendline.schemas.issue_query import MAX_PAGE
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
    "duration",
    "ends_at",
    "page_size",
    "positive",
    "some_duration",
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
MAX_DAYS = MOST_DAYS


def positive(text: str) -> int:
    """A whole number from 1 to :data:`MAX_WHOLE` (an argparse ``type``)."""
    return _whole(text, MAX_WHOLE)


def whole_days(text: str) -> int:
    """A number of days, from 1 to :data:`MAX_DAYS` (an argparse ``type``)."""
    return _whole(text, MAX_DAYS)


def page_size(text: str) -> int:
    """A number of rows a page holds, from 1 to ``MAX_PAGE`` (an argparse ``type``)."""
    return _whole(text, MAX_PAGE)


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


def duration(text: str) -> timedelta:
    """A duration of 0 or more: ``0``, ``30m``, ``7d`` (an argparse ``type``)."""
    return _duration(text, allow_zero=True)


def some_duration(text: str) -> timedelta:
    """A duration above 0: ``30m``, ``7d`` (an argparse ``type``)."""
    return _duration(text, allow_zero=False)


def _duration(text: str, *, allow_zero: bool) -> timedelta:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds < 0 or (seconds == 0 and not allow_zero):
        wanted = "of 0 or more" if allow_zero else "above 0"
        raise argparse.ArgumentTypeError(f"expected a duration {wanted}, not {text!r}")
    return timedelta(seconds=seconds)


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
