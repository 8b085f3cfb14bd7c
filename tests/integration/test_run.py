"""`mendline run`: every stage in one process, from a Kafka topic to an alert with its cause."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mendline.stages import _supervisor as _stages
from mendline.schemas.settings import Settings, load_settings
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


async def test_a_failing_stage_is_restarted_and_the_others_go_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    stop_after = asyncio.Event()

    async def flaky(settings: Settings, stop: asyncio.Event) -> None:
        calls.append("flaky")
        if calls.count("flaky") < 3:
            raise RuntimeError("a bug")
        stop.set()  # third time lucky: end the run

    async def steady(settings: Settings, stop: asyncio.Event) -> None:
        calls.append("steady")
        await stop.wait()
        stop_after.set()

    monkeypatch.setattr(_stages, "STAGES", {"consume": flaky, "analyze": steady})
    monkeypatch.setattr(_stages, "_stop_on_signals", lambda stop: None)
    result = await asyncio.wait_for(_stages.run_stages(load_settings(), ["consume", "analyze"]), 30)
    assert result == 0
    assert calls.count("flaky") == 3 and calls.count("steady") == 1
    assert stop_after.is_set()


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
    assert "stages are consume, analyze, alert" in result.stderr and message in result.stderr
