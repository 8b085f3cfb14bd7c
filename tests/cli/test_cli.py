"""CLI commands that need no servers: their output, their --json and their errors on bad input."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mendline.cli import Commands, main
from mendline.schemas.event import JSON_SCHEMA_PATH
from mendline.schemas.settings import Settings, settings_reference
from mendline.sinks.routing import load_routes
from tests.cli_helpers import failure, run, usage_error

UNREACHABLE_DATABASE = "postgresql://postgres:pa55word@127.0.0.1:9/x"
UNREACHABLE_KAFKA = "127.0.0.1:9"


@pytest.mark.parametrize("argv", [["schema"], ["schema", "--json"]])
def test_schema_prints_the_shipped_file(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out == JSON_SCHEMA_PATH.read_text()
    assert json.loads(out)["title"] == "ErrorEvent v1"


def test_config_show_masks_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MENDLINE_DATABASE_URL", "postgresql://app:pa55word@db:5432/mendline")
    monkeypatch.setenv("MENDLINE_KAFKA_SASL_PASSWORD", "kafka-secret")
    monkeypatch.setenv("MENDLINE_SIGNING_KEY", "shop-signing-key-0123456789")
    assert main(["config", "show", "--json"]) == 0
    out = capsys.readouterr().out
    values = json.loads(out)
    assert values["database_url"] == "postgresql://app:[Filtered]@db:5432/mendline"
    assert values["kafka_sasl_password"] == "**********"
    assert values["signing_key"] == "**********"
    assert "pa55word" not in out and "kafka-secret" not in out and "0123456789" not in out
    assert main(["config", "show"]) == 0
    table = capsys.readouterr().out
    assert "MENDLINE_SIGNING_KEY" in table and "0123456789" not in table


def test_config_show_redacts_every_url_like_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MENDLINE_DATABASE_URL", "postgresql://app:p@ss#w rd@db:5432/mendline")
    monkeypatch.setenv("MENDLINE_KAFKA_BOOTSTRAP", "alice:kafka-s3cret@k1:9093,k2:9093")
    monkeypatch.setenv("MENDLINE_LLM_BASE_URL", "https://llm.example.com/v1?api_key=sk-live-123")
    assert main(["config", "show", "--json"]) == 0
    out = capsys.readouterr().out
    values = json.loads(out)
    assert values["database_url"] == "postgresql://app:[Filtered]@db:5432/mendline"
    assert values["kafka_bootstrap"] == "alice:[Filtered]@k1:9093,k2:9093"
    assert values["llm_base_url"] == "https://llm.example.com/v1?api_key=[Filtered]"
    assert not any(s in out for s in ("p@ss", "w rd", "kafka-s3cret", "sk-live"))


def test_config_show_for_people_is_a_table_of_variables(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MENDLINE_RETENTION_DAYS", "9")
    assert main(["config", "show"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["VARIABLE", "VALUE"]
    assert len(lines) == 1 + len(Settings.model_fields)
    (retention,) = [line for line in lines if line.startswith("MENDLINE_RETENTION_DAYS ")]
    assert retention.endswith(" 9")
    # One column of values: every value starts where the header's VALUE does.
    column = lines[0].index("VALUE")
    assert all(line[column - 2 : column] == "  " and line[column] != " " for line in lines)
    assert "\x1b[" not in "\n".join(lines)  # not a terminal: no colour


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (None, "cannot read the producer keys file {path}: No such file or directory"),
        ('[services]\nshop = "{key}\n', "{path}:2: the producer keys file is not valid TOML"),
        ('[services]\nshop = "{short}"\n', "{path}: every key of service 'shop' must be"),
    ],
)
def test_config_show_fails_on_a_bad_producer_keys_file_without_showing_a_key(
    tmp_path: Path, keys: str | None, message: str
) -> None:
    path = tmp_path / "producers.toml"
    key, short = "shop-key-0123456789abcdef", "too-short"
    if keys is not None:
        path.write_text(keys.format(key=key, short=short))
    env = {"MENDLINE_PRODUCER_AUTH": "warn", "MENDLINE_PRODUCER_KEYS_FILE": str(path)}
    error, hint = failure(run("config", "show", env=env))
    assert error.startswith(message.format(path=path))
    assert key not in error and short not in error
    assert "MENDLINE_PRODUCER_KEYS_FILE" in hint
    path.write_text(f'[services]\nshop = "{key}"\n')
    shown = run("config", "show", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["producer_keys_file"] == str(path)
    assert key not in shown.stdout


@pytest.mark.parametrize("command", [["consume"], ["run", "--only", "consume"]])
def test_consume_checks_the_producer_keys_file_before_any_server(
    tmp_path: Path, command: list[str]
) -> None:
    path = tmp_path / "producers.toml"
    path.write_text("[services]\nshop = [\n")
    env = {
        "MENDLINE_PRODUCER_AUTH": "enforce",
        "MENDLINE_PRODUCER_KEYS_FILE": str(path),
        # Nothing listens here: a stage that connected first would wait, not fail.
        "MENDLINE_KAFKA_BOOTSTRAP": UNREACHABLE_KAFKA,
        "MENDLINE_DATABASE_URL": UNREACHABLE_DATABASE,
    }
    error, hint = failure(run(*command, env=env, timeout=60))
    assert error == f"{path}:2: the producer keys file is not valid TOML"
    assert "MENDLINE_PRODUCER_AUTH=off" in hint


@pytest.mark.parametrize(
    "where",
    [
        lambda config: ["--config", config, "config", "show", "--json"],
        lambda config: ["--json", "config", "show", "--config", config],
        lambda config: ["config", "--config", config, "show", "--json"],
    ],
    ids=["before", "after", "between"],
)
def test_a_toml_config_file_is_read_and_the_environment_wins(
    where: Callable[[str], list[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "mendline.toml"
    config.write_text('errors_topic = "from.file"\ndlq_topic = "dlq.from.file"\n')
    monkeypatch.setenv("MENDLINE_DLQ_TOPIC", "dlq.from.env")
    assert main(where(str(config))) == 0
    values = json.loads(capsys.readouterr().out)
    assert values["errors_topic"] == "from.file"
    assert values["dlq_topic"] == "dlq.from.env"


def test_json_before_a_command_without_json_output_is_a_usage_error() -> None:
    assert usage_error(run("--json", "checks", "example")) == (
        "--json: this command has no JSON output"
    )


def test_version_is_the_installed_packages() -> None:
    result = run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"mendline {importlib.metadata.version('mendline')}\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("errors_topic = [", "is not valid TOML"),
        ("queue_size = 0", "queue_size: Input should be greater than or equal to 1"),
        ("no_such_setting = 1", "no_such_setting: Extra inputs are not permitted"),
    ],
)
def test_a_bad_config_file_is_one_clear_error_and_a_hint(
    tmp_path: Path, content: str, message: str
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(content)
    error, hint = failure(run("--config", str(config), "config", "show", "--json"))
    assert message in error
    assert "`mendline config reference`" in hint


def test_a_missing_config_file_is_named() -> None:
    error, hint = failure(run("--config", "/nonexistent/mendline.toml", "config", "show"))
    assert error == "cannot read /nonexistent/mendline.toml: No such file or directory"
    assert "--config" in hint


def test_a_bad_setting_in_the_environment_is_named() -> None:
    error, hint = failure(run("issues", "list", env={"MENDLINE_RETENTION_DAYS": "soon"}))
    assert error.startswith("invalid settings: retention_days: ")
    assert "MENDLINE_* variables" in hint


def test_a_misspelt_variable_is_named_with_the_setting_it_looks_like() -> None:
    result = run("config", "show", "--json", env={"MENDLINE_RETENTON_DAYS": "9"})
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        "mendline: warning: MENDLINE_RETENTON_DAYS is not a setting (ignored);"
        " did you mean MENDLINE_RETENTION_DAYS?\n"
    )
    assert json.loads(result.stdout)["retention_days"] == 30


def test_an_unknown_command_is_a_usage_error() -> None:
    assert "invalid choice: 'frobnicate'" in usage_error(run("frobnicate"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("analyze", "--fresh"), "--fresh goes with --issue"),
        (("issues", "show", "first"), "argument id: expected a whole number, not 'first'"),
        (("findings", "list", "--limit", "0"), "argument --limit: must be at least 1, not 0"),
        (
            ("issues", "show", "99999999999999999999"),
            "argument id: must be at most 9223372036854775807, not 99999999999999999999",
        ),
        (
            ("events", "prune", "--days", "100000000"),
            "argument --days: must be at most 36500, not 100000000",
        ),
        (
            ("run", "--only", "consume,bogus"),
            "argument --only: stages are relay, consume, analyze, alert",
        ),
        (("web", "--port", "70000"), "argument --port: a port is a number from 0 to 65535"),
        (("web", "--port", "http"), "argument --port: a port is a number from 0 to 65535"),
        (("web", "--host", ""), "argument --host: an address to listen on, not ''"),
        (("web", "--host", "a b"), "argument --host: an address to listen on, not 'a b'"),
        (("schema", "--bogus"), "unrecognized arguments: --bogus"),
        (("devstack", "now"), "unrecognized arguments: now"),
        (("issues", "list", "--status", "open"), "argument --status: invalid choice: 'open'"),
        (("issues", "ignore", "1", "--for", "soon"), '--for "soon" is not a duration'),
        (("issues", "ignore", "1", "--for", "0s"), "--for takes more than 0s"),
        (("issues", "ignore", "1", "--until", "2027-01-01T09:00"), "--until needs its time zone"),
        (("issues", "ignore", "1", "--until", "Monday"), "--until Monday is not an ISO 8601"),
        (("issues", "ignore", "1", "--for", "1h", "--until", "2027-01-01T09:00Z"), "give --for"),
        (
            ("dlq", "redrive", "--reason", "bogus"),
            "argument --reason: invalid choice: 'bogus' (choose from 'not_json', 'invalid',",
        ),
    ],
)
def test_bad_arguments_are_usage_errors_before_any_server_is_asked(
    args: tuple[str, ...], message: str
) -> None:
    result = run(*args, env={"MENDLINE_DATABASE_URL": UNREACHABLE_DATABASE})
    assert usage_error(result).startswith(message)


@pytest.mark.parametrize(
    ("reason", "why"),
    [
        ("relay_rejected", "they are bodies the relay refused, not events"),
        ("undecodable", "they name offsets, not records"),
    ],
)
def test_redriving_what_is_never_redriven_says_so_before_reading_the_topic(
    reason: str, why: str
) -> None:
    result = run("dlq", "redrive", "--reason", reason, env={"MENDLINE_KAFKA_BOOTSTRAP": "x:1"})
    assert result.stderr.splitlines() == [
        f"mendline dlq: error: {reason} records are never redriven: {why}",
        f"hint: see them with `mendline dlq list --reason {reason}`",
    ]
    assert result.returncode == 2


def test_a_usage_error_of_ours_points_at_the_commands_help() -> None:
    result = run("analyze", "--fresh")
    assert result.stderr.splitlines() == [
        "mendline analyze: error: --fresh goes with --issue",
        "hint: see `mendline analyze --help`",
    ]


def test_the_database_unreachable_is_one_line_with_a_hint_and_the_password_hidden() -> None:
    error, hint = failure(
        run("issues", "list", env={"MENDLINE_DATABASE_URL": UNREACHABLE_DATABASE})
    )
    assert error.startswith("cannot reach PostgreSQL at postgresql://postgres:[Filtered]@127.0.0.1")
    assert "MENDLINE_DATABASE_URL" in hint and "`mendline doctor`" in hint


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        # the port is not a number: asyncpg's int() raises a plain ValueError
        ("postgresql://app:pa55word@127.0.0.1:abc/db", "invalid literal for int()"),
        # asyncpg's ClientConfigurationError
        ("postgresql://app:pa55word@127.0.0.1:9/db?sslmode=bogus", "`sslmode` parameter"),
        ("mysql://app:pa55word@127.0.0.1:9/db", "invalid DSN"),
    ],
)
def test_a_malformed_database_url_is_one_line_with_a_hint_and_the_password_hidden(
    url: str, problem: str
) -> None:
    result = run("issues", "list", env={"MENDLINE_DATABASE_URL": url})
    error, hint = failure(result)
    shown = url.replace("pa55word", "[Filtered]")
    assert error.startswith(f"the database URL {shown} is not valid: {problem}")
    assert "MENDLINE_DATABASE_URL" in hint and "`mendline doctor`" in hint
    assert "pa55word" not in result.stderr


@pytest.mark.parametrize(
    "argv",
    [("--debug", "issues", "list"), ("issues", "list", "--debug"), ("issues", "--debug", "list")],
)
def test_debug_shows_the_traceback_instead(argv: tuple[str, ...]) -> None:
    result = run(*argv, env={"MENDLINE_DATABASE_URL": UNREACHABLE_DATABASE})
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "MendlineError: cannot reach PostgreSQL" in result.stderr
    assert "hint: " not in result.stderr


def _fail_as_a_bug_would(args: argparse.Namespace, settings: Settings) -> int:
    raise KeyError("no_such_key")


class BrokenCommands:
    """A group of one command, ``broken``, that fails as a bug would: not with a
    MendlineError."""

    @staticmethod
    def register(commands: Commands) -> None:
        commands.add_parser("broken").set_defaults(run=_fail_as_a_bug_would)


def test_an_unexpected_exception_is_its_type_and_message_and_the_debug_hint(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["broken"], groups=(BrokenCommands,)) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "mendline: KeyError: 'no_such_key'\nhint: run again with --debug for the traceback\n"
    )
    assert main(["--debug", "broken"], groups=(BrokenCommands,)) == 1
    debug = capsys.readouterr().err
    assert debug.startswith("Traceback (most recent call last)")
    assert debug.endswith("KeyError: 'no_such_key'\n")


def _fail_with_secrets_and_controls(args: argparse.Namespace, settings: Settings) -> int:
    # As a driver does: the URL it was given, password and all, in its exception; and text
    # from outside that would steer a terminal.
    raise ValueError("bad DSN 'postgresql://app:p@ss#w rd@db:5432/x' \x1b[2J\x1b]0;owned\x07")


class LeakyCommands:
    """A group of one command, ``leaky``, whose error holds a DSN and control characters."""

    @staticmethod
    def register(commands: Commands) -> None:
        commands.add_parser("leaky").set_defaults(run=_fail_with_secrets_and_controls)


@pytest.mark.parametrize("debug", [False, True], ids=["error", "debug-traceback"])
def test_errors_and_debug_tracebacks_show_no_password_and_no_control_characters(
    debug: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--debug", "leaky"] if debug else ["leaky"]
    assert main(argv, groups=(LeakyCommands,)) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err if debug else err.startswith("mendline: ValueError: bad DSN")
    assert "postgresql://app:[Filtered]@db:5432/x" in err
    assert "p@ss" not in err and "w rd" not in err
    assert "\x1b" not in err and "\x07" not in err
    assert "\\x1b[2J\\x1b]0;owned\\x07" in err


def test_config_reference_is_the_settings_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "reference"]) == 0
    assert capsys.readouterr().out == settings_reference()


def test_config_reference_json_is_one_setting_a_line_with_its_default(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MENDLINE_KAFKA_BOOTSTRAP", "elsewhere:9092")  # a default is not a value
    assert main(["config", "reference", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["setting"] for row in rows] == list(Settings.model_fields)
    by_name = {row["variable"]: row for row in rows}
    assert by_name["MENDLINE_KAFKA_BOOTSTRAP"] == {
        "variable": "MENDLINE_KAFKA_BOOTSTRAP",
        "setting": "kafka_bootstrap",
        "default": "localhost:9092",
        "meaning": "Kafka bootstrap servers, comma-separated.",
    }
    assert by_name["MENDLINE_DATABASE_URL"]["default"].startswith("postgresql://")
    assert by_name["MENDLINE_LLM_API_KEY"]["default"] is None
    assert by_name["MENDLINE_IN_APP_INCLUDE"]["default"] == []


# -- mendline routes ----------------------------------------------------------------------


@pytest.fixture
def _no_routing_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "MENDLINE_ROUTES_FILE",
        "MENDLINE_PAGERDUTY_ROUTING_KEY",
        "MENDLINE_SLACK_WEBHOOK_URL",
        "MENDLINE_SLACK_BOT_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("_no_routing_secrets")
def test_routes_check_json_lists_routes_receivers_and_warnings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["routes", "check", "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # the warnings are in the object
    shown = json.loads(captured.out)
    shipped = load_routes(None)
    assert shown["source"] == shipped.source and shown["valid"] is True
    assert [route["line"] for route in shown["routes"]] == [r.line for r in shipped.routes]
    assert shown["routes"][0]["conditions"] == "severity in (warning, error, critical)"
    assert shown["routes"][0]["receivers"] == ["console"]
    assert shown["routes"][1]["conditions"] == "tag:mendline=self"
    assert shown["routes"][2]["conditions"] == "severity=critical"
    assert shown["routes"][2]["receivers"] == ["oncall", "team-slack"]
    assert shown["receivers"] == {name: r.type for name, r in shipped.receivers.items()}
    assert any("MENDLINE_PAGERDUTY_ROUTING_KEY" in w for w in shown["warnings"])


@pytest.mark.usefixtures("_no_routing_secrets")
def test_routes_check_warns_of_credentials_over_plaintext_and_still_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    webhook = "http://hooks.slack.com/services/T0ABCDEF1/B0ABCDEF2/abcdefghijklmnopqrstuvwx"
    monkeypatch.setenv("MENDLINE_SLACK_WEBHOOK_URL", webhook)
    monkeypatch.setenv("MENDLINE_LLM_BASE_URL", "https://api.openai.com/v1")
    routes = tmp_path / "routes.toml"
    routes.write_text(
        '[receivers.team-slack]\ntype = "slack"\nwebhook_url_env = "MENDLINE_SLACK_WEBHOOK_URL"\n'
        '[receivers.oncall]\ntype = "pagerduty"\n'
        'routing_key_env = "MENDLINE_PAGERDUTY_ROUTING_KEY"\n'
        'events_url = "http://events.pagerduty.com/v2/enqueue"\n'
        '[[routes]]\nreceivers = ["oncall", "team-slack"]\n'
    )
    assert main(["routes", "check", str(routes)]) == 0
    captured = capsys.readouterr()
    assert f"{routes}: valid" in captured.out
    assert (
        'warning: receiver "oncall" (pagerduty): events_url is http:// to events.pagerduty.com'
        in captured.err
    )
    assert 'warning: receiver "team-slack" (slack): MENDLINE_SLACK_WEBHOOK_URL' in captured.err
    assert "hooks.slack.com" not in captured.out + captured.err  # the webhook is a secret

    assert main(["routes", "check", "--json", str(routes)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [w.split(":")[0] for w in shown["plaintext"]] == [
        'receiver "team-slack" (slack)',
        'receiver "oncall" (pagerduty)',
    ]
    assert not any("http://" in w for w in shown["warnings"])  # unset secrets only
    assert "hooks.slack.com" not in json.dumps(shown)


@pytest.mark.usefixtures("_no_routing_secrets")
def test_routes_test_json_is_one_object(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["routes", "test", "--severity", "critical", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["labels"] == {"severity": "critical", "kind": "new_issue"}
    assert [r["receiver"] for r in shown["receivers"]] == ["console", "oncall", "team-slack"]


def test_a_bad_routes_file_is_named_with_its_line_and_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "routes.toml"
    path.write_text('[[routes]]\nmatch = { severity = "loud" }\nreceivers = []\n')
    for args in (("routes", "check", str(path)), ("routes", "test", "--severity", "error")):
        error, hint = failure(run(*args, env={"MENDLINE_ROUTES_FILE": str(path)}))
        assert error.startswith(f"{path}:2: routes[0].match.severity")
        assert "`mendline routes check FILE`" in hint


# -- mendline emit: what needs no broker ----------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--message", "x", "--file", "-"), "argument --file: not allowed with argument --message"),
        ((), "one of the arguments --message --file is required"),
        (("--file", "-", "--service", "api"), "--service goes with --message, not with --file"),
        (("--file", "-", "--count", "2"), "--count goes with --message, not with --file"),
        (("--file", "/nonexistent/events.jsonl"), "can't open '/nonexistent/events.jsonl'"),
        (("--message", "x", "--context", "[1]"), "argument --context: must be a JSON object"),
        (("--message", "x", "--context", "{"), "argument --context: not JSON"),
        (("--message", "x", "--exception", ":bad"), "argument --exception: use TYPE:VALUE"),
        (("--message", "x", "--tag", "team"), "argument --tag: use NAME=VALUE, not 'team'"),
        (("--message", "x", "--level", "fatal"), "argument --level: invalid choice: 'fatal'"),
        (("--message", "x", "--count", "0"), "argument --count: must be at least 1, not 0"),
    ],
)
def test_emit_refuses_bad_arguments_as_usage_errors(args: tuple[str, ...], message: str) -> None:
    result = run("emit", *args, env={"MENDLINE_KAFKA_BOOTSTRAP": UNREACHABLE_KAFKA}, stdin="")
    assert message in usage_error(result)


@pytest.fixture
def silent_broker() -> Iterator[str]:
    """A loopback port that takes connections and never answers, like a broker gone silent."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"127.0.0.1:{listener.getsockname()[1]}"


