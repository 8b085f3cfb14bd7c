"""Silences and disabled receivers in the alert stage, on real PostgreSQL and a loopback Slack."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, redirect_stdout
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mendline.analyzers.policy import parse_matcher
from mendline.schemas.errors import ConfigError, PermissionDenied, SilenceNotFound
from mendline.schemas.people import Actor
from mendline.schemas.settings import Settings, load_settings
from mendline.sinks.channels import make_channel
from mendline.sinks.postgres import SilenceStore, append_audit, connect_alerts, migrated_pool
from mendline.sinks.routing import load_routes
from mendline.stages import Telemetry
from mendline.stages import alert as alert_stage
from mendline.stages.alert import AlertWorker
from tests.channel_servers import FakeSlack
from tests.db_helpers import RESPONDER, query

from .stage_helpers import (
    SLACK_ROUTE,
    deliveries,
    ingest,
    issue_events,
    run_until_exit,
    settled,
    wait_until,
)

pytestmark = pytest.mark.integration
VIEWER = Actor(name="vic", role="viewer", auth="local")
SHIPPED_SECRETS = (
    "MENDLINE_SLACK_WEBHOOK_URL",
    "MENDLINE_PAGERDUTY_ROUTING_KEY",
    "MENDLINE_SMTP_USERNAME",
    "MENDLINE_SMTP_PASSWORD",
)


def settings_for(url: str, routes_file: Path | None, **extra: Any) -> Settings:
    return load_settings(
        database_url=url, routes_file=routes_file, alert_poll_interval=0.2, **extra
    )


@asynccontextmanager
async def silences(url: str) -> AsyncIterator[SilenceStore]:
    pool = await migrated_pool(url, 2)
    try:
        yield SilenceStore(pool, append_audit, origin="test")
    finally:
        await pool.close()


@asynccontextmanager
async def alerting(settings: Settings, environ: dict[str, str]) -> AsyncIterator[AlertWorker]:
    table = load_routes(settings.routes_file)
    channels = {n: make_channel(n, r, environ) for n, r in table.receivers.items()}
    worker = AlertWorker(settings, await connect_alerts(settings), table, channels)
    try:
        async with run_until_exit([worker]):
            yield worker
    finally:
        for channel in channels.values():
            await channel.aclose()
        await worker.store.pool.close()


def routes(tmp_path: Path, wait: str = "0s") -> Path:
    path = tmp_path / "routes.toml"
    path.write_text(SLACK_ROUTE.format(wait=wait))
    return path


async def test_a_silenced_alert_is_recorded_not_sent_and_after_expiry_alerts_go_out(
    fresh_db_url: str, slack: FakeSlack, tmp_path: Path
) -> None:
    settings = settings_for(fresh_db_url, routes(tmp_path))
    env = {"TEST_SLACK_WEBHOOK": slack.webhook_url()}
    async with silences(fresh_db_url) as store:
        made = await store.add(
            RESPONDER,
            [parse_matcher("service=api"), parse_matcher("severity=~error|critical")],
            datetime.now(UTC) + timedelta(hours=2),
            "deploying api",
        )
        await ingest(settings, issue_events(range(1)))
        async with alerting(settings, env):
            await wait_until(
                settled(fresh_db_url, 1, "delivered", "suppressed"), 15, "the silenced alert"
            )
            assert slack.requests == []
            (row,) = await deliveries(fresh_db_url)
            assert (row["status"], row["silence_id"]) == ("suppressed", made.id)
            assert row["last_error"].startswith(f"silenced by silence {made.id} (service=api")

            assert await store.expire(RESPONDER, made.id) is True
            assert await store.expire(RESPONDER, made.id) is False
            await ingest(settings, issue_events(range(1, 2)))
            await wait_until(
                settled(fresh_db_url, 2, "delivered", "suppressed"),
                15,
                "the alert after the expiry",
            )
    rows = await deliveries(fresh_db_url)
    assert [(r["status"], r["silence_id"]) for r in rows] == [
        ("suppressed", made.id),
        ("delivered", None),
    ]
    assert len(slack.requests) == 1
    audit = await query(
        fresh_db_url,
        "SELECT action, target, actor_name AS actor FROM mendline.audit_log ORDER BY id",
    )
    assert [(a["action"], a["target"], a["actor"]) for a in audit] == [
        ("silence.create", f"silence:{made.id}", "rita"),
        ("silence.expire", f"silence:{made.id}", "rita"),
    ]
    active = await query(fresh_db_url, "SELECT * FROM mendline.silences_active")
    assert active == []


async def test_a_silence_made_after_routing_still_holds_the_alert_back(
    fresh_db_url: str, slack: FakeSlack, tmp_path: Path
) -> None:
    settings = settings_for(fresh_db_url, routes(tmp_path, wait="3s"))
    env = {"TEST_SLACK_WEBHOOK": slack.webhook_url()}
    await ingest(settings, issue_events(range(1)))
    async with silences(fresh_db_url) as store, alerting(settings, env):

        async def routed() -> bool:
            return len(await deliveries(fresh_db_url)) == 1

        await wait_until(routed, 15, "the routing")
        made = await store.add(
            RESPONDER,
            [parse_matcher("kind=new_issue")],
            datetime.now(UTC) + timedelta(hours=1),
            "after routing",
        )
        await wait_until(
            settled(fresh_db_url, 1, "delivered", "suppressed"), 15, "the send-time decision"
        )
    (row,) = await deliveries(fresh_db_url)
    assert (row["status"], row["silence_id"]) == ("suppressed", made.id)
    assert slack.requests == []


async def test_a_stored_silence_that_no_longer_parses_is_skipped_with_one_warning(
    fresh_db_url: str, slack: FakeSlack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(fresh_db_url, routes(tmp_path))
    env = {"TEST_SLACK_WEBHOOK": slack.webhook_url()}
    # Made before matchers had to be RE2's: Python's re took the backreference.
    unreadable = {"label": "service", "op": "=~", "value": "(a)\\1"}
    async with silences(fresh_db_url) as store:
        (bad,) = await query(
            fresh_db_url,
            """INSERT INTO mendline.silences (matchers, ends_at, created_by, comment)
               VALUES ($1::jsonb, now() + interval '2 hours', 'rita', 'old') RETURNING id""",
            json.dumps([unreadable]),
        )
        good = await store.add(
            RESPONDER, [parse_matcher("service=web")], datetime.now(UTC) + timedelta(hours=2), "w"
        )
        with caplog.at_level(logging.WARNING, logger="mendline.sinks"):
            assert [s.id for s in await store.list(VIEWER)] == [good.id]
            await ingest(settings, issue_events(range(2)))
            async with alerting(settings, env):
                await wait_until(
                    settled(fresh_db_url, 2, "delivered", "suppressed"),
                    15,
                    "the alerts past the bad silence",
                )
    assert [r["status"] for r in await deliveries(fresh_db_url)] == ["delivered", "delivered"]
    warned = [r.getMessage() for r in caplog.records if f"silence {bad['id']} " in r.getMessage()]
    assert len(warned) == 1 and "silences expire" in warned[0], warned


async def test_silences_are_listed_and_refused_to_those_who_may_not(fresh_db_url: str) -> None:
    async with silences(fresh_db_url) as store:
        ends = datetime.now(UTC) + timedelta(hours=1)
        with pytest.raises(PermissionDenied):
            await store.add(VIEWER, [parse_matcher("service=api")], ends, "no")
        with pytest.raises(ConfigError, match="comment"):
            await store.add(RESPONDER, [parse_matcher("service=api")], ends, "  ")
        with pytest.raises(ConfigError, match="before it starts"):
            await store.add(RESPONDER, [parse_matcher("service=api")], datetime.now(UTC), "past")
        first = await store.add(RESPONDER, [parse_matcher("service=api")], ends, "one")
        second = await store.add(RESPONDER, [parse_matcher("service=web")], ends, "two")
        with pytest.raises(PermissionDenied):
            await store.expire(VIEWER, first.id)
        await store.expire(RESPONDER, first.id)
        with pytest.raises(SilenceNotFound):
            await store.expire(RESPONDER, 999)
        assert [s.id for s in await store.list(VIEWER)] == [second.id]
        every = await store.list(VIEWER, include_ended=True)
        assert [(s.id, s.expired_by) for s in every] == [(second.id, None), (first.id, "rita")]


async def test_the_shipped_routes_start_without_secrets_in_development_and_not_in_production(
    fresh_db_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for variable in SHIPPED_SECRETS:
        monkeypatch.delenv(variable, raising=False)
    production = settings_for(fresh_db_url, None, profile="production")
    with pytest.raises(ConfigError, match="MENDLINE_SLACK_WEBHOOK_URL"):
        alert_stage.routing_table(production)

    settings = settings_for(fresh_db_url, None, alert_lease=2.0)  # development
    assert settings.profile == "development"
    await ingest(settings, issue_events(range(1)))
    out, stop = io.StringIO(), asyncio.Event()
    caplog.set_level(logging.WARNING, "mendline.alert")
    telemetry = Telemetry()
    with redirect_stdout(out):
        task = asyncio.create_task(alert_stage.run(settings, stop, telemetry.stage("alert")))

        async def told() -> bool:
            # The shipped routes group new issues for 30 s: what they wait for is not what
            # this test is about, so what waits is due now.
            await query(
                fresh_db_url,
                "UPDATE mendline.deliveries SET due_at = now()"
                " WHERE status = 'pending' AND due_at > now()",
            )
            rows = await deliveries(fresh_db_url)
            return {r["receiver"] for r in rows if r["status"] != "pending"} == {
                "console",
                "team-slack",
            }

        try:
            await wait_until(told, 60, "the console and the disabled team-slack")
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    disabled = [w for w in warnings if "disabled" in w]
    assert len(disabled) == 1
    assert "receiver team-slack disabled: MENDLINE_SLACK_WEBHOOK_URL is unset" in disabled[0]
    by_receiver = {r["receiver"]: r for r in await deliveries(fresh_db_url)}
    assert by_receiver["console"]["status"] == "delivered"
    slack_row = by_receiver["team-slack"]
    assert slack_row["status"] == "suppressed"
    assert slack_row["last_error"] == (
        "receiver team-slack disabled: MENDLINE_SLACK_WEBHOOK_URL is unset"
    )
    line = json.loads(out.getvalue().splitlines()[0])
    assert line["version"] == "1" and line["receiver"] == "console"
    assert line["alerts"][0]["labels"]["service"] == "api"
