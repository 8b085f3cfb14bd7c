"""`mendline run`: every stage in one process, from a Kafka topic to an alert with its cause."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mendline.schemas.errors import ConfigError
from mendline.schemas.settings import Settings, load_settings
from mendline.stages import Stage, StageContext, run_pipeline
from tests.channel_servers import fake_slack
from tests.db_helpers import query

from .event_factory import encode, make_event
from .kafka_helpers import produce
from .stage_helpers import SLACK_ROUTE, consume_settings, deliveries, wait_until

pytestmark = pytest.mark.integration


async def test_run_takes_events_from_kafka_to_a_slack_alert_with_the_root_cause(
    kafka_bootstrap: str, fresh_db_url: str, tmp_path: Path
) -> None:
    settings = consume_settings(kafka_bootstrap, fresh_db_url)
    path = tmp_path / "routes.toml"
    path.write_text(SLACK_ROUTE.format(wait="10s"))
    with fake_slack() as slack:
        env = {
            **os.environ,
            "MENDLINE_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "MENDLINE_DATABASE_URL": fresh_db_url,
            "MENDLINE_ERRORS_TOPIC": settings.errors_topic,
            "MENDLINE_DLQ_TOPIC": settings.dlq_topic,
            "MENDLINE_CONSUMER_GROUP": settings.consumer_group,
            "MENDLINE_KAFKA_SESSION_TIMEOUT": "2",
            "MENDLINE_ROUTES_FILE": str(path),
            "TEST_SLACK_WEBHOOK": slack.webhook_url(),
            "MENDLINE_WEB_PORT": "0",  # the dashboard too, on a port of its own
            "MENDLINE_RELAY_PORT": "0",  # and the relay
        }
        with (tmp_path / "run.log").open("wb") as log:
            process = subprocess.Popen(  # noqa: ASYNC220 - started once, stopped below
                [sys.executable, "-m", "mendline", "run"], env=env, stderr=log
            )
            try:
                events = [make_event(1, n) for n in range(5)]
                await produce(kafka_bootstrap, settings.errors_topic, [encode(e) for e in events])
                await wait_until(lambda: len(slack.requests) == 1, 60, "the alert")
            finally:
                process.send_signal(signal.SIGTERM)
                code = await asyncio.to_thread(process.wait, 60)
        assert code == 0  # a clean stop of every stage
        text = str(slack.bodies()[0])
        assert "int()" in text and "analysis pending" not in text  # waited for the finding
    rows = await deliveries(fresh_db_url)
    assert [(r["status"], r["with_root_cause"]) for r in rows] == [("delivered", True)]
    issues = await query(fresh_db_url, "SELECT times_seen FROM mendline.issues")
    assert [r["times_seen"] for r in issues] == [5]


async def test_a_failing_stage_is_restarted_and_the_others_go_on() -> None:
    calls: list[str] = []
    stop = asyncio.Event()
    steady_stopped = asyncio.Event()

    async def flaky(settings: Settings, stop: asyncio.Event, context: StageContext) -> None:
        calls.append("flaky")
        if calls.count("flaky") < 3:
            raise RuntimeError("a bug")
        stop.set()  # third time lucky: end the run

    async def steady(settings: Settings, stop: asyncio.Event, context: StageContext) -> None:
        calls.append("steady")
        await stop.wait()
        steady_stopped.set()

    stages = {"consume": Stage(flaky), "analyze": Stage(steady)}
    await asyncio.wait_for(run_pipeline(load_settings(), stop, stages=stages), 30)
    assert calls.count("flaky") == 3 and calls.count("steady") == 1
    assert steady_stopped.is_set()


async def test_a_config_error_stops_every_stage_after_what_is_in_flight() -> None:
    stop = asyncio.Event()
    finished: list[str] = []

    async def misconfigured(settings: Settings, stop: asyncio.Event, context: StageContext) -> None:
        await asyncio.sleep(0)
        raise ConfigError("no such receiver")

    async def steady(settings: Settings, stop: asyncio.Event, context: StageContext) -> None:
        await stop.wait()
        await asyncio.sleep(0.01)  # the batch in flight
        finished.append("steady")

    stages = {"alert": Stage(misconfigured), "consume": Stage(steady)}
    with pytest.raises(ConfigError, match="no such receiver"):
        await asyncio.wait_for(run_pipeline(load_settings(), stop, stages=stages), 30)
    assert stop.is_set() and finished == ["steady"]  # not restarted; the other one finished


async def test_a_check_that_fails_starts_no_stage() -> None:
    started: list[str] = []

    async def stage(settings: Settings, stop: asyncio.Event, context: StageContext) -> None:
        started.append("stage")

    def check(settings: Settings) -> None:
        raise ConfigError("the routing file is invalid")

    stages = {"consume": Stage(stage), "alert": Stage(stage, check=check)}
    with pytest.raises(ConfigError):
        await run_pipeline(load_settings(), asyncio.Event(), stages=stages)
    assert started == []
    # ``only`` leaves out the stage whose check fails
    await run_pipeline(load_settings(), asyncio.Event(), ["consume"], stages=stages)
    assert started == ["stage"]


@pytest.mark.parametrize(
    ("only", "message"),
    [("consume,bogus", "not bogus"), (",", "not nothing")],
)
def test_run_only_names_real_stages(only: str, message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mendline", "run", "--only", only],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "stages are relay, consume, analyze, alert" in result.stderr and message in result.stderr
