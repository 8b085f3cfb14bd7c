"""The webhook and log receivers: a signed POST to a real loopback endpoint, JSON lines."""

from __future__ import annotations

import io
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from mendline.schemas.alert import (
    Alert,
    AlertFinding,
    AlertIssue,
    ChannelError,
    LogReceiver,
    Notification,
    WebhookReceiver,
)
from mendline.schemas.errors import ConfigError
from mendline.schemas.webhook import (
    WEBHOOK_JSON_SCHEMA_PATH,
    WebhookPayload,
    webhook_json_schema,
    webhook_json_schema_text,
)
from mendline.sinks.channels import LogChannel, WebhookChannel, make_channel, sign
from mendline.sinks.routing import load_routes
from tests.channel_servers import FakeWebhook, Reply, fake_webhook

loopback = pytest.mark.integration
T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
HOSTILE = "boom \x1b[2J\x1b]8;;http://evil\x07click\x1b]8;;\x07 \u009b31m \u202e<b>*x*</b>"


def alert(issue_id: int = 7, *, kind: str = "new_issue", title: str = "ValueError: bad") -> Alert:
    return Alert.model_validate(
        {
            "kind": kind,
            "severity": "error",
            "issue": AlertIssue(
                id=issue_id,
                service="api",
                title=title,
                culprit="orders.parse",
                level="error",
                times_seen=12,
                first_seen=T0,
                last_seen=T0,
                environments=["production"],
            ),
            "finding": AlertFinding(
                root_cause="parse passes the raw value to int()",
                suggested_fix="validate first",
                category="bad_input",
                severity="medium",
                confidence=0.8,
                analyser="heuristic",
            ),
            "labels": {"severity": "error", "kind": kind, "service": "api", "tag:team": "pay"},
            "link": f"https://mendline.example/issues/{issue_id}",
        }
    )


def note(*alerts: Alert, mode: str = "new") -> Notification:
    return Notification.model_validate(
        {"receiver": "hooks", "alerts": list(alerts) or [alert()], "mode": mode}
    )


def channel_for(server: FakeWebhook, secret: str | None = "s3cret", **extra: Any) -> WebhookChannel:
    receiver = WebhookReceiver(type="webhook", url=server.url, secret_env="HOOK_SECRET", **extra)
    return WebhookChannel(receiver, url=server.url, secret=secret, name="hooks")


def validate(payload: dict[str, Any]) -> None:
    jsonschema.validate(payload, webhook_json_schema())


def test_the_shipped_json_schema_file_is_current() -> None:
    assert WEBHOOK_JSON_SCHEMA_PATH.read_text() == webhook_json_schema_text(), (
        "schemas/webhook-alert.v1.json is stale: run `mendline schema --webhook --write`"
    )


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    # What a receiver computes: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac key
    mac = subprocess.run(
        ["openssl", "dgst", "-sha256", "-hmac", "key", "-r"],
        input=b'1700000000.{"a":1}',
        capture_output=True,
        check=True,
    ).stdout.split()[0]
    assert sign("key", "1700000000", b'{"a":1}') == f"sha256={mac.decode()}"


@loopback
async def test_a_signed_post_is_verified_by_the_endpoint_with_the_secret() -> None:
    with fake_webhook(secret="s3cret") as server:
        channel = channel_for(server, headers={"X-Team": "payments"})
        try:
            reference = await channel.send(note(alert(1), alert(2, kind="regression")))
        finally:
            await channel.aclose()
    assert reference == {}
    assert len(server.verified) == 1
    payload = server.verified[0]
    validate(payload)
    assert payload["version"] == "1" and payload["status"] == "firing"
    assert payload["receiver"] == "hooks" and payload["mode"] == "new"
    assert [a["issue"]["id"] for a in payload["alerts"]] == [1, 2]
    assert payload["alerts"][1]["kind"] == "regression"
    assert payload["alerts"][0]["finding"]["root_cause"] == "parse passes the raw value to int()"
    assert payload["alerts"][0]["labels"]["tag:team"] == "pay"
    assert payload["common_labels"] == {"severity": "error", "service": "api", "tag:team": "pay"}
    assert payload["alerts"][0]["dedup_key"] == "mendline-issue-1"
    assert server.requests[0].headers["x-team"] == "payments"
    assert server.requests[0].headers["x-mendline-signature"].startswith("sha256=")


