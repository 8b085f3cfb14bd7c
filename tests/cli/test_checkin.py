"""``mendline checkin`` for cron lines: a bad check-in is a usage error, a broker that cannot
be reached one clear line and status 1, never a traceback; ``mendline schema --checkin``."""

from __future__ import annotations

import json

import pytest

from mendline.cli import main
from mendline.devstack import free_port
from mendline.schemas.checkin import CHECKIN_JSON_SCHEMA_PATH
from tests.cli_helpers import failure, run, usage_error


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("two words", "--status", "ok"), "not a check-in: check: Value error, 'two words'"),
        (("job", "--status", "done"), "argument --status: invalid choice: 'done'"),
        (("job",), "the following arguments are required: --status"),
        (("job", "--status", "ok", "--duration", "-1"), "argument --duration: expected seconds"),
        (("job", "--status", "ok", "--duration", "nan"), "argument --duration: expected seconds"),
        (("job", "--status", "ok", "--run-id", "r" * 201), "not a check-in: run_id"),
    ],
)
def test_a_bad_checkin_is_a_usage_error_before_kafka_is_asked(
    args: tuple[str, ...], message: str
) -> None:
    result = run("checkin", *args, env={"MENDLINE_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"})
    assert usage_error(result).startswith(message)


def test_kafka_that_cannot_be_reached_is_one_line_and_status_1() -> None:
    bootstrap = f"127.0.0.1:{free_port()}"
    result = run(
        "checkin", "nightly-export", "--status", "ok", env={"MENDLINE_KAFKA_BOOTSTRAP": bootstrap}
    )
    message, hint = failure(result)
    assert message == f"cannot reach Kafka at {bootstrap}"
    assert "MENDLINE_KAFKA_BOOTSTRAP" in hint


def test_schema_checkin_prints_the_shipped_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "--checkin"]) == 0
    out = capsys.readouterr().out
    assert out == CHECKIN_JSON_SCHEMA_PATH.read_text()
    assert json.loads(out)["title"] == "CheckIn v1"
