"""The consumer side: the Kafka consumer group that validates, scrubs and fingerprints events
into a store, the check of who produced them, the timestamps it accepts, and the dead-letter
topic for what it cannot take."""

from mendline.ingest.consumer._consumer import (
    DLQ_HEADER_PREFIX,
    Consumer,
    ConsumerStats,
    dead_letter_producer,
    prepare_record,
    undecodable,
)
from mendline.ingest.consumer._dlq import DeadLetter, read_dead_letters, redrive
from mendline.ingest.consumer._identity import ProducerCheck, load_producer_keys, producer_check
from mendline.ingest.consumer._timestamps import (
    FUTURE_TOLERANCE,
    TimestampWindow,
    stored_timestamp,
)

__all__ = [
    "DLQ_HEADER_PREFIX",
    "FUTURE_TOLERANCE",
    "Consumer",
    "ConsumerStats",
    "DeadLetter",
    "ProducerCheck",
    "TimestampWindow",
    "dead_letter_producer",
    "load_producer_keys",
    "prepare_record",
    "producer_check",
    "read_dead_letters",
    "redrive",
    "stored_timestamp",
    "undecodable",
]
