"""Our Kafka clients: their connection options, the producer we write with, topic creation."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from mendline.schemas.settings import Settings

__all__ = ["ensure_topics", "errors_producer", "kafka_client_options"]

_ALREADY_EXISTS = TopicAlreadyExistsError.errno


def kafka_client_options(settings: Settings) -> dict[str, Any]:
    """The aiokafka connection options (bootstrap, security) that every client of ours uses."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_sasl_mechanism:
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password is not None:
            options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    if "SSL" in settings.kafka_security_protocol:
        from aiokafka.helpers import create_ssl_context

        options["ssl_context"] = create_ssl_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        )
    return options


def errors_producer(settings: Settings, *, client_id: str, **tuning: Any) -> AIOKafkaProducer:
    """A producer (not started) to mendline's topics, as every writer of ours makes one: the
    connection options, acks=all and no idempotence; ``tuning`` adds aiokafka's other
    options (``request_timeout_ms``, ``linger_ms``, ``max_request_size``, ...)."""
    return AIOKafkaProducer(
        **kafka_client_options(settings),
        acks="all",
        # Tansu and some brokers refuse idempotence; the consumer stores each event_id once.
        enable_idempotence=False,
        client_id=client_id,
        **tuning,
    )


async def ensure_topics(settings: Settings, only: Collection[str] | None = None) -> dict[str, str]:
    """Create the errors, check-ins and DLQ topics (or those of them in ``only``) where
    missing; returns topic -> "created" | "exists".

    The check-ins topic gets one partition: the monitor's stream clock is the newest check-in
    read, which is right only when every check-in is read in the order it was written (check-
    ins are few). The replication factor is the smaller of 3 and the number of brokers, so a
    one-broker development cluster works and a production cluster gets the usual three copies.
    """
    admin = AIOKafkaAdminClient(**kafka_client_options(settings), client_id="mendline-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        brokers = len(admin._client.cluster.brokers()) or 1
        partitions = {
            settings.errors_topic: settings.topic_partitions,
            settings.dlq_topic: settings.topic_partitions,
            settings.checkins_topic: 1,
            settings.checkins_dlq_topic: settings.topic_partitions,
        }
        wanted = [t for t in partitions if only is None or t in only]
        missing = [t for t in wanted if t not in existing]
        outcome = {t: "exists" for t in wanted if t in existing}
        if missing:
            response = await admin.create_topics(
                [NewTopic(t, partitions[t], min(3, brokers)) for t in missing]
            )
            for topic, code, *message in response.topic_errors:
                if code == 0:
                    outcome[topic] = "created"
                elif code == _ALREADY_EXISTS:  # another process won the race
                    outcome[topic] = "exists"
                else:
                    raise KafkaError(f"creating topic {topic} failed: error {code} {message}")
        return outcome
    finally:
        await admin.close()
