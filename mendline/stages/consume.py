"""The consume stage: ErrorEvents from Kafka into issues in PostgreSQL (the worker is ingest's
consumer-group member, writing to the sinks' store)."""

from __future__ import annotations

import asyncio
import logging

from mendline.ingest import Consumer
from mendline.schemas.settings import Settings
from mendline.sinks.postgres import connect_store
from mendline.stages._waiting import connect_patiently

__all__ = ["run"]

log = logging.getLogger("mendline.consume")


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """The consume stage until ``stop``; the batch in flight is finished and committed."""
    store = await connect_patiently(lambda: connect_store(settings), stop)
    if store is None:
        return
    consumer = Consumer(settings, store)
    try:
        await consumer.run(stop)
    finally:
        await store.close()
    stats = consumer.stats
    log.info(
        "mendline: consumed %d records: %d stored, %d duplicates, %d dead-lettered",
        stats.received,
        stats.stored,
        stats.duplicates,
        sum(stats.dead_lettered.values()),
    )
