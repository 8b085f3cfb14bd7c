"""The check-ins consumer: a consumer-group member on the check-ins topic that validates each
CheckIn strictly, dead-letters what is bad (with a reason header) and stores the rest in
batches, committing offsets after the database commit.

It is the errors consumer with another topic, group, DLQ and preparation: the same waits
for broker and database outages, the same isolation of a record the database refuses, the
same clean stop. A redelivered check-in changes nothing (its checkin_id is stored once).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from aiokafka import ConsumerRecord, TopicPartition

from mendline.analyzers.grouping.scrubbing import Scrubber
from mendline.ingest.app import truncate_utf8
from mendline.ingest.consumer._consumer import _NUL, Consumer, ConsumerStats
from mendline.ingest.consumer._timestamps import checkin_timestamp
from mendline.schemas.checkin import CheckinSink, PreparedCheckIn, parse_checkin
from mendline.schemas.errors import DeadLetterReason, InvalidEvent
from mendline.schemas.prepared import EventSink
from mendline.schemas.settings import Settings

__all__ = ["CheckinConsumer", "CheckinStats", "prepare_checkin"]

log = logging.getLogger("mendline.consume")

_YIELD_EVERY = 32
_MAX_MESSAGE_BYTES = 4000  # the contract's 4000 characters, as a scrubbed message is kept
_Rejected = tuple[ConsumerRecord[bytes, bytes], DeadLetterReason, str]


@dataclass
class CheckinStats(ConsumerStats):
    """The consumer's counters, and how many check-ins had their timestamp clamped."""

    clamped: int = 0


def prepare_checkin(
    raw: bytes | None,
    record_time: datetime,
    scrubber: Scrubber,
    partition: int | None = None,
    offset: int | None = None,
    *,
    received: datetime | None = None,
) -> PreparedCheckIn:
    """Validate one check-in record (InvalidEvent with a reason if it is bad), scrub its
    message, and decide its stored timestamp (see ``checkin_timestamp``)."""
    if raw is not None and _NUL in raw:  # PostgreSQL text cannot hold U+0000
        raw = raw.replace(_NUL, b"\\ufffd")
    checkin = parse_checkin(raw)
    assert raw is not None  # parse_checkin refuses a record without a value
    if checkin.message is not None:  # any sender's text: scrubbed as events are, here too
        message = scrubber.scrub_text(checkin.message)
        if message != checkin.message:
            message = truncate_utf8(message, _MAX_MESSAGE_BYTES)
            checkin = checkin.model_copy(update={"message": message})
    timestamp, clamped = checkin_timestamp(
        checkin.timestamp, record_time, received or datetime.now(UTC)
    )
    payload = raw if isinstance(raw, bytes) else raw.encode()
    return PreparedCheckIn(checkin, timestamp, clamped, payload, partition, offset)


class CheckinConsumer(Consumer):
    """One member of the check-ins consumer group (``checkins_group``, reading
    ``checkins_topic``, rejecting to ``checkins_dlq_topic``); run as many as there are
    partitions to share. ``await run(stop)`` consumes until ``stop`` is set."""

    stats: CheckinStats

    def __init__(
        self, settings: Settings, store: CheckinSink, *, scrubber: Scrubber | None = None
    ) -> None:
        # The errors consumer's machinery calls its sink's ``write`` with whatever _prepare
        # made: here PreparedCheckIns, which a CheckinSink (the CheckinStore) writes.
        super().__init__(
            settings,
            cast(EventSink, store),
            scrubber=scrubber,
            topic=settings.checkins_topic,
            group=settings.checkins_group,
            dlq_topic=settings.checkins_dlq_topic,
        )
        self.store = store
        self.stats = CheckinStats()
        # Check-ins claim no service: producer identities (signed events) do not apply.
        self.producers = None

    async def _prepare(  # type: ignore[override]
        self, records: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> tuple[list[PreparedCheckIn], list[_Rejected], dict[TopicPartition, int]]:
        """Validate a fetched batch; bad records are set aside for the DLQ."""
        prepared: list[PreparedCheckIn] = []
        rejected: list[_Rejected] = []
        received = datetime.now(UTC)
        count = 0
        for batch in records.values():
            for record in batch:
                try:
                    item = prepare_checkin(
                        record.value,
                        _record_time(record.timestamp, received),
                        self.scrubber,
                        record.partition,
                        record.offset,
                        received=received,
                    )
                except InvalidEvent as exc:
                    rejected.append((record, exc.reason, exc.detail))
                except Exception as exc:  # our bug must not stop the partition: keep the record
                    log.exception("mendline: preparing a check-in failed")
                    rejected.append((record, "processing_error", f"{type(exc).__name__}: {exc}"))
                else:
                    if item.clamped:
                        self.stats.clamped += 1
                        log.warning(
                            "mendline: check-in %s of %r is dated %s, ahead of its record's"
                            " time; stored at %s",
                            item.event_id,
                            item.checkin.check,
                            item.checkin.timestamp.isoformat(),
                            item.timestamp.isoformat(),
                        )
                    prepared.append(item)
                count += 1
                if count % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)
        self.stats.received += count
        offsets = {tp: batch[-1].offset + 1 for tp, batch in records.items()}
        return prepared, rejected, offsets


def _record_time(milliseconds: int, received: datetime) -> datetime:
    """The time Kafka gave a record; the time of receipt when it gave none (-1, as records
    of the message formats before timestamps have)."""
    if milliseconds < 0:
        return received
    return datetime.fromtimestamp(milliseconds / 1000, UTC)