@pytest.mark.parametrize("broker", ["refused", "silent"])
def test_emit_with_the_broker_unreachable_fails_within_the_request_timeout(
    broker: str, silent_broker: str
) -> None:
    env = {
        "MENDLINE_KAFKA_BOOTSTRAP": UNREACHABLE_KAFKA if broker == "refused" else silent_broker,
        "MENDLINE_KAFKA_REQUEST_TIMEOUT": "2",
    }
    # Without the setting, the client's own 40 s request timeout applies: past the 30 s this
    # run may take, subprocess raises TimeoutExpired and the test fails. No time is measured.
    result = run("emit", "--message", "payment failed", "--json", env=env, timeout=30)
    error, hint = failure(result)
    assert error == f"cannot reach Kafka at {env['MENDLINE_KAFKA_BOOTSTRAP']}"
    assert "MENDLINE_KAFKA_BOOTSTRAP" in hint and "`mendline doctor`" in hint


def test_emit_of_a_file_of_bad_lines_names_each_and_asks_no_broker() -> None:
    result = run(
        "emit",
        "--file",
        "-",
        env={"MENDLINE_KAFKA_BOOTSTRAP": UNREACHABLE_KAFKA},
        stdin='not json\n\n{"schema_version": 1}\n',
    )
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].startswith("line 1: not_json: ")
    assert lines[1].startswith("line 3: invalid: ")
    assert lines[2:] == ["sent 0 event(s) to mendline.errors"]


