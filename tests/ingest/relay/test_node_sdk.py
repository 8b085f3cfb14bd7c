"""The real @sentry/node SDK (npm, run by the machine's Node.js) pointed at the relay: its
events arrive converted and group as one issue; a rate limit makes it back off by itself; a
Kafka outage is answered 503."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from mendline.devstack import KafkaBroker
from tests.db_helpers import store_events
from tests.ingest.relay.conftest import ServedRelay, relay_settings, serve
from tests.integration.kafka_helpers import read_events

pytestmark = pytest.mark.integration

NODE_DIR = Path(__file__).with_name("node")
_INSTALL = "npm ci --prefix tests/ingest/relay/node (the README's test command runs it)"


async def send(dsn: str, scenario: str, count: int = 0) -> list[str | None]:
    """Run the SDK's script to its end (it flushes and closes); the ids it captured."""
    node = shutil.which("node")
    assert node is not None, "Node.js is not on this machine: install nodejs"
    assert (NODE_DIR / "node_modules" / "@sentry" / "node").is_dir(), f"run {_INSTALL}"
    process = await asyncio.create_subprocess_exec(
        node,
        str(NODE_DIR / "send.js"),
        dsn,
        scenario,
        str(count),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    ids: list[str | None] = json.loads(out)
    return ids


async def test_node_errors_arrive_chained_and_group_as_one_issue(
    served_relay: ServedRelay, fresh_db_url: str
) -> None:
    ids = await send(served_relay.dsn, "errors")
    events = await read_events(
        served_relay.settings.kafka_bootstrap, served_relay.settings.errors_topic, 3
    )
    assert sorted(e["event_id"] for e in events) == sorted(i for i in ids if i)
    errors = [e for e in events if e["exceptions"]]
    (message,) = [e for e in events if not e["exceptions"]]
    assert message["message"] == "payment provider slow" and message["level"] == "warning"
    for event in errors:
        assert [x["type"] for x in event["exceptions"]] == ["TypeError", "Error"]
        assert event["platform"] == "node" and event["release"] == "api@2.0.1"
        cause = event["exceptions"][0]["frames"][-1]
        assert cause["function"] == "loadOrder" and cause["in_app"] is True
        assert cause["context_line"].strip() == "return order.items.length;"
    await store_events(fresh_db_url, errors)
    conn = await asyncpg.connect(fresh_db_url)
    try:
        issues = await conn.fetch("SELECT title, culprit, times_seen FROM mendline.issues")
    finally:
        await conn.close()
    assert [tuple(i) for i in issues] == [("Error: order lookup failed", "send.handle", 2)]


async def test_the_node_sdk_backs_off_when_rate_limited(
    fresh_db_url: str, kafka_bootstrap: str
) -> None:
    settings = relay_settings(fresh_db_url, kafka_bootstrap)
    async for served in serve(settings, rate_limit=2):
        ids = await send(served.dsn, "many", 6)
        stats = served.relay.stats
        assert len(ids) == 6
        # Two taken; the third told 429 with X-Sentry-Rate-Limits; the SDK then kept the
        # rest to itself for the minute (none reached the relay), and said so.
        assert (stats.events, stats.refused.get("rate_limited")) == (2, 1)
        assert stats.discarded.get(("ratelimit_backoff", "error")) == 3


async def test_a_kafka_outage_is_answered_503(
    fresh_db_url: str, kafka_broker_factory: Callable[..., KafkaBroker]
) -> None:
    broker = kafka_broker_factory()
    settings = relay_settings(fresh_db_url, broker.bootstrap, relay_produce_timeout=2.0)
    async for served in serve(settings):
        broker.stop()
        await send(served.dsn, "many", 1)
        stats = served.relay.stats
        # Nothing accepted (the Node SDK drops what a 503 answered; it reports only 413s).
        assert stats.refused.get("kafka_unavailable") == 1 and stats.events == 0
