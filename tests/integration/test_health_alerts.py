"""A health check's triggers through the real alert and analyze stages: routed by kind and by
the check's tags to Slack and PagerDuty stand-ins on loopback, and explained by the heuristic
analyser from the evidence they recorded. The issue and trigger rows are written the way the
health store writes them (one issue per check and environment, ``kind = 'health'``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from mendline.schemas.settings import load_settings
from mendline.sinks.channels import make_channel
from mendline.sinks.postgres import connect_alerts, migrate
from mendline.sinks.routing import load_routes
from mendline.stages.alert import AlertWorker
from tests.channel_servers import FakePagerDuty, FakeSlack
from tests.db_helpers import query
from tests.llm_server import FakeLLM

from .stage_helpers import analyze_settings, deliveries, run_until_exit, wait_until, workers

pytestmark = pytest.mark.integration

CHECK = "payments-api"
TARGET = "https://payments.example/healthz"
TAGS = {"team": "payments", "check": CHECK, "check_kind": "http"}

ROUTES = """
[receivers.pager]
type = "pagerduty"
routing_key_env = "TEST_PD_KEY"
events_url = "{pagerduty}"

[receivers.bot]
type = "slack"
bot_token_env = "TEST_SLACK_TOKEN"
channel = "#ops"
api_url = "{slack}"

# Page for a critical check going down, and resolve the page when it is up again.
[[routes]]
match = {{ kind = ["health_down", "health_recovered"], severity = "critical" }}
receivers = ["pager"]
group_wait = "{wait}"
continue = true

# Every HTTP check's news to the team's channel.
[[routes]]
match = {{ "tag:check_kind" = "http" }}
match_re = {{ kind = "health_.*" }}
receivers = ["bot"]
group_wait = "{wait}"
"""


def details(**changes: Any) -> dict[str, Any]:
    """A down trigger's details, as the health store writes them."""
    return {
        "check": CHECK,
        "check_kind": "http",
        "target": TARGET,
        "status": "down",
        "failures": 3,
        "successes": 0,
        "error": None,
        "error_kind": None,
        "conditions": [{"condition": "[STATUS] == 200", "success": False, "observed": "503"}],
        "timings": {"dns": 0.001, "connect": 0.002, "first_byte": 0.05, "total": 0.051},
        "reasons": ["up -> down: 3 failures in a row"],
        "scheduled_at": "2026-12-05T08:00:00+00:00",
        **changes,
    }


async def open_issue(conn: asyncpg.Connection) -> int:
    issue_id = await conn.fetchval(
        """INSERT INTO mendline.issues (service, primary_hash, title, culprit, level,
                                        level_rank, first_seen, last_seen, times_seen,
                                        environments, kind)
           VALUES ($1, $2, $3, $4, 'critical', 5, now(), now(), 3, '{production}', 'health')
           RETURNING id""",
        CHECK,
        f"health:{CHECK}:production",
        f"Downtime: {CHECK} (HTTP 503, 3 checks in a row)",
        TARGET,
    )
    return int(issue_id)


async def add_trigger(
    conn: asyncpg.Connection, issue_id: int, kind: str, n: int, **changes: Any
) -> None:
    if kind == "health_recovered":
        await conn.execute(
            "UPDATE mendline.issues SET status = 'resolved', resolved_at = now() WHERE id = $1",
            issue_id,
        )
    await conn.execute(
        """INSERT INTO mendline.triggers (issue_id, kind, dedup_key, details, environment, tags)
           VALUES ($1, $2, $3, $4::jsonb, 'production', $5::json)""",
        issue_id,
        kind,
        f"health:{CHECK}:production:{kind}:{n}",
        json.dumps(details(**changes)),
        json.dumps(TAGS),
    )


@asynccontextmanager
async def health_alerting(
    url: str, slack: FakeSlack, pagerduty: FakePagerDuty, tmp_path: Path, wait: str = "0s"
) -> AsyncIterator[asyncpg.Connection]:
    """An alert worker on ``url`` with the routes above, and a connection to write rows."""
    path = tmp_path / "routes.toml"
    path.write_text(ROUTES.format(pagerduty=pagerduty.events_url, slack=slack.api_url, wait=wait))
    settings = load_settings(database_url=url, routes_file=path, alert_poll_interval=0.2)
    environ = {"TEST_PD_KEY": "R0UTINGKEY", "TEST_SLACK_TOKEN": slack.token}
    table = load_routes(path)
    channels = {n: make_channel(n, r, environ) for n, r in table.receivers.items()}
    worker = AlertWorker(settings, await connect_alerts(settings), table, channels)
    conn = await asyncpg.connect(url)
    try:
        async with run_until_exit([worker]):
            yield conn
    finally:
        await conn.close()
        for channel in channels.values():
            await channel.aclose()
        await worker.store.pool.close()


