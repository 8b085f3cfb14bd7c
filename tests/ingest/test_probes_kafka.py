"""The kafka probe against the session's real broker (Tansu): reaching it, a consumer
group's lag on a topic whose offsets the test made, and the records appended to a topic
lately, by the timestamps the test gave them."""

from __future__ import annotations

import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata

from mendline.analyzers.health.conditions import RECENT_LIMIT
from mendline.devstack import free_port
from mendline.ingest.probes import (
    TAIL_STEP,
    TailRead,
    kafka_probe_options,
    observe,
    read_recent,
    tail_chunk,
)
from mendline.schemas.checks import KafkaCheck
from mendline.schemas.settings import Settings
from tests.loopback import HOST

pytestmark = pytest.mark.integration


async def topic_with_lag(bootstrap: str) -> tuple[str, str]:
    """A new topic with 5 records in partition 0 and 3 in partition 1, and a new group that
    committed offset 2 on partition 0 only: a lag of (5 - 2) + (3 - 0) = 6."""
    topic, group = f"probe-{uuid.uuid4().hex[:10]}", f"probe-group-{uuid.uuid4().hex[:10]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 2, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        for partition, count in ((0, 5), (1, 3)):
            for i in range(count):
                await producer.send_and_wait(topic, f"r{i}".encode(), partition=partition)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        await consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(2, "")})
    finally:
        await consumer.stop()
    return topic, group


async def test_the_broker_is_reached_and_the_groups_lag_summed_over_partitions(
    kafka_bootstrap: str,
) -> None:
    topic, group = await topic_with_lag(kafka_bootstrap)
    settings = Settings(kafka_bootstrap=kafka_bootstrap)
    check = KafkaCheck(kind="kafka", name="lag", group=group, topic=topic, timeout=20)
    seen = await observe(check, settings, {})
    assert seen.error is None
    assert seen.values["CONNECTED"] is True
    assert seen.values["LAG"] == 6
    assert isinstance(seen.values["RESPONSE_TIME"], float)


async def test_a_group_that_never_committed_lags_by_the_whole_topic(kafka_bootstrap: str) -> None:
    topic, _ = await topic_with_lag(kafka_bootstrap)
    check = KafkaCheck(
        kind="kafka",
        name="lag",
        bootstrap=kafka_bootstrap,
        group="never-" + topic,
        topic=topic,
        timeout=20,
    )
    seen = await observe(check, Settings(kafka_bootstrap=f"{HOST}:{free_port()}"), {})
    assert seen.error is None  # the check's bootstrap wins over the settings'
    assert seen.values["LAG"] == 8


async def test_without_a_group_only_reaching_the_broker_is_observed(kafka_bootstrap: str) -> None:
    check = KafkaCheck(kind="kafka", name="up", timeout=20)
    seen = await observe(check, Settings(kafka_bootstrap=kafka_bootstrap), {})
    assert seen.error is None
    assert seen.values["CONNECTED"] is True and "LAG" not in seen.values


async def test_a_refused_bootstrap_is_refused_and_not_connected() -> None:
    check = KafkaCheck(kind="kafka", name="down", bootstrap=f"{HOST}:{free_port()}")
    seen = await observe(check, Settings(), {})
    assert seen.error_kind == "refused"
    assert seen.values["CONNECTED"] is False


async def test_a_topic_that_does_not_exist_is_an_error(kafka_bootstrap: str) -> None:
    missing = f"probe-missing-{uuid.uuid4().hex[:10]}"
    check = KafkaCheck(
        kind="kafka", name="lag", bootstrap=kafka_bootstrap, group="g", topic=missing, timeout=20
    )
    seen = await observe(check, Settings(), {})
    assert seen.error_kind == "other"
    assert seen.error is not None and missing in seen.error
    assert seen.values["CONNECTED"] is True


