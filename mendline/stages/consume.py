"""The consume stage: ErrorEvents from Kafka into issues in PostgreSQL (the worker is ingest's
consumer-group member, writing to the sinks' store)."""

from __future__ import annotations

import asyncio
import logging

from mendline.ingest import Consumer, ConsumerStats
from mendline.ingest.consumer import ProducerCheck, producer_check
from mendline.schemas.settings import Settings
from mendline.sinks.postgres import connect_store
from mendline.stages._waiting import connect_patiently

__all__ = ["check", "run", "summary"]

log = logging.getLogger("mendline.consume")


def check(settings: Settings) -> None:
    """ConfigError for what the stage can find wrong before it connects: the producer keys
    file, read and validated when MENDLINE_PRODUCER_AUTH is warn or enforce."""
    producer_check(settings)


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """The consume stage until ``stop``; the batch in flight is finished and committed."""
    check(settings)  # a bad keys file is said now, not after waiting out a broker outage
    store = await connect_patiently(lambda: connect_store(settings), stop)
    if store is None:
        return
    consumer = Consumer(settings, store)
    try:
        await consumer.run(stop)
    finally:
        await store.close()
    log.info("%s", summary(consumer.stats, consumer.producers))


def summary(stats: ConsumerStats, producers: ProducerCheck | None) -> str:
    """The stage's closing line: its counters and, when producers are checked in mode warn,
    the records stored although they failed the check, by reason (in mode enforce those are
    among the dead-lettered)."""
    line = (
        f"mendline: consumed {stats.received} records: {stats.stored} stored,"
        f" {stats.duplicates} duplicates, {sum(stats.dead_lettered.values())} dead-lettered"
    )
    if producers is None or producers.mode != "warn":
        return line
    warned = sum(producers.warned.values())
    reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(producers.warned.items()))
    said = f"{line}; {warned} of those stored failed the producer check"
    return f"{said} ({reasons})" if reasons else said
