"""What comes in: the app side (structlog processor, logging handler, shipper, spool) in
``app``, and the Kafka consumer group that prepares events and dead-letters bad ones in
``consumer``; the Kafka clients both use."""

from mendline.ingest._topics import ensure_topics, errors_producer, kafka_client_options
from mendline.ingest.app import (
    Capture,
    ErrorEventHandler,
    ErrorEventProcessor,
    EventBuilder,
    InApp,
    RawException,
    SettingProblem,
    Shipper,
    ShipperStats,
    app_setting_problems,
    load_app_settings,
    make_shipper,
)
from mendline.ingest.consumer import (
    Consumer,
    ConsumerStats,
    DeadLetter,
    prepare_record,
    read_dead_letters,
    redrive,
)

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
    "SettingProblem",
    "Shipper",
    "ShipperStats",
    "app_setting_problems",
    "ensure_topics",
    "errors_producer",
    "kafka_client_options",
    "load_app_settings",
    "make_shipper",
    "prepare_record",
    "read_dead_letters",
    "redrive",
]
