"""/healthz, /readyz and /metrics, asked over real HTTP of the real stages against the real
broker and database (and a private database stopped and started under them)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mendline.devstack import EmbeddedPostgres, free_port
from mendline.schemas.errors import ConfigError
from mendline.schemas.settings import Settings, load_settings
from mendline.stages import CONTENT_TYPE, Telemetry, run_pipeline, serving_endpoints
from tests.channel_servers import FakeSlack
from tests.cli_helpers import cli_env
from tests.llm_server import FakeLLM

from .event_factory import encode, make_event
from .kafka_helpers import produce, unique_topic
from .stage_helpers import (
    SLACK_ROUTE,
    analyze_settings,
    consume_settings,
    ingest,
    issue_events,
    wait_until,
)

pytestmark = pytest.mark.integration


async def get(url: str) -> tuple[int, str, str]:
    """Status, body and Content-Type of a GET of ``url``."""
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
        return response.status, await response.text(), response.headers["Content-Type"]


async def samples(base: str) -> dict[str, float]:
    """``/metrics`` parsed by Prometheus' parser: ``name{label="value",...}`` -> value."""
    status, text, _ = await get(f"{base}/metrics")
    assert status == 200
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            found[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return found


async def readiness(base: str) -> tuple[int, dict[str, Any]]:
    status, body, _ = await get(f"{base}/readyz")
    document: dict[str, Any] = json.loads(body)
    return status, document


@asynccontextmanager
async def pipeline(settings: Settings, only: list[str]) -> AsyncIterator[str]:
    """The ``only`` stages run as ``mendline run`` runs them, serving the endpoints, until
    the block ends; yields the endpoints' base URL."""
    telemetry, stop = Telemetry(), asyncio.Event()
    async with serving_endpoints(settings, telemetry):
        task = asyncio.create_task(run_pipeline(settings, stop, only, telemetry=telemetry))
        try:
            yield f"http://{settings.metrics_host}:{settings.metrics_port}"
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)


