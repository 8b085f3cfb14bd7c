"""Running the mendline command line as people do (as a token's user, on a terminal), and
reading what it says went wrong."""

from __future__ import annotations

import asyncio
import json
import os
import select
import subprocess
import sys
from typing import Any

from mendline.schemas.settings import Settings


def run(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``mendline ARGS`` in a subprocess, with ``env`` added to this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "mendline", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def failure(result: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    """The error of a command that failed: its one line and its hint, with no traceback.

    Asserts the convention: exit status 1, nothing on stdout, and on stderr exactly
    ``mendline: <message>`` then ``hint: <hint>``.
    """
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stdout == "", result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    message, hint = lines
    assert message.startswith("mendline: ") and hint.startswith("hint: "), result.stderr
    return message.removeprefix("mendline: "), hint.removeprefix("hint: ")


def usage_error(result: subprocess.CompletedProcess[str]) -> str:
    """What a usage error says (exit status 2, as argparse has it), without the usage lines."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1, result.stderr
    return errors[0].split(": error: ", 1)[1]


def json_lines(result: subprocess.CompletedProcess[str]) -> list[Any]:
    """Every line of stdout, parsed as JSON (a command run with --json that succeeded)."""
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def json_object(result: subprocess.CompletedProcess[str]) -> Any:
    """The one JSON object a command run with --json printed."""
    (value,) = json_lines(result)
    return value


async def cli(
    *args: str, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``run`` off the event loop, so an in-process consumer keeps its heartbeats."""
    return await asyncio.to_thread(run, *args, env=env, stdin=stdin)


def cli_env(settings: Settings) -> dict[str, str]:
    """The environment that points the CLI at the broker, topics, group and database of
    ``settings``."""
    return {
        "MENDLINE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "MENDLINE_DATABASE_URL": settings.database_url.get_secret_value(),
        "MENDLINE_ERRORS_TOPIC": settings.errors_topic,
        "MENDLINE_DLQ_TOPIC": settings.dlq_topic,
        "MENDLINE_CONSUMER_GROUP": settings.consumer_group,
    }


async def token_of(env: dict[str, str], user: str, role: str) -> dict[str, str]:
    """The environment of ``user`` (added with ``role`` by the local OS user as admin)
    acting with a token of theirs."""
    local = {**env, "MENDLINE_LOCAL_ROLE": "admin"}
    assert (await cli("users", "add", user, "--role", role, env=local)).returncode == 0
    token = (await cli("tokens", "create", "--user", user, env=local)).stdout.strip()
    return {**env, "MENDLINE_TOKEN": token, "MENDLINE_LOCAL_ROLE": "none"}


def run_on_terminal(*args: str, env: dict[str, str], timeout: float = 120) -> str:
    """What ``mendline ARGS`` writes to its standard output when that is a terminal (a real
    pseudo-terminal; NO_COLOR unset), its newlines as the terminal gives them (\r\n)."""
    reader, writer = os.openpty()
    environ = {**os.environ, **env}
    environ.pop("NO_COLOR", None)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "mendline", *args],
            stdout=writer,
            stderr=subprocess.DEVNULL,
            env=environ,
        )
        os.close(writer)
        chunks = []
        while select.select([reader], [], [], timeout)[0]:
            try:
                chunk = os.read(reader, 65536)
            except OSError:  # EIO: the command ended and closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout) == 0
    finally:
        os.close(reader)
    return b"".join(chunks).decode()


async def migrated_env(url: str, role: str = "", **more: str) -> dict[str, str]:
    """The environment of a command on the database at ``url``, migrated first: no token,
    the local OS user with ``role`` (none by default), and ``more`` settings."""
    from mendline.sinks.postgres import migrated_pool

    pool = await migrated_pool(url, 1)
    await pool.close()
    return {
        "MENDLINE_DATABASE_URL": url,
        "MENDLINE_TOKEN": "",
        "MENDLINE_LOCAL_ROLE": role,
        **more,
    }
