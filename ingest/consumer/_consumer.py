"""``mendline consume``: a Kafka consumer-group worker that turns ErrorEvents into issues.

At-least-once in, exactly-once effects: a batch is validated, scrubbed and fingerprinted,
bad records go to the DLQ (acked), the good ones are stored in one PostgreSQL transaction
(idempotent by event_id), and only then are the offsets committed. A crash anywhere replays
the batch, and the replay changes nothing that was already stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import (
    ConsumerStoppedError,
    CorruptRecordException,
    IllegalOperation,
    KafkaError,
    UnsupportedCodecError,
)
from pydantic_core import to_json

from mendline.analyzers.backoff import Backoff
from mendline.analyzers.grouping.fingerprint import culprit, fingerprint, title
from mendline.analyzers.grouping.scrubbing import SCRUBBED_HEADER, Scrubber
from mendline.ingest._topics import errors_producer, kafka_client_options
from mendline.ingest.consumer._identity import producer_check
from mendline.ingest.consumer._timestamps import (
    TimestampWindow,
    first_occurrence,
    stored_timestamp,
)
from mendline.schemas.compiled_event import parse_event_compiled
from mendline.schemas.errors import DatabaseError, DeadLetterReason, InvalidEvent, RejectedData
from mendline.schemas.event import LEVEL_RANK, content_hash
from mendline.schemas.prepared import BatchResult, EventSink, PreparedEvent
from mendline.schemas.settings import Settings

__all__ = [
    "DLQ_HEADER_PREFIX",
    "Consumer",
    "ConsumerStats",
    "dead_letter_producer",
    "prepare_record",
    "undecodable",
]

log = logging.getLogger("mendline.consume")

#: DLQ records carry headers ``mendline.errors.<name>`` (as Kafka Connect's
#: ``__connect.errors.*``): reason, message, topic, partition, offset, timestamp, consumer.
DLQ_HEADER_PREFIX = "mendline.errors."
# Records between yields to the loop: heartbeats never starve, and the statements of the batch
# being written go out within a couple of milliseconds of the previous one's answer.
_YIELD_EVERY = 32
_NUL = b"\\u0000"  # PostgreSQL text and jsonb cannot hold U+0000
# How long a fetch of one partition may take while finding a batch that cannot be decoded.
_PROBE_MS = 2000
# Waits for Kafka and for the database: from a fraction of a second (the usual blip is short,
# and the batch waits meanwhile) up to 10 s (the lag after an outage stays short).
_BACKOFF_MAX = 10.0


#: key, value, headers, source partition, source offset, reason, detail
_DeadLetterItem = tuple[
    bytes | None,
    bytes | None,
    list[tuple[str, bytes]],
    int | None,
    int | None,
    DeadLetterReason,
    str,
]


@dataclass
class ConsumerStats:
    """Counters in Vector's vocabulary, for the consume stage."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    batches: int = 0
    new_issues: int = 0
    #: Events the stored events' apps reported they could not send (mendline.lost_events).
    lost: int = 0
    #: Events counted but not stored whole, as sampling decided (part of ``stored``).
    sampled_out: int = 0
    triggers: int = 0
    dead_lettered: dict[DeadLetterReason, int] = field(default_factory=dict)
    store_retries: int = 0
    trigger_kinds: dict[str, int] = field(default_factory=dict)


def undecodable(exc: BaseException) -> bool:
    """Whether an error out of aiokafka's ``getmany`` says a record batch cannot be decoded.

    A bad CRC is ``CorruptRecordException``, a codec aiokafka lacks ``UnsupportedCodecError``;
    a compressed body that does not decompress comes out as the codec library's own error
    (cramjam's ``DecompressionError``, gzip's ``BadGzipFile``), never a KafkaError. Any other
    KafkaError is about the connection or the group, and a stopped consumer is stopped.
    """
    if isinstance(exc, CorruptRecordException | UnsupportedCodecError):
        return True
    # aiokafka's own errors that are not KafkaErrors say how the consumer is used.
    if isinstance(exc, KafkaError | ConsumerStoppedError | IllegalOperation):
        return False
    return isinstance(exc, Exception)


