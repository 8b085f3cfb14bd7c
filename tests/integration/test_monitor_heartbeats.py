"""The monitor's heartbeats on the real PostgreSQL and broker: a job host's fast clock does not
move the stream clock ahead, a check counts its own environment's check-ins, a check-ins topic
of several partitions is not judged, a failing check-ins consumer is started again, two monitors
count a verdict once, a bad checks file on SIGHUP is told once."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mendline.devstack import free_port
from mendline.schemas.checkin import PreparedCheckIn
from mendline.schemas.prepared import BatchResult
from mendline.sinks.postgres import CheckinStore, connect_checkins
from mendline.stages import Telemetry, monitor
from mendline.stages.monitor import CheckinReader
from tests.db_helpers import query
from tests.probe_servers import http_target

from .kafka_helpers import create_topic, partition_count, produce
from .stage_helpers import (
    checkin_settings,
    http_check,
    monitor_settings,
    monitors,
    one_partition_checkins,
    running_checkins,
    wait_until,
)

pytestmark = pytest.mark.integration


def heartbeat(name: str, **fields: str) -> str:
    """A [[checks]] table of a heartbeat check; ``fields`` as TOML strings."""
    more = "".join(f'{key} = "{value}"\n' for key, value in fields.items())
    return f'[[checks]]\nname = "{name}"\nkind = "heartbeat"\n{more}\n'


def checkin(check: str, at: datetime | None = None, **fields: Any) -> bytes:
    """A CheckIn v1 record as a job sends it, dated ``at`` (now) by the job's clock."""
    doc = {
        "schema_version": 1,
        "checkin_id": str(uuid.uuid4()),
        "check": check,
        "status": "ok",
        "timestamp": (at or datetime.now(UTC)).isoformat(),
        **fields,
    }
    return json.dumps(doc).encode()


async def results(url: str, name: str) -> list[dict[str, Any]]:
    rows = await query(
        url,
        "SELECT success, error_kind FROM mendline.check_results WHERE check_name = $1"
        " ORDER BY scheduled_at",
        name,
    )
    return [dict(row) for row in rows]


async def clock(url: str) -> datetime | None:
    rows = await query(url, "SELECT newest FROM mendline.checkin_clock WHERE environment = '*'")
    return rows[0]["newest"] if rows else None


async def clock_after(url: str, at: datetime) -> bool:
    newest = await clock(url)
    return newest is not None and newest > at


async def test_a_checkin_from_a_fast_clock_does_not_make_another_job_missed(
    kafka_bootstrap: str, fresh_db_url: str, tmp_path: Path
) -> None:
    checks = tmp_path / "checks.toml"
    checks.write_text(
        heartbeat("every-minute", every="1m", grace="1s") + heartbeat("hourly", every="1h")
    )
    settings = monitor_settings(kafka_bootstrap, fresh_db_url, checks)
    await one_partition_checkins(settings)
    async with running_checkins(settings), monitors(settings):
        # One job runs now; another, on a host whose clock is 4 minutes fast, too.
        ahead = datetime.now(UTC) + timedelta(minutes=4)
        await produce(
            kafka_bootstrap,
            settings.checkins_topic,
            [checkin("every-minute"), checkin("hourly", ahead)],
        )
        sent = datetime.now(UTC)
        # Ticks sent after both check-ins were read (in order); the monitor judges at each.
        await wait_until(
            lambda: clock_after(fresh_db_url, sent + timedelta(seconds=2)), 30, "ticks"
        )
        await asyncio.sleep(1.0)  # a few judging passes more
        newest = await clock(fresh_db_url)
    assert newest is not None and newest < ahead
    # The every-minute job's next run is not due for a minute: nothing judged, no "missed".
    assert await results(fresh_db_url, "every-minute") == []
    (fast,) = await query(
        fresh_db_url, "SELECT timestamp, clamped FROM mendline.checkins WHERE check_name = 'hourly'"
    )
    assert (fast["timestamp"], fast["clamped"]) == (ahead, False)  # its own timestamp is kept


