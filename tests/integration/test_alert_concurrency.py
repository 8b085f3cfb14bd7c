"""The alert worker sending many messages at once, against a real PostgreSQL and peers on
loopback that answer after random waits (so out of order): each issue's messages to a
receiver still arrive in order, outcomes are recorded right whatever each send did, and two
workers never send one delivery twice."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from mendline.schemas.settings import Settings, load_settings
from tests.channel_servers import FakePagerDuty, FakeSlack, Reply, fake_webhook
from tests.db_helpers import query, store_events
from tests.integration.event_factory import make_event
from tests.outbox_helpers import Row, outbox

from .stage_helpers import alerting, settled, wait_until

pytestmark = pytest.mark.integration

# Receivers no route reaches: their deliveries are the ones each test writes.
PAGER = """
[receivers.pager]
type = "pagerduty"
routing_key_env = "TEST_PD_KEY"
events_url = "{url}"

[[routes]]
match = {{ service = "elsewhere" }}
receivers = ["pager"]
"""

HOOKS = """
[receivers.a]
type = "webhook"
url_env = "TEST_HOOK_URL"

[receivers.b]
type = "webhook"
url_env = "TEST_HOOK_URL"

[receivers.c]
type = "webhook"
url_env = "TEST_HOOK_URL"

[[routes]]
match = { service = "elsewhere" }
receivers = ["a", "b", "c"]
"""


async def settings_with(url: str, tmp_path: Path, routes: str, issues: int) -> Settings:
    """Settings of workers on ``url`` sending 4 messages at once, with issues 1 to
    ``issues`` stored."""
    path = tmp_path / "routes.toml"
    path.write_text(routes)
    await store_events(url, [make_event(n) for n in range(issues)])
    return load_settings(
        database_url=url, routes_file=path, alert_poll_interval=0.2, alert_concurrency=4
    )


async def outcomes(url: str) -> list[Any]:
    return await query(url, "SELECT * FROM mendline.deliveries ORDER BY id")


async def test_each_issue_reaches_a_receiver_in_order_while_issues_go_side_by_side(
    fresh_db_url: str, pagerduty: FakePagerDuty, tmp_path: Path
) -> None:
    kinds = ["new_issue", "frequency", "regression"]
    settings = await settings_with(
        fresh_db_url, tmp_path, PAGER.format(url=pagerduty.events_url), issues=10
    )
    rows = [
        Row(f"{issue} {kind}", receiver="pager", issue=issue, kind=kind)
        for issue in range(1, 11)
        for kind in kinds
    ]
    await outbox(fresh_db_url, rows)
    pagerduty.jitter = 0.05
    async with alerting(settings, {"TEST_PD_KEY": "R0UTINGKEY"}) as (worker,):
        await wait_until(settled(fresh_db_url, 30, "delivered", "failed"), 30, "thirty pages")
    received: dict[str, list[str]] = defaultdict(list)
    for body in pagerduty.bodies():
        received[body["dedup_key"]].append(body["payload"]["custom_details"]["kind"])
    assert received == {f"mendline-issue-{issue}": kinds for issue in range(1, 11)}
    assert 1 < pagerduty.most_at_once <= settings.alert_concurrency
    assert (worker.stats.sent, worker.stats.messages) == (30, 30)
    rows_after = await outcomes(fresh_db_url)
    assert all(r["status"] == "delivered" and r["attempts"] == 1 for r in rows_after)


SLACK = """
[receivers.team]
type = "slack"
bot_token_env = "TEST_SLACK_TOKEN"
channel = "#alerts"
api_url = "{url}"

