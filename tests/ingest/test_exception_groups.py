"""Exception groups (asyncio.TaskGroup's) logged through the real processor and handler: each
sub-exception is in the event, with its own chain and frames, bounded."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import structlog

from mendline.ingest import Capture, ErrorEventHandler, ErrorEventProcessor, EventBuilder
from mendline.schemas.event import JSON_SCHEMA_PATH, ErrorEvent, ExceptionTree, parse_event_exact
from mendline.schemas.limits import MAX_EXCEPTIONS, MAX_GROUP_DEPTH, MAX_GROUP_EXCEPTIONS
from mendline.schemas.settings import load_settings
from mendline.testing import capture_error_events

SCHEMA = json.loads(JSON_SCHEMA_PATH.read_text())


@pytest.fixture
def log(tmp_path: Path) -> Iterator[Any]:
    """A structlog logger whose events go through the real ErrorEventProcessor."""
    settings = load_settings(kafka_bootstrap="127.0.0.1:1", spool_dir=tmp_path / "spool")
    processor = ErrorEventProcessor("checkout-api", settings=settings)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            processor,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    yield structlog.get_logger()
    structlog.reset_defaults()
    processor.shipper.shutdown(0)


async def charge(amount: str) -> None:
    raise ValueError(f"bad amount: {amount}")


async def reserve(sku: str) -> None:
    stock: dict[str, int] = {}
    stock[sku] -= 1


async def checkout() -> None:
    async with asyncio.TaskGroup() as group:
        group.create_task(charge("-3"))
        group.create_task(reserve("sku-1"))


def _wire(event: ErrorEvent) -> dict[str, Any]:
    doc = json.loads(event.model_dump_json(exclude_defaults=True))
    jsonschema.validate(doc, SCHEMA)
    return doc


def test_a_taskgroup_failure_logged_with_structlog_carries_both_sub_exceptions(log: Any) -> None:
    with capture_error_events() as events:
        try:
            asyncio.run(checkout())
        except ExceptionGroup:
            log.exception("checkout_failed")
    (event,) = events
    doc = _wire(event)
    group = event.exceptions[-1]
    assert group.type == "ExceptionGroup" and group.is_exception_group
    assert group.exception_id == 0 and group.parent_id is None
    assert "unhandled errors in a TaskGroup" in group.value
    subs = {e.type: e for e in event.exceptions if e.source and e.source.startswith("exceptions")}
    assert set(subs) == {"ValueError", "KeyError"}
    assert subs["ValueError"].value == "bad amount: -3"
    assert subs["ValueError"].frames[-1].function == "charge"
    assert subs["KeyError"].frames[-1].context_line == "    stock[sku] -= 1"
    assert all(e.parent_id == 0 and not e.is_exception_group for e in subs.values())
    # The parse the consumer makes keeps the tree, and may store the bytes as they came.
    parsed, exact = parse_event_exact(json.dumps(doc))
    assert exact and ExceptionTree.of(parsed["exceptions"]).leaves(2) == [1, 0]  # in task order


def test_the_stdlib_handler_carries_sub_exceptions_and_their_causes(tmp_path: Path) -> None:
    settings = load_settings(kafka_bootstrap="127.0.0.1:1", spool_dir=tmp_path)
    handler = ErrorEventHandler("billing", settings=settings)
    logger = logging.getLogger("billing.runs")
    logger.addHandler(handler)
    logger.propagate = False

    def failing(n: int) -> Exception:
        try:
            try:
                {}[f"rate-{n}"]
            except KeyError as exc:
                raise RuntimeError(f"no rate {n}") from exc
        except RuntimeError as exc:
            return exc
        raise AssertionError("unreachable")

    try:
        with capture_error_events() as events:
            try:
                raise ExceptionGroup("invoices failed", [failing(1), failing(2)])
            except ExceptionGroup:
                logger.exception("run failed")
    finally:
        logger.removeHandler(handler)
        handler.shipper.shutdown(0)
    (event,) = events
    _wire(event)
    tree = ExceptionTree.of([e.model_dump() for e in event.exceptions])
    chains = [[event.exceptions[i].type for i in tree.chain(leaf)] for leaf in tree.leaves(4)]
    assert chains == [["KeyError", "RuntimeError"], ["KeyError", "RuntimeError"]]
    assert [event.exceptions[i].value for i in tree.leaves(4)] == ["no rate 1", "no rate 2"]
    assert {e.source for e in event.exceptions} == {
        None,
        "exceptions[0]",
        "exceptions[1]",
        "__cause__",
    }


def _nested(depth: int) -> ExceptionGroup[Exception]:
    inner: Exception = ValueError(f"leaf {depth}")
    for level in range(depth, 0, -1):
        inner = ExceptionGroup(f"level {level}", [inner, KeyError(level)])
    assert isinstance(inner, ExceptionGroup)
    return inner


def _many(n: int) -> ExceptionGroup[Exception]:
    return ExceptionGroup("part", [TypeError(i) for i in range(n)])


@pytest.mark.parametrize(
    ("exc", "kept_groups", "kept_subs", "value"),
    [
        # 15 sub-exceptions: the first MAX_GROUP_EXCEPTIONS are kept, the value counts them all.
        (
            ExceptionGroup("many", [ValueError(i) for i in range(15)]),
            1,
            MAX_GROUP_EXCEPTIONS,
            "many (15 sub-exceptions)",
        ),
        # 5 groups nested: the sub-exceptions of the first MAX_GROUP_DEPTH are read.
        (_nested(5), MAX_GROUP_DEPTH + 1, 2 * MAX_GROUP_DEPTH, "level 1 (2 sub-exceptions)"),
        # 4 groups of 10: the nearest MAX_EXCEPTIONS, so every group and the first ones' members.
        (
            ExceptionGroup("wide", [_many(10) for _ in range(4)]),
            5,
            MAX_EXCEPTIONS - 1,
            "wide (4 sub-exceptions)",
        ),
    ],
)
def test_groups_are_read_within_the_bounds(
    log: Any, exc: ExceptionGroup[Exception], kept_groups: int, kept_subs: int, value: str
) -> None:
    with capture_error_events() as events:
        try:
            raise exc
        except ExceptionGroup:
            log.exception("bounded")
    (event,) = events
    _wire(event)
    exceptions = event.exceptions
    assert len(exceptions) <= MAX_EXCEPTIONS
    assert sum(e.is_exception_group for e in exceptions) == kept_groups
    assert sum(1 for e in exceptions if e.parent_id is not None) == kept_subs
    assert sorted(e.exception_id or 0 for e in exceptions) == list(range(len(exceptions)))
    assert exceptions[-1].value == value


def test_an_exception_in_two_groups_and_a_cycle_are_kept_once(log: Any) -> None:
    shared = ValueError("shared")
    looped = KeyError("loop")
    looped.__context__ = ExceptionGroup("inner", [looped])
    with capture_error_events() as events:
        try:
            raise ExceptionGroup("outer", [shared, ExceptionGroup("again", [shared]), looped])
        except ExceptionGroup:
            log.exception("odd groups")
    (event,) = events
    _wire(event)
    values = [e.value for e in event.exceptions]
    assert values.count("shared") == 1 and values.count("'loop'") == 1


def test_an_event_without_a_group_is_shipped_as_before() -> None:
    try:
        try:
            {}["x"]
        except KeyError as exc:
            raise RuntimeError("wrapped") from exc
    except RuntimeError as exc:
        event = EventBuilder("checkout-api", "production").build(
            Capture.now("error", "app", "plain", {}, exc)
        )
    assert [set(e) for e in event["exceptions"]] == [
        {"type", "module", "value", "frames", "frames_omitted"}
    ] * 2


def test_sub_exceptions_are_scrubbed_like_the_raised_one(log: Any) -> None:
    async def connect() -> None:
        raise ConnectionError("cannot reach postgresql://app:s3cr3t-pw@db:5432/app")

    async def both() -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(connect())
            group.create_task(charge("-3"))

    with capture_error_events() as events:
        try:
            asyncio.run(both())
        except ExceptionGroup:
            log.exception("sync_failed")
    (event,) = events
    assert "ConnectionError" in {e.type for e in event.exceptions}
    assert "s3cr3t-pw" not in event.model_dump_json()
