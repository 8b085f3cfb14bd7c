"""Reading the dead-letter topic, and sending its records through the pipeline again."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from mendline.ingest._topics import kafka_client_options
from mendline.ingest.consumer._consumer import DLQ_HEADER_PREFIX, dead_letter_producer
from mendline.schemas.errors import NEVER_REDRIVEN, TopicNotFound
from mendline.schemas.settings import Settings

__all__ = ["DeadLetter", "read_dead_letters", "redrive"]

REDRIVE_GROUP_SUFFIX = "-dlq-redrive"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record of the DLQ with the reason it was rejected."""

    partition: int
    offset: int
    timestamp: datetime
    reason: str
    message: str
    source: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


async def _open(
    settings: Settings, group: str | None
) -> tuple[AIOKafkaConsumer, list[TopicPartition]]:
    consumer = AIOKafkaConsumer(
        **kafka_client_options(settings),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        await consumer.start()
    except BaseException:
        await consumer.stop()
        raise
    partitions = consumer.partitions_for_topic(settings.dlq_topic)
    if partitions is None:
        await consumer._client.force_metadata_update()  # the topic may be new
        partitions = consumer.partitions_for_topic(settings.dlq_topic)
    if not partitions:
        await consumer.stop()
        raise TopicNotFound(
            f"the DLQ topic {settings.dlq_topic} does not exist",
            hint="`mendline topics ensure` creates it (as `mendline consume` does);"
            " or set MENDLINE_DLQ_TOPIC to the topic you use",
        )
    tps = [TopicPartition(settings.dlq_topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    return consumer, tps


async def _drain(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], idle: float = 1.0
) -> list[DeadLetter]:
    """Every record from the current positions until the partitions stay quiet.

    End offsets alone are not trusted: Tansu answers ListOffsets with the last batch's base
    offset plus one, so a batch of several records would be cut short. Reading on until a
    fetch comes back empty works on it and on Kafka alike.
    """
    if not tps:
        return []
    ends = await consumer.end_offsets(tps)
    out: list[DeadLetter] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        batches = await consumer.getmany(*tps, timeout_ms=int(idle * 1000))
        if not batches:
            positions = [await consumer.position(tp) for tp in tps]
            if all(pos >= ends[tp] for pos, tp in zip(positions, tps, strict=True)):
                break
            continue
        for records in batches.values():
            out.extend(_letter(record) for record in records)
    return out


def _letter(record: ConsumerRecord[bytes, bytes]) -> DeadLetter:
    headers = tuple(record.headers or ())
    info = {
        k.removeprefix(DLQ_HEADER_PREFIX): v.decode("utf-8", "replace")
        for k, v in headers
        if k.startswith(DLQ_HEADER_PREFIX)
    }
    return DeadLetter(
        partition=record.partition,
        offset=record.offset,
        timestamp=datetime.fromtimestamp(record.timestamp / 1000),
        reason=info.get("reason", "?"),
        message=info.get("message", ""),
        source=f"{info.get('topic', '?')}[{info.get('partition', '?')}]@{info.get('offset', '?')}",
        key=record.key,
        value=record.value,
        headers=headers,
    )


async def read_dead_letters(
    settings: Settings,
    limit: int = 100,
    reason: str | None = None,
    *,
    newest_first: bool = False,
) -> list[DeadLetter]:
    """The DLQ's records (at most ``limit``, optionally of one reason): from the start, or
    ``newest_first`` (by time, then partition and offset). TopicNotFound when the broker has
    no DLQ topic."""
    consumer, tps = await _open(settings, group=None)
    try:
        await consumer.seek_to_beginning(*tps)
        letters = await _drain(consumer, tps)
    finally:
        await consumer.stop()
    if reason is not None:
        letters = [d for d in letters if d.reason == reason]
    if newest_first:
        letters.sort(key=lambda d: (d.timestamp, d.partition, d.offset), reverse=True)
    return letters[:limit]


async def redrive(settings: Settings, reason: str | None = None) -> int:
    """Produce the DLQ's records (not redriven before) to the errors topic again, unchanged
    but for the reason headers; returns how many. Run it after fixing what rejected them:
    the consumer validates them again, and stores each event once whatever is replayed.

    Progress is committed under the group ``<consumer_group>-dlq-redrive``. With ``reason``,
    only that reason's records go, and no progress is committed. Letters of NEVER_REDRIVEN
    reasons are never sent: ``undecodable`` ones name offsets, not records, and
    ``relay_rejected`` ones hold bodies an SDK was answered 400 for, no ErrorEvent.
    TopicNotFound when the broker has no DLQ topic.
    """
    consumer, tps = await _open(settings, group=settings.consumer_group + REDRIVE_GROUP_SUFFIX)
    producer = dead_letter_producer(settings, client_id="mendline-dlq-redrive")
    try:
        await producer.start()
    except BaseException:
        await producer.stop()
        await consumer.stop()
        raise
    try:
        for tp in tps:
            committed = await consumer.committed(tp)
            if committed is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)
        letters = await _drain(consumer, tps)
        chosen = [
            d
            for d in letters
            if d.reason not in NEVER_REDRIVEN and (reason is None or d.reason == reason)
        ]
        futures = [
            await producer.send(
                settings.errors_topic,
                value=d.value,
                key=d.key,
                headers=[
                    *((k, v) for k, v in d.headers if not k.startswith(DLQ_HEADER_PREFIX)),
                    ("mendline.redriven-from", f"{d.partition}@{d.offset}".encode()),
                ],
            )
            for d in chosen
        ]
        for future in futures:
            await future
        if reason is None and letters:
            last: dict[TopicPartition, int] = {}
            for d in letters:
                last[TopicPartition(settings.dlq_topic, d.partition)] = d.offset + 1
            await consumer.commit(last)
        return len(chosen)
    finally:
        await producer.stop()
        await consumer.stop()
