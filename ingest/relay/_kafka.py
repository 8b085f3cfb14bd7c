"""The relay's producer: aiokafka's (acks=all, no idempotence, as every writer of ours),
started on first use, so that a relay started while Kafka is out serves 503s until it is up."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer

from mendline.ingest._topics import errors_producer
from mendline.schemas.settings import Settings

__all__ = ["KafkaSender"]

# Whatever an envelope may hold after conversion: an event is at most 256 KiB.
_MAX_REQUEST = 8 * 1024 * 1024


class KafkaSender:
    """``send_and_wait`` on a producer started when first needed (and again after a start
    that failed); ``close`` stops it."""

    def __init__(self, settings: Settings, client_id: str = "mendline-relay") -> None:
        self._settings = settings
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def send_and_wait(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Any:
        """Send one record and wait for Kafka's acknowledgement (aiokafka's errors as they
        are: the relay answers 503)."""
        producer = await self._started()
        return await producer.send_and_wait(topic, value=value, key=key, headers=headers)

    async def _started(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = errors_producer(
                    self._settings,
                    client_id=self._client_id,
                    request_timeout_ms=int(self._settings.relay_produce_timeout * 1000),
                    max_request_size=_MAX_REQUEST,
                )
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    @property
    def started(self) -> bool:
        """Whether the producer was started (Kafka was reached once)."""
        return self._producer is not None

    async def start(self) -> None:
        """Start the producer now (ahead of the first request); aiokafka's error if Kafka
        cannot be reached."""
        await self._started()

    async def close(self) -> None:
        """Stop the producer, if it was started."""
        async with self._lock:
            if self._producer is not None:
                await self._producer.stop()
                self._producer = None
