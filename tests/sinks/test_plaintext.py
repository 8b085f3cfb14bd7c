"""plaintext_warnings: where a credential would cross the network unencrypted, and the near
misses that must stay quiet."""

from __future__ import annotations

from pathlib import Path

import pytest

from mendline.sinks.routing import is_loopback_host, load_routes, plaintext_warnings

WEBHOOK = "MENDLINE_SLACK_WEBHOOK_URL"
SECRET_PATH = "T0ABCDEF1/B0ABCDEF2/abcdefghijklmnopqrstuvwx"


def warnings_for(
    tmp_path: Path,
    receiver: str,
    environ: dict[str, str] | None = None,
    llm_base_url: str | None = None,
) -> list[str]:
    path = tmp_path / "routes.toml"
    path.write_text(f'[receivers.r]\n{receiver}\n[[routes]]\nreceivers = ["r"]\n')
    return plaintext_warnings(load_routes(path), environ or {}, llm_base_url)


SLACK_BOT = 'type = "slack"\nbot_token_env = "SLACK_BOT"\nchannel = "#alerts"\n'
PAGERDUTY = 'type = "pagerduty"\nrouting_key_env = "PD_KEY"\n'
EMAIL = 'type = "email"\nsender = "mendline@example.com"\nto = ["oncall@example.com"]\n'
LOGIN = 'username_env = "SMTP_USER"\npassword_env = "SMTP_PASSWORD"\n'
HOOK = 'type = "webhook"\nurl_env = "HOOK_URL"\n'
HOOK_ENV = {"HOOK_URL": f"http://hooks.example.com/in?token={SECRET_PATH}"}


@pytest.mark.parametrize(
    ("receiver", "environ", "llm", "expected"),
    [
        (
            SLACK_BOT + 'api_url = "http://slack-proxy.internal:8080/api/"',
            {},
            None,
            'receiver "r" (slack): api_url is http:// to slack-proxy.internal',
        ),
        (
            PAGERDUTY + 'events_url = "http://events.pagerduty.com/v2/enqueue"',
            {},
            None,
            'receiver "r" (pagerduty): events_url is http:// to events.pagerduty.com',
        ),
        (
            f'type = "slack"\nwebhook_url_env = "{WEBHOOK}"',
            {WEBHOOK: f"http://hooks.slack.com/services/{SECRET_PATH}"},
            None,
            f'receiver "r" (slack): {WEBHOOK} (webhook_url_env) holds an http:// URL',
        ),
        (
            EMAIL + 'smtp_host = "smtp.example.com"\nsmtp_port = 25\nsecurity = "none"\n' + LOGIN,
            {},
            None,
            'receiver "r" (email): security = "none" to smtp.example.com: the SMTP login'
            " (SMTP_USER, SMTP_PASSWORD)",
        ),
        (
            PAGERDUTY,
            {},
            "http://llm.example.com:8000/v1",
            "llm_base_url is http:// to llm.example.com",
        ),
        (
            HOOK + 'secret_env = "HOOK_SECRET"\nheaders_env = { "Authorization" = "HOOK_AUTH" }',
            HOOK_ENV,
            None,
            'receiver "r" (webhook): HOOK_URL is an http:// URL to a host that is not loopback:'
            " HOOK_URL (url_env, the URL itself), HOOK_AUTH (headers_env, Authorization), the"
            " bodies signed with HOOK_SECRET (secret_env) would go unencrypted",
        ),
        (
            'type = "webhook"\nurl = "http://10.0.0.9/in"\nsecret_env = "HOOK_SECRET"',
            {},
            None,
            'receiver "r" (webhook): url is an http:// URL to a host that is not loopback:'
            " the bodies signed with HOOK_SECRET",
        ),
        (PAGERDUTY, {}, "HTTP://10.0.0.7/v1", "llm_base_url is http:// to 10.0.0.7"),
        (PAGERDUTY, {}, "http://[fd00::7]:8000/v1", "llm_base_url is http:// to fd00::7"),
    ],
)
def test_each_plaintext_credential_is_one_warning(
    tmp_path: Path, receiver: str, environ: dict[str, str], llm: str | None, expected: str
) -> None:
    found = warnings_for(tmp_path, receiver, environ, llm)
    assert len(found) == 1
    assert found[0].startswith(expected)
    assert not any(host in found[0] for host in ("hooks.slack.com", "hooks.example", "10.0.0.9"))
    assert SECRET_PATH not in found[0]


@pytest.mark.parametrize(
    ("receiver", "environ", "llm"),
    [
        (SLACK_BOT, {}, "https://api.openai.com/v1"),  # the default https api_url
        (SLACK_BOT + 'api_url = "http://127.0.0.1:9000/api/"', {}, "http://localhost:11434/v1"),
        (SLACK_BOT + 'api_url = "http://[::1]:9000/api/"', {}, "http://127.8.9.10:8000/v1"),
        (
            f'type = "slack"\nwebhook_url_env = "{WEBHOOK}"',
            {WEBHOOK: f"https://hooks.slack.com/services/{SECRET_PATH}"},
            None,
        ),
        (f'type = "slack"\nwebhook_url_env = "{WEBHOOK}"', {}, None),  # unset: nothing to send
        (PAGERDUTY + 'events_url = "http://localhost:8080/v2/enqueue"', {}, None),
        (EMAIL + 'smtp_host = "localhost"\nsecurity = "none"\n' + LOGIN, {}, None),
        (EMAIL + 'smtp_host = "127.0.0.1"\nsecurity = "none"\n' + LOGIN, {}, None),
        (EMAIL + 'smtp_host = "smtp.example.com"\nsecurity = "starttls"\n' + LOGIN, {}, None),
        (EMAIL + 'smtp_host = "smtp.example.com"\nsmtp_port = 465\nsecurity = "tls"\n', {}, None),
        (HOOK, {"HOOK_URL": "https://hooks.example.com/in"}, None),
        (HOOK, {"HOOK_URL": "http://127.0.0.1:8080/in"}, None),
        (HOOK, {}, None),  # unset: nothing to send
        # No secret: a plain URL in the file, no signature, no secret headers.
        ('type = "webhook"\nurl = "http://hooks.example.com/in"', {}, None),
        # No login: no credential crosses; a plain relay on port 25 is a usual setup.
        (EMAIL + 'smtp_host = "relay.example.com"\nsmtp_port = 25\nsecurity = "none"\n', {}, None),
    ],
)
def test_near_misses_do_not_warn(
    tmp_path: Path, receiver: str, environ: dict[str, str], llm: str | None
) -> None:
    assert warnings_for(tmp_path, receiver, environ, llm) == []


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST.", True),
        ("127.0.0.1", True),
        ("127.255.0.9", True),
        ("::1", True),
        ("[::1]", True),
        ("128.0.0.1", False),
        ("localhost.example.com", False),
        ("10.0.0.1", False),
        ("", False),
        (None, False),
    ],
)
def test_is_loopback_host(host: str | None, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback
