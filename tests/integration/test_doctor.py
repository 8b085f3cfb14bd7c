"""`mendline doctor` against the real broker and database, and loopback stand-ins of the rest."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from mendline.cli import main
from mendline.ingest import ensure_topics
from mendline.schemas.settings import load_settings
from mendline.sinks.postgres import available_migrations, migrate
from tests.channel_servers import (
    FakePagerDuty,
    FakeSlack,
    FakeSMTP,
    fake_pagerduty,
    fake_slack,
    self_signed_cert,
    smtp_server,
)
from tests.llm_server import FakeLLM, fake_llm

from .kafka_helpers import unique_topic

pytestmark = pytest.mark.integration

LLM_KEY = "sk-doctor-test-key-0001"
SMTP_LOGIN = ("alerts", "smtp-pass-0001")
PAGERDUTY_KEY = "0123456789abcdef0123456789abcdef"
RECEIVERS = ["receiver:team-bot", "receiver:team-hook", "receiver:mail", "receiver:oncall"]
CHECKS = ["settings", "kafka", "database", "llm", "routes", *RECEIVERS]


@dataclass
class Setup:
    """A healthy mendline setup: the servers, the routes file and the secrets in the env."""

    llm: FakeLLM
    slack: FakeSlack
    pagerduty: FakePagerDuty
    smtp: FakeSMTP
    routes: Path
    topics: tuple[str, str]
    secrets: dict[str, str]

    def write_routes(self, smtp_port: int | None = None) -> None:
        self.routes.write_text(
            f"""
[receivers.team-bot]
type = "slack"
bot_token_env = "DOCTOR_SLACK_TOKEN"
channel = "#alerts"
api_url = "{self.slack.api_url}"

[receivers.team-hook]
type = "slack"
webhook_url_env = "DOCTOR_SLACK_WEBHOOK"

[receivers.mail]
type = "email"
smtp_host = "127.0.0.1"
smtp_port = {smtp_port or self.smtp.port}
security = "starttls"
username_env = "DOCTOR_SMTP_USER"
password_env = "DOCTOR_SMTP_PASSWORD"
sender = "mendline@test"
to = ["oncall@test"]

[receivers.oncall]
type = "pagerduty"
routing_key_env = "DOCTOR_PAGERDUTY_KEY"
events_url = "{self.pagerduty.events_url}"

[[routes]]
match = {{ severity = "critical" }}
receivers = ["oncall", "team-bot"]
continue = true

[[routes]]
severity_at_least = "error"
receivers = ["team-hook"]

[[routes]]
severity_at_least = "warning"
receivers = ["mail"]
"""
        )


@pytest.fixture(scope="module")
def topics(kafka_bootstrap: str) -> tuple[str, str]:
    """An errors and a DLQ topic of this module's own, created as `topics ensure` does."""
    names = unique_topic("doctor"), unique_topic("doctor-dlq")
    settings = load_settings(
        kafka_bootstrap=kafka_bootstrap,
        errors_topic=names[0],
        dlq_topic=names[1],
        topic_partitions=3,
    )
    asyncio.run(ensure_topics(settings))
    return names


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_cert(tmp_path_factory.mktemp("smtp-tls"))


