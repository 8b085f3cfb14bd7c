"""The app side against a real broker: events arrive, validated, scrubbed, exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import structlog
from aiokafka import AIOKafkaConsumer

from mendline.analyzers.grouping.scrubbing import SCRUBBED_HEADER, Scrubber
from mendline.devstack import KafkaBroker, free_port
from mendline.ingest import ErrorEventProcessor
from mendline.ingest.consumer import scrubbed_by
from mendline.sample_app import FAILURES, configure_logging, run_failures
from mendline.schemas.event import JSON_SCHEMA_PATH, parse_event
from mendline.schemas.limits import MAX_MESSAGE_BYTES
from mendline.schemas.settings import Settings, load_settings

from .kafka_helpers import read_events, unique_topic
from .stage_helpers import wait_until

pytestmark = pytest.mark.integration
SCHEMA = json.loads(JSON_SCHEMA_PATH.read_text())


@pytest.fixture
def app_settings(kafka_bootstrap: str, tmp_path: Path) -> Settings:
    return load_settings(
        kafka_bootstrap=kafka_bootstrap,
        errors_topic=unique_topic("errors"),
        spool_dir=tmp_path / "spool",
        rollup_window=0,  # each occurrence its own event: these tests follow each one
    )


@pytest.fixture
def reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def by_message(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["context"]["failure"]: e for e in events}


async def test_sample_app_errors_arrive_valid_with_chain_frames_and_no_secrets(
    app_settings: Settings, reset_structlog: None
) -> None:
    processor = configure_logging("shop", settings=app_settings, environment="test")
    names = run_failures()
    assert processor.shipper.flush(timeout=30)
    events = await read_events(app_settings.kafka_bootstrap, app_settings.errors_topic, len(names))
    assert len(events) == len(FAILURES)
    for event in events:
        jsonschema.validate(event, SCHEMA)
        parse_event(json.dumps(event))
        assert event["service"] == "shop" and event["environment"] == "test"
        assert event["message"] == "order_failed"
    found = by_message(events)

    quantity = found["bad_quantity"]["exceptions"]
    assert [e["type"] for e in quantity] == ["ValueError"]
    frames = quantity[0]["frames"]
    assert [f["function"] for f in frames[-2:]] == ["place_order", "parse_quantity"]
    assert frames[-1]["context_line"] == '    return int(query["qty"])'
    assert frames[-1]["module"].startswith("mendline.sample_app.") and frames[-1]["in_app"] is True

    payment = found["payment_declined"]["exceptions"]
    assert [e["type"] for e in payment] == ["JSONDecodeError", "PaymentDeclined"]
    assert payment[0]["module"] == "json.decoder"
    assert payment[0]["frames"][0]["function"] == "charge"
    assert not payment[0]["frames"][-1]["in_app"]  # inside the json package

    wire = json.dumps(events)
    for secret in ("hunter2", "eyJhbGciOiJIUzI1NiJ9", "4111 1111 1111 1111"):
        assert secret not in wire
    assert found["payment_declined"]["context"]["password"] == "[Filtered]"
    assert found["unknown_sku"]["context"]["authorization"] == "[Filtered]"
    assert found["empty_report"]["exceptions"][0]["type"] == "ZeroDivisionError"
    processor.shipper.shutdown(5)


async def test_broker_down_then_up_every_event_arrives_once(
    kafka_broker_factory: Callable[..., KafkaBroker], tmp_path: Path
) -> None:
    broker = kafka_broker_factory(free_port(), start=False)
    settings = load_settings(
        kafka_bootstrap=broker.bootstrap,
        errors_topic=unique_topic("down"),
        spool_dir=tmp_path / "spool",
        rollup_window=0,  # each of them sent (a storm's roll-up: the next test)
    )
    processor = ErrorEventProcessor("outage", settings=settings)
    # What a call costs meanwhile is measured by bench/emit.py ("with the broker down").
    for n in range(10_000):
        try:
            raise KeyError(f"k{n}")
        except KeyError:
            processor(None, "exception", {"event": "lookup_failed", "n": n, "exc_info": True})
    stats = processor.shipper.stats
    assert stats.received == 10_000 and sum(stats.dropped.values()) == 0
    # nothing can have been sent: there is no broker yet
    await asyncio.sleep(1.0)
    assert stats.sent == 0
    broker.start()
    await asyncio.to_thread(processor.shipper.flush, 60)
    events = await read_events(broker.bootstrap, settings.errors_topic, 10_000, timeout=60)
    ids = [e["event_id"] for e in events]
    assert len(ids) == 10_000 and len(set(ids)) == 10_000
    assert sorted(e["context"]["n"] for e in events) == list(range(10_000))
    assert stats.spooled >= 1  # they waited on disk
    processor.shipper.shutdown(5)


async def test_a_storm_across_an_outage_is_rolled_up_and_every_occurrence_counted(
    kafka_broker_factory: Callable[..., KafkaBroker], tmp_path: Path
) -> None:
    broker = kafka_broker_factory(free_port(), start=False)
    settings = load_settings(
        kafka_bootstrap=broker.bootstrap,
        errors_topic=unique_topic("storm"),
        spool_dir=tmp_path / "spool",
        rollup_window=0.2,
    )
    processor = ErrorEventProcessor("storm", settings=settings)
    kinds = [KeyError, ValueError, TimeoutError, ZeroDivisionError]

    def fail(kind: type[Exception], n: int) -> None:
        raise kind(f"occurrence {n}")

    def worker(t: int) -> None:
        for n in range(1_500):
            try:
                fail(kinds[(n + t) % 4], n)
            except Exception:
                processor(None, "exception", {"event": "storm", "t": t, "exc_info": True})

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = processor.shipper.stats
    # The outage lasts until the shipper has given some of the storm to its spool (on a fast
    # run the threads can be done before it gave up on the broker).
    await wait_until(lambda: stats.spooled >= 1, 60, "events spooled during the outage")
    broker.start()
    assert await asyncio.to_thread(processor.shipper.flush, 60)
    events = await read_events(broker.bootstrap, settings.errors_topic, stats.sent, timeout=60)
    assert len(events) == stats.sent < 6_000  # rolled up: fewer events than occurrences
    by_kind: dict[str, int] = {}
    for event in events:
        kind = event["exceptions"][-1]["type"]
        by_kind[kind] = by_kind.get(kind, 0) + event.get("count", 1)
    assert by_kind == {kind.__name__: 1_500 for kind in kinds}  # exact, none merged
    assert any(event.get("count", 1) > 1 for event in events)
    assert sum(stats.dropped.values()) == 0 and stats.spooled >= 1
    processor.shipper.shutdown(5)


async def test_events_carry_the_scrubbing_rules_they_were_scrubbed_with(
    app_settings: Settings,
) -> None:
    processor = ErrorEventProcessor("scrubbed", settings=app_settings)
    processor(None, "error", {"event": "failed", "password": "hunter2"})
    # Cut at the message's limit, a run of 20 digits ends as a card number: not clean
    # once cut, so it goes without the header, for the consumer to scrub.
    cut = "x" * (MAX_MESSAGE_BYTES - 3 - 17) + " 41111111111111119999 end"
    processor(None, "error", {"event": cut})
    assert await asyncio.to_thread(processor.shipper.flush, 30)
    processor.shipper.shutdown(5)
    records = await read_records(app_settings.kafka_bootstrap, app_settings.errors_topic, 2)
    # Two partitions may give them back in either order: told apart by what they say.
    [unclean] = [r for r in records if b"xxxxxxxx" in r.value]
    [record] = [r for r in records if r is not unclean]
    assert b"hunter2" not in record.value
    assert not any(key == SCRUBBED_HEADER for key, _ in unclean.headers)
    rules = Scrubber(app_settings.scrub_extra_keys, app_settings.scrub_extra_patterns).rules_id
    assert rules is not None
    assert (SCRUBBED_HEADER, rules.encode()) in list(record.headers)
    assert scrubbed_by(record.headers, rules.encode())
    # a consumer with rules of its own checks the event again
    assert not scrubbed_by(record.headers, Scrubber(["tenant"]).rules_id.encode())  # type: ignore[union-attr]


async def read_records(bootstrap: str, topic: str, count: int) -> list[Any]:
    """The first ``count`` records of ``topic``, with their headers."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    try:
        return [await asyncio.wait_for(consumer.getone(), 30) for _ in range(count)]
    finally:
        await consumer.stop()


