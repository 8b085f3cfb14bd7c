"""The settings: the health endpoints (off unless a port is set, on loopback by default), the
dashboard's links in alerts and its settings' checks."""

from __future__ import annotations

import pytest

from mendline.schemas.errors import ConfigError
from mendline.schemas.settings import load_settings


@pytest.fixture
def no_metrics_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("MENDLINE_METRICS_PORT", raising=False)
    monkeypatch.delenv("MENDLINE_METRICS_HOST", raising=False)
    return monkeypatch


def test_the_endpoints_are_off_by_default_and_on_loopback(
    no_metrics_env: pytest.MonkeyPatch,
) -> None:
    settings = load_settings()
    assert (settings.metrics_port, settings.metrics_host) == (None, "127.0.0.1")


@pytest.mark.parametrize(("value", "port"), [("9464", 9464), ("", None)])
def test_the_port_comes_from_the_environment_and_empty_is_unset(
    no_metrics_env: pytest.MonkeyPatch, value: str, port: int | None
) -> None:
    no_metrics_env.setenv("MENDLINE_METRICS_PORT", value)  # as Compose passes an unset one
    assert load_settings().metrics_port == port


@pytest.mark.parametrize("value", ["0", "65536", "http"])
def test_a_port_out_of_range_is_a_config_error_naming_the_setting(
    no_metrics_env: pytest.MonkeyPatch, value: str
) -> None:
    no_metrics_env.setenv("MENDLINE_METRICS_PORT", value)
    with pytest.raises(ConfigError, match="metrics_port"):
        load_settings()


@pytest.mark.parametrize(
    ("template", "public", "link"),
    [
        (None, None, None),
        ("https://x/i/{id}", None, "https://x/i/{id}"),
        ("https://x/i/{id}", "https://dash.example", "https://x/i/{id}"),
        (None, "https://dash.example/", "https://dash.example/issues/{id}"),
        (None, "https://dash.example/{odd}", "https://dash.example/{{odd}}/issues/{id}"),
    ],
)
def test_alerts_link_to_the_dashboard_unless_told_otherwise(
    template: str | None, public: str | None, link: str | None
) -> None:
    settings = load_settings(issue_url_template=template, web_public_url=public)
    assert settings.issue_link_template == link
    if link is not None:
        assert "{id}" not in link.format(id=7)


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"web_auth_proxy_header": "X-User"}, "web_auth_proxy_allow"),
        ({"web_auth_proxy_allow": ["nonsense"]}, "not an address or a network"),
        ({"web_forwarded_allow": ["10.0.0.0/33"]}, "not an address or a network"),
        ({"web_public_url": "dash.example"}, "with its scheme"),
    ],
)
def test_the_dashboards_settings_say_what_is_wrong(
    overrides: dict[str, object], problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_settings(**overrides)
