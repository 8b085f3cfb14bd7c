"""ErrorEvent v1's exception-group fields: additive, validated, and read as a tree."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mendline.schemas.errors import InvalidEvent
from mendline.schemas.event import ExceptionTree, parse_event, parse_event_exact


def _event(*exceptions: dict[str, Any]) -> str:
    return json.dumps(
        {
            "schema_version": 1,
            "event_id": "0" * 31 + "1",
            "timestamp": "2026-12-04T10:00:00Z",
            "service": "checkout",
            "environment": "production",
            "level": "error",
            "message": "checkout failed",
            "exceptions": [{"type": "ValueError", "value": "x"} | e for e in exceptions],
        }
    )


def test_an_event_of_before_the_fields_existed_is_accepted_and_read_as_a_chain() -> None:
    doc, exact = parse_event_exact(_event({}, {}, {}))
    assert exact
    tree = ExceptionTree.of(doc["exceptions"])
    assert tree.links == (None, 0, 1) and tree.chain(2) == [0, 1, 2]
    assert tree.leaves(2) == [2] and tree.groups == (False, False, False)


def test_a_tree_is_read_by_its_ids_and_sources() -> None:
    doc, exact = parse_event_exact(
        _event(
            {"exception_id": 3, "parent_id": 1, "source": "__cause__"},
            {"exception_id": 2, "parent_id": 0, "source": "exceptions[1]"},
            {"exception_id": 1, "parent_id": 0, "source": "exceptions[0]"},
            {"exception_id": 0, "is_exception_group": True},
        )
    )
    assert exact  # the fields are the contract's: the consumer may store the bytes as they came
    tree = ExceptionTree.of(doc["exceptions"])
    assert tree.members[3] == (2, 1)  # in the group's order, not the list's
    assert tree.chain(2) == [0, 2] and tree.leaves(3) == [2, 1]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("source", "exceptions[0]; DROP TABLE"),
        ("source", "inner"),
        ("exception_id", -1),
        ("parent_id", "0"),
        ("is_exception_group", "yes"),
    ],
)
def test_bad_tree_fields_are_invalid(field: str, value: object) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(_event({field: value}))
    assert caught.value.reason == "invalid" and field in str(caught.value)
