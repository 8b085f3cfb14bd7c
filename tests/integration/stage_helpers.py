"""The stages run in-process for the integration tests: consume, check-ins, monitor, analyze
and alert settings, workers until a block ends, events stored the consumer's way, and waiting
for a condition."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import asyncpg

from mendline.analyzers.grouping.scrubbing import Scrubber
from mendline.ingest import CheckinConsumer, Consumer, prepare_record
from mendline.schemas.settings import Settings, load_settings
from mendline.sinks.channels import make_channel
from mendline.sinks.postgres import (
    connect_alerts,
    connect_checkins,
    connect_findings,
    connect_health,
    connect_store,
)
from mendline.sinks.routing import load_routes
from mendline.stages import StageContext, monitor
from mendline.stages.alert import AlertWorker
from mendline.stages.analyze import AnalyzeWorker, make_analysis
from mendline.stages.monitor import MonitorWorker
from tests.channel_servers import FakePagerDuty
from tests.db_helpers import query
from tests.llm_server import FakeLLM

from .event_factory import encode, make_event
from .kafka_helpers import create_topic, unique_topic


async def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``predicate`` (a function or a coroutine function) until it is true; fail the test
    saying ``what`` did not come when ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


# -- consume --------------------------------------------------------------------------------


def consume_settings(bootstrap: str, db_url: str, **extra: object) -> Settings:
    """Settings of a consumer with its own topics and group, quick to rebalance, and with
    every new issue analysed (no frequency threshold)."""
    return load_settings(
        kafka_bootstrap=bootstrap,
        database_url=db_url,
        errors_topic=unique_topic("errors"),
        dlq_topic=unique_topic("dlq"),
        consumer_group=unique_topic("group"),
        kafka_session_timeout=2.0,
        frequency_threshold=0,
        **extra,
    )


@asynccontextmanager
async def running_consumer(settings: Settings) -> AsyncIterator[Consumer]:
    """A Consumer running until the block ends, then stopped and its store closed."""
    store = await connect_store(settings)
    consumer = Consumer(settings, store)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        yield consumer
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await store.close()


# -- check-ins ------------------------------------------------------------------------------


def checkin_settings(bootstrap: str, db_url: str, **extra: object) -> Settings:
    """Settings with check-ins topics and group of the test's own."""
    return load_settings(
        kafka_bootstrap=bootstrap,
        database_url=db_url,
        checkins_topic=unique_topic("checkins"),
        checkins_dlq_topic=unique_topic("checkins-dlq"),
        checkins_group=unique_topic("checkins-group"),
        kafka_session_timeout=2.0,
        **extra,
    )


async def one_partition_checkins(settings: Settings) -> None:
    """Create the settings' check-ins topic with one partition, as `mendline topics ensure`
    does (the broker would make more when it creates it on first use): heartbeats are judged
    only on such a topic. Before anything writes to it or reads it."""
    await create_topic(settings.kafka_bootstrap, settings.checkins_topic, 1)


@asynccontextmanager
async def running_checkins(settings: Settings) -> AsyncIterator[CheckinConsumer]:
    """A CheckinConsumer running until the block ends, then stopped and its store closed."""
    store = await connect_checkins(settings)
    consumer = CheckinConsumer(settings, store)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        yield consumer
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await store.close()


# -- monitor ---------------------------------------------------------------------------------

#: A routes file paging every health alert to the PagerDuty stand-in at ``{pagerduty}``
#: (``.format(pagerduty=...)``), with no group wait.
PAGE_ALL_HEALTH = """
[receivers.pager]
type = "pagerduty"
routing_key_env = "TEST_PD_KEY"
events_url = "{pagerduty}"

[[routes]]
match_re = {{ kind = "health_.*" }}
receivers = ["pager"]
group_wait = "0s"
"""


def http_check(name: str, url: str, **extra: str) -> str:
    """A [[checks]] table of an HTTP check of ``url`` every second (timeout 2 s), down after
    two failures, up after one success; ``extra`` keys added as TOML values."""
    more = "".join(f"{key} = {value}\n" for key, value in extra.items())
    return (
        f'[[checks]]\nname = "{name}"\nkind = "http"\nurl = "{url}"\ninterval = "1s"\n'
        f'timeout = "2s"\nfailure_threshold = 2\nsuccess_threshold = 1\nseverity = "critical"\n'
        f"{more}"
    )


def monitor_settings(
    bootstrap: str, db_url: str, checks: Path | None, routes: Path | None = None, **extra: Any
) -> Settings:
    """Settings of a monitor (and an alert worker) on ``db_url`` with check-ins topics and
    group of the test's own, polling often, looking at the checks file twice a second (not
    every 5 s), back within a second of a database outage's end (not up to 30 s), mendline's
    own checks off; ``extra`` wins."""
    values: dict[str, Any] = {
        "self_checks": False,
        "monitor_poll_interval": 0.1,
        "checks_reload_interval": 0.5,
        "outage_retry_max": 1.0,
        "monitor_tick_interval": 0.5,
        "alert_poll_interval": 0.2,
        "checkins_topic": unique_topic("checkins"),
        "checkins_dlq_topic": unique_topic("checkins-dlq"),
        "checkins_group": unique_topic("checkins-group"),
        "kafka_session_timeout": 2.0,
    }
    return load_settings(
        kafka_bootstrap=bootstrap,
        database_url=db_url,
        checks_file=checks,
        routes_file=routes,
        **{**values, **extra},
    )


