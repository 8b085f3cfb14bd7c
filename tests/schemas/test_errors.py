"""The error tree: one root, and the drawing in the errors module is the tree of its classes."""

from __future__ import annotations

import re

import mendline.schemas.errors as errors
from mendline.schemas.errors import MendlineError

_ENTRY = re.compile(r"^(?P<prefix>[ │├└─]*)(?P<name>[A-Z][A-Za-z]+)\b")


def drawn_tree(text: str) -> dict[str, str | None]:
    """Each class named in the drawing, with the class it hangs from (None for the root)."""
    parents: dict[str, str | None] = {}
    open_at: dict[int, str] = {}  # column -> the last class drawn there
    for line in text.split("\n\n", 1)[1].split("\n\n", 1)[0].splitlines():
        entry = _ENTRY.match(line)
        if entry is None:
            continue  # a description carried onto the next line
        column = len(entry["prefix"])
        parents[entry["name"]] = open_at.get(column - 4)
        open_at[column] = entry["name"]
    return parents


def test_the_drawing_in_the_errors_module_is_the_tree_of_its_classes() -> None:
    defined = {
        value.__name__: (value.__base__.__name__ if value is not MendlineError else None)
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, MendlineError)
    }
    assert errors.__doc__ is not None
    assert drawn_tree(errors.__doc__) == defined
    assert set(defined) <= set(errors.__all__)


def test_the_stores_raise_not_found_errors_of_the_tree() -> None:
    from mendline.sinks.postgres import FindingNotFound, IssueNotFound

    assert FindingNotFound is errors.FindingNotFound and IssueNotFound is errors.IssueNotFound
    assert issubclass(IssueNotFound, errors.NotFound) and issubclass(
        FindingNotFound, errors.NotFound
    )