@loopback
async def test_each_post_names_its_deliveries_in_a_header_and_the_body() -> None:
    with fake_webhook(secret="s3cret") as server:
        channel = channel_for(server)
        try:
            with_ids = [alert(n).model_copy(update={"delivery_id": n + 10}) for n in (1, 2)]
            await channel.send(note(*with_ids))
            await channel.send(note(alert(3)))  # outside the alert worker: no delivery
        finally:
            await channel.aclose()
    first, second = server.requests
    assert first.headers["x-mendline-delivery"] == "11,12"
    assert [a["delivery_id"] for a in server.verified[0]["alerts"]] == [11, 12]
    validate(server.verified[0])
    assert "x-mendline-delivery" not in second.headers
    assert server.verified[1]["alerts"][0]["delivery_id"] is None


@loopback
async def test_a_wrong_secret_fails_verification_and_is_not_retried() -> None:
    with fake_webhook(secret="s3cret") as server:
        channel = channel_for(server, secret="not-the-secret")
        try:
            with pytest.raises(ChannelError) as caught:
                await channel.send(note())
        finally:
            await channel.aclose()
    assert server.verified == []
    assert caught.value.status == 401 and not caught.value.retriable


@loopback
@pytest.mark.parametrize(
    ("reply", "retriable", "after"),
    [
        (Reply.error(500, "oops"), True, None),
        (Reply.error(503, "later"), True, None),
        (Reply.rate_limited(7), True, 7.0),
        (Reply.error(400, "bad"), False, None),
        (Reply.error(404, "gone"), False, None),
    ],
)
async def test_5xx_and_429_are_retriable_and_other_4xx_are_not(
    reply: Reply, retriable: bool, after: float | None
) -> None:
    with fake_webhook() as server:
        server.script.append(reply)
        channel = channel_for(server, secret=None)
        try:
            with pytest.raises(ChannelError) as caught:
                await channel.send(note())
            again = await channel.send(note())  # the endpoint answers normally now
        finally:
            await channel.aclose()
    assert caught.value.retriable is retriable
    assert caught.value.status == reply.status
    assert caught.value.retry_after == after
    assert again == {} and len(server.verified) == 1
    assert "x-mendline-signature" not in server.requests[0].headers  # no secret, no signature


@loopback
async def test_an_unreachable_endpoint_is_retriable_and_its_url_not_said() -> None:
    with fake_webhook() as server:
        url = f"{server.url}?token=abc123"
    receiver = WebhookReceiver(type="webhook", url_env="HOOK_URL")
    channel = WebhookChannel(receiver, url=url, name="hooks")
    try:
        with pytest.raises(ChannelError) as caught:
            await channel.send(note())
    finally:
        await channel.aclose()
    assert caught.value.retriable and caught.value.code == "unreachable"
    assert "abc123" not in str(caught.value)


@loopback
async def test_make_channel_reads_the_url_secret_and_header_secrets_from_the_environment() -> None:
    with fake_webhook(secret="from-env") as server:
        receiver = WebhookReceiver(
            type="webhook",
            url_env="HOOK_URL",
            secret_env="HOOK_SECRET",
            headers_env={"Authorization": "HOOK_AUTH"},
        )
        environ = {"HOOK_URL": server.url, "HOOK_SECRET": "from-env", "HOOK_AUTH": "Bearer t0k"}
        channel = make_channel("hooks", receiver, environ)
        try:
            await channel.send(note())
        finally:
            await channel.aclose()
        with pytest.raises(ConfigError, match="HOOK_SECRET"):
            make_channel("hooks", receiver, {"HOOK_URL": server.url, "HOOK_AUTH": "x"})
    assert len(server.verified) == 1
    assert server.requests[0].headers["authorization"] == "Bearer t0k"


