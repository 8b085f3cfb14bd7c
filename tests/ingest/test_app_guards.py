"""The processor never takes its app down: bad MENDLINE_* settings are warned about and
replaced, and a place in structlog's chain where it would lose events is said, once."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from mendline.ingest import ErrorEventHandler, ErrorEventProcessor
from mendline.schemas.settings import Settings
from tests.cli_helpers import failure, run

DEFAULTS = Settings.model_construct()


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """An app's environment: Kafka nowhere (events wait in the spool), a good setting."""
    monkeypatch.setenv("MENDLINE_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.setenv("MENDLINE_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("MENDLINE_ENVIRONMENT", "staging")
    return monkeypatch


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    """mendline's warnings about settings and the processor's place; not the shipper's or the
    spool's (Kafka is nowhere here, and whether "Kafka unreachable" is said during a test depends
    on the machine's speed)."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("mendline")
        and r.levelno == logging.WARNING
        and r.module not in {"_shipper", "_spool"}
    ]


# (variable, bad value, setting, what the app then works with; None: shipping is off)
BAD_SETTINGS: list[tuple[str, str, str, Any]] = [
    ("MENDLINE_IN_APP_INCLUDE", "myapp,billing", "in_app_include", []),  # a list is JSON
    ("MENDLINE_IN_APP_EXCLUDE", '{"not": "a list"}', "in_app_exclude", []),
    ("MENDLINE_QUEUE_SIZE", "-5", "queue_size", DEFAULTS.queue_size),
    ("MENDLINE_QUEUE_SIZE", "lots", "queue_size", DEFAULTS.queue_size),
    ("MENDLINE_SPOOL_MAX_BYTES", "10", "spool_max_bytes", DEFAULTS.spool_max_bytes),
    ("MENDLINE_SHUTDOWN_TIMEOUT", "-1", "shutdown_timeout", DEFAULTS.shutdown_timeout),
    ("MENDLINE_EMIT_LEVEL", "loud", "emit_level", "error"),
    ("MENDLINE_TOPIC_PARTITIONS", "0", "topic_partitions", DEFAULTS.topic_partitions),
    # No safe default for the user's own scrubbing rules: nothing is shipped.
    ("MENDLINE_SCRUB_EXTRA_PATTERNS", '["card=(\\\\d+"]', "scrub_extra_patterns", None),
    ("MENDLINE_SCRUB_EXTRA_PATTERNS", '[".*"]', "scrub_extra_patterns", None),
    ("MENDLINE_SCRUB_EXTRA_PATTERNS", "token=\\w+", "scrub_extra_patterns", None),
    ("MENDLINE_SCRUB_EXTRA_KEYS", '["  "]', "scrub_extra_keys", None),
]


@pytest.mark.parametrize(("variable", "value", "name", "used"), BAD_SETTINGS)
def test_a_bad_setting_is_warned_once_and_the_app_goes_on(
    app_env: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    variable: str,
    value: str,
    name: str,
    used: Any,
) -> None:
    app_env.setenv(variable, value)
    caplog.set_level(logging.WARNING)
    processor = ErrorEventProcessor("guarded")  # must not raise
    try:
        said = warnings_of(caplog)
        assert len(said) == 1 and said[0].startswith(f"mendline: {variable}: "), said
        event_dict = {"event": "order_failed", "n": 1}
        for _ in range(3):
            assert processor(None, "error", event_dict) is event_dict
        assert event_dict == {"event": "order_failed", "n": 1}
        assert len(warnings_of(caplog)) == 1  # once, not once an event
        shipper = processor.shipper
        assert shipper.settings.environment == "staging"  # the good settings stay
        if used is None:
            assert "no error events are shipped" in said[0]
            assert shipper.stats.received == 0
        else:
            assert "its default is used instead" in said[0]
            assert getattr(shipper.settings, name) == used
            assert shipper.stats.received == 3
    finally:
        processor.shipper.shutdown(0)


def test_the_logging_handler_is_guarded_the_same_way(
    app_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    app_env.setenv("MENDLINE_QUEUE_SIZE", "-1")
    caplog.set_level(logging.WARNING)
    handler = ErrorEventHandler("guarded")
    try:
        assert handler.shipper.settings.queue_size == DEFAULTS.queue_size
        assert [w.split(":")[1].strip() for w in warnings_of(caplog)] == ["MENDLINE_QUEUE_SIZE"]
    finally:
        handler.shipper.shutdown(0)


def test_config_show_and_doctor_report_what_the_processor_refuses_as_errors() -> None:
    env = {"MENDLINE_SCRUB_EXTRA_PATTERNS": '["card=(\\\\d+"]'}
    error, hint = failure(run("config", "show", env=env))
    assert error.startswith("invalid settings: MENDLINE_SCRUB_EXTRA_PATTERNS: ")
    assert "ships no error events" in hint
    doctor = run(
        "doctor",
        "--json",
        env={
            **env,
            "MENDLINE_KAFKA_BOOTSTRAP": "127.0.0.1:9",
            "MENDLINE_DATABASE_URL": "postgresql://u@127.0.0.1:9/x",
        },
    )
    assert doctor.returncode == 1
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["settings"]["status"] == "fail"
    assert "MENDLINE_SCRUB_EXTRA_PATTERNS" in checks["settings"]["detail"]


def test_a_list_that_is_not_json_is_a_config_error_naming_it() -> None:
    error, _ = failure(run("config", "show", env={"MENDLINE_IN_APP_INCLUDE": "myapp,billing"}))
    assert "in_app_include" in error


# -- the processor's place in structlog's chain -----------------------------------------------


@pytest.fixture
def chain(app_env: pytest.MonkeyPatch) -> Iterator[ErrorEventProcessor]:
    processor = ErrorEventProcessor("ordered")
    yield processor
    structlog.reset_defaults()
    processor.shipper.shutdown(0)


def configure(*processors: Any) -> Any:
    structlog.configure(
        processors=list(processors),
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    return structlog.get_logger()


def fail_and_log(log: Any, times: int = 3) -> list[Any]:
    out = []
    for n in range(times):
        try:
            raise ValueError(f"bad qty {n}")
        except ValueError:
            out.append(log.exception("order_failed", n=n))
    return out


@pytest.mark.parametrize(
    "renderer",
    [
        structlog.processors.JSONRenderer(),
        structlog.dev.ConsoleRenderer(colors=False),
        structlog.processors.KeyValueRenderer(),
    ],
    ids=["json", "console", "key-value"],
)
def test_after_the_renderer_it_warns_once_with_the_fix_and_the_app_logs_on(
    chain: ErrorEventProcessor, caplog: pytest.LogCaptureFixture, renderer: Any
) -> None:
    caplog.set_level(logging.WARNING)
    log = configure(structlog.processors.add_log_level, renderer, chain)
    rendered = fail_and_log(log)
    assert all("order_failed" in line for line in rendered)  # the app's own output goes on
    said = warnings_of(caplog)
    assert len(said) == 1 and "before the renderer" in said[0], said


@pytest.mark.parametrize(
    "formatter",
    [structlog.processors.format_exc_info, structlog.processors.dict_tracebacks],
    ids=["format_exc_info", "dict_tracebacks"],
)
def test_after_format_exc_info_it_warns_once_and_still_captures_the_error(
    chain: ErrorEventProcessor, caplog: pytest.LogCaptureFixture, formatter: Any
) -> None:
    caplog.set_level(logging.WARNING)
    log = configure(
        structlog.processors.add_log_level,
        formatter,
        chain,
        structlog.processors.JSONRenderer(),
    )
    rendered = fail_and_log(log)
    assert all("bad qty" in line for line in rendered)
    said = warnings_of(caplog)
    assert len(said) == 1 and "before them" in said[0] and "format_exc_info" in said[0], said
    assert chain.shipper.stats.received == 3  # captured, without the traceback


def test_in_its_place_or_with_an_exception_key_of_the_apps_own_it_says_nothing(
    chain: ErrorEventProcessor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    log = configure(
        structlog.processors.add_log_level,
        chain,
        structlog.processors.format_exc_info,
        structlog.processors.JSONRenderer(),
    )
    fail_and_log(log)
    log.error("upstream_failed", exception="HTTP 503 from payments")  # a key of the app's own
    assert warnings_of(caplog) == []
    assert chain.shipper.stats.received == 4
