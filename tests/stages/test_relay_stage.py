"""The relay as people run it: `mendline keys create` prints a DSN, `mendline relay` serves it
(ready once it holds its keys and reached Kafka), a Sentry SDK's event sent to that DSN is in
the errors topic, a revoked key is refused, and SIGTERM stops it cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys

import httpx
import pytest

from mendline.devstack import free_port
from tests.integration.kafka_helpers import read_events, unique_topic
from tests.integration.stage_helpers import wait_until

pytestmark = pytest.mark.integration

_SERVED = re.compile(r"relay \(Sentry's ingest API\) at (http://127\.0\.0\.1:\d+)/")


async def mendline(env: dict[str, str], *argv: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mendline",
        *argv,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_keys_create_a_dsn_the_relay_serves_and_revoke_refuses(
    fresh_db_url: str, kafka_bootstrap: str
) -> None:
    port = free_port()
    topic = unique_topic("relay-stage")
    env = {
        **os.environ,
        "MENDLINE_DATABASE_URL": fresh_db_url,
        "MENDLINE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "MENDLINE_ERRORS_TOPIC": topic,
        "MENDLINE_RELAY_PORT": str(port),
        "MENDLINE_RELAY_KEYS_REFRESH": "0.2",
        "MENDLINE_LOCAL_ROLE": "admin",
    }
    dsn = (await mendline(env, "keys", "create", "checkout", "--label", "node api")).strip()
    assert re.fullmatch(rf"http://[0-9a-f]{{32}}@127\.0\.0\.1:{port}/\d+", dsn)
    listed = json.loads(await mendline(env, "keys", "list", "--json"))
    assert (listed["dsn"], listed["service"], listed["label"]) == (dsn, "checkout", "node api")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mendline", "relay", env=env, stderr=asyncio.subprocess.PIPE
    )
    seen: list[str] = []
    try:
        assert process.stderr is not None
        async with asyncio.timeout(60):
            while not (found := _SERVED.search(line := (await process.stderr.readline()).decode())):
                assert line, f"the relay ended first: {''.join(seen)}"
                seen.append(line)
        key, project = re.match(r"http://(\w+)@[^/]+/(\d+)", dsn).groups()  # type: ignore[union-attr]
        url = f"{found.group(1)}/api/{project}/store/?sentry_key={key}"
        event = {"event_id": "cd" * 16, "message": "hello from curl", "level": "info"}
        async with httpx.AsyncClient(timeout=20) as client:
            answer = await client.post(url, json=event)
            assert (answer.status_code, answer.json()) == (200, {"id": "cd" * 16})
            (stored,) = await read_events(kafka_bootstrap, topic, 1)
            assert (stored["service"], stored["message"]) == ("checkout", "hello from curl")
            await mendline(env, "keys", "revoke", key)

            async def refused() -> bool:
                return (await client.post(url, json=event)).status_code == 403

            await wait_until(refused, 10, "the revoked key refused")  # keys read again
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    seen.append((await process.stderr.read()).decode())
    assert "Traceback" not in "".join(seen)
