"""`mendline consume` against a real broker and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import pytest

from mendline.devstack import EmbeddedPostgres
from mendline.ingest import read_dead_letters, redrive
from mendline.ingest.consumer import dead_letter_producer
from mendline.schemas.settings import Settings, load_settings
from mendline.sinks.postgres import connect_store
from mendline.stages import Telemetry, consume
from tests.db_helpers import query

from .event_factory import encode, make_event
from .kafka_helpers import create_topic, partition_count, produce, produce_batch, record_batch
from .stage_helpers import consume_settings, running_consumer, wait_until

pytestmark = pytest.mark.integration


async def stored(url: str) -> int:
    """How many events the consumer has taken (each event_id once, its row stored whole or
    sampled away)."""
    try:
        conn = await asyncpg.connect(url)
    except OSError:  # the server is not up yet
        return 0
    try:
        if not await conn.fetchval("SELECT to_regclass('mendline.event_ids') IS NOT NULL"):
            return 0  # not migrated yet
        return int(await conn.fetchval("SELECT count(*) FROM mendline.event_ids"))
    finally:
        await conn.close()


async def check_exactly_once(url: str, produced: list[dict[str, object]]) -> None:
    """Every produced event was taken once and counted once, whichever were stored whole:
    the ids, the occurrences on the issues, their minutes and fingerprints, and per issue
    and hour the events received and stored as sampling said."""
    conn = await asyncpg.connect(url)
    try:
        taken = {
            r["event_id"].hex for r in await conn.fetch("SELECT event_id FROM mendline.event_ids")
        }
        assert await conn.fetchval("SELECT count(*) FROM mendline.event_ids") == len(produced)
        assert taken == {e["event_id"] for e in produced}
        rows = {r["event_id"].hex for r in await conn.fetch("SELECT event_id FROM mendline.events")}
        assert rows <= taken
        # Rolled-up events count every occurrence they stand for.
        occurrences = sum(int(e.get("count", 1)) for e in produced)  # type: ignore[call-overload]
        assert await conn.fetchval("SELECT sum(times_seen) FROM mendline.issues") == occurrences
        assert await conn.fetchval("SELECT sum(count) FROM mendline.issue_counts") == occurrences
        counted = await conn.fetchval("SELECT sum(count) FROM mendline.fingerprint_counts")
        assert counted == occurrences
        mismatched = await conn.fetch(
            """SELECT i.id, i.times_seen,
                      (SELECT sum(c.count) FROM mendline.issue_counts c
                       WHERE c.issue_id = i.id) AS minutes,
                      (SELECT sum(c.count) FROM mendline.fingerprint_counts c
                       JOIN mendline.fingerprints f ON f.hash = c.hash
                       WHERE f.issue_id = i.id) AS fingerprints
               FROM mendline.issues i"""
        )
        assert all(r["times_seen"] == r["minutes"] == r["fingerprints"] for r in mismatched), (
            mismatched
        )
        # Each issue's hours: every event received, and the rows the tally says were kept.
        hours = await conn.fetch(
            """SELECT s.issue_id, s.hour, s.received, s.kept + s.sampled AS kept,
                      (SELECT count(*) FROM mendline.events e
                       WHERE e.issue_id = s.issue_id AND e.received_at >= s.hour
                         AND e.received_at < s.hour + interval '1 hour') AS rows
               FROM mendline.event_samples s"""
        )
        assert sum(r["received"] for r in hours) == len(produced)
        assert all(r["kept"] == r["rows"] for r in hours), [dict(r) for r in hours]
    finally:
        await conn.close()


async def test_the_consume_stage_creates_its_topics_with_the_configured_partitions(
    kafka_bootstrap: str, fresh_db_url: str
) -> None:
    # A broker that creates topics on first use gives them its own partitions, and the DLQ
    # topic none until something is dead-lettered: the stage creates both, as `topics ensure`.
    settings = consume_settings(kafka_bootstrap, fresh_db_url, topic_partitions=5)
    context = Telemetry().stage("consume")
    stop = asyncio.Event()
    stage = asyncio.create_task(consume.run(settings, stop, context))
    try:
        await wait_until(lambda: context.waiting_for() is None, 60, "the consume stage ready")
    finally:
        stop.set()
        await asyncio.wait_for(stage, 30)
    assert await partition_count(kafka_bootstrap, settings.errors_topic) == 5
    assert await partition_count(kafka_bootstrap, settings.dlq_topic) == 5


async def test_events_become_issues_once_and_offsets_are_committed(
    kafka_bootstrap: str, fresh_db_url: str
) -> None:
    settings = consume_settings(kafka_bootstrap, fresh_db_url)
    events = [make_event(issue, n) for n in range(50) for issue in range(3)]
    await produce(kafka_bootstrap, settings.errors_topic, [encode(e) for e in events])
    async with running_consumer(settings) as consumer:
        await wait_until(lambda: stored(fresh_db_url), 30, "the events")
        await wait_until(lambda: consumer.stats.stored == 150, 30, "150 stored")
    await check_exactly_once(fresh_db_url, events)
    conn = await asyncpg.connect(fresh_db_url)
    try:
        issues = await conn.fetch("SELECT title, culprit, times_seen FROM mendline.issues")
        assert len(issues) == 3 and {r["times_seen"] for r in issues} == {50}
    finally:
        await conn.close()
    # A second consumer of the group starts after them: the offsets were committed. It reads
    # an event written now, and none of the 150 before it.
    async with running_consumer(settings) as second:
        later = make_event(3, 0)
        await produce(kafka_bootstrap, settings.errors_topic, [encode(later)])
        await wait_until(lambda: second.stats.stored == 1, 30, "the later event")
        assert second.stats.received == 1


POISON: list[tuple[bytes | None, str]] = [
    (b"this is not json", "not_json"),
    (b"[1, 2, 3]", "not_json"),
    (b"\xff\xfe\x00garbage", "not_json"),
    (None, "not_json"),
    (json.dumps({"schema_version": 2, "event_id": "0" * 32}).encode(), "unknown_schema_version"),
    (json.dumps({"schema_version": 1, "message": "no id"}).encode(), "invalid"),
    (encode({**make_event(0), "level": "fatal"}), "invalid"),
    (encode({**make_event(0), "context": {"blob": "x" * 300_000}}), "too_large"),
    (encode({**make_event(0), "message": "m" * 9000}), "invalid"),
]


async def test_poison_records_go_to_the_dlq_with_their_reason_and_the_rest_is_stored(
    kafka_bootstrap: str, fresh_db_url: str
) -> None:
    settings = consume_settings(kafka_bootstrap, fresh_db_url)
    good = [make_event(1, n) for n in range(len(POISON) + 1)]
    nul = make_event(2, 99)
    nul["message"] = "nul \u0000 inside"  # valid JSON; PostgreSQL cannot store U+0000
    values: list[bytes | None] = []
    for (bad, _), ok in zip(POISON, good, strict=False):
        values += [encode(ok), bad]
    values += [encode(good[-1]), encode(nul)]
    await produce(kafka_bootstrap, settings.errors_topic, values)
    async with running_consumer(settings) as consumer:
        await wait_until(lambda: consumer.stats.batches and consumer.stats.stored == 11, 30, "all")
    await check_exactly_once(fresh_db_url, [*good, nul])
    letters = await read_dead_letters(settings, limit=100)
    assert [d.reason for d in letters] == [reason for _, reason in POISON]
    assert [d.value for d in letters] == [bad for bad, _ in POISON]  # kept unchanged
    assert all(d.source.startswith(settings.errors_topic) for d in letters)
    assert consumer.stats.dead_lettered == {
        "not_json": 4,
        "unknown_schema_version": 1,
        "invalid": 3,
        "too_large": 1,
    }


def _edited(event: dict[str, object], old: bytes, new: bytes) -> bytes:
    raw = encode(event)
    assert old in raw
    return raw.replace(old, new, 1)


#: Records that pass a lenient JSON reader (a duplicate key: the last one wins; a boolean or
#: a float coerced) and must not be stored, each with the words its DLQ message holds.
HOSTILE: list[tuple[bytes, str]] = [
    # the first "message" is what a first-wins reader (and a person) sees
    (_edited(make_event(0), b'"message":', b'"message":"benign","message":'), '"message"'),
    (
        _edited(make_event(0), b'"context":{', b'"context":{"password":"hunter2","password":1,'),
        'duplicate key "password" in "context"',
    ),
    (_edited(make_event(0), b'"in_app":true', b'"in_app":true,"in_app":false'), '"in_app"'),
    (_edited(make_event(0), b'"schema_version":1', b'"schema_version":true'), "schema_version"),
    (_edited(make_event(0), b'"in_app":true', b'"in_app":"yes"'), "in_app"),
    (_edited(make_event(0), b'"lineno":10', b'"lineno":10.0'), "lineno"),
]


async def test_hostile_records_go_to_the_dlq_and_stored_bytes_are_what_was_validated(
    kafka_bootstrap: str, fresh_db_url: str
) -> None:
    settings = consume_settings(kafka_bootstrap, fresh_db_url)
    offset = make_event(1, 0)
    # valid, in the consumer's window whenever the test runs; stored in UTC
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    offset["timestamp"] = when.astimezone(timezone(timedelta(hours=2))).isoformat()
    spaced = json.dumps(offset, indent=2).encode()
    await produce(kafka_bootstrap, settings.errors_topic, [bad for bad, _ in HOSTILE] + [spaced])
    async with running_consumer(settings) as consumer:
        await wait_until(lambda: consumer.stats.stored == 1, 30, "the valid event")
        await wait_until(
            lambda: consumer.stats.dead_lettered == {"invalid": len(HOSTILE)}, 30, "the DLQ"
        )
    letters = await read_dead_letters(settings)
    assert [d.value for d in letters] == [bad for bad, _ in HOSTILE]
    for letter, (_, words) in zip(letters, HOSTILE, strict=True):
        assert letter.reason == "invalid" and words in letter.message, letter.message
    [row] = await query(fresh_db_url, "SELECT payload::text AS payload FROM mendline.events")
    payload = row["payload"]
    assert payload.encode() != spaced
    assert json.loads(payload) == {**offset, "timestamp": when.isoformat().replace("+00:00", "Z")}


async def test_an_event_id_again_with_other_content_is_dead_lettered_as_a_conflict(
    kafka_bootstrap: str, fresh_db_url: str
) -> None:
    settings = consume_settings(kafka_bootstrap, fresh_db_url)
    # dated now, so that the dead letters hold the events unchanged whenever the test runs
    now = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    original = {**make_event(1, 0), "timestamp": now}
    forged = {**original, "message": "forged", "service": "payments"}
    reordered = {k: original[k] for k in reversed(list(original))}  # the same content
    twin = {**make_event(2, 0), "timestamp": now}
    twin_forged = {**twin, "level": "critical"}
    async with running_consumer(settings) as consumer:
        await produce(kafka_bootstrap, settings.errors_topic, [encode(original)])
        await wait_until(lambda: consumer.stats.stored == 1, 30, "the original")
        # one batch: a replay, a forgery of the stored event, and an id twice in the batch
        await produce(
            kafka_bootstrap,
            settings.errors_topic,
            [encode(reordered), encode(forged), encode(twin), encode(twin_forged)],
        )
        await wait_until(
            lambda: consumer.stats.dead_lettered == {"duplicate_conflict": 2}, 30, "conflicts"
        )
        await wait_until(lambda: consumer.stats.stored == 2, 30, "the twin")
        assert consumer.stats.duplicates == 1
    await check_exactly_once(fresh_db_url, [original, twin])
    # Keyed by event_id, the two may be on different DLQ partitions: read them by id.
    letters = {d.key: d for d in await read_dead_letters(settings)}
    assert set(letters) == {original["event_id"].encode(), twin["event_id"].encode()}
    for event_id, content in [(original["event_id"], forged), (twin["event_id"], twin_forged)]:
        letter = letters[event_id.encode()]
        assert letter.reason == "duplicate_conflict"
        assert json.loads(letter.value or b"") == content
        headers = dict(letter.headers)
        stored = headers["mendline.errors.stored-content-hash"].decode()
        new = headers["mendline.errors.content-hash"].decode()
        assert len(stored) == len(new) == 64 and stored != new
        assert letter.message.startswith(f"event_id {event_id} was stored")


async def test_a_timestamp_from_a_wrong_clock_does_not_pin_last_seen(
    kafka_bootstrap: str, fresh_db_url: str
) -> None:
    settings = consume_settings(kafka_bootstrap, fresh_db_url)
    now = datetime.now(UTC)
    ahead = make_event(1, 0)
    ahead["timestamp"] = "2099-01-01T00:00:00Z"
    await produce(kafka_bootstrap, settings.errors_topic, [encode(ahead)])
    async with running_consumer(settings) as consumer:
        await wait_until(lambda: consumer.stats.stored == 1, 30, "the event")
    [row] = await query(
        fresh_db_url,
        """SELECT i.last_seen, e.payload::text AS payload
           FROM mendline.issues i JOIN mendline.events e ON e.issue_id = i.id""",
    )
    last_seen, payload = row["last_seen"], json.loads(row["payload"])
    assert now - timedelta(minutes=5) < last_seen < now + timedelta(minutes=5)
    assert payload["original_timestamp"] == "2099-01-01T00:00:00Z"
    assert payload["timestamp"] == last_seen.isoformat().replace("+00:00", "Z")


async def test_the_dlq_and_redrive_producer_honours_the_request_timeout() -> None:
    # The consumer's DLQ producer and redrive's are made here; aiokafka keeps the timeout
    # on the producer's client, which every request (metadata, produce) waits at most.
    for seconds in (2.5, 30.0):
        settings = load_settings(kafka_request_timeout=seconds)
        producer = dead_letter_producer(settings, client_id="mendline-test")
        try:
            assert producer.client._request_timeout_ms == int(seconds * 1000)
        finally:
            await producer.stop()


async def test_batches_that_cannot_be_decoded_go_to_the_dlq_as_offset_ranges(
    kafka_bootstrap: str, fresh_db_url: str
) -> None:
    settings = consume_settings(kafka_bootstrap, fresh_db_url)
    topic = settings.errors_topic
    await create_topic(kafka_bootstrap, topic, 1)
    good = [make_event(1, n) for n in range(4)]
    hidden = [encode(make_event(2, n)) for n in range(3)]
    await produce_batch(kafka_bootstrap, topic, 0, record_batch(hidden[:2], codec=4))  # 0, 1
    await produce(kafka_bootstrap, topic, [encode(good[0]), encode(good[1])])  # 2, 3
    await produce_batch(kafka_bootstrap, topic, 0, record_batch(hidden, bad_crc=True))  # 4-6
    await produce(kafka_bootstrap, topic, [encode(good[2])])  # 7
    await produce_batch(kafka_bootstrap, topic, 0, record_batch(hidden[:2], codec=4))  # 8, 9
    await produce(kafka_bootstrap, topic, [encode(good[3])])  # 10
    async with running_consumer(settings) as consumer:
        await wait_until(
            lambda: (
                consumer.stats.stored == 4 and consumer.stats.dead_lettered == {"undecodable": 3}
            ),
            60,
            "the decodable events stored and three ranges dead-lettered",
        )
    await check_exactly_once(fresh_db_url, good)
    letters = await read_dead_letters(settings)
    assert [(d.reason, d.source, d.value) for d in letters] == [
        ("undecodable", f"{topic}[0]@0", None),
        ("undecodable", f"{topic}[0]@4", None),
        ("undecodable", f"{topic}[0]@8", None),
    ]
    assert [dict(d.headers)["mendline.errors.offset-last"] for d in letters] == [b"1", b"6", b"9"]
    assert "DecompressionError" in letters[0].message
    assert "CorruptRecordException" in letters[1].message
    assert "DecompressionError" in letters[2].message
    assert await redrive(settings) == 0  # offsets, not records: nothing to send again
    # The skips were committed: the group reads on after them, and nothing is dead-lettered.
    async with running_consumer(settings) as again:
        later = make_event(3, 0)
        await produce(kafka_bootstrap, topic, [encode(later)])
        await wait_until(lambda: again.stats.stored == 1, 30, "the later event")
        assert again.stats.dead_lettered == {} and again.stats.received == 1


async def test_redrive_sends_dead_letters_through_again(
    kafka_bootstrap: str, fresh_db_url: str
) -> None:
    settings = consume_settings(kafka_bootstrap, fresh_db_url)
    fixed_later = make_event(5, 1)
    await produce(
        kafka_bootstrap,
        settings.errors_topic,
        [b"{broken", encode({**fixed_later, "level": "fatal"})],
    )
    async with running_consumer(settings) as consumer:
        await wait_until(lambda: sum(consumer.stats.dead_lettered.values()) == 2, 30, "2 rejects")
        assert await redrive(settings) == 2
        await wait_until(
            lambda: sum(consumer.stats.dead_lettered.values()) == 4, 30, "the re-driven records"
        )
        # They failed again and are kept; the next re-drive takes only those two new ones.
        assert len(await read_dead_letters(settings)) == 4
        assert await redrive(settings) == 2


async def test_postgres_down_mid_stream_pauses_and_recovers(
    kafka_bootstrap: str, postgres_factory: Callable[..., EmbeddedPostgres]
) -> None:
    server = postgres_factory()
    settings = consume_settings(kafka_bootstrap, server.url)
    first = [make_event(n % 7, n) for n in range(500)]
    second = [make_event(n % 7, n) for n in range(500, 1500)]
    async with running_consumer(settings) as consumer:
        await produce(kafka_bootstrap, settings.errors_topic, [encode(e) for e in first])
        await wait_until(lambda: consumer.stats.stored == 500, 30, "the first 500")
        server.stop()
        await produce(kafka_bootstrap, settings.errors_topic, [encode(e) for e in second])
        await wait_until(lambda: consumer.stats.store_retries >= 2, 30, "a failed write")
        await asyncio.sleep(3)  # down for a while, longer than the session timeout
        server.start()
        await wait_until(lambda: consumer.stats.stored == 1500, 60, "everything after recovery")
    await check_exactly_once(server.url, first + second)


async def test_kafka_down_at_start_then_up(
    kafka_broker_factory: Callable[..., object],
    fresh_db_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from mendline.devstack import KafkaBroker, free_port

    broker = kafka_broker_factory(free_port(), start=False)
    assert isinstance(broker, KafkaBroker)
    settings = consume_settings(broker.bootstrap, fresh_db_url)
    caplog.set_level(logging.WARNING, logger="mendline.consume")

    def refused() -> int:
        """How many attempts to reach Kafka failed so far."""
        return sum(
            r.name == "mendline.consume" and "Kafka unreachable" in r.getMessage()
            for r in caplog.records
        )

    async with running_consumer(settings) as consumer:
        # It keeps trying: it failed more than once, and did not give up.
        await wait_until(lambda: refused() >= 2, 30, "a second failed attempt to reach Kafka")
        broker.start()
        events = [make_event(1, n) for n in range(20)]
        await produce(broker.bootstrap, settings.errors_topic, [encode(e) for e in events])
        await wait_until(lambda: consumer.stats.stored == 20, 60, "the events")
    await check_exactly_once(fresh_db_url, events)


def spawn_consumer(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MENDLINE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "MENDLINE_DATABASE_URL": settings.database_url.get_secret_value(),
        "MENDLINE_ERRORS_TOPIC": settings.errors_topic,
        "MENDLINE_DLQ_TOPIC": settings.dlq_topic,
        "MENDLINE_CONSUMER_GROUP": settings.consumer_group,
        "MENDLINE_KAFKA_SESSION_TIMEOUT": "2",
        "MENDLINE_FREQUENCY_THRESHOLD": "0",
        "MENDLINE_BATCH_MAX_RECORDS": "500",
        "MENDLINE_EVENTS_FULL_PER_HOUR": str(settings.events_full_per_hour),
        "MENDLINE_EVENTS_SAMPLE_PER_HOUR": str(settings.events_sample_per_hour),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "mendline", "consume"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )


async def produce_slowly(
    bootstrap: str, topic: str, events: list[dict[str, object]], seconds: float
) -> None:
    chunk = 500
    pause = seconds / (len(events) / chunk)
    for start in range(0, len(events), chunk):
        await produce(bootstrap, topic, [encode(e) for e in events[start : start + chunk]])
        await asyncio.sleep(pause)


async def stream_20000(
    bootstrap: str, db_url: str
) -> tuple[Settings, list[dict[str, object]], asyncio.Task[None]]:
    """A migrated database, a 4-partition topic, and 20,000 events of 300 issues (one in
    seven rolled up: a count of 2 to 51) being produced over 8 seconds, for consumers that
    sample: 10 of an issue's events an hour whole, then a reservoir of 3."""
    settings = consume_settings(
        bootstrap, db_url, events_full_per_hour=10, events_sample_per_hour=3
    )
    await create_topic(bootstrap, settings.errors_topic, 4)
    store = await connect_store(settings)  # migrates
    await store.close()
    events = [make_event(n % 300, n) for n in range(20_000)]
    for n in range(0, 20_000, 7):  # some stand for a storm's repeats, rolled up by the app
        events[n] |= {"count": 2 + n % 50, "first_timestamp": events[n]["timestamp"]}
    producing = asyncio.create_task(produce_slowly(bootstrap, settings.errors_topic, events, 8))
    return settings, events, producing