@asynccontextmanager
async def monitors(
    settings: Settings,
    count: int = 1,
    settle: timedelta = timedelta(0),
    context: StageContext | None = None,
    recovery_hold: float = 0.0,
) -> AsyncIterator[list[MonitorWorker]]:
    """``count`` monitor workers (each with its own pools) until the block ends, judging
    heartbeats ``settle`` past their deadlines (none: a one-second heartbeat is judged in a
    second, not the monitor's usual 30 s later) and ``recovery_hold`` after the clock moves
    once started or after a stall (none: not the usual minute), counting their results in
    ``context``."""
    checks = monitor.checks_of(settings)
    running = [
        MonitorWorker(
            settings,
            await connect_health(settings),
            await connect_checkins(settings),
            checks,
            owner=f"monitor-{n}",
            settle=settle,
            context=context,
            recovery_hold=recovery_hold,
        )
        for n in range(count)
    ]
    try:
        async with run_until_exit(running):
            yield running
    finally:
        for worker in running:
            await worker.health.close()
            await worker.checkins.close()


@asynccontextmanager
async def paging(settings: Settings, pagerduty: FakePagerDuty) -> AsyncIterator[None]:
    """An alert worker sending every health alert to the PagerDuty stand-in."""
    assert settings.routes_file is not None
    table = load_routes(settings.routes_file)
    channels = {
        name: make_channel(name, receiver, {"TEST_PD_KEY": "R0UTINGKEY"})
        for name, receiver in table.receivers.items()
    }
    worker = AlertWorker(settings, await connect_alerts(settings), table, channels)
    try:
        async with run_until_exit([worker]):
            yield
    finally:
        for channel in channels.values():
            await channel.aclose()
        await worker.store.pool.close()


async def status(url: str, name: str) -> str | None:
    """The check's status in the check_status view (None: no such check)."""
    rows = await query(url, "SELECT status FROM mendline.check_status WHERE name = $1", name)
    return rows[0]["status"] if rows else None


# -- analyze --------------------------------------------------------------------------------


def analyze_settings(url: str, llm: FakeLLM | None = None, **extra: Any) -> Settings:
    """Settings of the analyze stage on ``url``, asking ``llm`` (else the heuristic analyser
    alone), polling often, back within a second of a database outage's end (not up to 30 s);
    ``extra`` wins."""
    values: dict[str, Any] = {"analyze_poll_interval": 0.2, "outage_retry_max": 1.0}
    return load_settings(
        database_url=url,
        frequency_threshold=0,
        llm_base_url=llm.url if llm else None,
        **{**values, **extra},
    )


async def ingest(settings: Settings, events: list[dict[str, Any]]) -> None:
    """Store events the consumer's way (validated, scrubbed, fingerprinted, one batch)."""
    store = await connect_store(settings)
    try:
        await store.write([prepare_record(encode(e), Scrubber()) for e in events])
    finally:
        await store.close()


def issue_events(issues: range, per_issue: int = 3, **fields: Any) -> list[dict[str, Any]]:
    """``per_issue`` events of each issue number in ``issues``, with ``fields`` set."""
    events = []
    for issue in issues:
        for n in range(per_issue):
            event = make_event(issue, n)
            event.update(fields)
            events.append(event)
    return events


class _Worker(Protocol):
    async def run(self, stop: asyncio.Event) -> None: ...


@asynccontextmanager
async def run_until_exit(running: Sequence[_Worker]) -> AsyncIterator[None]:
    """Each worker's ``run(stop)`` as a task until the block ends, then stopped and awaited."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(w.run(stop)) for w in running]
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)


@asynccontextmanager
async def workers(
    settings: Settings, count: int = 1, grace: float | None = None
) -> AsyncIterator[list[AnalyzeWorker]]:
    """``count`` analyze workers running until the block ends."""
    stores = [await connect_findings(settings, 6) for _ in range(count)]
    running = [
        AnalyzeWorker(settings, store, make_analysis(settings, store), grace=grace)
        for store in stores
    ]
    try:
        async with run_until_exit(running):
            yield running
    finally:
        for w in running:
            await w.analysis.aclose()
            await w.store.pool.close()


# -- alert ----------------------------------------------------------------------------------

#: A routes file sending every error to the Slack webhook in ``TEST_SLACK_WEBHOOK``;
#: ``.format(wait="10s")`` sets its group_wait.
SLACK_ROUTE = """
[receivers.team]
type = "slack"
webhook_url_env = "TEST_SLACK_WEBHOOK"

[[routes]]
match = {{ severity = "error" }}
receivers = ["team"]
group_wait = "{wait}"
"""


async def deliveries(url: str) -> list[asyncpg.Record]:
    """Every row of the alert_deliveries view, oldest first."""
    return await query(url, "SELECT * FROM mendline.alert_deliveries ORDER BY id")


def settled(url: str, n: int, *statuses: str) -> Callable[[], Awaitable[bool]]:
    """For wait_until: whether ``n`` deliveries or more are in one of ``statuses``."""

    async def check() -> bool:
        return sum(r["status"] in statuses for r in await deliveries(url)) >= n

    return check


@asynccontextmanager
async def alerting(
    settings: Settings, environ: dict[str, str], count: int = 1
) -> AsyncIterator[list[AlertWorker]]:
    """``count`` alert workers, each with its own channels, until the block ends."""
    table = load_routes(settings.routes_file)
    running = []
    for _ in range(count):
        channels = {n: make_channel(n, r, environ) for n, r in table.receivers.items()}
        store = await connect_alerts(settings)
        running.append(AlertWorker(settings, store, table, channels))
    try:
        async with run_until_exit(running):
            yield running
    finally:
        for worker in running:
            for channel in worker.channels.values():
                await channel.aclose()
            await worker.store.pool.close()