[[routes]]
match = {{ service = "elsewhere" }}
receivers = ["team"]
"""


async def test_a_slack_receiver_is_sent_one_message_at_a_time(
    fresh_db_url: str, slack: FakeSlack, tmp_path: Path
) -> None:
    # Updates go to the id Slack gave the channel ("C123"), posts to its name: a process
    # that has not posted yet cannot tell they are one channel, so sent side by side they
    # would be paced apart. A Slack receiver is sent one message at a time.
    settings = await settings_with(
        fresh_db_url, tmp_path, SLACK.format(url=slack.api_url), issues=3
    )
    rows = [Row(f"update {i}", issue=i, mode="update", kind="frequency") for i in (1, 2)]
    await outbox(fresh_db_url, [*rows, Row("post", issue=3, kind="resolved")])
    await query(
        fresh_db_url,
        """INSERT INTO mendline.alert_state (issue_id, receiver, last_sent_at, reference)
           SELECT i, 'team', now() - interval '1 hour', '{"channel": "C123", "ts": "1.5"}'
           FROM generate_series(1, 2) AS i""",
    )
    slack.jitter = 0.2
    async with alerting(settings, {"TEST_SLACK_TOKEN": slack.token}):
        await wait_until(settled(fresh_db_url, 3, "delivered", "failed"), 30, "three messages")
    assert len(slack.requests) == 3
    assert slack.most_at_once == 1 < settings.alert_concurrency


async def test_a_batch_sent_at_once_records_each_outcome(
    fresh_db_url: str, pagerduty: FakePagerDuty, tmp_path: Path
) -> None:
    settings = await settings_with(
        fresh_db_url, tmp_path, PAGER.format(url=pagerduty.events_url), issues=8
    )
    await outbox(fresh_db_url, [Row(str(n), receiver="pager", issue=n) for n in range(1, 9)])
    # Of the eight sent at once, the first answered is refused for now, the second for good.
    pagerduty.script = [Reply.error(500, "down"), Reply.error(400, "bad event")]
    pagerduty.jitter = 0.05
    async with alerting(settings, {"TEST_PD_KEY": "R0UTINGKEY"}) as (worker,):
        await wait_until(settled(fresh_db_url, 8, "delivered", "failed"), 30, "eight outcomes")
    rows = await outcomes(fresh_db_url)
    by_status: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_status[row["status"]].append(row)
    (failed,) = by_status["failed"]
    assert failed["last_error"].startswith("http_400") and failed["attempts"] == 1
    assert len(by_status["delivered"]) == 7 and not by_status["pending"]
    # The one refused for now was tried again, and went.
    (retried,) = [r for r in by_status["delivered"] if r["attempts"] == 2]
    assert all(r["attempts"] == 1 for r in by_status["delivered"] if r is not retried)
    assert all(r["lease_until"] is None and r["reference"] for r in by_status["delivered"])
    assert len(pagerduty.requests) == 9
    stats = worker.stats
    assert (stats.sent, stats.retried, stats.failed) == (7, 1, 1)


async def test_two_workers_never_send_one_delivery_twice(fresh_db_url: str, tmp_path: Path) -> None:
    settings = await settings_with(fresh_db_url, tmp_path, HOOKS, issues=8)
    # Three receivers, each with a new alert and then an update about each of eight issues.
    rows = [
        Row(f"{receiver} {issue} {mode}", receiver=receiver, issue=issue, mode=mode)
        for receiver in "abc"
        for issue in range(1, 9)
        for mode in ("new", "update")
    ]
    names = await outbox(fresh_db_url, rows)
    with fake_webhook() as server:
        server.jitter = 0.05
        async with alerting(settings, {"TEST_HOOK_URL": server.url}, count=2) as pair:
            await wait_until(
                settled(fresh_db_url, len(rows), "delivered", "failed"), 30, "every delivery"
            )
    sent = sorted(a["delivery_id"] for body in server.verified for a in body["alerts"])
    assert sent == sorted(names)  # each once
    after = await outcomes(fresh_db_url)
    assert all(r["status"] == "delivered" and r["attempts"] == 1 for r in after)
    assert sum(w.stats.sent for w in pair) == len(rows)
