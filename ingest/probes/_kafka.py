"""The kafka probe: the cluster's metadata from the bootstrap servers; for a group and a
topic, how far the group's committed offsets are behind the topic's end; for a topic alone,
how many records were appended to it lately."""

from __future__ import annotations

import contextlib
import time
from typing import Any, NamedTuple

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError

from mendline.analyzers.health.conditions import RECENT_LIMIT
from mendline.ingest._topics import kafka_client_options
from mendline.ingest.probes._run import ProbeFailed, Seen, since_ms
from mendline.ingest.probes._tcp import connect
from mendline.schemas.checks import KafkaCheck
from mendline.schemas.settings import Settings

__all__ = [
    "TAIL_STEP",
    "TailRead",
    "kafka_probe_options",
    "probe_kafka",
    "read_recent",
    "tail_chunk",
]

_CLIENT_ID = "mendline-monitor"
# What one fetch of [RECENT]'s tail may bring per partition: the broker still sends at least
# one batch, so a larger record is read too, one fetch at a time.
_TAIL_FETCH_BYTES = 64 * 1024
#: How many records [RECENT] reads at a time going back from a partition's newest record.
TAIL_STEP = 10
# How long one fetch of the tail waits for records; the check's timeout bounds the whole.
_TAIL_WAIT_MS = 1000


def _servers(bootstrap: str) -> set[str]:
    return {server.strip().lower() for server in bootstrap.split(",") if server.strip()}


def kafka_probe_options(check: KafkaCheck, settings: Settings) -> dict[str, Any]:
    """The aiokafka options the check connects with. mendline's own security settings
    (``MENDLINE_KAFKA_*``: protocol, SASL credentials, CA) go only to mendline's own brokers:
    when the check names no ``bootstrap``, or only servers of ``kafka_bootstrap``. A check
    naming another cluster connects in PLAINTEXT, so mendline's credentials never reach it."""
    bootstrap = check.bootstrap or settings.kafka_bootstrap
    own = _servers(bootstrap) <= _servers(settings.kafka_bootstrap)
    options: dict[str, Any] = (
        kafka_client_options(settings) if own else {"security_protocol": "PLAINTEXT"}
    )
    options["bootstrap_servers"] = bootstrap
    # aiokafka waits this long for a request; the check's timeout bounds the run anyway.
    options["request_timeout_ms"] = max(1000, int(check.timeout * 1000))
    return options


async def _why_unreachable(bootstrap: str) -> ProbeFailed:
    """Why no bootstrap server answered: aiokafka keeps the socket errors to its log, so the
    first server is tried over TCP to tell refused, unresolved and unreachable apart."""
    first = bootstrap.split(",")[0].strip().rpartition("@")[2]
    host, _, port = first.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        return ProbeFailed("config", f"{first!r} is not host:port")
    try:
        sock = await connect(host, int(port), Seen())
    except ProbeFailed as failure:
        return ProbeFailed(failure.kind, f"Kafka at {failure.message}")
    sock.close()
    # aiokafka keeps why to its log: a TLS or SASL handshake refused, or not a Kafka broker.
    problem = f"{first} accepts TCP connections but no Kafka session could be opened"
    return ProbeFailed("unreachable", problem)


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """The topic's partitions, from fresh metadata; none when the topic does not exist."""
    await consumer.topics()
    partitions = consumer.partitions_for_topic(topic) or set()
    return [TopicPartition(topic, p) for p in sorted(partitions)]


