"""Programs run by mendline (sinks.commands) on real processes: stdout and stderr apart or
together, stdin, a program that cannot start, a cancelled run stopped with SIGTERM first, a
daemon left holding the output, and one environment for every command."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from mendline.schemas.output import trim_output
from mendline.sinks import forges, remediation
from mendline.sinks.commands import OutputCapture, command_environment, run_program


def python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def written(path: Path) -> str:
    return path.read_text() if path.exists() else ""


async def wait_for_file(path: Path) -> str:
    for _ in range(1200):  # up to 60 s on a loaded machine
        if text := written(path):
            return text
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never written")


async def test_stdout_and_stderr_apart_stdin_given_and_the_directory_named(
    tmp_path: Path,
) -> None:
    code = (
        "import os, sys; print(sys.stdin.read().upper(), os.getcwd())\n"
        "print('warn', file=sys.stderr)"
    )
    out, err = OutputCapture(1000), OutputCapture(1000)
    ran = await run_program(
        python(code),
        env={"PATH": os.environ["PATH"]},
        timeout=30,
        output=out,
        errors=err,
        cwd=tmp_path,
        stdin=b"patch text",
    )
    assert (ran.exit_code, ran.timed_out, ran.not_started, ran.left_open) == (0, False, None, False)
    assert out.text() == f"PATCH TEXT {tmp_path}\n" and err.text() == "warn\n"


async def test_a_program_that_cannot_start_is_reported_not_raised(tmp_path: Path) -> None:
    ran = await run_program(
        [str(tmp_path / "missing")], env={}, timeout=30, output=OutputCapture(100)
    )
    assert ran.exit_code is None and not ran.timed_out
    assert isinstance(ran.not_started, FileNotFoundError)


async def test_a_cancelled_run_gets_sigterm_first_and_stays_cancelled(tmp_path: Path) -> None:
    said = tmp_path / "said"
    code = (
        "import signal, sys, time\n"
        "def bye(*_): open(sys.argv[1], 'a').write('terminated'); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "open(sys.argv[1], 'w').write('ready')\n"
        "time.sleep(300)\n"
    )
    running = asyncio.create_task(
        run_program(
            python(code, str(said)), env=dict(os.environ), timeout=300, output=OutputCapture(100)
        )
    )
    assert await wait_for_file(said) == "ready"
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert said.read_text() == "readyterminated"


async def test_a_daemon_holding_the_output_is_not_waited_for_nor_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "daemon.pid"
    code = (
        "import subprocess, sys\n"
        "daemon = subprocess.Popen(['sleep', '300'])\n"
        "open(sys.argv[1], 'w').write(str(daemon.pid))\n"
        "print('started the daemon')\n"
    )
    out = OutputCapture(1000)
    ran = await run_program(
        python(code, str(pid_file)), env=dict(os.environ), timeout=60, output=out
    )
    daemon = int(pid_file.read_text())
    try:
        assert (ran.exit_code, ran.left_open) == (0, True)
        assert out.text() == "started the daemon\n"
        os.kill(daemon, 0)  # still there: a program may start a service on purpose
    finally:
        os.kill(daemon, signal.SIGKILL)


def test_one_environment_for_every_command_without_git_s_settings() -> None:
    environ = {
        "PATH": "/usr/bin",
        "GIT_DIR": "/elsewhere/.git",
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.extraHeader",
        "GIT_CONFIG_VALUE_0": "Authorization: Basic abc",
        "MENDLINE_ROLE": "x",
        "SERVICE_TOKEN": "t",
    }
    assert command_environment(environ) == {"PATH": "/usr/bin"}
    assert remediation.command_environment is command_environment
    assert forges.command_environment is command_environment


def test_output_is_kept_in_characters_head_and_tail_its_secrets_filtered() -> None:
    text = "ééééé" + "x" * 100 + "ñññññ"
    data = text.encode()
    capture = OutputCapture(10)
    for start in range(0, len(data), 3):  # characters split across chunks
        capture.feed(data[start : start + 3])
    assert capture.text() == "ééééé\n[... 100 characters left out ...]\nñññññ"
    assert capture.text() == trim_output(text, 10)
    leaky = OutputCapture(1000)
    leaky.feed(b"password=hunter2hunter2 and postgresql://app:pw-9931@db/x")
    assert "hunter2" not in leaky.text() and "pw-9931" not in leaky.text()
