"""Creating mendline's topics on a Kafka cluster."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from mendline.schemas.settings import Settings

from ._shipper import kafka_client_options

__all__ = ["ensure_topics"]

_ALREADY_EXISTS = TopicAlreadyExistsError.errno


async def ensure_topics(settings: Settings) -> dict[str, str]:
    """Create the errors and DLQ topics where missing; returns topic -> "created" | "exists".

    The replication factor is the smaller of 3 and the number of brokers, so a one-broker
    development cluster works and a production cluster gets the usual three copies.
    """
    admin = AIOKafkaAdminClient(**kafka_client_options(settings), client_id="mendline-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        brokers = len(admin._client.cluster.brokers()) or 1
        wanted = [settings.errors_topic, settings.dlq_topic]
        missing = [t for t in wanted if t not in existing]
        outcome = {t: "exists" for t in wanted if t in existing}
        if missing:
            response = await admin.create_topics(
                [NewTopic(t, settings.topic_partitions, min(3, brokers)) for t in missing]
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