def dead_letter_producer(settings: Settings, *, client_id: str) -> AIOKafkaProducer:
    """The producer (not started) that writes the DLQ, and that redrive writes back with: a
    request that gets no answer fails after ``kafka_request_timeout`` (and is retried), so a
    broker that hangs cannot hold a batch, or ``mendline dlq redrive``, for aiokafka's 40 s."""
    return errors_producer(
        settings,
        client_id=client_id,
        request_timeout_ms=int(settings.kafka_request_timeout * 1000),
        # whatever the consumer could fetch, the DLQ can take
        max_request_size=8 * 1024 * 1024,
    )


def scrubbed_by(headers: Iterable[tuple[str, bytes | None]] | None, rules: bytes | None) -> bool:
    """Whether a record's headers say a scrubber with the rules ``rules`` (its Scrubber's
    ``rules_id``) scrubbed its event already: mendline's shipper sends SCRUBBED_HEADER with
    the rules it scrubbed with. A producer that sets it takes the scrubbing on itself."""
    if rules is None or not headers:
        return False
    return any(key == SCRUBBED_HEADER and value == rules for key, value in headers)


def prepare_record(
    raw: bytes | None,
    scrubber: Scrubber,
    partition: int | None = None,
    offset: int | None = None,
    named: dict[str, tuple[str, str | None]] | None = None,
    *,
    window: TimestampWindow | None = None,
    scrubbed: bool = False,
) -> PreparedEvent:
    """Validate, scrub and fingerprint one record's value; InvalidEvent if it is bad input.

    ``scrubbed``: a scrubber with ``scrubber``'s rules scrubbed the event before it was sent
    (mendline's shipper says so in a header, see scrubbed_by): it is not checked again.

    ``named`` maps fingerprints to the (title, culprit) already worked out in this batch:
    only a new issue uses them, so the events of a batch share their issue's first. With
    ``window``, a timestamp outside it is replaced by the time of receipt, the emitter's kept
    as ``original_timestamp`` (a field only the consumer sets: an emitter's is dropped).

    The payload is the validated event serialised again (after scrubbing), never bytes the
    validation did not produce; it is ``raw`` itself only when the two are the same bytes.
    """
    if raw is None:
        raise InvalidEvent("not_json", "the record has no value")
    if _NUL in raw:
        raw = raw.replace(_NUL, b"\\ufffd")
    doc, payload = parse_event_compiled(raw)
    hashed = content_hash(doc)  # before the clock and the scrubber: a replay hashes alike
    changed = False
    if "original_timestamp" in doc and (window is not None or doc["original_timestamp"] is None):
        del doc["original_timestamp"]  # the lenient parse's default, or an emitter's
        changed = True
    if window is not None:
        timestamp = stored_timestamp(doc["timestamp"], window)
        if timestamp is not doc["timestamp"]:
            doc["original_timestamp"] = doc["timestamp"]
            doc["timestamp"] = timestamp
            changed = True
    if not scrubbed and not scrubber.is_clean(doc):
        scrubber.scrub_event(doc)
        changed = True
    if changed:
        payload = to_json(doc)
    grouping = fingerprint(doc)
    names = named.get(grouping.hash) if named is not None else None
    if names is None:
        names = (title(doc), culprit(doc))
        if named is not None:
            named[grouping.hash] = names
    return PreparedEvent(
        event_id=doc["event_id"],
        timestamp=doc["timestamp"],
        service=doc["service"],
        environment=doc["environment"],
        release=doc.get("release"),
        host=doc.get("host"),
        level=doc["level"],
        level_rank=LEVEL_RANK[doc["level"]],
        message=doc["message"],
        fingerprint=grouping.hash,
        algorithm_version=grouping.version,
        basis=grouping.basis,
        components=grouping.components,
        title=names[0],
        culprit=names[1],
        payload=payload,
        partition=partition,
        offset=offset,
        content_hash=hashed,
        count=doc.get("count", 1),
        first_timestamp=first_occurrence(doc.get("first_timestamp"), doc["timestamp"], window),
        lost=doc.get("lost", 0),
        tags=doc.get("tags") or {},
    )


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: Consumer) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        # Let the batch in flight finish and commit, but never hold the group hostage.
        try:
            await asyncio.wait_for(
                self._consumer.idle.wait(), self._consumer.settings.kafka_session_timeout
            )
        except TimeoutError:
            log.warning("mendline: partitions revoked while a batch was still being stored")

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        log.info("mendline: assigned %s", sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned))


