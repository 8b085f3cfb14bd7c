"""The monitor stage end to end: a checks file, a real HTTP server on loopback whose health the
test flips, the real PostgreSQL and broker, and the real alert stage paging a PagerDuty
stand-in; two monitors side by side; heartbeats from check-ins on the topic; a reload; the
self checks of a stopped consumer."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

import mendline
from mendline.ingest import encode_checkin, make_shipper, new_checkin
from mendline.schemas.settings import Settings, load_settings
from mendline.sinks.postgres import connect_checkins, connect_health
from mendline.stages import monitor
from mendline.stages.monitor import MonitorWorker
from tests.channel_servers import FakePagerDuty
from tests.db_helpers import query
from tests.probe_servers import http_target

from .event_factory import encode, make_event
from .kafka_helpers import unique_topic
from .stage_helpers import (
    PAGE_ALL_HEALTH,
    http_check,
    monitor_settings,
    monitors,
    one_partition_checkins,
    paging,
    run_until_exit,
    running_checkins,
    running_consumer,
    status,
    wait_until,
)

pytestmark = pytest.mark.integration


async def test_a_check_going_down_pages_once_and_its_recovery_resolves_the_page(
    kafka_bootstrap: str, fresh_db_url: str, pagerduty: FakePagerDuty, tmp_path: Path
) -> None:
    async with http_target() as target:
        checks = tmp_path / "checks.toml"
        checks.write_text(http_check("payments-api", target.url))
        routes = tmp_path / "routes.toml"
        routes.write_text(PAGE_ALL_HEALTH.format(pagerduty=pagerduty.events_url))
        settings = monitor_settings(kafka_bootstrap, fresh_db_url, checks, routes)
        async with monitors(settings), paging(settings, pagerduty):
            await wait_until(lambda: _is(fresh_db_url, "payments-api", "up"), 20, "it up")
            target.mode = "down"
            await wait_until(lambda: len(pagerduty.requests) >= 1, 30, "the page")
            # It stays down for a while: still one page.
            await wait_until(
                lambda: count_results(fresh_db_url, "payments-api", success=False, at_least=5),
                30,
                "more failed results",
            )
            target.mode = "healthy"
            await wait_until(lambda: len(pagerduty.requests) >= 2, 30, "the resolve")
            await asyncio.sleep(1.5)  # more healthy results: nothing more is sent
        bodies = pagerduty.bodies()
    assert [b["event_action"] for b in bodies] == ["trigger", "resolve"]
    assert bodies[0]["dedup_key"] == bodies[1]["dedup_key"]
    assert "503" in bodies[0]["payload"]["summary"]
    issues = await query(
        fresh_db_url, "SELECT kind, status, title FROM mendline.issues WHERE kind = 'health'"
    )
    assert [(i["kind"], i["status"]) for i in issues] == [("health", "resolved")]
    assert issues[0]["title"].startswith("Downtime: payments-api (HTTP 503")


async def count_results(url: str, name: str, *, success: bool, at_least: int) -> bool:
    rows = await query(
        url,
        "SELECT count(*) AS n FROM mendline.check_results WHERE check_name = $1 AND success = $2",
        name,
        success,
    )
    return int(rows[0]["n"]) >= at_least


async def test_two_monitors_run_each_slot_once_and_alert_once(
    kafka_bootstrap: str, fresh_db_url: str, pagerduty: FakePagerDuty, tmp_path: Path
) -> None:
    async with http_target() as target:
        checks = tmp_path / "checks.toml"
        checks.write_text(
            "\n".join(http_check(f"api-{n}", f"{target.url}?n={n}") for n in range(5))
        )
        routes = tmp_path / "routes.toml"
        routes.write_text(PAGE_ALL_HEALTH.format(pagerduty=pagerduty.events_url))
        settings = monitor_settings(kafka_bootstrap, fresh_db_url, checks, routes)
        target.mode = "down"
        async with monitors(settings, count=2) as running, paging(settings, pagerduty):
            await wait_until(lambda: len(pagerduty.requests) >= 5, 40, "five pages")
            await wait_until(lambda: all_results(fresh_db_url, at_least=30), 40, "thirty results")
        requests = len(target.requests)
    stored = await query(fresh_db_url, "SELECT owner FROM mendline.check_results_raw")
    # Every request the server saw is one stored result: no slot was run twice.
    assert requests == len(stored)
    assert {row["owner"] for row in stored} == {"monitor-0", "monitor-1"}
    pages = [b["dedup_key"] for b in pagerduty.bodies() if b["event_action"] == "trigger"]
    assert len(pages) == len(set(pages)) == 5
    ran = sum(w.stats.runs for w in running)
    assert ran == requests


async def all_results(url: str, *, at_least: int) -> bool:
    rows = await query(url, "SELECT count(*) AS n FROM mendline.check_results_raw")
    return int(rows[0]["n"]) >= at_least


async def test_a_heartbeat_missed_after_its_runs_stop_is_found_down(
    kafka_bootstrap: str, fresh_db_url: str, tmp_path: Path
) -> None:
    checks = tmp_path / "checks.toml"
    checks.write_text(
        '[[checks]]\nname = "export"\nkind = "heartbeat"\nevery = "1s"\ngrace = "1s"\n'
    )
    settings = monitor_settings(kafka_bootstrap, fresh_db_url, checks)
    await one_partition_checkins(settings)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        async with running_checkins(settings), monitors(settings) as running:
            worker = running[0]
            for _ in range(4):  # a job that runs every second, then stops
                key, value = encode_checkin(new_checkin("export", "ok"))
                await producer.send_and_wait(settings.checkins_topic, value, key=key)
                await asyncio.sleep(1.0)
            await wait_until(
                lambda: _is(fresh_db_url, "export", "down"), 20, "the missed run found"
            )
            assert worker.stats.heartbeat_verdicts >= 2
    finally:
        await producer.stop()
    results = await query(
        fresh_db_url,
        "SELECT success, error_kind FROM mendline.check_results WHERE check_name = 'export'"
        " ORDER BY scheduled_at",
    )
    assert results[0]["success"] is True
    assert results[-1]["success"] is False and results[-1]["error_kind"] == "missed"
    triggers = await query(fresh_db_url, "SELECT kind FROM mendline.triggers")
    assert [t["kind"] for t in triggers] == ["health_down"]


async def _is(url: str, name: str, wanted: str) -> bool:
    return await status(url, name) == wanted


async def test_a_reload_adds_a_check_and_keeps_the_state_of_the_others(
    kafka_bootstrap: str, fresh_db_url: str, tmp_path: Path
) -> None:
    async with http_target() as target:
        checks = tmp_path / "checks.toml"
        checks.write_text(http_check("first", target.url))
        settings = monitor_settings(kafka_bootstrap, fresh_db_url, checks)
        target.mode = "down"
        async with monitors(settings) as running:
            await wait_until(lambda: _is(fresh_db_url, "first", "down"), 20, "first down")
            checks.write_text(
                http_check("first", target.url) + "\n" + http_check("second", target.url)
            )
            running[0]._reload.set()  # as SIGHUP does
            await wait_until(lambda: _is(fresh_db_url, "second", "down"), 20, "second down")
            assert await status(fresh_db_url, "first") == "down"
            assert running[0].stats.reloads == 1
        triggers = await query(
            fresh_db_url,
            "SELECT details ->> 'check' AS name FROM mendline.triggers ORDER BY id",
        )
    assert [t["name"] for t in triggers] == ["first", "second"]  # first not told again


async def test_a_bad_checks_file_stops_the_stage_before_it_starts(tmp_path: Path) -> None:
    checks = tmp_path / "checks.toml"
    checks.write_text('[[checks]]\nname = "x"\nkind = "htp"\n')
    with pytest.raises(Exception, match=r"checks.toml:3: checks\[0\].kind"):
        monitor.check(load_settings(checks_file=checks))


async def test_the_consumer_lag_self_check_fires_when_the_consumer_stops_and_clears(
    kafka_bootstrap: str, fresh_db_url: str
) -> None:
    settings = monitor_settings(
        kafka_bootstrap,
        fresh_db_url,
        None,
        self_checks=True,
        self_check_max_lag=2,
        errors_topic=unique_topic("errors"),
        dlq_topic=unique_topic("dlq"),
        consumer_group=unique_topic("group"),
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        async with running_consumer(settings) as consumer:
            await producer.send_and_wait(settings.errors_topic, encode(make_event(1)))
            # The group exists and is caught up: the event stored and its offset committed.
            await wait_until(lambda: consumer.stats.batches >= 1, 30, "the event consumed")
        for n in range(5):  # the consumer is stopped; errors keep coming
            await producer.send_and_wait(settings.errors_topic, encode(make_event(2, n)))
        async with fast_self_checks(settings) as worker:
            await wait_until(
                lambda: _is(fresh_db_url, "mendline.consumer-lag", "down"), 40, "lag down"
            )
            assert await status(fresh_db_url, "mendline.database") == "up"
            async with running_consumer(settings):
                await wait_until(
                    lambda: _is(fresh_db_url, "mendline.consumer-lag", "up"), 40, "lag up"
                )
            assert worker.stats.transitions == {"down": 1, "recovered": 1}
    finally:
        await producer.stop()
    told = await query(
        fresh_db_url,
        "SELECT kind, tags::text AS tags FROM mendline.triggers"
        " WHERE kind LIKE 'health%' ORDER BY id",
    )
    assert [row["kind"] for row in told] == ["health_down", "health_recovered"]
    assert all(json.loads(row["tags"])["mendline"] == "self" for row in told)


@asynccontextmanager
async def fast_self_checks(settings: Settings) -> AsyncIterator[MonitorWorker]:
    """A monitor running the self checks every second (not every minute), down after two
    failures."""
    own = monitor.checks_of(settings)
    quick = tuple(
        c.model_copy(update={"interval": 1.0, "failure_threshold": 2, "success_threshold": 1})
        for c in own.checks
    )
    worker = MonitorWorker(
        settings,
        await connect_health(settings),
        await connect_checkins(settings),
        type(own)(quick, own.source, own.lines),
    )
    try:
        async with run_until_exit([worker]):
            yield worker
    finally:
        await worker.health.close()
        await worker.checkins.close()


async def test_a_job_failing_inside_mendline_heartbeat_turns_its_check_down_with_the_reason(
    kafka_bootstrap: str, fresh_db_url: str, tmp_path: Path
) -> None:
    checks = tmp_path / "checks.toml"
    checks.write_text(
        '[[checks]]\nname = "export"\nkind = "heartbeat"\nevery = "2s"\ngrace = "1s"\n'
    )
    settings = monitor_settings(kafka_bootstrap, fresh_db_url, checks, spool_dir=tmp_path / "spool")
    await one_partition_checkins(settings)
    shipper = make_shipper(settings, service="jobs")
    try:
        with mendline.heartbeat("export", shipper=shipper):
            pass  # a run that went well starts the schedule
        with contextlib.suppress(RuntimeError), mendline.heartbeat("export", shipper=shipper):
            raise RuntimeError("export failed: disk full")  # the next run fails
    finally:
        shipper.shutdown(5)
    async with running_checkins(settings), monitors(settings):
        await wait_until(lambda: _is(fresh_db_url, "export", "down"), 30, "the check down")
    results = await query(
        fresh_db_url,
        "SELECT success, error_kind, error FROM mendline.check_results"
        " WHERE check_name = 'export' ORDER BY scheduled_at",
    )
    assert (results[0]["success"], results[0]["error_kind"]) == (False, "failed")
    assert "RuntimeError: export failed: disk full" in results[0]["error"]
    triggers = await query(fresh_db_url, "SELECT kind, details FROM mendline.triggers")
    assert [t["kind"] for t in triggers] == ["health_down"]
    assert json.loads(triggers[0]["details"])["error_kind"] == "failed"
