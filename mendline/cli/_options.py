"""What the commands share on the command line: the ``--json`` and ``--tag`` options, whole
numbers, and the shapes of a command and of the set it is added to."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeAlias

from mendline.schemas.settings import Settings

__all__ = ["AS_JSON", "LOGS_AS_JSON", "TAGS", "Command", "Commands", "positive"]

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
