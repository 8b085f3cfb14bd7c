"""The relay stage: Sentry's ingest API on ``relay_host:relay_port`` (``mendline relay``, and a
stage of ``mendline run``), producing what every Sentry SDK sends to the errors topic."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from mendline.analyzers.grouping.scrubbing import Scrubber
from mendline.ingest.consumer import producer_check
from mendline.ingest.relay import KafkaSender, KeyRing, Relay, RelayStats
from mendline.schemas.settings import Settings
from mendline.sinks.postgres import RelayKeyStore, append_audit, migrated_pool
from mendline.stages._telemetry import StageContext, StatsMetric
from mendline.stages._topics import ensure_stage_topics
from mendline.stages._waiting import connect_patiently

__all__ = ["METRICS", "run"]

log = logging.getLogger("mendline.relay")

_ENSURE_TIMEOUT = 30.0

#: What the relay stage counts, read from its RelayStats at each scrape.
METRICS: tuple[StatsMetric[RelayStats], ...] = (
    StatsMetric(
        "mendline_relay_requests_accepted_total",
        "Requests the relay answered 200 (their records acknowledged by Kafka).",
        lambda s: {(): s.accepted},
    ),
    StatsMetric(
        "mendline_relay_events_total",
        "Events from Sentry SDKs converted and produced to the errors topic.",
        lambda s: {(): s.events},
    ),
    StatsMetric(
        "mendline_relay_refused_total",
        "Requests the relay refused, by reason (401, 403, 400, 413, 415, 429, 503).",
        lambda s: {(reason,): n for reason, n in s.refused.items()},
        ("reason",),
    ),
    StatsMetric(
        "mendline_relay_items_dropped_total",
        "Envelope items accepted and not stored (transactions, sessions, attachments...), by type.",
        lambda s: {(kind,): n for kind, n in s.dropped.items()},
        ("type",),
    ),
    StatsMetric(
        "mendline_relay_check_ins_total",
        "Sentry check-ins produced as heartbeats (valid) or not (invalid).",
        lambda s: {("valid",): s.check_ins, ("invalid",): s.check_ins_invalid},
        ("result",),
    ),
    StatsMetric(
        "mendline_relay_sdk_discarded_total",
        "What Sentry SDKs reported they discarded (their client reports), by reason and category.",
        lambda s: {key: n for key, n in s.discarded.items()},
        ("reason", "category"),
    ),
    StatsMetric(
        "mendline_relay_client_reports_malformed_total",
        "Parts of SDKs' client reports that could not be read (not counted above).",
        lambda s: {(): s.client_reports_malformed},
    ),
    StatsMetric(
        "mendline_relay_clock_corrected_total",
        "Events produced whose time was moved by their SDK's clock drift (55 minutes or more).",
        lambda s: {(): s.clock_corrected},
    ),
    StatsMetric(
        "mendline_relay_dead_lettered_total",
        "Malformed bodies of authenticated requests kept in the DLQ topic (kept), or not kept"
        " because Kafka was out (lost).",
        lambda s: {("kept",): s.kept, ("lost",): s.not_kept},
        ("result",),
    ),
)


async def run(settings: Settings, stop: asyncio.Event, context: StageContext) -> None:
    """Serve the relay until ``stop``. Ready while it holds its keys and has reached Kafka;
    before that it answers 503, which SDKs that keep events try again."""
    from mendline.web import serving_web

    checked = producer_check(settings)  # a bad keys file is said now
    context.not_ready("creating the topics")
    topics = (settings.errors_topic, settings.checkins_topic, settings.dlq_topic)
    await ensure_stage_topics(settings, topics, timeout=_ENSURE_TIMEOUT, stop=stop)
    if stop.is_set():
        return
    context.not_ready("connecting to PostgreSQL")
    url = settings.database_url.get_secret_value()
    pool = await connect_patiently(lambda: migrated_pool(url, 2), stop)
    if pool is None:
        return
    sender = KafkaSender(settings)
    keys = KeyRing(RelayKeyStore(pool, append_audit).keys_for_relay, settings.relay_keys_refresh)
    relay = Relay(
        settings,
        keys,
        sender,
        scrubber=Scrubber(settings.scrub_extra_keys, settings.scrub_extra_patterns),
        producer_keys=checked.keys if checked is not None else None,
    )
    context.watch(relay.stats, METRICS)
    context.ready_when(lambda: _waiting_for(keys, sender))
    refreshing = asyncio.create_task(keys.run(stop))
    try:
        with contextlib.suppress(Exception):  # reached on the first request otherwise
            await asyncio.wait_for(sender.start(), settings.relay_produce_timeout)
        async with serving_web(
            relay.app(),
            settings.relay_host,
            settings.relay_port,
            "the relay",
            "RELAY",
            auto_decompress=False,
        ) as served:
            log.info("mendline: relay (Sentry's ingest API) at %s/", served)
            await stop.wait()
            context.not_ready("stopping")
    finally:
        refreshing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refreshing
        relay.close()
        await sender.close()
        await pool.close()
    stats = relay.stats
    log.info(
        "mendline: relay answered %d requests: %d events produced, %d refused",
        stats.accepted,
        stats.events,
        sum(stats.refused.values()),
    )


def _waiting_for(keys: KeyRing, sender: KafkaSender) -> str | None:
    if not keys.loaded:
        return f"reading the relay's keys ({keys.failing or 'not yet'})"
    if not sender.started:
        return "reaching Kafka"
    return None