async def test_a_check_pages_and_posts_when_down_resolves_when_up_and_tells_flapping_once(
    fresh_db_url: str, slack: FakeSlack, pagerduty: FakePagerDuty, tmp_path: Path
) -> None:
    async with health_alerting(fresh_db_url, slack, pagerduty, tmp_path) as conn:
        issue_id = await open_issue(conn)
        await add_trigger(conn, issue_id, "health_down", 1)
        await wait_until(
            lambda: len(pagerduty.requests) == 1 and len(slack.requests) == 1, 15, "the down"
        )
        await add_trigger(
            conn,
            issue_id,
            "health_recovered",
            2,
            status="up",
            failures=0,
            successes=2,
            conditions=[{"condition": "[STATUS] == 200", "success": True, "observed": "200"}],
        )
        await wait_until(
            lambda: len(pagerduty.requests) == 2 and len(slack.requests) == 2, 15, "the recovery"
        )
        await add_trigger(conn, issue_id, "health_flapping", 3, reasons=["5 changes: flapping"])
        await wait_until(lambda: len(slack.requests) == 3, 15, "the flapping")
        await asyncio.sleep(1.5)  # seven polls: nothing more comes

    trigger, resolve = pagerduty.bodies()  # flapping does not page: its route says so
    assert (trigger["event_action"], resolve["event_action"]) == ("trigger", "resolve")
    assert trigger["dedup_key"] == resolve["dedup_key"] == f"mendline-issue-{issue_id}"
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["component"] == TARGET
    down, up, flapping = slack.calls("chat.postMessage")
    assert "thread_ts" not in down and up["thread_ts"] == flapping["thread_ts"]
    blocks = [json.dumps(message["blocks"]) for message in (down, up, flapping)]
    assert "[STATUS] == 200 (observed: 503)" in blocks[0] and TARGET in blocks[0]
    assert "up again" in blocks[1] and "flapping" in blocks[2]
    assert slack.calls("chat.update") == []
    rows = await deliveries(fresh_db_url)
    assert [(r["kind"], r["receiver"], r["mode"], r["status"]) for r in rows] == [
        ("health_down", "pager", "new", "delivered"),
        ("health_down", "bot", "new", "delivered"),
        ("health_recovered", "bot", "repeat", "delivered"),
        ("health_recovered", "pager", "repeat", "delivered"),
        ("health_flapping", "bot", "repeat", "delivered"),
    ]


async def test_a_check_up_again_before_its_alert_went_out_tells_nobody(
    fresh_db_url: str, slack: FakeSlack, pagerduty: FakePagerDuty, tmp_path: Path
) -> None:
    async with health_alerting(fresh_db_url, slack, pagerduty, tmp_path, wait="3s") as conn:
        issue_id = await open_issue(conn)
        await add_trigger(conn, issue_id, "health_down", 1)

        async def routed() -> bool:
            return len(await deliveries(fresh_db_url)) == 2

        await wait_until(routed, 15, "the down routed")
        await add_trigger(conn, issue_id, "health_recovered", 2, status="up", successes=2)
        await asyncio.sleep(4)  # past group_wait
    assert slack.requests == [] and pagerduty.requests == []  # no page, no "up" of nothing
    rows = await deliveries(fresh_db_url)
    assert [(r["kind"], r["status"]) for r in rows] == [
        ("health_down", "suppressed"),
        ("health_down", "suppressed"),
    ]


async def test_the_explanation_that_comes_after_the_down_message_updates_it(
    fresh_db_url: str, slack: FakeSlack, pagerduty: FakePagerDuty, tmp_path: Path
) -> None:
    async with health_alerting(fresh_db_url, slack, pagerduty, tmp_path) as conn:
        issue_id = await open_issue(conn)
        await add_trigger(conn, issue_id, "health_down", 1)
        await wait_until(lambda: len(slack.requests) == 1, 15, "the down message")
        async with workers(analyze_settings(fresh_db_url)):  # the heuristic explains it
            await wait_until(lambda: slack.calls("chat.update"), 15, "the update")
    (update,) = slack.calls("chat.update")
    assert f"{TARGET} answers HTTP 503" in json.dumps(update["blocks"])
    assert "analysis pending" not in json.dumps(update["blocks"])
    assert "analysis pending" in json.dumps(slack.calls("chat.postMessage")[0]["blocks"])


async def test_the_analyze_stage_explains_a_check_going_down_without_the_llm(
    fresh_db_url: str, llm: FakeLLM
) -> None:
    settings = analyze_settings(fresh_db_url, llm)
    conn = await asyncpg.connect(fresh_db_url)
    try:
        await migrate(conn)
        issue_id = await open_issue(conn)
        await add_trigger(conn, issue_id, "health_down", 1)
        async with workers(settings) as (worker,):

            async def explained() -> bool:
                return bool(await query(fresh_db_url, "SELECT 1 FROM mendline.findings"))

            await wait_until(explained, 15, "the finding")
            # `mendline analyze --issue ID` reads the newest down trigger's evidence too.
            on_demand, _ = await worker.analyse_issue(issue_id, fresh=True)
    finally:
        await conn.close()
    (finding,) = await query(
        fresh_db_url,
        """SELECT f.analyser, f.rule, f.category, f.root_cause, f.fallback_code,
                  t.kind, t.analysed_at
           FROM mendline.findings f JOIN mendline.triggers t ON t.id = f.trigger_id""",
    )
    assert (finding["analyser"], finding["rule"], finding["fallback_code"]) == (
        "heuristic",
        "http-unavailable",
        None,
    )
    assert finding["kind"] == "health_down" and finding["analysed_at"] is not None
    assert f"{TARGET} answers HTTP 503" in finding["root_cause"]
    assert (on_demand.finding.rule, on_demand.finding.analyser) == (
        "http-unavailable",
        "heuristic",
    )
    assert llm.requests == []  # a check's evidence never goes to the model
