"""The Sentry-compatible ingest endpoint (``mendline relay``): every Sentry SDK as a producer.

Envelopes and store requests are read as Sentry's Relay reads them (``_envelope``, ``_auth``,
``_encoding``, ``_items``), each event converted into an ErrorEvent v1 (``_convert``),
scrubbed and produced to the errors topic; the server (``_server``) answers only once Kafka
acknowledged.
"""

from mendline.ingest.relay._auth import Dsn, SentryAuth, format_dsn, parse_dsn, request_auth
from mendline.ingest.relay._convert import KeyScope, convert_event, event_id_of
from mendline.ingest.relay._envelope import DEFAULT_LIMITS, Envelope, EnvelopeItem, EnvelopeLimits
from mendline.ingest.relay._kafka import KafkaSender
from mendline.ingest.relay._keys import KeyRing
from mendline.ingest.relay._server import Relay, RelayStats, Sender

__all__ = [
    "DEFAULT_LIMITS",
    "Dsn",
    "Envelope",
    "EnvelopeItem",
    "EnvelopeLimits",
    "KafkaSender",
    "KeyRing",
    "KeyScope",
    "Relay",
    "RelayStats",
    "Sender",
    "SentryAuth",
    "convert_event",
    "event_id_of",
    "format_dsn",
    "parse_dsn",
    "request_auth",
]