async def test_a_heartbeat_counts_only_the_checkins_of_its_environment(
    kafka_bootstrap: str, fresh_db_url: str, tmp_path: Path
) -> None:
    checks = tmp_path / "checks.toml"
    checks.write_text(
        heartbeat("export", every="1s", grace="1s")  # production
        + heartbeat("sync", every="1s", grace="1s", environment="staging")
    )
    settings = monitor_settings(kafka_bootstrap, fresh_db_url, checks)
    await one_partition_checkins(settings)
    stop = asyncio.Event()

    async def staging_jobs() -> None:
        while not stop.is_set():
            await produce(
                kafka_bootstrap,
                settings.checkins_topic,
                [checkin(name, environment="staging") for name in ("export", "sync")],
            )
            await asyncio.sleep(0.3)

    async with running_checkins(settings), monitors(settings):
        await produce(kafka_bootstrap, settings.checkins_topic, [checkin("export")])
        jobs = asyncio.create_task(staging_jobs())
        try:
            await wait_until(
                lambda: any_result(fresh_db_url, "export", "missed"), 30, "export missed"
            )
            await wait_until(lambda: any_result(fresh_db_url, "sync", None), 30, "sync's runs")
        finally:
            stop.set()
            await jobs
    # Staging's runs of "export" every 0.3 s did not cover production's slots.
    assert {r["error_kind"] for r in await results(fresh_db_url, "export")} == {"missed"}
    assert all(r["success"] for r in await results(fresh_db_url, "sync"))


async def any_result(url: str, name: str, error_kind: str | None) -> bool:
    return any(r["error_kind"] == error_kind for r in await results(url, name))


async def test_heartbeats_on_a_checkins_topic_of_three_partitions_are_not_judged(
    kafka_bootstrap: str, fresh_db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="mendline.monitor")
    async with http_target() as target:
        checks = tmp_path / "checks.toml"
        checks.write_text(
            heartbeat("export", every="1s", grace="1s") + http_check("api", target.url)
        )
        settings = monitor_settings(kafka_bootstrap, fresh_db_url, checks)
        await create_topic(kafka_bootstrap, settings.checkins_topic, 3)
        async with running_checkins(settings), monitors(settings) as running:
            sent = datetime.now(UTC)
            await produce(kafka_bootstrap, settings.checkins_topic, [checkin("export", sent)])
            # The export job stopped after one run: on one partition, missed within 2 s.
            await wait_until(
                lambda: clock_after(fresh_db_url, sent + timedelta(seconds=4)), 30, "ticks"
            )
            await asyncio.sleep(1.0)  # a few judging passes more
            # Not ready (/readyz), for as long as it lasts: nothing else would tell.
            waiting = running[0].waiting_for()
        probed = await results(fresh_db_url, "api")
    assert await results(fresh_db_url, "export") == []
    assert len(probed) >= 2  # the probed checks go on
    told = [r.getMessage() for r in caplog.records if r.name == "mendline.monitor"]
    assert len(told) == 1
    assert f"{settings.checkins_topic} has 3 partitions" in told[0]
    assert "mendline topics ensure" in told[0]
    assert waiting is not None
    assert waiting.startswith(
        f"heartbeats not judged: the check-ins topic {settings.checkins_topic} has 3 partitions"
    )
    assert "mendline topics ensure" in waiting


async def test_a_monitor_whose_ticks_fail_says_its_heartbeats_are_not_judged(
    kafka_bootstrap: str, fresh_db_url: str, tmp_path: Path
) -> None:
    checks = tmp_path / "checks.toml"
    checks.write_text(heartbeat("export", every="1s", grace="1s"))
    # Its ticks cannot be sent (no broker there), as when its producer is refused the topic
    # while the jobs' check-ins still move the clock.
    nowhere = f"127.0.0.1:{free_port()}"
    settings = monitor_settings(nowhere, fresh_db_url, checks, monitor_tick_interval=0.2)
    async with monitors(settings) as running:
        await wait_until(lambda: running[0].waiting_for() is not None, 30, "not ready")
        waiting = running[0].waiting_for()
    assert waiting is not None
    assert waiting.startswith(
        f"heartbeats not judged: no clock tick sent to the check-ins topic"
        f" {settings.checkins_topic} for "
    )
    assert not running[0].topics_ensured