async def test_kill_9_at_random_points_loses_nothing_and_counts_nothing_twice(
    kafka_bootstrap: str, fresh_db_url: str, tmp_path: Path
) -> None:
    import random

    settings, events, producing = await stream_20000(kafka_bootstrap, fresh_db_url)
    log = tmp_path / "consume.log"
    process = spawn_consumer(settings, log)
    stored_at_kill: list[int] = []
    try:
        # Kill whenever the consumer is making progress, at a random moment: mid-batch,
        # between the PostgreSQL commit and the offset commit, or while idle.
        while len(stored_at_kill) < 5:
            before = await stored(fresh_db_url)
            if before >= len(events):
                break
            await wait_until(
                lambda n=before: stored_is(fresh_db_url, n + 1), 60, "the consumer's progress"
            )
            await asyncio.sleep(random.uniform(0.0, 0.6))
            stored_at_kill.append(await stored(fresh_db_url))
            process.send_signal(signal.SIGKILL)
            process.wait()
            process = spawn_consumer(settings, log)
        await producing
        await wait_until(lambda: stored_is(fresh_db_url, len(events)), 120, "all 20,000 events")
    finally:
        process.terminate()
        process.wait(30)
    await check_exactly_once(fresh_db_url, events)
    # The kills landed mid-stream, while events were being stored.
    assert sum(1 for n in stored_at_kill if 0 < n < len(events)) >= 3, stored_at_kill