@pytest.fixture
async def migrated_db(fresh_db_url: str) -> str:
    conn = await asyncpg.connect(fresh_db_url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return fresh_db_url


@pytest.fixture
def setup(
    monkeypatch: pytest.MonkeyPatch,
    kafka_bootstrap: str,
    topics: tuple[str, str],
    migrated_db: str,
    certificate: tuple[Path, Path],
    tmp_path: Path,
) -> Iterator[Setup]:
    for name in list(os.environ):  # whatever the machine has set, only ours count
        if name.startswith("MENDLINE_"):
            monkeypatch.delenv(name)
    with (
        fake_llm() as llm,
        fake_slack() as slack,
        fake_pagerduty() as pagerduty,
        smtp_server(cert=certificate, login=SMTP_LOGIN) as smtp,
    ):
        llm.api_key = LLM_KEY
        secrets = {
            "DOCTOR_SLACK_TOKEN": slack.token,
            "DOCTOR_SLACK_WEBHOOK": slack.webhook_url(),
            "DOCTOR_SMTP_USER": SMTP_LOGIN[0],
            "DOCTOR_SMTP_PASSWORD": SMTP_LOGIN[1],
            "DOCTOR_PAGERDUTY_KEY": PAGERDUTY_KEY,
        }
        healthy = Setup(llm, slack, pagerduty, smtp, tmp_path / "routes.toml", topics, secrets)
        healthy.write_routes()
        env = {
            "MENDLINE_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "MENDLINE_ERRORS_TOPIC": topics[0],
            "MENDLINE_DLQ_TOPIC": topics[1],
            "MENDLINE_DATABASE_URL": migrated_db,
            "MENDLINE_LLM_BASE_URL": llm.url,
            "MENDLINE_LLM_MODEL": "test-model-1",
            "MENDLINE_LLM_API_KEY": LLM_KEY,
            "MENDLINE_ROUTES_FILE": str(healthy.routes),
            # The SMTP server's certificate is trusted as a system one (OpenSSL reads this).
            "SSL_CERT_FILE": str(certificate[0]),
            **secrets,
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield healthy


def doctor(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any], str]:
    """Run `mendline doctor --json` in this process: (exit status, checks by name, stdout)."""
    status = main(["doctor", "--json"])
    out = capsys.readouterr().out
    document = json.loads(out)
    assert document["ok"] is (status == 0)
    checks = {check["name"]: check for check in document["checks"]}
    assert list(checks) == [check["name"] for check in document["checks"]]  # names are unique
    return status, checks, out


def only_failure(checks: dict[str, Any], name: str) -> dict[str, Any]:
    """The check ``name``, which failed with a hint, while every other check passed."""
    assert checks[name]["status"] == "fail", checks[name]
    assert checks[name]["hint"]
    others = {n: c["status"] for n, c in checks.items() if n != name}
    assert set(others.values()) == {"ok"}, others
    return dict(checks[name])


@contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port bound by no server: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: nothing else can take it
        yield int(sock.getsockname()[1])


def test_a_healthy_setup_is_all_ok_and_sends_nothing(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    status, checks, out = doctor(capsys)
    assert status == 0
    assert list(checks) == CHECKS
    assert {name: c["status"] for name, c in checks.items()} == dict.fromkeys(CHECKS, "ok")
    assert all(c["hint"] is None for c in checks.values())
    errors, dlq = setup.topics
    assert re.search(
        rf"\d+ brokers?, {errors} 3 partitions, {dlq} 3 partitions$", checks["kafka"]["detail"]
    )
    shipped = [version for version, _ in available_migrations()]
    migrated = f"all {len(shipped)} migrations applied (newest {shipped[-1]})"
    assert migrated in checks["database"]["detail"]
    assert "PostgreSQL " in checks["database"]["detail"]
    assert "model test-model-1 is listed" in checks["llm"]["detail"]
    assert "4 receivers" in checks["routes"]["detail"]
    assert "auth.test ok" in checks["receiver:team-bot"]["detail"]
    assert checks["receiver:team-hook"]["detail"] == (
        "slack webhook: DOCTOR_SLACK_WEBHOOK holds a URL; not sent to; a webhook cannot be"
        " checked without posting"
    )  # the variable only: not the webhook's host, let alone its path
    assert "EHLO, STARTTLS and login ok; no mail sent" in checks["receiver:mail"]["detail"]
    assert "accepts connections" in checks["receiver:oncall"]["detail"]
    # The LLM was asked with the key the analyser sends; nothing was posted anywhere.
    (listing,) = setup.llm.model_requests
    assert listing["headers"]["authorization"] == f"Bearer {LLM_KEY}"
    assert setup.llm.requests == []
    assert [r.path for r in setup.slack.requests] == ["/api/auth.test"]
    assert setup.pagerduty.requests == []
    assert setup.smtp.recorder.received == []
    secrets = [v for k, v in setup.secrets.items() if k != "DOCTOR_SMTP_USER"]
    assert [secret for secret in [LLM_KEY, *secrets] if secret in out] == []


def test_a_healthy_setup_for_people(setup: Setup) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mendline", "doctor"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert [line.split()[:2] for line in lines[:-1]] == [["ok", name] for name in CHECKS]
    assert lines[1].startswith("  ok    kafka ")
    assert "\x1b[" not in result.stdout  # no colours: stdout is not a terminal
    assert lines[-1] == f"{len(CHECKS)} checks: {len(CHECKS)} ok; all good"


def test_a_broker_on_a_closed_port_fails_kafka(
    setup: Setup, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with closed_port() as port:
        monkeypatch.setenv("MENDLINE_KAFKA_BOOTSTRAP", f"127.0.0.1:{port}")
        status, checks, _ = doctor(capsys)
    assert status == 1
    kafka = only_failure(checks, "kafka")
    assert f"cannot reach Kafka at 127.0.0.1:{port}" in kafka["detail"]
    assert "MENDLINE_KAFKA_BOOTSTRAP" in kafka["hint"]


def test_missing_topics_fail_kafka_with_the_command_that_makes_them(
    setup: Setup, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = unique_topic("doctor-missing")
    monkeypatch.setenv("MENDLINE_ERRORS_TOPIC", missing)
    status, checks, _ = doctor(capsys)
    assert status == 1
    kafka = only_failure(checks, "kafka")
    assert f"topic {missing} is missing" in kafka["detail"]
    assert "`mendline topics ensure`" in kafka["hint"]


def test_an_unreachable_database_fails_without_showing_its_password(
    setup: Setup, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with closed_port() as port:
        url = f"postgresql://mendline:Sup3r-secret-pw@127.0.0.1:{port}/mendline"
        monkeypatch.setenv("MENDLINE_DATABASE_URL", url)
        status, checks, out = doctor(capsys)
    assert status == 1
    database = only_failure(checks, "database")
    assert database["detail"].startswith(
        f"cannot reach PostgreSQL at postgresql://mendline:[Filtered]@127.0.0.1:{port}/mendline"
    )
    assert "MENDLINE_DATABASE_URL" in database["hint"] and "running" in database["hint"]
    assert "Sup3r-secret-pw" not in out


async def migrate_all_but_the_newest(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        await conn.execute(
            "DELETE FROM mendline.schema_migrations WHERE version = $1",
            available_migrations()[-1][0],
        )
    finally:
        await conn.close()


def test_a_database_not_migrated_fails_with_mendline_migrate(
    setup: Setup,
    empty_db_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MENDLINE_DATABASE_URL", empty_db_url)
    status, checks, _ = doctor(capsys)
    assert status == 1
    database = only_failure(checks, "database")
    assert "mendline's tables are not there yet" in database["detail"]
    assert "`mendline migrate`" in database["hint"]

    asyncio.run(migrate_all_but_the_newest(empty_db_url))  # as an older mendline left it
    status, checks, _ = doctor(capsys)
    assert status == 1
    database = only_failure(checks, "database")
    shipped = [version for version, _ in available_migrations()]
    assert f"1 of {len(shipped)} migrations not applied: {shipped[-1]}" in database["detail"]
    assert "`mendline migrate`" in database["hint"]


def test_a_refused_llm_key_fails_with_a_hint_about_the_key_and_header(
    setup: Setup, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MENDLINE_LLM_API_KEY", "sk-wrong-key-0002")
    status, checks, out = doctor(capsys)
    assert status == 1
    llm = only_failure(checks, "llm")
    assert "answered HTTP 401" in llm["detail"]
    assert "MENDLINE_LLM_API_KEY" in llm["hint"] and "MENDLINE_LLM_API_KEY_HEADER" in llm["hint"]
    assert "sk-wrong-key-0002" not in out


def test_azure_style_keys_and_api_version_are_sent_as_the_analyser_sends_them(
    setup: Setup, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MENDLINE_LLM_API_KEY_HEADER", "api-key")
    monkeypatch.setenv("MENDLINE_LLM_API_VERSION", "2024-06-01")
    status, checks, _ = doctor(capsys)
    assert status == 0 and checks["llm"]["status"] == "ok"
    (listing,) = setup.llm.model_requests
    assert listing["path"] == "/v1/models?api-version=2024-06-01"
    assert listing["headers"]["api-key"] == LLM_KEY
    assert "authorization" not in listing["headers"]


def test_a_model_the_endpoint_does_not_list_is_a_warning(
    setup: Setup, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MENDLINE_LLM_MODEL", "gpt-absent")
    status, checks, _ = doctor(capsys)
    assert status == 0  # warnings pass
    llm = checks["llm"]
    assert llm["status"] == "warn"
    assert "model gpt-absent is not among the 1 listed (test-model-1)" in llm["detail"]
    assert "MENDLINE_LLM_MODEL" in llm["hint"]


def test_without_an_llm_the_heuristic_analyser_is_skipped_and_a_stray_key_warned(
    setup: Setup, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MENDLINE_LLM_BASE_URL")
    monkeypatch.setenv("MENDLINE_KAFKA_BOOTSTRAP_SERVERS", "typo:9092")
    status, checks, _ = doctor(capsys)
    assert status == 0
    assert checks["llm"]["status"] == "skip"
    assert "heuristic analyser, offline" in checks["llm"]["detail"]
    settings = checks["settings"]
    assert settings["status"] == "warn"
    assert "MENDLINE_LLM_API_KEY set without MENDLINE_LLM_BASE_URL" in settings["detail"]
    assert "MENDLINE_KAFKA_BOOTSTRAP_SERVERS is not a setting" in settings["detail"]
    assert "did you mean MENDLINE_KAFKA_BOOTSTRAP?" in settings["hint"]
    assert setup.llm.model_requests == []


def test_a_missing_receiver_secret_fails_routes_in_production_and_skips_the_receiver(
    setup: Setup, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOCTOR_PAGERDUTY_KEY")
    monkeypatch.setenv("MENDLINE_PROFILE", "production")
    status, checks, _ = doctor(capsys)
    assert status == 1
    routes = checks["routes"]
    assert routes["status"] == "fail"
    assert 'receiver "oncall" (pagerduty): DOCTOR_PAGERDUTY_KEY' in routes["detail"]
    assert "mendline alert" in routes["hint"]
    assert checks["receiver:oncall"]["status"] == "skip"
    assert "DOCTOR_PAGERDUTY_KEY unset" in checks["receiver:oncall"]["detail"]
    assert [c["status"] for n, c in checks.items() if n not in ("routes", "receiver:oncall")] == [
        "ok"
    ] * (len(CHECKS) - 2)


def test_a_missing_receiver_secret_in_development_names_the_receiver_disabled(
    setup: Setup, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOCTOR_PAGERDUTY_KEY")
    status, checks, _ = doctor(capsys)
    assert status == 0
    routes = checks["routes"]
    assert routes["status"] == "warn"
    assert "receiver oncall disabled: DOCTOR_PAGERDUTY_KEY is unset" in routes["detail"]
    assert "recorded as suppressed" in routes["hint"]
    assert checks["receiver:oncall"]["status"] == "skip"
    assert "disabled" in checks["receiver:oncall"]["detail"]


def test_a_webhook_over_plain_http_is_a_routes_warning_that_passes(
    setup: Setup, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    webhook = "http://hooks.slack.com/services/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"
    monkeypatch.setenv("DOCTOR_SLACK_WEBHOOK", webhook)
    status, checks, out = doctor(capsys)
    assert status == 0  # warnings pass
    routes = checks["routes"]
    assert routes["status"] == "warn"
    assert (
        'receiver "team-hook" (slack): DOCTOR_SLACK_WEBHOOK (webhook_url_env) holds an http://'
        in routes["detail"]
    )
    assert "plain http" in routes["hint"]
    assert "hooks.slack.com" not in routes["detail"]  # the receiver's own check names the host
    assert "plainhttpwebhooksecret01" not in out
    assert [c["status"] for n, c in checks.items() if n != "routes"] == ["ok"] * (len(CHECKS) - 1)


def test_a_refused_smtp_connection_fails_the_email_receiver(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    with closed_port() as port:
        setup.write_routes(smtp_port=port)
        status, checks, _ = doctor(capsys)
    assert status == 1
    mail = only_failure(checks, "receiver:mail")
    assert f"cannot reach the SMTP server at 127.0.0.1:{port}" in mail["detail"]
    assert "smtp_host and smtp_port" in mail["hint"]


def test_a_wrong_slack_token_and_a_short_routing_key_fail_their_receivers(
    setup: Setup, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCTOR_SLACK_TOKEN", "xoxb-not-the-token")
    monkeypatch.setenv("DOCTOR_PAGERDUTY_KEY", "too-short-key")
    status, checks, out = doctor(capsys)
    assert status == 1
    bot, oncall = checks["receiver:team-bot"], checks["receiver:oncall"]
    assert bot["status"] == "fail" and "invalid_auth" in bot["detail"]
    assert "DOCTOR_SLACK_TOKEN" in bot["hint"]
    assert oncall["status"] == "fail" and "13 characters, not 32" in oncall["detail"]
    assert "xoxb-not-the-token" not in out and "too-short-key" not in out
    assert setup.pagerduty.requests == []


def test_an_invalid_routing_file_fails_routes_as_the_loader_says(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    setup.routes.write_text('[[routes]]\nmatch = { severity = "loud" }\nreceivers = []\n')
    status, checks, _ = doctor(capsys)
    assert status == 1
    assert list(checks) == ["settings", "kafka", "database", "llm", "routes"]
    routes = only_failure(checks, "routes")
    assert routes["detail"].startswith(f"{setup.routes}:2: routes[0].match.severity")
    assert "mendline routes check" in routes["hint"]


def test_a_bad_producer_keys_file_fails_settings_naming_its_line_and_no_key(
    setup: Setup, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = setup.routes.with_name("producers.toml")
    key = "shop-key-0123456789abcdef"
    keys.write_text(f'exhaustive = true\n[services]\nshop = "{key}\n')
    monkeypatch.setenv("MENDLINE_PRODUCER_AUTH", "enforce")
    monkeypatch.setenv("MENDLINE_PRODUCER_KEYS_FILE", str(keys))
    status, checks, out = doctor(capsys)
    assert status == 1
    settings = only_failure(checks, "settings")
    assert f"{keys}:3: the producer keys file is not valid TOML" in settings["detail"]
    assert "MENDLINE_PRODUCER_KEYS_FILE" in settings["hint"]
    assert key not in out
    keys.write_text(f'exhaustive = true\n[services]\nshop = "{key}"\n')
    status, checks, _ = doctor(capsys)
    assert status == 0 and checks["settings"]["status"] == "ok"


def test_settings_that_do_not_load_are_the_failed_first_check(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MENDLINE_LLM_TIMEOUT", "soon")
    status, checks, _ = doctor(capsys)
    assert status == 1
    assert checks["settings"]["status"] == "fail"
    assert "llm_timeout" in checks["settings"]["detail"]
    assert "mendline config reference" in checks["settings"]["hint"]
    # The rest need the settings: said, not run.
    assert {name: c["status"] for name, c in checks.items() if name != "settings"} == {
        "kafka": "skip",
        "database": "skip",
        "llm": "skip",
        "routes": "skip",
    }