async def test_a_monitor_started_before_the_checkins_topic_exists_makes_it_with_one_partition(
    kafka_bootstrap: str, fresh_db_url: str, tmp_path: Path
) -> None:
    checks = tmp_path / "checks.toml"
    checks.write_text(heartbeat("export", every="1s", grace="1s"))
    settings = monitor_settings(kafka_bootstrap, fresh_db_url, checks)
    # No `mendline topics ensure`, and the stage's own try at the start did not happen (Kafka
    # was out then): its first tick makes the topic, not the broker on first use.
    async with monitors(settings) as running:
        await wait_until(lambda: running[0].topics_ensured, 30, "the topics made")
        async with running_checkins(settings):
            await produce(kafka_bootstrap, settings.checkins_topic, [checkin("export")])
            await wait_until(lambda: any_result(fresh_db_url, "export", "missed"), 30, "judged")
            waiting = running[0].waiting_for()
    assert running[0].topics_ensured
    assert await partition_count(kafka_bootstrap, settings.checkins_topic) == 1
    assert waiting is None


class FaultyStore(CheckinStore):
    """The real store whose writes fail as a bug of ours would, until ``repaired``."""

    repaired = False

    async def write(self, batch: list[PreparedCheckIn]) -> BatchResult:
        if not self.repaired:
            raise RuntimeError("a bug in the store")
        return await super().write(batch)


async def test_a_failing_checkins_consumer_is_started_again_and_the_clock_moves_on(
    kafka_bootstrap: str, fresh_db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="mendline.monitor")
    settings = checkin_settings(kafka_bootstrap, fresh_db_url)
    await one_partition_checkins(settings)
    store = FaultyStore((await connect_checkins(settings)).pool)
    reader = CheckinReader(settings, store)
    stop = asyncio.Event()
    reading = asyncio.create_task(reader.run(stop))
    await asyncio.sleep(0)  # the consumer made, not yet in its group
    assert reader.waiting_for() == "the check-ins consumer is connecting to Kafka"
    try:
        await wait_until(lambda: reader.waiting_for() is None, 60, "the consumer in its group")
        sent = datetime.now(UTC)
        await produce(kafka_bootstrap, settings.checkins_topic, [checkin("export", sent)])
        await wait_until(lambda: reader.waiting_for() is not None, 60, "the consumer down")
        assert reader.waiting_for() == "the check-ins consumer is down (RuntimeError)"
        assert await clock(fresh_db_url) is None
        store.repaired = True
        await wait_until(lambda: clock(fresh_db_url), 60, "the clock moving again")
        await wait_until(lambda: reader.waiting_for() is None, 60, "the consumer up")
    finally:
        stop.set()
        await asyncio.wait_for(reading, 30)
        await store.close()
    assert await clock(fresh_db_url) == sent
    assert reader.restarts >= 1
    assert any("check-ins consumer failed" in r.getMessage() and r.exc_info for r in caplog.records)


async def test_two_monitors_judging_a_heartbeat_count_each_verdict_once(
    kafka_bootstrap: str, fresh_db_url: str, tmp_path: Path
) -> None:
    checks = tmp_path / "checks.toml"
    checks.write_text(heartbeat("export", every="1s", grace="1s"))
    settings = monitor_settings(kafka_bootstrap, fresh_db_url, checks)
    await one_partition_checkins(settings)
    telemetry = Telemetry()  # the two monitors' metrics, as a scrape of both adds them up
    together = monitors(settings, count=2, context=telemetry.stage("monitor"))
    async with running_checkins(settings), together as running:
        await produce(kafka_bootstrap, settings.checkins_topic, [checkin("export")])
        await wait_until(lambda: verdicts(fresh_db_url, at_least=4), 30, "four verdicts")
    stored = await query(
        fresh_db_url, "SELECT count(*) AS n FROM mendline.check_results WHERE check_name = 'export'"
    )
    assert sum(w.stats.heartbeat_verdicts for w in running) == stored[0]["n"]
    counted = [
        sample.value
        for family in text_string_to_metric_families(telemetry.metrics.render())
        for sample in family.samples
        if sample.name == "mendline_check_results_total" and sample.labels["check"] == "export"
    ]
    assert sum(counted) == stored[0]["n"]


async def verdicts(url: str, at_least: int) -> bool:
    return len(await results(url, "export")) >= at_least


