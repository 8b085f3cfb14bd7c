"""Running the pipeline's stages as processes: signals, retries at start, clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from mendline.ingest import Consumer
from mendline.schemas.alert import Channel
from mendline.schemas.errors import ConfigError
from mendline.schemas.settings import Settings
from mendline.sinks.channels import make_channel
from mendline.sinks.postgres import Store, connect_store
from mendline.sinks.routing import RoutingTable, check_secrets, load_routes
from mendline.stages.alert import AlertWorker, connect_alerts
from mendline.stages.analyze import AnalyzeWorker, connect_findings, make_analysis

__all__ = [
    "STAGES",
    "alert_stage",
    "analyze_stage",
    "connect_patiently",
    "connect_store_patiently",
    "consume_stage",
    "run_alert",
    "run_analyze",
    "run_consume",
    "run_pipeline",
    "run_stages",
]

log = logging.getLogger("mendline")

_T = TypeVar("_T")


async def connect_patiently(connect: Callable[[], Awaitable[_T]], stop: asyncio.Event) -> _T | None:
    """``connect()``, waiting out a database that is not up yet; None if stopped first."""
    backoff = 0.2
    while not stop.is_set():
        try:
            return await connect()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("mendline: PostgreSQL unreachable (%s); retrying in %.1f s", exc, backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
            backoff = min(backoff * 2, 10.0)
    return None


async def connect_store_patiently(settings: Settings, stop: asyncio.Event) -> Store | None:
    """Connect (and migrate), waiting out a database that is not up yet; None if stopped."""
    return await connect_patiently(lambda: connect_store(settings), stop)


def _stop_on_signals(stop: asyncio.Event) -> None:
    """The first SIGINT or SIGTERM stops cleanly; a second one ends the process at once."""
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            log.warning("mendline: second signal; exiting without finishing the batch")
            os._exit(130)  # the batch is uncommitted, so it is replayed: nothing is lost
        log.info("mendline: stopping after the batch in flight (signal again to force)")
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)


async def consume_stage(settings: Settings, stop: asyncio.Event) -> None:
    """The consume stage until ``stop``; the batch in flight is finished."""
    store = await connect_store_patiently(settings, stop)
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


async def analyze_stage(settings: Settings, stop: asyncio.Event) -> None:
    """One analyze worker until ``stop``; what is in flight finishes."""
    store = await connect_patiently(
        lambda: connect_findings(settings, settings.llm_concurrency + 2), stop
    )
    if store is None:
        return
    analysis = make_analysis(settings, store)
    worker = AnalyzeWorker(settings, store, analysis)
    log.info("mendline: analyze worker %s started (%s analyser)", worker.owner, analysis.kind)
    try:
        await worker.run(stop)
    finally:
        await analysis.aclose()
        await store.pool.close()
    stats = worker.stats
    log.info(
        "mendline: analysed %d triggers: %d served from stored findings, %d fell back to the"
        " heuristic analyser, %d errors",
        stats.analysed,
        stats.cached,
        stats.fallbacks,
        stats.errors,
    )


def _routing(settings: Settings) -> RoutingTable:
    """The routing table; ConfigError when it is invalid or a secret it names is missing."""
    table = load_routes(settings.routes_file)
    problems = check_secrets(table, os.environ)
    if problems:
        raise ConfigError("; ".join(problems))
    return table


async def alert_stage(settings: Settings, stop: asyncio.Event) -> None:
    """One alert worker until ``stop``; what is being sent finishes."""
    table = _routing(settings)
    channels: dict[str, Channel] = {
        name: make_channel(name, receiver, os.environ) for name, receiver in table.receivers.items()
    }
    store = await connect_patiently(lambda: connect_alerts(settings), stop)
    if store is None:
        return
    worker = AlertWorker(settings, store, table, channels)
    log.info("mendline: alert worker %s started (%s)", worker.owner, table.source)
    try:
        await worker.run(stop)
    finally:
        for channel in channels.values():
            await channel.aclose()
        await store.pool.close()
    s = worker.stats
    log.info(
        "mendline: %d alerts sent in %d messages; %d retried, %d failed, %d dead, %d suppressed",
        s.sent,
        s.messages,
        s.retried,
        s.failed,
        s.dead,
        s.suppressed,
    )


#: The stages `mendline run` runs, in the order they start.
STAGES: dict[str, Callable[[Settings, asyncio.Event], Awaitable[None]]] = {
    "consume": consume_stage,
    "analyze": analyze_stage,
    "alert": alert_stage,
}


async def run_stages(settings: Settings, only: list[str] | None = None) -> int:
    """``mendline run``: the stages in one process, each an asyncio task restarted when it
    fails (with backoff), until SIGINT or SIGTERM stops them all cleanly."""
    stop = asyncio.Event()
    _stop_on_signals(stop)
    await run_pipeline(settings, stop, only)
    return 0


async def run_pipeline(
    settings: Settings, stop: asyncio.Event, only: list[str] | None = None
) -> None:
    """The stages (all, or ``only`` these) as tasks restarted when they fail, until ``stop``."""
    names = only or list(STAGES)
    if "alert" in names:
        _routing(settings)  # a bad routing file or a missing secret: say so before starting
    await asyncio.gather(*(_supervised(name, STAGES[name], settings, stop) for name in names))


async def _supervised(
    name: str,
    stage: Callable[[Settings, asyncio.Event], Awaitable[None]],
    settings: Settings,
    stop: asyncio.Event,
) -> None:
    backoff = 1.0
    while not stop.is_set():
        try:
            await stage(settings, stop)
            return
        except ConfigError:
            stop.set()  # nothing a restart would mend: stop the others too
            raise
        except Exception:
            log.exception("mendline: the %s stage failed; restarting in %.0f s", name, backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
            backoff = min(backoff * 2, 60.0)


async def _until_signalled(
    stage: Callable[[Settings, asyncio.Event], Awaitable[None]], settings: Settings
) -> int:
    stop = asyncio.Event()
    _stop_on_signals(stop)
    await stage(settings, stop)
    return 0


async def run_consume(settings: Settings) -> int:
    """``mendline consume``: until SIGINT or SIGTERM; the batch in flight is finished."""
    return await _until_signalled(consume_stage, settings)


async def run_analyze(settings: Settings) -> int:
    """``mendline analyze``: one worker until SIGINT or SIGTERM; what is in flight finishes."""
    return await _until_signalled(analyze_stage, settings)


async def run_alert(settings: Settings) -> int:
    """``mendline alert``: one worker until SIGINT or SIGTERM; what is being sent finishes."""
    return await _until_signalled(alert_stage, settings)
