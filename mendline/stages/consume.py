"""The consume stage: ErrorEvents from Kafka into issues in PostgreSQL (the worker is ingest's
consumer-group member, writing to the sinks' store)."""

from __future__ import annotations

import asyncio
import logging

from mendline.ingest import Consumer, ConsumerStats
from mendline.ingest.consumer import ProducerCheck, producer_check
from mendline.schemas.settings import Settings
from mendline.sinks.postgres import connect_store
from mendline.stages._telemetry import TRIGGERS_HELP, StageContext, StatsMetric
from mendline.stages._topics import ensure_stage_topics
from mendline.stages._waiting import connect_patiently

__all__ = ["METRICS", "check", "run", "summary"]

log = logging.getLogger("mendline.consume")

#: Seconds a reachable broker has to create the topics before the stage goes on without.
_ENSURE_TIMEOUT = 30.0


def check(settings: Settings) -> None:
    """ConfigError for what the stage can find wrong before it connects: the producer keys
    file, read and validated when MENDLINE_PRODUCER_AUTH is warn or enforce."""
    producer_check(settings)


#: What the consume stage counts, read from its ConsumerStats at each scrape.
METRICS: tuple[StatsMetric[ConsumerStats], ...] = (
    StatsMetric(
        "mendline_events_received_total",
        "Records read from the errors topic.",
        lambda s: {(): s.received},
    ),
    StatsMetric(
        "mendline_events_stored_total",
        "Events accepted and counted in PostgreSQL (stored whole, or counted and sampled out).",
        lambda s: {(): s.stored},
    ),
    StatsMetric(
        "mendline_events_duplicate_total",
        "Events not stored again: their event_id was stored before (a replay).",
        lambda s: {(): s.duplicates},
    ),
    StatsMetric(
        "mendline_events_dead_lettered_total",
        "Records sent to the DLQ topic, by reason.",
        lambda s: {(reason,): n for reason, n in s.dead_lettered.items()},
        ("reason",),
    ),
    StatsMetric(
        "mendline_batches_stored_total",
        "Batches stored and their offsets committed.",
        lambda s: {(): s.batches},
    ),
    StatsMetric(
        "mendline_events_lost_total",
        "Events the apps reported they could not send (a full queue or spool): not received.",
        lambda s: {(): s.lost},
    ),
    StatsMetric(
        "mendline_events_sampled_out_total",
        "Events counted but not stored whole: past an issue's MENDLINE_EVENTS_FULL_PER_HOUR "
        "and not taken by its sample.",
        lambda s: {(): s.sampled_out},
    ),
    StatsMetric(
        "mendline_issues_created_total", "Issues the events created.", lambda s: {(): s.new_issues}
    ),
    StatsMetric(
        "mendline_triggers_total",
        TRIGGERS_HELP,
        lambda s: {(kind,): n for kind, n in s.trigger_kinds.items()},
        ("kind",),
    ),
    StatsMetric(
        "mendline_store_retries_total",
        "Batch writes retried because PostgreSQL was unavailable.",
        lambda s: {(): s.store_retries},
    ),
)


async def run(settings: Settings, stop: asyncio.Event, context: StageContext) -> None:
    """The consume stage until ``stop``; the batch in flight is finished and committed.
    Ready while it holds the database and the consumer group, and is not waiting out an
    outage of the database or the DLQ. The errors and DLQ topics are created first where
    missing, with the configured partitions (a broker that refuses is one warning)."""
    check(settings)  # a bad keys file is said now, not after waiting out a broker outage
    context.not_ready("creating the topics")
    topics = (settings.errors_topic, settings.dlq_topic)
    await ensure_stage_topics(settings, topics, timeout=_ENSURE_TIMEOUT, stop=stop)
    if stop.is_set():
        return
    context.not_ready("connecting to PostgreSQL")
    store = await connect_patiently(lambda: connect_store(settings), stop)
    if store is None:
        return
    consumer = Consumer(settings, store)
    context.watch(consumer.stats, METRICS)
    context.ready_when(consumer.waiting_for)
    context.metrics.gauge(
        "mendline_consumer_lag",
        "Records in the errors topic's assigned partitions not fetched yet (this member's).",
        ("topic",),
    ).set_function(lambda: {(topic,): n for topic, n in consumer.lag().items()})
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