async def test_spooled_events_go_without_the_scrubbed_header(
    kafka_broker_factory: Callable[..., KafkaBroker], tmp_path: Path
) -> None:
    # A spool may hold another process's events, scrubbed under other rules: the consumer
    # checks them again.
    broker = kafka_broker_factory(free_port(), start=False)
    settings = load_settings(
        kafka_bootstrap=broker.bootstrap,
        errors_topic=unique_topic("spooled"),
        spool_dir=tmp_path / "spool",
    )
    processor = ErrorEventProcessor("spooled", settings=settings)
    processor(None, "error", {"event": "while down"})
    await asyncio.sleep(1.0)
    processor(None, "error", {"event": "still down"})  # Kafka known down: spooled
    await asyncio.sleep(0.5)
    broker.start()
    assert await asyncio.to_thread(processor.shipper.flush, 60)
    processor.shipper.shutdown(5)
    assert processor.shipper.stats.spooled >= 1
    records = await read_records(broker.bootstrap, settings.errors_topic, 2)
    headers = {json.loads(r.value)["message"]: dict(r.headers) for r in records}
    assert SCRUBBED_HEADER not in headers["still down"]


def _run_app(
    code: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


APP = textwrap.dedent(
    """
    import structlog
    from mendline.ingest import ErrorEventProcessor
    structlog.configure(
        processors=[ErrorEventProcessor("subproc"), structlog.processors.JSONRenderer()],
        logger_factory=structlog.ReturnLoggerFactory(),
    )
    log = structlog.get_logger()
    """
)


async def test_atexit_flushes_what_is_queued(app_settings: Settings) -> None:
    result = _run_app(
        APP + "\nfor i in range(200):\n    log.error('exiting soon', i=i)\n",
        {
            "MENDLINE_KAFKA_BOOTSTRAP": app_settings.kafka_bootstrap,
            "MENDLINE_ERRORS_TOPIC": app_settings.errors_topic,
            "MENDLINE_SPOOL_DIR": str(app_settings.spool_dir),
            "MENDLINE_ROLLUP_WINDOW": "60",  # the storm's count is still open at exit
        },
    )
    assert result.returncode == 0, result.stderr
    events = await read_events(app_settings.kafka_bootstrap, app_settings.errors_topic, 11)
    # The first ten in full, the other 190 as one event the last of them stands for.
    sent = sorted((e["context"]["i"], e.get("count", 1)) for e in events)
    assert sent == [*((i, 1) for i in range(10)), (199, 190)]


async def test_spooled_events_of_a_dead_process_are_sent_by_the_next_one(
    kafka_broker_factory: Callable[..., KafkaBroker], tmp_path: Path
) -> None:
    broker = kafka_broker_factory(free_port(), start=False)
    env = {
        "MENDLINE_KAFKA_BOOTSTRAP": broker.bootstrap,
        "MENDLINE_ERRORS_TOPIC": unique_topic("spool"),
        "MENDLINE_SPOOL_DIR": str(tmp_path / "spool"),
        "MENDLINE_SHUTDOWN_TIMEOUT": "1",
        "MENDLINE_ROLLUP_WINDOW": "0",  # each of the 300 its own event
    }
    first = _run_app(APP + "\nfor i in range(300):\n    log.error('while down', i=i)\n", env)
    assert first.returncode == 0, first.stderr
    spooled = list((tmp_path / "spool" / "subproc").glob("slot-*/*.spool"))
    assert spooled, "the first process should have left its events on disk"
    broker.start()
    second = _run_app(
        APP + "\nlog.error('after restart', i=300)\nimport time; time.sleep(0.5)\n",
        env,
    )
    assert second.returncode == 0, second.stderr
    events = await read_events(broker.bootstrap, env["MENDLINE_ERRORS_TOPIC"], 301)
    # Each event once: the dead process's 300 from its spool, and the next one's own.
    by_message = {
        message: sorted(e["context"]["i"] for e in events if e["message"] == message)
        for message in ("while down", "after restart")
    }
    assert by_message == {"while down": list(range(300)), "after restart": [300]}
    assert len(events) == 301
    assert not list((tmp_path / "spool" / "subproc").glob("slot-*/*.spool"))


async def test_a_forked_worker_starts_its_own_shipper(app_settings: Settings) -> None:
    processor = ErrorEventProcessor("forky", settings=app_settings)
    processor(None, "error", {"event": "parent before fork", "who": "parent"})
    assert processor.shipper.flush(30)
    pid = os.fork()
    if pid == 0:  # a gunicorn-style worker
        code = 1
        try:
            for i in range(50):
                processor(None, "error", {"event": "child", "who": "child", "i": i})
            code = 0 if processor.shipper.shutdown(20) else 2
        finally:
            os._exit(code)
    for i in range(50):
        processor(None, "error", {"event": "parent", "who": "parent", "i": i})
    _, status = await asyncio.to_thread(os.waitpid, pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert processor.shipper.flush(30)
    events = await read_events(app_settings.kafka_bootstrap, app_settings.errors_topic, 101)
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids)) == 101
    assert sum(1 for e in events if e["context"]["who"] == "child") == 50
    processor.shipper.shutdown(5)


async def test_threads_and_asyncio_tasks_can_log_at_once(app_settings: Settings) -> None:
    processor = ErrorEventProcessor("busy", settings=app_settings)

    def worker(t: int) -> None:
        for i in range(200):
            processor(None, "error", {"event": "from thread", "key": f"thread-{t}-{i}"})

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()

    async def task(t: int) -> None:
        for i in range(200):
            try:
                raise TimeoutError("upstream")
            except TimeoutError:
                processor(
                    None,
                    "exception",
                    {"event": "from task", "key": f"task-{t}-{i}", "exc_info": True},
                )
            await asyncio.sleep(0)

    await asyncio.gather(*(task(t) for t in range(4)))
    for thread in threads:
        thread.join()
    assert await asyncio.to_thread(processor.shipper.flush, 30)
    events = await read_events(app_settings.kafka_bootstrap, app_settings.errors_topic, 1600)
    assert len({e["context"]["key"] for e in events}) == len(events) == 1600
    processor.shipper.shutdown(5)