def test_event_text_is_data_in_the_payload() -> None:
    payload = WebhookPayload.model_validate_json(
        _payload_json(note(alert(title=HOSTILE), mode="update"))
    )
    assert payload.alerts[0].issue.title == HOSTILE  # as it came, for the receiver to escape
    assert payload.mode == "update"


def _payload_json(notification: Notification) -> str:
    from mendline.sinks.channels import webhook_payload

    return webhook_payload(notification, T0).model_dump_json()


def test_a_resolve_is_resolved() -> None:
    from mendline.sinks.channels import webhook_payload

    payload = webhook_payload(note(alert(kind="resolved"), mode="repeat"), T0)
    assert payload.status == "resolved" and payload.alerts[0].status == "resolved"
    validate(payload.model_dump(mode="json"))


# -- the routes file -----------------------------------------------------------------------


def routes_with(tmp_path: Path, receiver: str) -> Path:
    path = tmp_path / "routes.toml"
    path.write_text(
        f'[receivers.hooks]\n{receiver}\n\n[[routes]]\nreceivers = ["hooks"]\n', "utf-8"
    )
    return path


def test_a_webhook_receiver_is_read_from_the_routes_file(tmp_path: Path) -> None:
    table = load_routes(
        routes_with(
            tmp_path,
            'type = "webhook"\nurl = "https://hooks.example/x"\nsecret_env = "HOOK_SECRET"\n'
            'headers = { "X-Team" = "pay" }\nheaders_env = { "Authorization" = "HOOK_AUTH" }',
        )
    )
    receiver = table.receivers["hooks"]
    assert isinstance(receiver, WebhookReceiver)
    assert receiver.url == "https://hooks.example/x"
    assert receiver.headers_env == {"Authorization": "HOOK_AUTH"}


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ('type = "webhook"', "a webhook needs url or url_env"),
        ('type = "webhook"\nurl = "ftp://x/"', "must be an http:// or https:// URL"),
        (
            'type = "webhook"\nurl = "https://x/"\nheaders = { "Authorization" = "Bearer x" }',
            "looks like a credential",
        ),
        (
            'type = "webhook"\nurl = "https://x/"\nheaders_env = { "X-Key" = "Bearer xyz" }',
            "is not an environment variable name",
        ),
        ('type = "webhook"\nurl = "https://x/"\nsecret = "hunter2"', "secret_env"),
    ],
)
def test_a_bad_webhook_receiver_is_refused_with_why(tmp_path: Path, body: str, said: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_routes(routes_with(tmp_path, body))
    assert said in str(caught.value)
    assert "hunter2" not in str(caught.value) and "Bearer xyz" not in str(caught.value)


# -- log -------------------------------------------------------------------------------------


async def test_the_log_receiver_writes_one_escaped_json_line_per_alert(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    channel = make_channel("console", LogReceiver(type="log", path=str(path)), {})
    await channel.send(note(alert(1, title=HOSTILE), alert(2)))
    await channel.send(note(alert(3, kind="resolved"), mode="repeat"))
    await channel.aclose()
    text = path.read_text("utf-8")
    lines = text.splitlines()
    assert len(lines) == 3
    assert text.isascii() and not any(ord(c) < 32 for c in text.replace("\n", ""))
    payloads = [json.loads(line) for line in lines]
    for payload in payloads:
        validate(payload)
    assert [p["alerts"][0]["issue"]["id"] for p in payloads] == [1, 2, 3]
    assert payloads[0]["alerts"][0]["issue"]["title"] == HOSTILE
    assert payloads[2]["status"] == "resolved"


async def test_the_log_receiver_writes_to_standard_output_by_default() -> None:
    stream = io.StringIO()
    channel = LogChannel(LogReceiver(type="log"), name="console", stream=stream)
    await channel.send(note())
    assert json.loads(stream.getvalue())["receiver"] == "hooks"


async def test_a_log_file_that_cannot_be_written_is_a_retriable_failure(tmp_path: Path) -> None:
    channel = LogChannel(LogReceiver(type="log", path=str(tmp_path / "missing" / "a.jsonl")))
    with pytest.raises(ChannelError) as caught:
        await channel.send(note())
    assert caught.value.retriable and caught.value.code == "unwritable"