async def test_a_bad_checks_file_reloaded_on_sighup_is_told_once(
    kafka_bootstrap: str, fresh_db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="mendline.monitor")
    checks = tmp_path / "checks.toml"
    checks.write_text(heartbeat("export", every="1h"))
    settings = monitor_settings(kafka_bootstrap, fresh_db_url, checks)
    async with monitors(settings) as running:
        await wait_until(lambda: synced(fresh_db_url), 30, "the checks synced")
        checks.write_text('[[checks]]\nname = "x"\nkind = "htp"\n')
        running[0]._reload.set()  # as SIGHUP does
        await wait_until(lambda: not_reloaded(caplog), 30, "the error")
        # Past the next looks at the file's modification time (checks_reload_interval).
        await asyncio.sleep(3 * settings.checks_reload_interval)
    assert not_reloaded(caplog) == 1
    assert running[0].stats.reloads == 0


async def synced(url: str) -> bool:
    rows = await query(url, "SELECT name FROM mendline.checks")
    return [r["name"] for r in rows] == ["export"]


def not_reloaded(caplog: pytest.LogCaptureFixture) -> int:
    return sum("was not reloaded" in r.getMessage() for r in caplog.records)


async def test_the_monitor_stage_creates_the_checkins_topic_with_one_partition_and_reads_it(
    kafka_bootstrap: str, fresh_db_url: str, tmp_path: Path
) -> None:
    checks = tmp_path / "checks.toml"
    checks.write_text(heartbeat("export", every="1s", grace="1s"))
    settings = monitor_settings(kafka_bootstrap, fresh_db_url, checks)
    stop = asyncio.Event()
    stage = asyncio.create_task(monitor.run(settings, stop, Telemetry().stage("monitor")))
    try:
        # Nothing made the topic: the stage does, before its consumer subscribes.
        await wait_until(
            lambda: partition_count(kafka_bootstrap, settings.checkins_topic), 30, "topic"
        )
        await produce(kafka_bootstrap, settings.checkins_topic, [checkin("export")])
        # Read by the stage's consumer, and its ticks move the clock past it.
        sent = datetime.now(UTC)
        await wait_until(lambda: _stored(fresh_db_url, "export"), 30, "the check-in stored")
        await wait_until(lambda: clock_after(fresh_db_url, sent), 30, "the clock moving")
    finally:
        stop.set()
        await asyncio.wait_for(stage, 60)
    assert await partition_count(kafka_bootstrap, settings.checkins_topic) == 1


async def _stored(url: str, name: str) -> bool:
    return bool(await query(url, "SELECT 1 FROM mendline.checkins WHERE check_name = $1", name))


async def test_a_heartbeat_restored_while_the_monitor_runs_is_not_judged_over_its_absence(
    kafka_bootstrap: str, fresh_db_url: str, tmp_path: Path
) -> None:
    checks = tmp_path / "checks.toml"
    job, other = heartbeat("job", every="1s", grace="1s"), heartbeat("other", every="1h")
    checks.write_text(job + other)
    settings = monitor_settings(kafka_bootstrap, fresh_db_url, checks)
    await one_partition_checkins(settings)
    running_job = asyncio.Event()

    async def the_job() -> None:  # runs every half second while running_job is set
        while True:
            await running_job.wait()
            await produce(kafka_bootstrap, settings.checkins_topic, [checkin("job")])
            await asyncio.sleep(0.5)

    async def retired(yes: bool) -> bool:
        rows = await query(
            fresh_db_url, "SELECT retired_at FROM mendline.checks WHERE name = 'job'"
        )
        return (rows[0]["retired_at"] is not None) == yes

    job_task = asyncio.create_task(the_job())
    try:
        async with running_checkins(settings), monitors(settings) as running:
            running_job.set()
            await wait_until(lambda: _judged_up(fresh_db_url, "job"), 30, "the job judged up")
            checks.write_text(other)  # taken out of the file
            running[0]._reload.set()  # as SIGHUP does
            await wait_until(lambda: retired(True), 20, "the job retired")
            running_job.clear()  # and the job stops for a while
            await asyncio.sleep(4.0)
            running_job.set()  # runs again, and is put back
            checks.write_text(job + other)
            running[0]._reload.set()
            await wait_until(lambda: retired(False), 20, "the job restored")
            await asyncio.sleep(4.0)
    finally:
        job_task.cancel()
    judged = await results(fresh_db_url, "job")
    assert len(judged) >= 2 and all(r["error_kind"] != "missed" for r in judged), judged


async def _judged_up(url: str, name: str) -> bool:
    return any(r["success"] for r in await results(url, name))
