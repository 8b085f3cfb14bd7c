"""CLI commands against real servers: topics ensure, and the demo end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from mendline.schemas.event import parse_event

from .kafka_helpers import unique_topic

pytestmark = pytest.mark.integration


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mendline", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


async def test_topics_ensure_creates_then_finds_them(kafka_bootstrap: str) -> None:
    env = {
        "MENDLINE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "MENDLINE_ERRORS_TOPIC": unique_topic("ensure"),
        "MENDLINE_DLQ_TOPIC": unique_topic("ensure-dlq"),
        "MENDLINE_TOPIC_PARTITIONS": "3",
    }
    first = run("topics", "ensure", env=env)
    assert first.returncode == 0, first.stderr
    assert f"{env['MENDLINE_ERRORS_TOPIC']}: created" in first.stdout
    second = run("topics", "ensure", env=env)
    assert f"{env['MENDLINE_DLQ_TOPIC']}: exists" in second.stdout
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([env["MENDLINE_ERRORS_TOPIC"]])
    finally:
        await admin.close()
    assert len(described[0]["partitions"]) == 3


def test_topics_ensure_with_kafka_unreachable_is_one_clear_error() -> None:
    result = run("topics", "ensure", env={"MENDLINE_KAFKA_BOOTSTRAP": "127.0.0.1:9"})
    assert result.returncode == 1
    assert "KafkaConnectionError" in result.stderr and "Traceback" not in result.stderr


def test_the_demo_shows_every_sample_error_arriving_scrubbed(kafka_bootstrap: str) -> None:
    result = run(
        "demo",
        "--json",
        env={
            "MENDLINE_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "MENDLINE_ERRORS_TOPIC": unique_topic("demo"),
        },
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith('{"schema_version"')]
    events = [parse_event(line) for line in lines]
    assert len(events) == 4
    assert {e.exceptions[-1].type for e in events} == {
        "ValueError",
        "KeyError",
        "ZeroDivisionError",
        "PaymentDeclined",
    }
    assert "hunter2" not in "\n".join(lines)
    assert all(json.loads(line)["service"] == "shop" for line in lines)
