"""The consumer side: the Kafka consumer group that validates, scrubs and fingerprints events
into a store, the check of who produced them, and the dead-letter topic for what it cannot
take."""

from mendline.ingest.consumer._consumer import (
    DLQ_HEADER_PREFIX,
    Consumer,
    ConsumerStats,
    prepare_record,
)
from mendline.ingest.consumer._dlq import DeadLetter, read_dead_letters, redrive
from mendline.ingest.consumer._identity import ProducerCheck, load_producer_keys, producer_check

__all__ = [
    "DLQ_HEADER_PREFIX",
    "Consumer",
    "ConsumerStats",
    "DeadLetter",
    "ProducerCheck",
    "load_producer_keys",
    "prepare_record",
    "producer_check",
    "read_dead_letters",
    "redrive",
]
