"""Which timestamp the consumer stores: a pure decision, over a table."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from mendline.analyzers.grouping.scrubbing import Scrubber
from mendline.ingest import prepare_record
from mendline.ingest.consumer import (
    TimestampWindow,
    checkin_timestamp,
    first_occurrence,
    stored_timestamp,
)
from tests.integration.event_factory import encode, make_event

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
WINDOW = TimestampWindow.around(NOW, retention_days=30)


@pytest.mark.parametrize(
    ("timestamp", "stored"),
    [
        (NOW, NOW),
        (NOW - timedelta(days=29, hours=23), NOW - timedelta(days=29, hours=23)),  # late spool
        (NOW - timedelta(days=30), NOW - timedelta(days=30)),  # the bounds are inside
        (NOW + timedelta(days=1), NOW + timedelta(days=1)),
        (NOW + timedelta(hours=3), NOW + timedelta(hours=3)),  # a clock a little ahead
        (NOW - timedelta(days=30, seconds=1), NOW),  # older than the retention
        (NOW + timedelta(days=1, seconds=1), NOW),  # a day and more ahead
        (datetime(1970, 1, 1, tzinfo=UTC), NOW),  # a clock never set
        (datetime(2999, 1, 1, tzinfo=UTC), NOW),  # would pin last_seen for ever
    ],
)
def test_a_timestamp_outside_the_window_becomes_the_time_of_receipt(
    timestamp: datetime, stored: datetime
) -> None:
    assert stored_timestamp(timestamp, WINDOW) == stored


@pytest.mark.parametrize(
    ("first", "last", "window", "kept"),
    [
        (None, NOW, WINDOW, NOW),  # not rolled up
        (NOW - timedelta(seconds=3), NOW, WINDOW, NOW - timedelta(seconds=3)),
        (NOW, NOW, WINDOW, NOW),
        (NOW + timedelta(seconds=1), NOW, WINDOW, NOW),  # after its last: a clock's jump
        (NOW - timedelta(days=31), NOW, WINDOW, NOW),  # older than the retention
        (NOW - timedelta(days=31), NOW, None, NOW - timedelta(days=31)),  # no window: as sent
    ],
)
def test_a_rolled_up_events_first_occurrence_is_kept_only_where_it_can_be(
    first: datetime | None, last: datetime, window: TimestampWindow | None, kept: datetime
) -> None:
    assert first_occurrence(first, last, window) == kept


def test_a_rolled_up_event_is_prepared_with_its_count_and_first_occurrence() -> None:
    doc = make_event(1, 1) | {"timestamp": "2026-12-04T11:00:05Z", "count": 40, "lost": 2}
    doc["first_timestamp"] = "2026-12-04T11:00:00Z"
    prepared = prepare_record(encode(doc), Scrubber(), window=WINDOW)
    assert (prepared.count, prepared.lost) == (40, 2)
    assert prepared.first_timestamp == datetime(2026, 12, 4, 11, 0, tzinfo=UTC)
    assert json.loads(prepared.payload)["count"] == 40


def test_a_clamped_event_keeps_its_original_timestamp_in_the_stored_payload() -> None:
    doc = make_event(1, 1)
    doc["timestamp"] = "2999-01-01T00:00:00Z"
    prepared = prepare_record(encode(doc), Scrubber(), window=WINDOW)
    stored = json.loads(prepared.payload)
    assert prepared.timestamp == NOW
    assert stored["timestamp"] == "2026-12-04T12:00:00Z"
    assert stored["original_timestamp"] == "2999-01-01T00:00:00Z"


def test_an_emitter_cannot_claim_an_original_timestamp() -> None:
    doc = make_event(1, 1)
    doc["timestamp"] = "2026-12-04T11:00:00Z"
    doc["original_timestamp"] = "2020-01-01T00:00:00Z"
    prepared = prepare_record(encode(doc), Scrubber(), window=WINDOW)
    stored = json.loads(prepared.payload)
    assert "original_timestamp" not in stored and stored["timestamp"] == "2026-12-04T11:00:00Z"


def test_a_replay_clamped_at_another_time_has_the_same_content_hash() -> None:
    doc = make_event(1, 1)
    doc["timestamp"] = "2999-01-01T00:00:00Z"
    first = prepare_record(encode(doc), Scrubber(), window=WINDOW)
    later = TimestampWindow.around(NOW + timedelta(hours=5), retention_days=30)
    again = prepare_record(encode(doc), Scrubber(), window=later)
    assert first.timestamp != again.timestamp
    assert first.content_hash == again.content_hash is not None


RECORD = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)  # the time Kafka gave the check-in's record
LATER = RECORD + timedelta(hours=2)  # the consumer reads it two hours later (lag)


@pytest.mark.parametrize(
    ("sent", "record", "received", "stored", "clamped"),
    [
        (RECORD, RECORD, LATER, RECORD, False),
        (RECORD - timedelta(hours=6), RECORD, LATER, RECORD - timedelta(hours=6), False),
        (RECORD + timedelta(minutes=5), RECORD, LATER, RECORD + timedelta(minutes=5), False),
        (RECORD + timedelta(minutes=5, seconds=1), RECORD, LATER, RECORD, True),
        (RECORD + timedelta(days=1), RECORD, LATER, RECORD, True),  # one bad clock
        # the record's time is the producer's clock (CreateTime): it counts up to receipt
        (RECORD + timedelta(days=1), RECORD + timedelta(days=1), RECORD, RECORD, True),
        (
            RECORD + timedelta(minutes=3),
            RECORD + timedelta(days=1),
            RECORD,
            RECORD + timedelta(minutes=3),
            False,
        ),
    ],
)
def test_a_checkin_far_ahead_of_its_record_is_stored_at_the_record_time(
    sent: datetime, record: datetime, received: datetime, stored: datetime, clamped: bool
) -> None:
    assert checkin_timestamp(sent, record, received) == (stored, clamped)