async def _lag(options: dict[str, Any], admin: AIOKafkaAdminClient, group: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(**options, client_id=_CLIENT_ID, enable_auto_commit=False)
    try:
        await consumer.start()
        tps = await _partitions(consumer, topic)
        if not tps:
            raise ProbeFailed("other", f"the topic {topic} does not exist")
        ends = await consumer.end_offsets(tps)
        beginnings = await consumer.beginning_offsets(tps)
    finally:
        await consumer.stop()
    committed = await admin.list_consumer_group_offsets(group, partitions=tps)
    lag = 0
    for tp in tps:
        offset = committed[tp].offset if tp in committed else -1
        behind = ends[tp] - offset if offset >= 0 else ends[tp] - beginnings[tp]
        lag += max(0, behind)
    return lag


def tail_chunk(beginning: int, end: int, start: int, old_seen: bool) -> tuple[int, int] | None:
    """The next offsets ``[from, to)`` of a partition's tail for [RECENT] to read, going back
    from ``start`` (the lowest offset read so far) TAIL_STEP records at a time; None to stop:
    once a record older than the window was read (``old_seen``), or at the tail's floor,
    RECENT_LIMIT records before the partition's ``end`` (or its ``beginning``)."""
    floor = max(beginning, end - RECENT_LIMIT)
    if old_seen or start <= floor:
        return None
    return max(floor, start - TAIL_STEP), start


class TailRead(NamedTuple):
    """What [RECENT] found in a topic's tail: the records within the window, and how many
    records the broker sent to be looked at, over all partitions."""

    recent: int
    read: int


async def _read_tails(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], cutoff_ms: float
) -> TailRead:
    """Read each partition's tail backwards from its newest record, a chunk at a time (see
    tail_chunk), stopping at the chunk holding a record older than ``cutoff_ms``.

    The end is the high watermark of the first fetch, not only the answer to ListOffsets
    (latest): Tansu answers there the base offset of the last batch plus one, short of the
    end by the rest of that batch. So the first chunk starts just before the listed end and
    goes on to the end the fetch tells (on Tansu: the whole last batch); records appended
    after that first fetch are the next run's."""
    listed = await consumer.end_offsets(tps)
    beginnings = await consumer.beginning_offsets(tps)
    chunks: dict[TopicPartition, tuple[int, int | None]] = {
        tp: (max(beginnings[tp], listed[tp] - 1), None) for tp in tps if listed[tp] > beginnings[tp]
    }
    consumer.assign(list(chunks))
    for tp, (start, _) in chunks.items():
        consumer.seek(tp, start)
    ends: dict[TopicPartition, int] = {}
    kept: dict[TopicPartition, list[tuple[int, int]]] = {tp: [] for tp in chunks}
    fetched: dict[TopicPartition, list[tuple[int, int]]] = {tp: [] for tp in chunks}
    read = 0
    while chunks:
        for tp, records in (await consumer.getmany(*chunks, timeout_ms=_TAIL_WAIT_MS)).items():
            read += len(records)
            fetched[tp] += [(r.offset, r.timestamp) for r in records]
        for tp, (start, stop) in list(chunks.items()):
            highwater = consumer.highwater(tp)
            if stop is None and highwater is not None:  # the first fetch: the true end
                stop = ends[tp] = max(listed[tp], highwater)
            if stop is None or await consumer.position(tp) < stop:
                chunks[tp] = (start, stop)
                continue
            chunk = [(offset, stamp) for offset, stamp in fetched[tp] if start <= offset < stop]
            kept[tp] += chunk
            fetched[tp] = []
            old_seen = any(stamp < cutoff_ms for _, stamp in chunk)
            following = tail_chunk(beginnings[tp], ends[tp], start, old_seen)
            if following is None:
                consumer.pause(tp)
                del chunks[tp]
            else:
                consumer.seek(tp, following[0])
                chunks[tp] = following
    recent = sum(
        stamp >= cutoff_ms and offset >= ends[tp] - RECENT_LIMIT
        for tp, records in kept.items()
        for offset, stamp in records
    )
    return TailRead(recent, read)


async def read_recent(options: dict[str, Any], topic: str, window: float) -> TailRead:
    """The records of ``topic`` whose timestamp is within the last ``window`` seconds, among
    the newest RECENT_LIMIT of each partition, read backwards from the newest and no further
    than the first chunk holding an older record; a topic that does not exist has none.

    Read from the tail rather than looked up by time (ListOffsets by timestamp), which not
    every Kafka-protocol broker answers right: Tansu answers offset 0 whatever the time."""
    consumer = AIOKafkaConsumer(
        **options,
        client_id=_CLIENT_ID,
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # the tail's start deleted meanwhile: from what is left
        max_partition_fetch_bytes=_TAIL_FETCH_BYTES,
    )
    try:
        await consumer.start()
        tps = await _partitions(consumer, topic)
        cutoff_ms = (time.time() - window) * 1000
        return await _read_tails(consumer, tps, cutoff_ms) if tps else TailRead(0, 0)
    finally:
        await consumer.stop()


async def probe_kafka(check: KafkaCheck, settings: Settings, seen: Seen) -> None:
    """Fetch the cluster's metadata: CONNECTED, RESPONSE_TIME (ms); with ``group`` and
    ``topic``, LAG: the sum over the topic's partitions of its end offset minus the group's
    committed offset (the whole partition, end minus beginning, where none is committed);
    with ``topic`` alone, RECENT: the records appended to the topic within the check's
    ``recent_window`` (by their timestamps), summed over its partitions, 0 while the topic
    does not exist. Each partition is read backwards from its newest record, TAIL_STEP records
    at a time, no further than the first step holding a record older than the window nor
    beyond its newest RECENT_LIMIT records: RECENT is exact up to RECENT_LIMIT per partition
    and means "at least" beyond, and a partition whose newest record is old costs one read."""
    options = kafka_probe_options(check, settings)
    seen.values["CONNECTED"] = False
    started = time.perf_counter()
    admin = AIOKafkaAdminClient(**options, client_id=_CLIENT_ID)
    try:
        try:
            await admin.start()
        except KafkaConnectionError as exc:
            raise await _why_unreachable(options["bootstrap_servers"]) from exc
        seen.values["CONNECTED"] = True
        seen.timings["connect"] = time.perf_counter() - started
        seen.values["RESPONSE_TIME"] = since_ms(started)
        if check.group is not None and check.topic is not None:
            seen.values["LAG"] = await _lag(options, admin, check.group, check.topic)
        elif check.topic is not None:
            tail = await read_recent(options, check.topic, check.recent_window)
            seen.values["RECENT"] = tail.recent
    except KafkaError as exc:
        problem = f"{type(exc).__name__}: {exc}".rstrip(": ")
        raise ProbeFailed("other", f"Kafka answered with an error ({problem})") from exc
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