async def test_the_endpoints_answer_and_the_counters_follow_the_events(
    kafka_bootstrap: str,
    fresh_db_url: str,
    slack: FakeSlack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    routes = tmp_path / "routes.toml"
    routes.write_text(SLACK_ROUTE.format(wait="0s"))
    monkeypatch.setenv("TEST_SLACK_WEBHOOK", slack.webhook_url())
    settings = consume_settings(
        kafka_bootstrap,
        fresh_db_url,
        metrics_port=free_port(),
        routes_file=routes,
        analyze_poll_interval=0.2,
        alert_poll_interval=0.2,
    )
    async with pipeline(settings, ["consume", "analyze", "alert"]) as base:
        assert (await get(f"{base}/healthz"))[:2] == (200, "ok\n")
        await wait_until(lambda: _is_ready(base), 60, "the stages ready")
        assert await readiness(base) == (
            200,
            {"ready": True, "stages": dict.fromkeys(("alert", "analyze", "consume"), "ready")},
        )
        before = await samples(base)
        assert before["mendline_events_received_total"] == 0
        events = [make_event(1, n) for n in range(3)] + [make_event(2, 0)]
        values = [encode(e) for e in events]
        await produce(kafka_bootstrap, settings.errors_topic, [*values, b"not json"])
        await wait_until(lambda: _sample_is(base, "mendline_findings_total", 2), 60, "findings")
        await produce(kafka_bootstrap, settings.errors_topic, values)  # a replay
        await wait_until(lambda: _sample_is(base, "mendline_events_received_total", 9), 60, "all")
        await wait_until(
            lambda: _sample_is(base, 'mendline_deliveries_total{status="delivered"}', 2), 60, "sent"
        )
        after = await samples(base)
        _, _, content_type = await get(f"{base}/metrics")
    assert content_type == CONTENT_TYPE
    topic = settings.errors_topic
    assert {
        "mendline_events_received_total": 9,
        "mendline_events_stored_total": 4,
        "mendline_events_duplicate_total": 4,
        'mendline_events_dead_lettered_total{reason="not_json"}': 1,
        'mendline_triggers_total{kind="new_issue"}': 2,
        'mendline_findings_total{analyser="heuristic"}': 2,
        f'mendline_consumer_lag{{topic="{topic}"}}': 0,
        'mendline_stage_ready{stage="consume"}': 1,
        'mendline_stage_ready{stage="analyze"}': 1,
        'mendline_deliveries_total{status="delivered"}': 2,
        'mendline_deliveries_total{status="failed"}': 0,
    }.items() <= after.items()
    assert after["mendline_alerts_routed_total"] >= 2  # and the findings that followed them
    assert after["mendline_alert_messages_total"] >= 1  # one digest, or one message each
    assert slack.requests  # what was counted as sent was
    with pytest.raises(aiohttp.ClientConnectionError):  # stopped with the stages
        await get(f"{base}/healthz")


async def test_the_llm_calls_their_tokens_and_cost_are_counted(
    fresh_db_url: str, llm: FakeLLM
) -> None:
    # A dollar a token each way: the cost is the tokens.
    settings = analyze_settings(
        fresh_db_url, llm, metrics_port=free_port(), llm_input_price=1e6, llm_output_price=1e6
    )
    await ingest(settings, issue_events(range(2)))
    async with pipeline(settings, ["analyze"]) as base:
        await wait_until(lambda: _sample_is(base, "mendline_findings_total", 2), 60, "findings")
        found = await samples(base)
    assert len(llm.requests) == 2  # the fake answers 120 prompt and 40 completion tokens
    assert {
        'mendline_llm_requests_total{outcome="ok"}': 2,
        'mendline_llm_tokens_total{direction="prompt"}': 240,
        'mendline_llm_tokens_total{direction="completion"}': 80,
        "mendline_llm_cost_usd_total": 320,
        'mendline_findings_total{analyser="llm"}': 2,
        "mendline_analysis_claimed_total": 2,
    }.items() <= found.items()


async def test_the_monitor_counts_each_checks_results_and_how_long_they_took(
    kafka_bootstrap: str, fresh_db_url: str, tmp_path: Path
) -> None:
    port, closed = free_port(), free_port()
    checks = tmp_path / "checks.toml"
    every = 'interval = "1s"\ntimeout = "2s"\n'
    checks.write_text(
        f'[[checks]]\nname = "itself"\nkind = "http"\nurl = "http://127.0.0.1:{port}/healthz"\n'
        f"{every}"
        f'[[checks]]\nname = "gone"\nkind = "http"\nurl = "http://127.0.0.1:{closed}/"\n{every}'
    )
    settings = load_settings(
        kafka_bootstrap=kafka_bootstrap,
        database_url=fresh_db_url,
        checks_file=checks,
        self_checks=False,
        monitor_poll_interval=0.1,
        checkins_topic=unique_topic("checkins"),
        checkins_dlq_topic=unique_topic("checkins-dlq"),
        checkins_group=unique_topic("checkins-group"),
        metrics_port=port,
    )
    itself = 'mendline_check_results_total{check="itself",result="success"}'
    gone = 'mendline_check_results_total{check="gone",result="refused"}'
    async with pipeline(settings, ["monitor"]) as base:
        await wait_until(lambda: _is_ready(base), 60, "the monitor ready")
        await wait_until(lambda: _both_counted(base, itself, gone), 60, "both checks run")
        found = await samples(base)
    durations = 'mendline_check_duration_seconds_count{check="itself"}'
    assert found[durations] == found[itself]  # one duration a result
    assert found['mendline_check_duration_seconds_sum{check="gone"}'] >= 0


async def test_readyz_is_503_while_the_database_is_out_and_200_once_it_is_back(
    kafka_bootstrap: str,
    postgres_factory: Callable[..., EmbeddedPostgres],
    slack: FakeSlack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = postgres_factory(start=False)
    routes = tmp_path / "routes.toml"
    routes.write_text(SLACK_ROUTE.format(wait="10s"))
    monkeypatch.setenv("TEST_SLACK_WEBHOOK", slack.webhook_url())
    settings = consume_settings(
        kafka_bootstrap,
        server.url,
        metrics_port=free_port(),
        routes_file=routes,
        analyze_poll_interval=0.2,
        alert_poll_interval=0.2,
        outage_retry_max=1.0,  # the workers back within a second of the outage's end
    )
    async with pipeline(settings, ["consume", "analyze", "alert"]) as base:
        await wait_until(lambda: _status_is(base, 503), 30, "an answer")
        # The consume stage creates its topics first (Kafka is up): then it waits too.
        await wait_until(lambda: _all_waiting_for_postgres(base), 30, "every stage waiting")
        status, body = await readiness(base)
        assert (status, body["ready"]) == (503, False)
        assert body["stages"] == dict.fromkeys(
            ("alert", "analyze", "consume"), "connecting to PostgreSQL"
        )
        assert (await get(f"{base}/healthz"))[0] == 200  # alive all the same
        assert (await samples(base))['mendline_stage_ready{stage="consume"}'] == 0

        server.start()
        await wait_until(lambda: _is_ready(base), 60, "ready once the database is up")

        server.stop()  # an outage while running: the consumer pauses at its next batch
        await produce(kafka_bootstrap, settings.errors_topic, [encode(make_event(1, 0))])
        await wait_until(lambda: _none_ready(base), 60, "no stage ready during the outage")
        status, body = await readiness(base)
        assert body["stages"]["consume"] == "waiting out an outage of PostgreSQL or the DLQ"
        # The workers wait it out too (and say so) or, when the driver's error on the pool's
        # broken connection is not one known as an outage (asyncpg's InternalClientError, seen
        # here now and then), fail and are restarted, connecting patiently: not ready anyway.
        assert {body["stages"]["alert"], body["stages"]["analyze"]} <= _OUTAGE_STATES
        assert (await readiness(base))[0] == 503
        server.start()
        await wait_until(lambda: _is_ready(base), 60, "ready again after the outage")


async def test_a_port_in_use_is_a_config_error_that_says_what_to_do() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot serve /metrics on 127.0.0.1:{port}") as err:
            async with serving_endpoints(load_settings(metrics_port=port), Telemetry()):
                pytest.fail("served on a port in use")
        assert err.value.hint is not None and "MENDLINE_METRICS_PORT" in err.value.hint

        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "mendline", "analyze"],
            env={**os.environ, "MENDLINE_METRICS_PORT": str(port)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"mendline: cannot serve /metrics on 127.0.0.1:{port}" in result.stderr
    assert "hint: another process listens there" in result.stderr
    assert "Traceback" not in result.stderr


async def test_mendline_run_serves_the_endpoints_and_stops_cleanly(
    kafka_bootstrap: str, fresh_db_url: str, tmp_path: Path
) -> None:
    settings = consume_settings(kafka_bootstrap, fresh_db_url)
    port = free_port()
    env = {**os.environ, **cli_env(settings), "MENDLINE_METRICS_PORT": str(port)}
    base = f"http://127.0.0.1:{port}"
    with (tmp_path / "run.log").open("wb") as log:
        process = subprocess.Popen(  # noqa: ASYNC220 - started once, stopped below
            [sys.executable, "-m", "mendline", "run", "--only", "consume,analyze"],
            env=env,
            stderr=log,
        )
        try:
            await wait_until(lambda: _is_ready(base), 60, "mendline run ready")
            assert "mendline_events_received_total" in await samples(base)
        finally:
            process.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(process.wait, 60)
    assert code == 0
    with pytest.raises(aiohttp.ClientConnectionError):
        await get(f"{base}/healthz")


async def _is_ready(base: str) -> bool:
    try:
        return (await get(f"{base}/readyz"))[0] == 200
    except aiohttp.ClientConnectionError:  # not listening yet
        return False


async def _all_waiting_for_postgres(base: str) -> bool:
    stages = (await readiness(base))[1]["stages"]
    return set(stages.values()) == {"connecting to PostgreSQL"}


async def _status_is(base: str, status: int) -> bool:
    try:
        return (await get(f"{base}/readyz"))[0] == status
    except aiohttp.ClientConnectionError:
        return False


async def _sample_is(base: str, prefix: str, wanted: float) -> bool:
    found = await samples(base)
    return sum(v for k, v in found.items() if k.startswith(prefix)) == wanted


_OUTAGE_STATES = {
    "waiting out an outage of PostgreSQL",
    "failed; restarting",
    "connecting to PostgreSQL",
}


async def _none_ready(base: str) -> bool:
    _, body = await readiness(base)
    stages = body["stages"]
    return (
        stages["consume"] == "waiting out an outage of PostgreSQL or the DLQ"
        and {stages["alert"], stages["analyze"]} <= _OUTAGE_STATES
    )


async def _both_counted(base: str, *names: str) -> bool:
    found = await samples(base)
    return all(found.get(name, 0) >= 1 for name in names)