async def topic_with_records(bootstrap: str, ages: dict[int, list[float]]) -> str:
    """A new topic with a partition for each key of ``ages``, holding a record per age given
    (seconds before now, as the record's timestamp), in that order."""
    topic = f"recent-{uuid.uuid4().hex[:10]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, len(ages), 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        now_ms = time.time() * 1000
        sent = [
            await producer.send(
                topic, b"dead letter", partition=partition, timestamp_ms=int(now_ms - age * 1000)
            )
            for partition, partition_ages in ages.items()
            for age in partition_ages
        ]
        for delivery in sent:
            await delivery
    finally:
        await producer.stop()
    return topic


async def recent(bootstrap: str, topic: str, **window: float) -> int | None:
    check = KafkaCheck(kind="kafka", name="dlq", topic=topic, timeout=20, **window)
    seen = await observe(check, Settings(kafka_bootstrap=bootstrap), {})
    assert seen.error is None and seen.values["CONNECTED"] is True
    assert "LAG" not in seen.values
    value = seen.values["RECENT"]
    assert value is None or isinstance(value, int)
    return value


HOUR, MINUTE = 3600.0, 60.0


async def test_recent_counts_the_records_within_the_window_summed_over_partitions(
    kafka_bootstrap: str,
) -> None:
    # Partition 1's timestamps go back and forth, as producers' clocks may: each is judged.
    topic = await topic_with_records(
        kafka_bootstrap,
        {0: [3 * HOUR, 2 * HOUR, 2 * MINUTE, MINUTE], 1: [MINUTE, 3 * HOUR, 5.0], 2: []},
    )
    assert await recent(kafka_bootstrap, topic, window=10 * MINUTE) == 4
    assert await recent(kafka_bootstrap, topic, window=90.0) == 3
    assert await recent(kafka_bootstrap, topic, window=4 * HOUR) == 7
    # Without a window, the check's interval is the window.
    assert await recent(kafka_bootstrap, topic, interval=150.0) == 4


async def test_recent_is_zero_on_a_topic_that_does_not_exist_or_holds_only_old_records(
    kafka_bootstrap: str,
) -> None:
    missing = f"recent-missing-{uuid.uuid4().hex[:10]}"
    assert await recent(kafka_bootstrap, missing, window=HOUR) == 0
    old = await topic_with_records(kafka_bootstrap, {0: [2 * HOUR, HOUR + MINUTE]})
    assert await recent(kafka_bootstrap, old, window=HOUR) == 0


async def test_recent_reads_at_most_the_newest_hundred_records_of_each_partition(
    kafka_bootstrap: str,
) -> None:
    # All recent: partition 0 holds more than the limit, partition 1 fewer.
    topic = await topic_with_records(
        kafka_bootstrap, {0: [MINUTE] * (RECENT_LIMIT + 20), 1: [MINUTE] * 3}
    )
    assert await recent(kafka_bootstrap, topic, window=HOUR) == RECENT_LIMIT + 3