async def stored_is(url: str, n: int) -> bool:
    return await stored(url) >= n


async def test_two_consumers_and_rebalances_mid_stream(
    kafka_bootstrap: str, fresh_db_url: str, tmp_path: Path
) -> None:
    settings, events, producing = await stream_20000(kafka_bootstrap, fresh_db_url)
    log = tmp_path / "consume.log"

    def assignments(process: subprocess.Popen[bytes]) -> int:
        """How many times ``process`` logged the partitions it was given."""
        lines = log.read_text().splitlines() if log.exists() else []
        return sum(f"[{process.pid}]" in line and " assigned " in line for line in lines)

    first = spawn_consumer(settings, log)
    processes = [first]
    try:
        await wait_until(lambda: assignments(first) >= 1, 60, "the first consumer's partitions")
        second = spawn_consumer(settings, log)  # a rebalance: partitions are shared
        processes.append(second)
        await wait_until(lambda: assignments(second) >= 1, 60, "partitions for the second")
        first.send_signal(signal.SIGKILL)  # another: the survivor takes everything
        first.wait()
        await wait_until(lambda: assignments(second) >= 2, 60, "the survivor's rebalance")
        await producing
        await wait_until(lambda: stored_is(fresh_db_url, len(events)), 120, "all 20,000 events")
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait(30)
    await check_exactly_once(fresh_db_url, events)
    assigned = [line for line in log.read_text().splitlines() if " assigned " in line]
    pids = {line.split("[")[1].split("]")[0] for line in assigned}
    assert pids == {str(first.pid), str(second.pid)}, assigned  # both took part
    survivor = [line for line in assigned if f"[{second.pid}]" in line]
    assert len(survivor) >= 2, assigned  # and the survivor was rebalanced onto more


