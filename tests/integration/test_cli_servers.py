"""CLI commands against real servers: topics ensure, devstack, and the workers' JSON logs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from mendline.schemas.redaction import redact_url
from tests.cli_helpers import cli_env, failure, json_object, run
from tests.db_helpers import with_database

from .kafka_helpers import unique_topic
from .stage_helpers import SLACK_ROUTE, consume_settings, wait_until

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("change", "said", "hint"),
    [
        (
            lambda url: url.replace("//postgres:", "//nobody_here:", 1),
            # with password authentication, a role it lacks is a password that fails
            'refused the login: password authentication failed for user "nobody_here"',
            "check the user and password in MENDLINE_DATABASE_URL",
        ),
        (
            lambda url: with_database(url, "no_such_db"),
            'database "no_such_db" does not exist',
            "create the database (createdb NAME), or fix its name in MENDLINE_DATABASE_URL",
        ),
    ],
    ids=["role", "database"],
)
def test_a_server_that_refuses_the_connection_gets_the_hint_of_its_answer(
    database_url: str, change: Callable[[str], str], said: str, hint: str
) -> None:
    url = change(database_url)
    assert url != database_url
    error, shown_hint = failure(run("issues", "list", env={"MENDLINE_DATABASE_URL": url}))
    assert said in error
    assert shown_hint == f"{hint}; or run `mendline doctor`"


async def test_topics_ensure_creates_then_finds_them(kafka_bootstrap: str) -> None:
    env = {
        "MENDLINE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "MENDLINE_ERRORS_TOPIC": unique_topic("ensure"),
        "MENDLINE_DLQ_TOPIC": unique_topic("ensure-dlq"),
        "MENDLINE_CHECKINS_TOPIC": unique_topic("ensure-checkins"),
        "MENDLINE_CHECKINS_DLQ_TOPIC": unique_topic("ensure-checkins-dlq"),
        "MENDLINE_TOPIC_PARTITIONS": "3",
    }
    first = run("topics", "ensure", env=env)
    assert first.returncode == 0, first.stderr
    assert f"{env['MENDLINE_ERRORS_TOPIC']}: created" in first.stdout
    second = run("topics", "ensure", env=env)
    assert f"{env['MENDLINE_DLQ_TOPIC']}: exists" in second.stdout
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(
            [env["MENDLINE_ERRORS_TOPIC"], env["MENDLINE_CHECKINS_TOPIC"]]
        )
    finally:
        await admin.close()
    partitions = {topic["topic"]: len(topic["partitions"]) for topic in described}
    # Check-ins are read in the order they were written: one partition.
    assert partitions == {env["MENDLINE_ERRORS_TOPIC"]: 3, env["MENDLINE_CHECKINS_TOPIC"]: 1}


def test_topics_ensure_json_says_what_it_did_to_each_topic(kafka_bootstrap: str) -> None:
    errors, dlq = unique_topic("ensure"), unique_topic("ensure-dlq")
    checkins, checkins_dlq = unique_topic("ensure-checkins"), unique_topic("ensure-checkins-dlq")
    env = {
        "MENDLINE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "MENDLINE_ERRORS_TOPIC": errors,
        "MENDLINE_DLQ_TOPIC": dlq,
        "MENDLINE_CHECKINS_TOPIC": checkins,
        "MENDLINE_CHECKINS_DLQ_TOPIC": checkins_dlq,
    }
    topics = (errors, dlq, checkins, checkins_dlq)
    assert json_object(run("topics", "ensure", "--json", env=env)) == {
        "topics": dict.fromkeys(topics, "created")
    }
    assert json_object(run("topics", "ensure", "--json", env=env)) == {
        "topics": dict.fromkeys(topics, "exists")
    }


def test_topics_ensure_with_kafka_unreachable_is_one_clear_error() -> None:
    error, hint = failure(run("topics", "ensure", env={"MENDLINE_KAFKA_BOOTSTRAP": "127.0.0.1:9"}))
    assert error == "cannot reach Kafka at 127.0.0.1:9"
    assert "MENDLINE_KAFKA_BOOTSTRAP" in hint


@pytest.mark.parametrize("as_json", [False, True])
def test_devstack_prints_the_two_variables_then_runs_until_ctrl_c(
    kafka_bootstrap: str, database_url: str, as_json: bool
) -> None:
    # Given servers in the environment, the stack uses them: nothing new is started.
    env = {
        **os.environ,
        "MENDLINE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "MENDLINE_DATABASE_URL": database_url,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "mendline", "devstack", *(["--json"] if as_json else [])],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(60, process.kill)  # a hung read ends the test, not the run
    watchdog.start()
    try:
        assert process.stdout is not None and process.stderr is not None
        printed = [process.stdout.readline() for _ in range(1 if as_json else 2)]
        assert process.stderr.readline() == "running; press Ctrl-C to stop\n"
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    finally:
        watchdog.cancel()
        process.kill()
        process.wait()
    # The external URL is shown as config show shows it: its password filtered.
    shown = redact_url(database_url)
    assert shown != database_url
    expected = {"MENDLINE_KAFKA_BOOTSTRAP": kafka_bootstrap, "MENDLINE_DATABASE_URL": shown}
    if as_json:
        assert json.loads(printed[0]) == expected
    else:
        assert printed == [f"{name}={value}\n" for name, value in expected.items()]


@pytest.mark.parametrize(
    ("command", "last"),
    [
        ("consume", "mendline: consumed 0 records"),
        ("analyze", "mendline: analysed 0 triggers"),
        ("alert", "mendline: 0 alerts sent"),
        ("run", "mendline: consumed 0 records"),
    ],
)
async def test_a_worker_with_json_logs_one_object_a_line_on_stderr(
    kafka_bootstrap: str, fresh_db_url: str, tmp_path: Path, command: str, last: str
) -> None:
    settings = consume_settings(kafka_bootstrap, fresh_db_url)
    routes = tmp_path / "routes.toml"
    routes.write_text(SLACK_ROUTE.format(wait="0s"))
    env = {
        **os.environ,
        **cli_env(settings),
        "MENDLINE_KAFKA_SESSION_TIMEOUT": "2",
        "MENDLINE_ROUTES_FILE": str(routes),
        "TEST_SLACK_WEBHOOK": "http://127.0.0.1:9/never-called",
        "MENDLINE_WEB_PORT": "0",  # run serves the dashboard too, on a port of its own
        "MENDLINE_RELAY_PORT": "0",  # and the relay
    }
    log = tmp_path / "stderr.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(  # noqa: ASYNC220 - started once, stopped below
            [sys.executable, "-m", "mendline", command, "--json"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            await wait_until(lambda: log.read_text().strip(), 60, "the first log line")
        finally:
            process.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(process.wait, 60)
    assert code == 0, log.read_text()
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert all(set(e) == {"time", "level", "logger", "message"} for e in entries), entries
    assert {e["level"] for e in entries} <= {"info", "warning"}
    assert all(e["logger"].startswith("mendline") for e in entries)
    assert any(e["message"].startswith(last) for e in entries), entries
