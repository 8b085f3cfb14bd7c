"""The consumer side: the Kafka consumer group that validates, scrubs and fingerprints events
into a store, the one that stores heartbeat check-ins, the check of who produced them, the
timestamps they accept, and the dead-letter topic for what they cannot take."""

from mendline.ingest.consumer._checkins import CheckinConsumer, CheckinStats, prepare_checkin
from mendline.ingest.consumer._consumer import (
    DLQ_HEADER_PREFIX,
    Consumer,
    ConsumerStats,
    dead_letter_producer,
    prepare_record,
    scrubbed_by,
    undecodable,
)
from mendline.ingest.consumer._dlq import DeadLetter, read_dead_letters, redrive
from mendline.ingest.consumer._identity import ProducerCheck, load_producer_keys, producer_check
from mendline.ingest.consumer._timestamps import (
    CHECKIN_FUTURE_TOLERANCE,
    FUTURE_TOLERANCE,
    TimestampWindow,
    checkin_timestamp,
    first_occurrence,
    stored_timestamp,
)

__all__ = [
    "CHECKIN_FUTURE_TOLERANCE",
    "DLQ_HEADER_PREFIX",
    "FUTURE_TOLERANCE",
    "CheckinConsumer",
    "CheckinStats",
    "Consumer",
    "ConsumerStats",
    "DeadLetter",
    "ProducerCheck",
    "TimestampWindow",
    "checkin_timestamp",
    "dead_letter_producer",
    "first_occurrence",
    "load_producer_keys",
    "prepare_checkin",
    "prepare_record",
    "producer_check",
    "read_dead_letters",
    "redrive",
    "scrubbed_by",
    "stored_timestamp",
    "undecodable",
]