@pytest.mark.parametrize("compression", ["none", "gzip", "snappy", "lz4", "zstd"])
async def test_events_from_a_librdkafka_producer_are_consumed_alike(
    kafka_bootstrap: str, fresh_db_url: str, compression: str
) -> None:
    """Whatever codec another language's producer compresses its batches with."""
    from confluent_kafka import Producer

    settings = consume_settings(kafka_bootstrap, fresh_db_url)
    events = [make_event(7, n, service="node-api") for n in range(30)]
    producer = Producer(
        {"bootstrap.servers": kafka_bootstrap, "acks": "all", "compression.type": compression}
    )
    for e in events:
        producer.produce(settings.errors_topic, value=encode(e), key=str(e["event_id"]).encode())
    assert producer.flush(30) == 0
    async with running_consumer(settings) as consumer:
        await wait_until(lambda: consumer.stats.stored == 30, 60, "the librdkafka events")
    await check_exactly_once(fresh_db_url, events)


async def test_sigterm_finishes_the_batch_commits_and_exits(
    kafka_bootstrap: str, fresh_db_url: str, tmp_path: Path
) -> None:
    settings = consume_settings(kafka_bootstrap, fresh_db_url)
    events = [make_event(n % 5, n) for n in range(3000)]
    await produce(kafka_bootstrap, settings.errors_topic, [encode(e) for e in events])
    process = spawn_consumer(settings, tmp_path / "consume.log")
    try:
        await wait_until(lambda: stored_is(fresh_db_url, 1), 60, "the first stored events")
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 30)
    finally:
        if process.poll() is None:
            process.kill()
    assert code == 0
    # Whatever it stored was committed: a second consumer stores exactly the rest.
    async with running_consumer(settings) as consumer:
        await wait_until(lambda: stored_is(fresh_db_url, len(events)), 60, "the rest")
        await asyncio.sleep(1)
    await check_exactly_once(fresh_db_url, events)
    assert consumer.stats.duplicates < len(events)  # it did not start over from the beginning


async def test_postgres_down_at_start_then_up(
    kafka_bootstrap: str, postgres_factory: Callable[..., EmbeddedPostgres], tmp_path: Path
) -> None:
    server = postgres_factory(start=False)
    settings = consume_settings(kafka_bootstrap, server.url)
    events = [make_event(1, n) for n in range(50)]
    await produce(kafka_bootstrap, settings.errors_topic, [encode(e) for e in events])
    process = spawn_consumer(settings, tmp_path / "consume.log")
    try:
        await asyncio.sleep(2)
        assert process.poll() is None  # waiting, not crashed
        server.start()
        await wait_until(lambda: stored_is(server.url, len(events)), 60, "the events")
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 30)
    await check_exactly_once(server.url, events)