class Consumer:
    """One consumer-group member; run as many as there are partitions to share."""

    def __init__(
        self,
        settings: Settings,
        sink: EventSink,
        *,
        scrubber: Scrubber | None = None,
        topic: str | None = None,
        group: str | None = None,
        dlq_topic: str | None = None,
    ) -> None:
        self.settings = settings
        #: What it reads, as which group, and where rejected records go (the settings' errors
        #: topic, consumer group and DLQ unless given).
        self.topic = topic or settings.errors_topic
        self.group = group or settings.consumer_group
        self.dlq_topic = dlq_topic or settings.dlq_topic
        self.sink = sink
        self.scrubber = scrubber or Scrubber(
            settings.scrub_extra_keys, settings.scrub_extra_patterns
        )
        rules = self.scrubber.rules_id
        self._scrub_rules = rules.encode() if rules is not None else None
        self.stats = ConsumerStats()
        #: Whether producers may claim their services (None: not checked, the default).
        self.producers = producer_check(settings)
        self.idle = asyncio.Event()
        self.idle.set()
        self._consumer: AIOKafkaConsumer | None = None
        self._awaiting_write = False
        self._paused = False
        self._producer: AIOKafkaProducer | None = None
        self._identity = f"{socket.gethostname()}:{os.getpid()}"
        # The offset after the last record fetched, by partition: what the lag is counted from.
        self._fetched: dict[TopicPartition, int] = {}

    def waiting_for(self) -> str | None:
        """None while the consumer is in its group and fetching; else what it waits for."""
        if self._consumer is None:
            return "connecting to Kafka"
        if self._paused:
            return "waiting out an outage of PostgreSQL or the DLQ"
        return None

    def lag(self) -> dict[str, int]:
        """Records behind the high watermark in this member's partitions, by topic (only
        partitions it fetched from and knows the high watermark of)."""
        consumer = self._consumer
        if consumer is None:
            return {}
        behind: dict[str, int] = {}
        for tp in consumer.assignment():
            high, fetched = consumer.highwater(tp), self._fetched.get(tp)
            if high is not None and fetched is not None:
                behind[tp.topic] = behind.get(tp.topic, 0) + max(high - fetched, 0)
        return behind

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; the batch in flight is finished and committed.

        Pipelined: while one batch is being written to PostgreSQL, the next is fetched and
        prepared, so the database and this process work at the same time. Batches are still
        written, and their offsets committed, one after the other and in order.
        """
        consumer = await self._start_consumer(stop)
        if consumer is None:
            return
        writing: asyncio.Task[None] | None = None
        try:
            while not stop.is_set():
                skipped: dict[TopicPartition, int] = {}
                try:
                    records = await consumer.getmany(
                        timeout_ms=500 if writing is None else 20,
                        max_records=self.settings.batch_max_records,
                    )
                except Exception as exc:
                    if not undecodable(exc):
                        raise
                    if writing is not None:  # the probing below seeks: nothing else may poll
                        await self._finish(writing)
                        writing = None
                    records, skipped = await self._around_undecodable(consumer, exc, stop)
                if not records and not skipped:
                    if writing is not None and writing.done():
                        await self._finish(writing)
                        writing = None
                    continue
                prepared, rejected, offsets = await self._prepare(records)
                offsets.update(skipped)  # committed once what came before is stored
                if writing is not None:
                    await self._finish(writing)
                    writing = None
                if rejected:
                    await self._dead_letter(rejected, stop)
                writing = self._start_write(prepared, offsets, stop)
            if writing is not None:
                await self._finish(writing)
        except _Abandoned:
            log.warning("mendline: stopped with a batch unstored; it will be replayed")
        finally:
            await self._close()

    def _start_write(
        self, prepared: list[PreparedEvent], offsets: dict[TopicPartition, int], stop: asyncio.Event
    ) -> asyncio.Task[None]:
        self.idle.clear()
        task = asyncio.create_task(self._store_and_commit(prepared, offsets, stop))
        task.add_done_callback(lambda _: self.idle.set())
        return task

    async def _finish(self, writing: asyncio.Task[None]) -> None:
        """Wait for the batch being written; meanwhile a retrying write may poll Kafka."""
        self._awaiting_write = True
        try:
            await writing
        finally:
            self._awaiting_write = False

    async def _store_and_commit(
        self, prepared: list[PreparedEvent], offsets: dict[TopicPartition, int], stop: asyncio.Event
    ) -> None:
        await self._store(prepared, stop)
        await self._commit(offsets)
        self.stats.batches += 1

    async def _start_consumer(self, stop: asyncio.Event) -> AIOKafkaConsumer | None:
        session_ms = int(self.settings.kafka_session_timeout * 1000)
        backoff = Backoff(0.2, _BACKOFF_MAX)
        while not stop.is_set():
            consumer = AIOKafkaConsumer(
                **kafka_client_options(self.settings),
                group_id=self.group,
                client_id=f"mendline-consume-{self._identity}",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                session_timeout_ms=session_ms,
                heartbeat_interval_ms=max(100, session_ms // 3),
                max_partition_fetch_bytes=4 * 1024 * 1024,
            )
            try:
                await consumer.start()
                consumer.subscribe([self.topic], listener=_Rebalance(self))
            except KafkaError as exc:
                await consumer.stop()
                delay = backoff.next()
                log.warning("mendline: Kafka unreachable (%s); retrying in %.1f s", exc, delay)
                await _sleep_or_stop(stop, delay)
                continue
            self._consumer = consumer
            return consumer
        return None

    async def _around_undecodable(
        self, consumer: AIOKafkaConsumer, error: BaseException, stop: asyncio.Event
    ) -> tuple[dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]], dict[TopicPartition, int]]:
        """After a fetch failed to decode: find the partition and the offsets of the batch
        that cannot be decoded, dead-letter that range (reason ``undecodable``) and seek past
        it. Returns the records that did decode (those before it included, read one at a
        time), and the offset to commit past each skipped range. aiokafka neither says which
        partition failed nor returns the records of the fetch before the bad batch.
        """
        records: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
        starts: dict[TopicPartition, int] = {}
        try:
            skipped = await self._find_undecodable(consumer, records, starts)
        except KafkaError as exc:  # a rebalance meanwhile, say: read it all again later
            log.warning("mendline: finding a batch that cannot be decoded failed (%s)", exc)
            for tp, offset in starts.items():
                if tp in consumer.assignment():
                    consumer.seek(tp, offset)
            return {}, {}
        if skipped is None:
            log.warning("mendline: a fetch failed to decode (%r), then no partition did", error)
            return records, {}
        tp, first, end = skipped
        await self._dead_letter_range(tp, first, end, error, stop)
        return records, {tp: end}

    async def _find_undecodable(
        self,
        consumer: AIOKafkaConsumer,
        records: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
        starts: dict[TopicPartition, int],
    ) -> tuple[TopicPartition, int, int] | None:
        """Fetch each partition again (into ``records``, from ``starts``) until one fails to
        decode; then its bad range (partition, first offset, offset after it), sought past."""
        limit = self.settings.batch_max_records
        active = consumer.assignment() - consumer.paused()
        for tp in sorted(active, key=lambda t: (t.topic, t.partition)):
            starts[tp] = start = await consumer.position(tp)
            got = await self._fetch_from(consumer, tp, start, limit)
            if got is not None:
                if got:
                    records[tp] = got
                continue
            # This one: read again one record at a time, to keep those before the bad batch.
            consumer.seek(tp, start)
            kept: list[ConsumerRecord[bytes, bytes]] = []
            while (one := await self._fetch_from(consumer, tp, None, 1)) is not None:
                kept.extend(one)
                if not one or len(kept) >= limit:  # the error went away, or a batch is full
                    break
            else:
                first = await consumer.position(tp)
                end = await self._undecodable_end(consumer, tp, first)
                consumer.seek(tp, end)
                if kept:
                    records[tp] = kept
                return tp, first, end
            if kept:
                records[tp] = kept
        return None

    async def _fetch_from(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int | None, limit: int
    ) -> list[ConsumerRecord[bytes, bytes]] | None:
        """Up to ``limit`` records of ``tp`` from ``offset`` (None: from where it is); None
        if the batch there cannot be decoded."""
        if offset is not None:
            consumer.seek(tp, offset)
        try:
            got = await consumer.getmany(tp, timeout_ms=_PROBE_MS, max_records=limit)
        except Exception as exc:
            if undecodable(exc):
                return None
            raise
        records: list[ConsumerRecord[bytes, bytes]] = got.get(tp, [])
        return records

    async def _undecodable_end(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, first: int
    ) -> int:
        """The offset after the range that cannot be decoded from ``first`` on.

        A fetch from inside a batch gets the whole batch, so it fails for every offset of
        the bad batch and succeeds past it. One offset after the other, not a binary search:
        a good batch between two bad ones would be jumped over and lost. A batch is a
        producer's (some hundreds of records at most), and this happens rarely. Never past
        the high watermark (a fetch from beyond the log's end resets to the earliest offset).
        """
        known = consumer.highwater(tp)
        high = int(known if known is not None else (await consumer.end_offsets([tp]))[tp])
        end = first + 1
        while end < high and await self._fetch_from(consumer, tp, end, 1) is None:
            end += 1
        return end

    async def _dead_letter_range(
        self, tp: TopicPartition, first: int, end: int, error: BaseException, stop: asyncio.Event
    ) -> None:
        """A DLQ record (no key, no value) naming the offsets that could not be decoded."""
        await self._dead_letter_values(
            [
                (
                    None,
                    None,
                    [(DLQ_HEADER_PREFIX + "offset-last", str(end - 1).encode())],
                    tp.partition,
                    first,
                    "undecodable",
                    f"offsets {first} to {end - 1} of {tp.topic}[{tp.partition}] cannot be "
                    f"decoded and were skipped: {type(error).__name__}: {error}",
                )
            ],
            stop,
        )

    async def _prepare(
        self, records: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> tuple[
        list[PreparedEvent],
        list[tuple[ConsumerRecord[bytes, bytes], DeadLetterReason, str]],
        dict[TopicPartition, int],
    ]:
        """Validate, scrub and fingerprint a fetched batch; bad records are set aside."""
        prepared: list[PreparedEvent] = []
        rejected: list[tuple[ConsumerRecord[bytes, bytes], DeadLetterReason, str]] = []
        count = 0
        named: dict[str, tuple[str, str | None]] = {}
        window = TimestampWindow.around(datetime.now(UTC), self.settings.retention_days)
        for batch in records.values():
            for record in batch:
                try:
                    event = prepare_record(
                        record.value,
                        self.scrubber,
                        record.partition,
                        record.offset,
                        named,
                        window=window,
                        scrubbed=scrubbed_by(record.headers, self._scrub_rules),
                    )
                except InvalidEvent as exc:
                    rejected.append((record, exc.reason, exc.detail))
                except Exception as exc:  # our bug must not stop the partition: keep the record
                    log.exception("mendline: preparing a record failed")
                    rejected.append((record, "processing_error", f"{type(exc).__name__}: {exc}"))
                else:
                    producers = self.producers
                    refusal = producers and producers.refusal(
                        record.headers, record.value, event.service
                    )
                    if refusal:
                        rejected.append((record, "unauthenticated", refusal))
                    else:
                        prepared.append(event)
                count += 1
                if count % _YIELD_EVERY == 0:
                    # Heartbeats, and the batch being written, progress between records.
                    await asyncio.sleep(0)
        self.stats.received += count
        offsets = {tp: batch[-1].offset + 1 for tp, batch in records.items()}
        self._fetched.update(offsets)
        return prepared, rejected, offsets

    async def _store(self, prepared: list[PreparedEvent], stop: asyncio.Event) -> None:
        """Write the batch, waiting out database outages with fetching paused."""
        backoff = Backoff(0.1, _BACKOFF_MAX)
        while True:
            try:
                result = await self._write_isolating_poison(prepared, stop)
            except _Poison as poison:  # a batch of one event, which the database refuses
                await self._dead_letter_prepared(poison, stop)
                result = BatchResult()
            except DatabaseError as exc:
                if not exc.retriable:
                    raise
                self.stats.store_retries += 1
                if stop.is_set():
                    raise _Abandoned() from exc
                if backoff.attempts == 0:
                    log.warning("mendline: PostgreSQL unavailable (%s); pausing", exc)
                await self._wait_paused(backoff.next())
                continue
            if backoff.attempts:
                log.info("mendline: PostgreSQL is back; resuming")
            self._resume()
            if result.conflicts:
                await self._dead_letter_conflicts(result.conflicts, stop)
            self.stats.stored += result.stored
            self.stats.duplicates += result.duplicates
            self.stats.new_issues += result.new_issues
            self.stats.lost += result.lost
            self.stats.sampled_out += result.sampled_out
            self.stats.triggers += result.triggers
            for kind, n in result.trigger_kinds.items():
                self.stats.trigger_kinds[kind] = self.stats.trigger_kinds.get(kind, 0) + n
            return

    async def _write_isolating_poison(
        self, prepared: list[PreparedEvent], stop: asyncio.Event
    ) -> BatchResult:
        """Write the batch; if the database rejects its data, split it to find the culprit."""
        try:
            return await self.sink.write(prepared)
        except RejectedData as exc:
            if len(prepared) == 1:
                raise _Poison(prepared[0], exc) from exc
        middle = len(prepared) // 2
        total = BatchResult()
        for half in (prepared[:middle], prepared[middle:]):
            try:
                part = await self._write_isolating_poison(half, stop)
            except _Poison as poison:
                await self._dead_letter_prepared(poison, stop)
                rest = [e for e in half if e is not poison.event]
                part = await self._write_isolating_poison(rest, stop) if rest else BatchResult()
            for name in (
                "stored",
                "duplicates",
                "new_issues",
                "regressions",
                "triggers",
                "lost",
                "sampled_out",
            ):
                setattr(total, name, getattr(total, name) + getattr(part, name))
            for kind, n in part.trigger_kinds.items():
                total.trigger_kinds[kind] = total.trigger_kinds.get(kind, 0) + n
            total.conflicts.extend(part.conflicts)
        return total

    async def _dead_letter_conflicts(
        self, conflicts: list[tuple[PreparedEvent, str]], stop: asyncio.Event
    ) -> None:
        """An event_id seen before with other content: a forgery or a bug, not a replay."""
        await self._dead_letter_values(
            [
                (
                    event.event_id.encode(),
                    event.payload,
                    [
                        (DLQ_HEADER_PREFIX + "stored-content-hash", stored.encode()),
                        (DLQ_HEADER_PREFIX + "content-hash", (event.content_hash or "").encode()),
                    ],
                    event.partition,
                    event.offset,
                    "duplicate_conflict",
                    f"event_id {event.event_id} was stored with content hash {stored}; "
                    f"this record's is {event.content_hash}",
                )
                for event, stored in conflicts
            ],
            stop,
        )

    async def _dead_letter_prepared(self, poison: _Poison, stop: asyncio.Event) -> None:
        event = poison.event
        log.error("mendline: the database rejected event %s: %s", event.event_id, poison.error)
        await self._dead_letter_values(
            [
                (
                    None,
                    event.payload,
                    [],
                    event.partition,
                    event.offset,
                    "store_rejected",
                    str(poison.error),
                )
            ],
            stop,
        )

    async def _wait_paused(self, seconds: float) -> None:
        """Sleep while keeping the group membership alive: poll with every partition paused."""
        consumer = self._consumer
        self._paused = True
        if consumer is None or not self._awaiting_write:
            # The main loop is polling itself; two polls at once would be one too many.
            if consumer is not None:
                consumer.pause(*consumer.assignment())
            await asyncio.sleep(seconds)
            return
        consumer.pause(*consumer.assignment())
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            got = await consumer.getmany(timeout_ms=int(min(left, 0.5) * 1000) + 1)
            if got:  # a partition assigned during the pause: rewind, it is read again later
                for tp, batch in got.items():
                    consumer.seek(tp, batch[0].offset)
            consumer.pause(*consumer.assignment())

    def _resume(self) -> None:
        """Fetch again after a pause for an outage (of the database or of the DLQ)."""
        if self._paused and self._consumer is not None:
            self._consumer.resume(*self._consumer.assignment())
        self._paused = False

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        consumer = self._consumer
        assert consumer is not None
        mine = {tp: offset for tp, offset in offsets.items() if tp in consumer.assignment()}
        if not mine:
            return
        try:
            await consumer.commit(mine)
        except KafkaError as exc:  # a replay of this batch is harmless: it is deduplicated
            log.warning("mendline: committing offsets failed (%s); the batch may be replayed", exc)

    async def _dead_letter(
        self,
        rejected: list[tuple[ConsumerRecord[bytes, bytes], DeadLetterReason, str]],
        stop: asyncio.Event,
    ) -> None:
        await self._dead_letter_values(
            [
                (r.key, r.value, list(r.headers or ()), r.partition, r.offset, reason, detail)
                for r, reason, detail in rejected
            ],
            stop,
        )

    async def _dead_letter_values(
        self,
        items: list[_DeadLetterItem],
        stop: asyncio.Event,
    ) -> None:
        """Produce rejected records to the DLQ, unchanged, with reason headers, until acked."""
        backoff = Backoff(0.2, _BACKOFF_MAX)
        while True:
            try:
                producer = await self._dlq_producer()
                now = datetime.now(UTC).isoformat()
                futures = []
                for key, value, headers, partition, offset, reason, detail in items:
                    extra = {
                        "reason": reason,
                        "message": detail[:1000],
                        "topic": self.topic,
                        "partition": str(partition),
                        "offset": str(offset),
                        "timestamp": now,
                        "consumer": self._identity,
                    }
                    futures.append(
                        await producer.send(
                            self.dlq_topic,
                            value=value,
                            # a record with neither (a keyless tombstone) still gets in
                            key=key if key is not None or value is not None else b"",
                            headers=[
                                *headers,
                                *((DLQ_HEADER_PREFIX + k, v.encode()) for k, v in extra.items()),
                            ],
                        )
                    )
                await asyncio.gather(*futures)
            except KafkaError as exc:
                if stop.is_set():
                    raise _Abandoned() from exc
                if not exc.retriable:  # too large for the DLQ, say: keep what fits, and why
                    items = [_truncated(item) for item in items]
                log.warning("mendline: the DLQ refused or is unreachable (%s); retrying", exc)
                await self._wait_paused(backoff.next())
                continue
            self._resume()
            for *_, reason, detail in items:
                self.stats.dead_lettered[reason] = self.stats.dead_lettered.get(reason, 0) + 1
                log.warning("mendline: record sent to the DLQ (%s): %s", reason, detail[:200])
            return

    async def _dlq_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = dead_letter_producer(
                self.settings, client_id=f"mendline-dlq-{self._identity}"
            )
            try:
                await producer.start()
            except KafkaError:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _close(self) -> None:
        if self._consumer is not None:
            try:
                await self._consumer.stop()
            except Exception:
                log.debug("stopping the consumer failed", exc_info=True)
            self._consumer = None
        if self._producer is not None:
            try:
                await self._producer.stop()
            except Exception:
                log.debug("stopping the DLQ producer failed", exc_info=True)
            self._producer = None


class _Poison(Exception):
    def __init__(self, event: PreparedEvent, error: BaseException) -> None:
        super().__init__(str(error))
        self.event = event
        self.error = error


_DLQ_VALUE_MAX = 512 * 1024


def _truncated(item: _DeadLetterItem) -> _DeadLetterItem:
    key, value, headers, partition, offset, reason, detail = item
    if value is None or len(value) <= _DLQ_VALUE_MAX:
        return item
    kept = value[:_DLQ_VALUE_MAX]
    return (
        key,
        kept,
        [*headers, (DLQ_HEADER_PREFIX + "truncated-from", str(len(value)).encode())],
        partition,
        offset,
        reason,
        detail,
    )


class _Abandoned(Exception):
    """Stopping while the database is down: the batch is left uncommitted, to be replayed."""


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
