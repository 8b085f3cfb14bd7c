"""CLI commands that need no servers: their output and their errors on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mendline.cli import main
from mendline.schemas.event import JSON_SCHEMA_PATH


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mendline", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_schema_prints_the_shipped_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert capsys.readouterr().out == JSON_SCHEMA_PATH.read_text()


def test_config_show_masks_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MENDLINE_DATABASE_URL", "postgresql://app:pa55word@db:5432/mendline")
    monkeypatch.setenv("MENDLINE_KAFKA_SASL_PASSWORD", "kafka-secret")
    assert main(["config", "show", "--json"]) == 0
    out = capsys.readouterr().out
    values = json.loads(out)
    assert values["database_url"] == "postgresql://app:[Filtered]@db:5432/mendline"
    assert "pa55word" not in out and "kafka-secret" not in out


def test_a_toml_config_file_is_read_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "mendline.toml"
    config.write_text('errors_topic = "from.file"\ndlq_topic = "dlq.from.file"\n')
    monkeypatch.setenv("MENDLINE_DLQ_TOPIC", "dlq.from.env")
    assert main(["--config", str(config), "config", "show", "--json"]) == 0
    values = json.loads(capsys.readouterr().out)
    assert values["errors_topic"] == "from.file"
    assert values["dlq_topic"] == "dlq.from.env"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("errors_topic = [", "is not valid TOML"),
        ("queue_size = 0", "queue_size: Input should be greater than or equal to 1"),
        ("no_such_setting = 1", "no_such_setting: Extra inputs are not permitted"),
    ],
)
def test_a_bad_config_file_is_one_clear_error_without_traceback(
    tmp_path: Path, content: str, message: str
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(content)
    result = run("--config", str(config), "config", "show")
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_config_file_is_named() -> None:
    result = run("--config", "/nonexistent/mendline.toml", "config", "show")
    assert result.returncode == 1
    assert "cannot read /nonexistent/mendline.toml" in result.stderr


def test_an_unknown_command_is_a_usage_error() -> None:
    result = run("frobnicate")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_config_reference_is_the_settings_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "reference"]) == 0
    out = capsys.readouterr().out
    assert "| `MENDLINE_KAFKA_BOOTSTRAP` | `localhost:9092` |" in out