def test_fingerprint_names_a_bad_line_with_its_control_characters_escaped() -> None:
    event = {
        "schema_version": 1,
        "event_id": "0" * 32,
        "timestamp": "2026-01-01T00:00:00Z",
        "service": "s",
        "environment": "e",
        "level": "error",
        "message": "m",
        "tags": {"\x1b[2Jk": 5},  # a key of the event's, named in the error
    }
    result = run("fingerprint", stdin=json.dumps(event) + "\n")
    assert result.returncode == 1
    assert result.stderr == "line 1: invalid: tags.\\x1b[2Jk: Input should be a valid string\n"


def test_output_cut_short_by_a_pipe_ends_quietly(tmp_path: Path) -> None:
    """`mendline ... | head`: the executable ends on SIGPIPE, with no BrokenPipeError."""
    event = {
        "schema_version": 1,
        "event_id": "0" * 31 + "1",
        "timestamp": "2026-11-29T12:00:00Z",
        "service": "api",
        "environment": "production",
        "level": "error",
        "message": "payment failed",
    }
    lines = tmp_path / "events.jsonl"
    lines.write_text((json.dumps(event) + "\n") * 20_000)  # far more output than a pipe holds
    result = subprocess.run(
        f"{sys.executable} -m mendline fingerprint < {lines} | head -n 1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout.startswith("0" * 31 + "1 ")
    assert result.stderr == ""
