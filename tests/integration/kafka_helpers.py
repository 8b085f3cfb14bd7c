"""Writing records to a topic and reading a topic back, in the tests."""

from __future__ import annotations

import asyncio
import json
import struct
import time
import uuid
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.protocol.produce import ProduceRequest
from aiokafka.record.default_records import DefaultRecordBase, DefaultRecordBatchBuilder
from aiokafka.record.util import calc_crc32c


def unique_topic(prefix: str = "t") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:12]}"


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    """Create ``topic`` with ``partitions`` partitions (one replica)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


async def partition_count(bootstrap: str, topic: str) -> int:
    """The partitions of ``topic``, 0 if it does not exist (asking creates no topic)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        # topics() asks the broker for every topic: it creates none.
        return len(((await consumer.topics()) and consumer.partitions_for_topic(topic)) or ())
    finally:
        await consumer.stop()


async def produce(
    bootstrap: str,
    topic: str,
    values: Iterable[bytes | None],
    *,
    headers: list[tuple[str, bytes]] | None = None,
    partition: int | None = None,
) -> None:
    """Write ``values`` to ``topic`` in order, all with key ``k`` (so to one partition, or to
    ``partition``), and wait for every ack (acks=all); ``headers`` go with each record."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value, key=b"k", partition=partition, headers=headers)
            for value in values
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_events(
    bootstrap: str, topic: str, expected: int, timeout: float = 30.0, settle: float = 0.5
) -> list[dict[str, Any]]:
    """Read a topic from the start until ``expected`` records came (then ``settle`` seconds
    more, to catch duplicates) or ``timeout`` passed; each record's value as JSON."""
    records = await read_records(bootstrap, topic, expected, timeout, settle)
    return [json.loads(record.value) for record in records]


async def read_records(
    bootstrap: str, topic: str, expected: int, timeout: float = 30.0, settle: float = 0.5
) -> list[ConsumerRecord[bytes, bytes]]:
    """read_events, the records as they are (value bytes, headers)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        metadata_max_age_ms=1000,
    )
    await consumer.start()
    found: list[ConsumerRecord[bytes, bytes]] = []
    try:
        deadline = time.monotonic() + timeout
        settle_until: float | None = None
        while time.monotonic() < deadline:
            if settle_until is not None and time.monotonic() >= settle_until:
                break
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            for records in batches.values():
                found.extend(records)
            if len(found) >= expected and settle_until is None:
                settle_until = time.monotonic() + settle
    finally:
        await consumer.stop()
    return found


def record_batch(values: list[bytes], *, codec: int = 0, bad_crc: bool = False) -> bytes:
    """A Kafka record batch (v2) of ``values``, as a producer builds it. ``codec`` marks it
    compressed (zstd is 4) though its records are not, with a valid CRC: it cannot be
    decompressed. ``bad_crc`` changes a byte of its last record after the CRC was set."""
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=False,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    for delta, value in enumerate(values):
        builder.append(delta, timestamp=None, key=b"k", value=value, headers=[])
    data = bytearray(builder.build())
    if codec:
        at = DefaultRecordBase.ATTRIBUTES_OFFSET
        (attributes,) = struct.unpack_from(">h", data, at)
        struct.pack_into(">h", data, at, attributes | codec)
        struct.pack_into(">I", data, DefaultRecordBase.CRC_OFFSET, calc_crc32c(data[at:]))
    if bad_crc:
        data[-3] ^= 0xFF
    return bytes(data)


async def produce_batch(bootstrap: str, topic: str, partition: int, batch: bytes) -> None:
    """Write one record batch exactly as given (a ProduceRequest of those bytes, acks=all):
    the broker keeps it as it is, as it would a batch a broken producer sent."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.client.force_metadata_update()
        leader = producer.client.cluster.leader_for_partition(TopicPartition(topic, partition))
        response = await producer.client.send(
            leader, ProduceRequest(None, -1, 10_000, [(topic, [(partition, batch)])])
        )
        errors = [code for _, parts in response.topics for _, code, *_ in parts]
        assert errors == [0], f"the broker refused the batch: {response}"
    finally:
        await producer.stop()
