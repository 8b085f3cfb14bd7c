"""The app side (structlog processor, logging handler, shipper) and the consumer side."""

from ._builder import EventBuilder, InApp
from ._capture import Capture, RawException
from ._consumer import Consumer, ConsumerStats, prepare_record
from ._dlq import DeadLetter, read_dead_letters, redrive
from ._processor import ErrorEventHandler, ErrorEventProcessor, make_shipper
from ._shipper import Shipper, ShipperStats
from ._topics import ensure_topics, errors_producer, kafka_client_options

__all__ = [
    "Capture",
    "Consumer",
    "ConsumerStats",
    "DeadLetter",
    "ErrorEventHandler",
    "ErrorEventProcessor",
    "EventBuilder",
    "InApp",
    "RawException",
    "Shipper",
    "ShipperStats",
    "ensure_topics",
    "errors_producer",
    "kafka_client_options",
    "make_shipper",
    "prepare_record",
    "read_dead_letters",
    "redrive",
]
