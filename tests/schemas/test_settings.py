"""The settings of the health endpoints: off unless a port is set, on loopback by default."""

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
