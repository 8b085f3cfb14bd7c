"""The app side (structlog processor, logging handler, shipper) and the consumer side."""

from ._builder import EventBuilder, InApp
from ._capture import Capture
from ._consumer import Consumer, ConsumerStats, prepare_record
from ._dlq import DeadLetter, read_dead_letters, redrive
from ._processor import ErrorEventHandler, ErrorEventProcessor, make_shipper
from ._shipper import Shipper, ShipperStats, kafka_client_options
from ._topics import ensure_topics

__all__ = [
    "Capture",
    "Consumer",
    "ConsumerStats",
    "DeadLetter",
    "ErrorEventHandler",
    "ErrorEventProcessor",
    "EventBuilder",
    "InApp",
    "Shipper",
    "ShipperStats",
    "ensure_topics",
    "kafka_client_options",
    "make_shipper",
    "prepare_record",
    "read_dead_letters",
    "redrive",
]
