"""The structlog processor and the logging handler, through mendline.testing (no Kafka)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import structlog

from mendline.ingest import ErrorEventHandler, ErrorEventProcessor, make_shipper
from mendline.schemas.event import JSON_SCHEMA_PATH, ErrorEvent
from mendline.schemas.limits import (
    MAX_CONTEXT_BYTES,
    MAX_EVENT_BYTES,
    MAX_EXCEPTION_VALUE_BYTES,
    MAX_MESSAGE_BYTES,
)
from mendline.schemas.settings import load_settings
from mendline.testing import capture_error_events

SCHEMA = json.loads(JSON_SCHEMA_PATH.read_text())


@pytest.fixture
def log(tmp_path: Path) -> Iterator[Any]:
    settings = load_settings(kafka_bootstrap="127.0.0.1:1", spool_dir=tmp_path / "spool")
    processor = ErrorEventProcessor("checkout-api", settings=settings, release="1.4.2")
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            processor,
            structlog.processors.format_exc_info,
            lambda _logger, _name, event_dict: str(sorted(event_dict)),  # a renderer
        ],
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    yield structlog.get_logger().bind(logger="app.orders")  # native structlog: bind the name
    structlog.reset_defaults()
    processor.shipper.shutdown(0)


def _wire(event: ErrorEvent) -> dict[str, Any]:
    doc = json.loads(event.model_dump_json())
    jsonschema.validate(doc, SCHEMA)
    return doc


def parse(qty: str) -> int:
    return int(qty)


def handle(query: dict[str, str]) -> int:
    try:
        return parse(query["qty"])
    except ValueError as exc:
        raise RuntimeError("could not handle the order") from exc


def test_an_exception_becomes_an_event_with_the_chain_root_cause_first(log: Any) -> None:
    with capture_error_events() as events:
        try:
            handle({"qty": "n/a"})
        except RuntimeError:
            log.exception("order_failed", order_id=17)
    assert len(events) == 1
    event = events[0]
    _wire(event)
    assert event.message == "order_failed"
    assert event.level == "error"
    assert event.service == "checkout-api" and event.release == "1.4.2"
    assert event.logger == "app.orders"
    assert event.context == {"order_id": 17}
    assert [e.type for e in event.exceptions] == ["ValueError", "RuntimeError"]
    root, raised = event.exceptions
    assert root.module == "builtins" and "n/a" in root.value
    assert [f.function for f in root.frames] == ["handle", "parse"]  # oldest call first
    assert root.frames[-1].context_line == "    return int(qty)"  # indentation kept
    assert (
        raised.frames[-1].context_line
        == '        raise RuntimeError("could not handle the order") from exc'
    )
    assert all(f.in_app for f in root.frames)
    assert root.frames[0].module == __name__


def test_context_chain_without_from_is_followed_and_suppressed_one_is_not(log: Any) -> None:
    def implicit() -> None:
        try:
            {}["missing"]
        except KeyError:
            raise ValueError("while handling")  # noqa: B904

    def suppressed() -> None:
        try:
            {}["missing"]
        except KeyError:
            raise ValueError("clean") from None

    with capture_error_events() as events:
        for func in (implicit, suppressed):
            try:
                func()
            except ValueError:
                log.exception("failed")
    assert [e.type for e in events[0].exceptions] == ["KeyError", "ValueError"]
    assert [e.type for e in events[1].exceptions] == ["ValueError"]


def test_library_and_stdlib_frames_are_not_in_app(log: Any) -> None:
    with capture_error_events() as events:
        try:
            json.loads("{nope")
        except json.JSONDecodeError:
            log.exception("bad_json")
    frames = events[0].exceptions[-1].frames
    assert frames[0].in_app is True  # this test
    assert frames[-1].module.startswith("json") and frames[-1].in_app is False


def test_in_app_include_and_exclude_prefixes(tmp_path: Path) -> None:
    settings = load_settings(
        kafka_bootstrap="127.0.0.1:1",
        spool_dir=tmp_path,
        in_app_include=["json"],
        in_app_exclude=[__name__],
    )
    processor = ErrorEventProcessor("svc", settings=settings)
    with capture_error_events() as events:
        try:
            json.loads("{nope")
        except ValueError:
            processor(None, "exception", {"event": "x", "exc_info": True})
    frames = events[0].exceptions[-1].frames
    assert frames[0].module == __name__ and frames[0].in_app is False
    assert frames[-1].module.startswith("json.") and frames[-1].in_app is True


def test_levels_below_the_threshold_are_ignored_unless_they_carry_an_exception(log: Any) -> None:
    with capture_error_events() as events:
        log.info("fine")
        log.warning("careful")
        try:
            _ = 1 / 0
        except ZeroDivisionError:
            log.warning("recovered", exc_info=True)
        log.error("plain error without exception", attempt=3)
        log.critical("down")
    assert [(e.level, e.message) for e in events] == [
        ("warning", "recovered"),
        ("error", "plain error without exception"),
        ("critical", "down"),
    ]
    assert events[1].exceptions == [] and events[1].context == {"attempt": 3}


def test_the_message_is_the_template_and_bound_values_go_to_context(log: Any) -> None:
    with capture_error_events() as events:
        for user in range(3):
            log.bind(user_id=user).error("payment_failed", amount=user * 10)
    assert {e.message for e in events} == {"payment_failed"}
    assert [e.context for e in events] == [
        {"user_id": 0, "amount": 0},
        {"user_id": 1, "amount": 10},
        {"user_id": 2, "amount": 20},
    ]


def test_the_event_dict_is_returned_unchanged_so_app_logging_goes_on(tmp_path: Path) -> None:
    processor = ErrorEventProcessor(
        "svc", settings=load_settings(kafka_bootstrap="127.0.0.1:1", spool_dir=tmp_path)
    )
    event_dict = {"event": "boom", "password": "hunter2", "level": "error"}
    with capture_error_events():
        returned = processor(None, "error", event_dict)
    assert returned is event_dict
    assert event_dict == {"event": "boom", "password": "hunter2", "level": "error"}


def test_secrets_are_scrubbed_everywhere(log: Any) -> None:
    def connect() -> None:
        raise ConnectionError("cannot reach postgresql://app:s3cr3t-pw@db:5432/app")

    with capture_error_events() as events:
        try:
            connect()
        except ConnectionError:
            log.exception(
                "login failed for token=abcdef123456",
                password="hunter2",
                headers={"Authorization": "Bearer abc.def.ghi", "Accept": "json"},
                card="4111 1111 1111 1111",
                tags={"api_key": "k-123", "region": "eu"},
            )
    text = events[0].model_dump_json()
    for secret in ("hunter2", "s3cr3t-pw", "abcdef123456", "abc.def.ghi", "4111 1111", "k-123"):
        assert secret not in text
    assert events[0].context["headers"]["Accept"] == "json"
    assert events[0].tags["region"] == "eu"


def test_local_variables_are_never_captured(log: Any) -> None:
    def leaky() -> None:
        db_password = "local-secret-value"  # noqa: F841
        raise ValueError("boom")

    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.dict_tracebacks,  # carries locals: must be ignored
            ErrorEventProcessor("svc", settings=load_settings(kafka_bootstrap="127.0.0.1:1")),
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.ReturnLoggerFactory(),
    )
    with capture_error_events() as events:
        try:
            leaky()
        except ValueError:
            structlog.get_logger().exception("failed")
    assert "local-secret-value" not in events[0].model_dump_json()


def test_custom_fingerprint_and_tags(log: Any) -> None:
    with capture_error_events() as events:
        log.error("quota", fingerprint=["{{ default }}", "tenant-7"], tags={"tenant": "7"})
    assert events[0].fingerprint == ["{{ default }}", "tenant-7"]
    assert events[0].tags == {"tenant": "7"}
    assert "fingerprint" not in events[0].context


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str for you")


class Opaque:
    def __repr__(self) -> str:
        raise TypeError("no repr either")


def recurse(n: int) -> int:
    return recurse(n + 1) if n < 5000 else 1 // 0


def test_odd_inputs_never_raise_and_produce_valid_trimmed_events(log: Any) -> None:
    cyclic_a, cyclic_b = ValueError("a"), ValueError("b")
    cyclic_a.__context__, cyclic_b.__context__ = cyclic_b, cyclic_a
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(6000)
    with capture_error_events() as events:
        log.error("x" * 100_000)
        log.error("big value", blob="é" * 100_000, raw=b"\xff\xfe bytes", obj=object())
        log.error("opaque", thing=Opaque(), nested={"deep": [[[[[[[[[[[["end"]]]]]]]]]]]]})
        log.error("surrogates \udcff", key="\ud800")
        try:
            recurse(0)
        except ZeroDivisionError:
            log.exception("deep")
        try:
            raise Unprintable()
        except Unprintable:
            log.exception("unprintable")
        log.error("cyclic", exc_info=cyclic_a)
        log.error(b"bytes message")
        log.error("many keys", **{f"k{i}": "v" * 500 for i in range(200)})
        err = ValueError("v" * 50_000)
        log.error("huge value", exc_info=err)
        log.error(12345)
    sys.setrecursionlimit(limit)
    assert len(events) == 11
    for event in events:
        doc = _wire(event)
        assert len(json.dumps(doc).encode()) <= MAX_EVENT_BYTES
        assert len(event.message.encode()) <= MAX_MESSAGE_BYTES
        assert len(json.dumps(doc["context"], separators=(",", ":")).encode()) <= MAX_CONTEXT_BYTES
        for exc in event.exceptions:
            assert len(exc.value.encode()) <= MAX_EXCEPTION_VALUE_BYTES
            assert len(exc.frames) <= 100
    assert events[0].message.endswith("...")
    assert events[1].context["raw"].startswith("\\xff\\xfe")
    assert events[2].context["thing"].startswith("<repr() failed")
    deep = events[4].exceptions[-1]
    assert len(deep.frames) == 100 and deep.frames_omitted > 4800
    assert deep.frames[0].function.endswith(
        "test_odd_inputs_never_raise_and_produce_valid_trimmed_events"
    )
    assert deep.frames[-1].context_line == "    return recurse(n + 1) if n < 5000 else 1 // 0"
    assert events[5].exceptions[-1].value.startswith("<str() failed")
    assert [e.value for e in events[6].exceptions] == ["b", "a"]
    assert events[7].message == "bytes message"
    assert events[10].message == "12345"


def test_the_stdlib_handler_uses_the_unformatted_message_and_args(tmp_path: Path) -> None:
    settings = load_settings(kafka_bootstrap="127.0.0.1:1", spool_dir=tmp_path)
    handler = ErrorEventHandler("billing", settings=settings)
    logger = logging.getLogger("billing.invoices")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with capture_error_events() as events:
            for n in (1, 2):
                logger.error("invoice %s failed for %s", n, "acme", extra={"tenant": "t1"})
            try:
                {}["vat"]
            except KeyError:
                logger.exception("no vat rate")
            logger.warning("ignored")
            logging.getLogger("aiokafka.producer").error("never an event")
    finally:
        logger.removeHandler(handler)
        handler.shipper.shutdown(0)
    assert [e.message for e in events] == ["invoice %s failed for %s"] * 2 + ["no vat rate"]
    assert events[0].context == {"args": [1, "acme"], "tenant": "t1"}
    assert events[2].exceptions[-1].type == "KeyError"
    assert all(e.logger == "billing.invoices" and e.service == "billing" for e in events)


def test_a_failing_shipper_never_raises_into_the_app(tmp_path: Path) -> None:
    shipper = make_shipper(load_settings(kafka_bootstrap="127.0.0.1:1", spool_dir=tmp_path))
    shipper.shutdown(0)
    processor = ErrorEventProcessor(shipper=shipper)
    event_dict = {"event": "after shutdown"}
    assert processor(None, "error", event_dict) is event_dict