async def one_at_a_time(bootstrap: str, topic: str, partition: int, ages: list[float]) -> None:
    """Append a record per age (seconds ago) to the partition, each its own batch."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        for age in ages:
            stamp = int((time.time() - age) * 1000)
            await producer.send_and_wait(topic, b"x", partition=partition, timestamp_ms=stamp)
    finally:
        await producer.stop()


async def test_a_stale_partition_costs_its_newest_record_and_a_recent_one_a_step_more(
    kafka_bootstrap: str,
) -> None:
    """A DLQ whose newest record is older than the window is read no further than that
    record; a partition with recent records is read back to the step holding an old one."""
    stale = await topic_with_records(kafka_bootstrap, {0: [], 1: []})
    await one_at_a_time(kafka_bootstrap, stale, 0, [HOUR] * 30)
    await one_at_a_time(kafka_bootstrap, stale, 1, [HOUR] * 25)
    lately = await topic_with_records(kafka_bootstrap, {0: []})
    await one_at_a_time(kafka_bootstrap, lately, 0, [HOUR] * 30 + [MINUTE] * 3)
    options = kafka_probe_options(KafkaCheck(kind="kafka", name="dlq", topic=stale), Settings())
    options["bootstrap_servers"] = kafka_bootstrap
    assert await read_recent(options, stale, 10 * MINUTE) == TailRead(recent=0, read=2)
    # The newest record, then one step back (its fetch of small records brings the newest
    # one again), which holds old records: no further.
    tail = await read_recent(options, lately, 10 * MINUTE)
    assert tail == TailRead(recent=3, read=1 + TAIL_STEP + 1)


@pytest.mark.parametrize(
    ("beginning", "end", "start", "old_seen", "following"),
    [
        (0, 50, 49, True, None),  # the newest record is old: nothing more
        (0, 50, 49, False, (49 - TAIL_STEP, 49)),
        (0, 50, 39, False, (39 - TAIL_STEP, 39)),
        (0, 50, 5, False, (0, 5)),  # not before the beginning
        (0, 50, 0, False, None),  # the whole partition read
        (40, 50, 45, False, (40, 45)),  # records deleted before 40
        (0, 500, 499, False, (499 - TAIL_STEP, 499)),
        (0, 500, 405, False, (500 - RECENT_LIMIT, 405)),  # not beyond the newest hundred
        (0, 500, 500 - RECENT_LIMIT, False, None),
        (0, 500, 300, False, None),  # a first batch (Tansu) reaching past the hundred
        (0, 500, 450, True, None),
    ],
)
def test_the_tail_is_read_back_in_steps_until_an_old_record_or_the_limit(
    beginning: int, end: int, start: int, old_seen: bool, following: tuple[int, int] | None
) -> None:
    assert tail_chunk(beginning, end, start, old_seen) == following


SASL = Settings(
    kafka_bootstrap="broker-1.internal:9092, broker-2.internal:9092",
    kafka_security_protocol="SASL_PLAINTEXT",
    kafka_sasl_mechanism="PLAIN",
    kafka_sasl_username="mendline",
    kafka_sasl_password="s3cret-mendline-pass",
)
OWN = {
    "security_protocol": "SASL_PLAINTEXT",
    "sasl_mechanism": "PLAIN",
    "sasl_plain_username": "mendline",
    "sasl_plain_password": "s3cret-mendline-pass",
}
PLAIN = {"security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize(
    ("bootstrap", "servers", "security"),
    [
        (None, "broker-1.internal:9092, broker-2.internal:9092", OWN),
        ("broker-1.internal:9092,broker-2.internal:9092", None, OWN),
        (" BROKER-2.internal:9092 ", None, OWN),  # one of mendline's own brokers
        ("partner.example.com:9092", None, PLAIN),
        ("broker-1.internal:9093", None, PLAIN),  # another port is another broker
        ("broker-1.internal:9092,partner.example.com:9092", None, PLAIN),
    ],
)
def test_mendlines_credentials_go_only_to_mendlines_own_brokers(
    bootstrap: str | None, servers: str | None, security: dict[str, str]
) -> None:
    check = KafkaCheck(kind="kafka", name="k", bootstrap=bootstrap, timeout=5)
    options = kafka_probe_options(check, SASL)
    assert options["bootstrap_servers"] == (servers or bootstrap)
    where = {"bootstrap_servers", "request_timeout_ms"}
    assert {key: value for key, value in options.items() if key not in where} == security
    assert options["request_timeout_ms"] == 5000


async def test_a_check_on_another_cluster_connects_without_mendlines_sasl(
    kafka_bootstrap: str,
) -> None:
    """mendline's own Kafka wants SASL; the check's broker (plain) is reached without it."""
    own = SASL.model_copy(update={"kafka_bootstrap": f"{HOST}:{free_port()}"})
    check = KafkaCheck(kind="kafka", name="partner", bootstrap=kafka_bootstrap, timeout=20)
    seen = await observe(check, own, {})
    assert seen.error is None
    assert seen.values["CONNECTED"] is True
