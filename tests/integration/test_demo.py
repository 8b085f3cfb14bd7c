"""`mendline demo` end to end: a real web app's errors through the whole pipeline."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

import asyncpg
import pytest

from mendline.sample_app import TRAFFIC

from .kafka_helpers import unique_topic

pytestmark = pytest.mark.integration

_DEMO = (sys.executable, "-m", "mendline", "demo", "--no-interactive", "--json")

#: Secrets the sample app puts in its requests and logging context.
_SECRETS = ("hunter2", "eyJhbGciOiJIUzI1NiJ9", "4111 1111 1111 1111")


def demo_env(kafka_bootstrap: str, database_url: str | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "MENDLINE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "MENDLINE_ERRORS_TOPIC": unique_topic("demo"),
        "MENDLINE_DLQ_TOPIC": unique_topic("demo-dlq"),
        "MENDLINE_CONSUMER_GROUP": unique_topic("demo-group"),
    }
    env.pop("MENDLINE_DATABASE_URL", None)
    if database_url is not None:
        env["MENDLINE_DATABASE_URL"] = database_url
    return env


def failure_names() -> set[str]:
    return {spec.failure for spec in TRAFFIC if spec.failure is not None}


async def test_the_demo_turns_every_failure_into_an_issue_with_a_finding_and_alerts(
    kafka_bootstrap: str, fresh_db_url: str
) -> None:
    process = await asyncio.create_subprocess_exec(
        *_DEMO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=demo_env(kafka_bootstrap, fresh_db_url),
    )
    out, err = await asyncio.wait_for(process.communicate(), 240)
    stdout, stderr = out.decode(), err.decode()
    assert process.returncode == 0, stderr[-3000:]
    summary = json.loads(stdout)
    assert summary["complete"] is True and summary["problem"] is None

    # What the summary says is what PostgreSQL holds.
    conn = await asyncpg.connect(fresh_db_url)
    try:
        issues = await conn.fetch(
            "SELECT i.id, i.service, i.times_seen, f.category, f.root_cause"
            " FROM mendline.issues i LEFT JOIN mendline.issue_findings f ON f.issue_id = i.id"
        )
        events = await conn.fetchval("SELECT count(*) FROM mendline.events")
        deliveries = await conn.fetch(
            "SELECT receiver, kind, status, issue_id FROM mendline.alert_deliveries"
        )
        stored = await conn.fetchval("SELECT string_agg(e::text, ' ') FROM mendline.events e")
    finally:
        await conn.close()

    assert events == summary["events_logged"] == summary["progress"]["events"]
    assert summary["requests"] > summary["events_logged"] > 0  # some requests succeed
    # One issue per kind of failure, each with a specific root cause.
    assert len(issues) == len(failure_names()) == len(summary["issues"])
    assert {row["service"] for row in issues} == {"shop"}
    assert sum(row["times_seen"] for row in issues) == events
    assert all(row["root_cause"] for row in issues)
    assert not [row for row in issues if row["category"] == "unknown"]
    # Every new issue reached the Slack stand-in and the email one; a spike of an issue whose
    # first alert was still waiting added nothing.
    new = {(r["issue_id"], r["receiver"]) for r in deliveries if r["kind"] == "new_issue"}
    assert new == {(r["id"], name) for r in issues for name in ("demo-slack", "demo-email")}
    for row in deliveries:
        expected = "delivered" if row["kind"] == "new_issue" else "suppressed"
        assert (row["kind"], row["status"]) == (row["kind"], expected)
    assert summary["received"]["slack"] >= 1 and summary["received"]["email"] >= 1
    assert len(summary["deliveries"]) == len(deliveries)
    # Nothing the app was given in secret reached the database or the output.
    for secret in _SECRETS:
        assert secret not in stored
        assert secret not in stdout + stderr
    # The story for people went to stderr, with the SQL to explore.
    assert "mendline.issue_findings" in stderr
    assert "slack" in stderr and "email" in stderr


async def test_keep_leaves_the_embedded_database_running_until_interrupted(
    kafka_bootstrap: str,
) -> None:
    process = await asyncio.create_subprocess_exec(
        *_DEMO,
        "--keep",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=demo_env(kafka_bootstrap),  # no database URL: the demo starts its own PostgreSQL
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 240)  # once all has settled
        summary: dict[str, Any] = json.loads(line)
        assert summary["complete"] is True
        url = summary["database_url"]
        assert url and url.startswith("postgresql://")
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT count(*) FROM mendline.issue_findings") == len(
                summary["issues"]
            )
        finally:
            await conn.close()
        assert process.returncode is None  # still running, as asked
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 60) == 0
        with pytest.raises((OSError, asyncpg.PostgresError)):
            await asyncpg.connect(url, timeout=5)  # and the database went with it
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
