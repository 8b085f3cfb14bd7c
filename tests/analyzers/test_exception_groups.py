"""Exception groups (asyncio.TaskGroup's): grouped, titled and diagnosed by what they hold."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from mendline.analyzers.grouping.fingerprint import culprit, fingerprint, title
from mendline.analyzers.grouping.scrubbing import Scrubber
from mendline.analyzers.rootcause.heuristic import HeuristicAnalyser
from mendline.analyzers.rootcause.prompt import build_prompt
from mendline.schemas.event import ExceptionTree
from mendline.schemas.finding import IssueContext, IssueSummary

from .event_helpers import event_of

Task = Callable[[], Coroutine[Any, Any, None]]


async def charge() -> None:
    amount = "-3"
    raise ValueError(f"bad amount: {amount}")


async def reserve() -> None:
    stock: dict[str, int] = {}
    stock["sku-1"] -= 1


async def ship() -> None:
    raise TimeoutError("the carrier did not answer")


async def split() -> None:
    parts = 0
    print(10 / parts)


async def _run(tasks: tuple[Task, ...]) -> None:
    async with asyncio.TaskGroup() as group:
        for task in tasks:
            group.create_task(task())


def taskgroup(*tasks: Task) -> dict[str, Any]:
    """The event of a TaskGroup whose ``tasks`` all failed, logged the real way."""
    try:
        asyncio.run(_run(tasks))
    except ExceptionGroup as exc:
        assert len(exc.exceptions) == len(tasks)  # each task failed before any was cancelled
        return event_of(exc)
    raise AssertionError("the TaskGroup did not fail")


def test_two_unrelated_failures_are_two_issues_and_the_same_failure_is_one() -> None:
    hashes = {
        name: fingerprint(taskgroup(*tasks)).hash
        for name, tasks in {
            "charge+reserve": (charge, reserve),
            "again": (charge, reserve),
            "reserve+charge": (reserve, charge),  # the tasks failed in the other order
            "charge+ship": (charge, ship),
            "charge": (charge,),
            "reserve": (reserve,),
        }.items()
    }
    assert hashes["charge+reserve"] == hashes["again"] == hashes["reserve+charge"]
    assert len(set(hashes.values())) == 4


def test_a_group_of_one_kind_groups_and_is_titled_as_that_kind() -> None:
    twice, once = taskgroup(charge, charge), taskgroup(charge)
    assert fingerprint(twice) == fingerprint(once)
    assert title(twice) == "ValueError: bad amount: -3 (in ExceptionGroup)"
    assert culprit(twice) == f"{__name__}.charge"


def _failed(*tasks: Task) -> ExceptionGroup[Exception]:
    try:
        asyncio.run(_run(tasks))
    except ExceptionGroup as exc:
        return exc
    raise AssertionError("the TaskGroup did not fail")


def test_groups_nested_in_groups_are_opened() -> None:
    nested = event_of(
        ExceptionGroup("batch", [_failed(charge), ExceptionGroup("retry", [_failed(charge)])])
    )
    assert fingerprint(nested) == fingerprint(taskgroup(charge))
    assert title(nested) == "ValueError: bad amount: -3 (in ExceptionGroup)"


def test_several_kinds_are_titled_by_the_group_naming_them() -> None:
    event = taskgroup(reserve, charge)
    assert title(event) == (
        "ExceptionGroup of KeyError, ValueError: unhandled errors in a TaskGroup (2 sub-exceptions)"
    )
    assert culprit(event) == f"{__name__}._run"  # where the group was raised
    assert fingerprint(event).basis == "stacktrace"


_PLAIN = [
    {"type": "ValueError", "value": "bad amount", "frames": []},
    {"type": "KeyError", "value": "'sku'", "frames": []},
    {"type": "ExceptionGroup", "value": "failed (2 sub-exceptions)", "frames": []},
]
_TREE = [
    {"exception_id": 1, "parent_id": 0, "source": "exceptions[0]"},
    {"exception_id": 2, "parent_id": 0, "source": "exceptions[1]"},
    {"exception_id": 0, "is_exception_group": True},
]


def _with(*changes: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        plain | tree | change for plain, tree, change in zip(_PLAIN, _TREE, changes, strict=True)
    ]


@pytest.mark.parametrize(
    ("exceptions", "as_tree"),
    [
        (_with({}, {}, {}), True),
        (_with({"exception_id": None}, {}, {}), False),  # an id missing
        (_with({"exception_id": 2}, {}, {}), False),  # an id twice
        (_with({"parent_id": 7}, {}, {}), False),  # a parent that is not there
        (_with({}, {}, {"parent_id": 1}), False),  # the raised one has a parent
        (_with({}, {"source": "__cause__"}, {}), True),  # a cause of the group, not a member
    ],
)
def test_exceptions_that_do_not_make_a_tree_are_read_as_one_chain(
    exceptions: list[dict[str, Any]], as_tree: bool
) -> None:
    tree = ExceptionTree.of(exceptions)
    plain = event_of(None) | {"exceptions": _PLAIN}
    sent = event_of(None) | {"exceptions": exceptions}
    assert (tree.links == (None, 0, 1)) is not as_tree
    assert (fingerprint(sent) != fingerprint(plain)) is as_tree
    if not as_tree:
        assert title(sent) == title(plain) == "ExceptionGroup: failed (2 sub-exceptions)"


def test_an_old_event_with_a_group_groups_as_before() -> None:
    # v1 events sent before sub-exceptions were captured: the group's own chain alone.
    old = event_of(None) | {"exceptions": [_PLAIN[2] | {"frames": []}]}
    flagged = event_of(None) | {"exceptions": [_PLAIN[2] | {"is_exception_group": True}]}
    assert fingerprint(old) == fingerprint(flagged)
    assert title(flagged) == "ExceptionGroup: failed (2 sub-exceptions)"


# -- analysis --------------------------------------------------------------------------------

ANALYSER = HeuristicAnalyser()


def context_of(event: dict[str, Any]) -> IssueContext:
    summary = IssueSummary(
        id=1,
        service="checkout",
        level="error",
        times_seen=1,
        title=title(event),
        culprit=culprit(event),
    )
    return IssueContext(issue=summary, events=[event])


def test_the_heuristic_diagnoses_the_sub_exceptions_and_names_the_others() -> None:
    finding = ANALYSER.diagnose(context_of(taskgroup(reserve, split)))
    assert finding.rule == "key-missing" and finding.category != "unknown"
    assert "'sku-1'" in finding.root_cause
    assert "It surfaced as ExceptionGroup" in finding.root_cause
    assert "also held: ZeroDivisionError: division by zero" in finding.root_cause
    assert finding.evidence[0].location.startswith(f"{__name__}.reserve")


def test_the_diagnosis_does_not_depend_on_the_order_the_tasks_failed_in() -> None:
    one = ANALYSER.diagnose(context_of(taskgroup(reserve, split)))
    other = ANALYSER.diagnose(context_of(taskgroup(split, reserve)))
    assert one.rule == other.rule
    assert one.root_cause == other.root_cause


def test_a_timeout_in_the_group_is_what_the_rest_follows_from() -> None:
    # reserve's KeyError, first, has a rule too: the timeout is still the one diagnosed.
    finding = ANALYSER.diagnose(context_of(taskgroup(reserve, ship)))
    assert finding.category == "dependency_outage_or_timeout"
    assert "also held: KeyError: 'sku-1'" in finding.root_cause


def test_a_group_of_unknown_errors_falls_back_on_its_first_sub_exception() -> None:
    class Unheard(Exception):
        pass

    finding = ANALYSER.diagnose(
        context_of(event_of(ExceptionGroup("jobs", [Unheard("odd"), Unheard("odder")])))
    )
    assert finding.rule == "fallback"
    assert "Unheard: odd" in finding.root_cause


def test_the_llm_prompt_shows_each_sub_exception_and_what_holds_it() -> None:
    messages = build_prompt(context_of(taskgroup(charge, reserve)), Scrubber())
    prompt = messages[1]["content"]
    data = json.loads(prompt.split("```json\n", 1)[1].rsplit("```", 1)[0])
    held = data["event"]["exceptions_each_before_what_it_caused_or_the_group_holding_it"]
    assert [(e["number"], e["type"], e["value"], e["held"]) for e in held] == [
        (1, "KeyError", "'sku-1'", "sub-exception of the group 3"),
        (2, "ValueError", "bad amount: -3", "sub-exception of the group 3"),
        (
            3,
            "ExceptionGroup",
            "unhandled errors in a TaskGroup (2 sub-exceptions)",
            "an exception group, raised",
        ),
    ]
    lines = [f.get("line") for e in held for f in e.get("in_app_frames_oldest_first", [])]
    assert 'stock["sku-1"] -= 1' in lines
