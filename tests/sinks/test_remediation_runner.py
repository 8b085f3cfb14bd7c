"""The remediations' runner on real processes and a real HTTP server on loopback: a command
that succeeds, fails, runs out of time (its whole process group killed), prints too much or
prints its environment; an HTTP call with a header from the environment, a 5xx, a redirect
not followed; dry runs that run nothing; a policy's remediation run as it says."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mendline.schemas.fixpolicy import Remediation
from mendline.schemas.redaction import FILTERED
from mendline.sinks.remediation import (
    call_http,
    command_environment,
    run_command,
    run_remediation,
)
from tests.loopback import HOST, LoopbackHTTPServer, QuietHandler

GITHUB_TOKEN = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A"
RESTART_TOKEN = "rst-7f3a9c2e5b1d8f4a6c0e"

# Starts a child in its own process group's tree, writes the child's pid, then waits on it.
SPAWNS_A_CHILD = """
import subprocess, sys
child = subprocess.Popen(["sleep", "300"])
open(sys.argv[1], "w").write(str(child.pid))
print("started", flush=True)
child.wait()
"""


def python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def gone(pid: int) -> bool:
    """Whether the process ``pid`` has ended (exited, or a zombie nobody reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


async def wait_gone(pid: int) -> bool:
    for _ in range(600):  # up to 30 s: SIGTERM, a 2 s grace, SIGKILL, on a loaded machine
        if gone(pid):
            return True
        await asyncio.sleep(0.05)
    return False


async def test_a_command_that_succeeds() -> None:
    outcome = await run_command(python("print('api restarted')"), timeout=30)
    assert (outcome.result, outcome.kind, outcome.exit_code) == ("ok", "command", 0)
    assert outcome.output == "api restarted\n"
    assert outcome.detail == "exited with status 0"
    assert outcome.ran.startswith(sys.executable) and outcome.seconds >= 0


async def test_a_command_that_fails_keeps_its_stderr_and_its_status() -> None:
    code = "import sys; print('stopping'); print('unit not found', file=sys.stderr); sys.exit(5)"
    outcome = await run_command(python(code), timeout=30)
    assert (outcome.result, outcome.exit_code) == ("failed", 5)
    assert "stopping\n" in outcome.output and "unit not found\n" in outcome.output
    assert outcome.detail == "exited with status 5"


async def test_a_program_that_cannot_start_is_a_failure_not_an_exception() -> None:
    outcome = await run_command(["/nonexistent/restart-api", "--now"], timeout=30)
    assert (outcome.result, outcome.exit_code) == ("failed", None)
    assert outcome.detail == "could not start /nonexistent/restart-api: No such file or directory"


async def test_arguments_reach_the_program_as_they_are_never_through_a_shell(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "injected"
    argv = ["echo", f"$HOME; touch {marker}", "`id`"]
    outcome = await run_command(argv, timeout=30)
    assert outcome.output == f"$HOME; touch {marker} `id`\n"
    assert not marker.exists()


async def test_a_command_out_of_time_is_killed_with_its_whole_process_group(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "child.pid"
    outcome = await run_command(python(SPAWNS_A_CHILD, str(pid_file)), timeout=2)
    assert (outcome.result, outcome.exit_code) == ("timed_out", None)
    assert outcome.detail.startswith("did not finish in 2 s: its process group was stopped")
    assert outcome.output == "started\n"
    assert await wait_gone(int(pid_file.read_text()))


async def test_a_command_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    code = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" + SPAWNS_A_CHILD
    # SIG_IGN is inherited: the child ignores SIGTERM too, and goes only with SIGKILL.
    outcome = await run_command(python(code, str(pid_file)), timeout=1)
    assert outcome.result == "timed_out"
    assert await wait_gone(int(pid_file.read_text()))


async def test_a_cancelled_run_kills_the_group_and_stays_cancelled(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    running = asyncio.create_task(run_command(python(SPAWNS_A_CHILD, str(pid_file)), 300))
    for _ in range(1200):  # up to 60 s for the child to start on a loaded machine
        if pid_file.exists() and pid_file.read_text():
            break
        await asyncio.sleep(0.05)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert await wait_gone(int(pid_file.read_text()))


async def test_a_command_that_prints_a_lot_keeps_its_head_and_tail() -> None:
    code = "for i in range(100000): print(f'line {i:06d}')"
    outcome = await run_command(python(code), timeout=60, output_limit=1000)
    assert outcome.result == "ok"
    head, marker, tail = outcome.output.partition("\n[... ")
    assert head.startswith("line 000000\nline 000001\n") and len(head) == 500
    assert tail.endswith("line 099998\nline 099999\n")
    printed = 100000 * len("line 000000\n")
    assert f"{printed - 1000} characters left out ...]\n" in marker + tail


async def test_secrets_a_command_prints_are_filtered() -> None:
    code = f"print('deploy key: {GITHUB_TOKEN}'); print('password=hunter2hunter2')"
    outcome = await run_command(python(code), timeout=30)
    assert GITHUB_TOKEN not in outcome.output and "hunter2" not in outcome.output
    assert outcome.output.count(FILTERED) == 2


async def test_the_command_sees_no_mendline_setting_and_no_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MENDLINE_DATABASE_URL", "postgresql://app:pw-db-9931@db/mendline")
    monkeypatch.setenv("MENDLINE_TOKEN", "mlt_00000000_" + "x" * 43)
    monkeypatch.setenv("GITHUB_TOKEN", GITHUB_TOKEN)
    monkeypatch.setenv("ORCHESTRATOR_PASSWORD", "hunter2hunter2")
    monkeypatch.setenv("DEPLOY_URL", "https://deploy:s3cr3t-pass@deploy.internal/hook")
    monkeypatch.setenv("RELEASE_CHANNEL", "stable")
    outcome = await run_command(
        python("import json, os; print(json.dumps(dict(os.environ)))"), timeout=30
    )
    seen = json.loads(outcome.output)
    assert seen["RELEASE_CHANNEL"] == "stable" and seen["PATH"] == os.environ["PATH"]
    assert not [name for name in seen if name.startswith("MENDLINE_")]
    for name in ("GITHUB_TOKEN", "ORCHESTRATOR_PASSWORD", "DEPLOY_URL"):
        assert name not in seen
    assert command_environment({"MENDLINE_X": "1", "API_KEY": "k", "LANG": "C"}) == {"LANG": "C"}


async def test_a_given_environment_replaces_this_process_s() -> None:
    outcome = await run_command(
        python("import os; print(sorted(os.environ))"),
        timeout=30,
        env={"PATH": os.environ["PATH"], "SERVICE": "api", "SESSION_SECRET": "abcdefgh"},
    )
    assert "'SERVICE'" in outcome.output and "SESSION_SECRET" not in outcome.output


async def test_a_dry_run_runs_nothing_and_says_what_would_have_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    outcome = await run_command(["touch", str(marker)], timeout=30, dry_run=True)
    assert (outcome.result, outcome.exit_code, outcome.output) == ("dry_run", None, "")
    assert outcome.detail == f"dry run: would run touch {marker}"
    assert not marker.exists()


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Orchestrator:
    """An orchestrator's API on loopback: /restart answers 202 and echoes the credential it
    got, /broken 503, /moved redirects to ``elsewhere``, /slow answers after 5 s."""

    server: LoopbackHTTPServer
    received: list[Received] = field(default_factory=list)
    elsewhere: str = ""


def _orchestrator() -> Orchestrator:
    received: list[Received] = []
    holder: dict[str, Orchestrator] = {}

    class Handler(QuietHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            received.append(Received(self.command, self.path, dict(self.headers), body))
            if self.path == "/slow":
                time.sleep(5)
            status, text, extra = {
                "/restart": (202, f"restarting api; you sent {self.headers['Authorization']}", {}),
                "/broken": (503, "upstream unavailable", {}),
                "/moved": (302, "", {"Location": holder["it"].elsewhere + "/restart"}),
            }.get(self.path, (200, "ok", {}))
            data = text.encode()
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_POST = do_GET = _answer

    server = LoopbackHTTPServer(Handler)
    holder["it"] = Orchestrator(server, received)
    return holder["it"]


@pytest.fixture
def orchestrator() -> Iterator[Orchestrator]:
    it = _orchestrator()
    it.server.start()
    yield it
    it.server.close()


@pytest.fixture
def elsewhere(orchestrator: Orchestrator) -> Iterator[Orchestrator]:
    other = _orchestrator()
    other.server.start()
    orchestrator.elsewhere = other.server.base
    yield other
    other.server.close()


async def test_an_http_call_with_its_credential_from_the_environment(
    orchestrator: Orchestrator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_TOKEN", RESTART_TOKEN)
    headers = {"Authorization": f"Bearer {os.environ['ORCHESTRATOR_TOKEN']}"}
    outcome = await call_http(
        orchestrator.server.base + "/restart", "post", headers, '{"service": "api"}', timeout=30
    )
    (got,) = orchestrator.received
    assert (got.method, got.path, got.body) == ("POST", "/restart", b'{"service": "api"}')
    assert got.headers["Authorization"] == f"Bearer {RESTART_TOKEN}"
    assert (outcome.result, outcome.kind, outcome.http_status) == ("ok", "http", 202)
    assert outcome.ran == f"POST {orchestrator.server.base}/restart"
    assert outcome.output == f"restarting api; you sent Bearer {FILTERED}"
    assert RESTART_TOKEN not in outcome.model_dump_json()


async def test_a_5xx_is_a_failure_with_its_body(orchestrator: Orchestrator) -> None:
    outcome = await call_http(orchestrator.server.base + "/broken", "POST", {}, None, timeout=30)
    assert (outcome.result, outcome.http_status) == ("failed", 503)
    assert (outcome.detail, outcome.output) == ("answered 503", "upstream unavailable")


async def test_a_redirect_is_not_followed_and_the_credential_goes_nowhere_else(
    orchestrator: Orchestrator, elsewhere: Orchestrator
) -> None:
    headers = {"Authorization": f"Bearer {RESTART_TOKEN}"}
    outcome = await call_http(orchestrator.server.base + "/moved", "POST", headers, None, 30)
    assert (outcome.result, outcome.http_status) == ("failed", 302)
    assert outcome.detail.startswith(f"answered 302, redirecting to {elsewhere.server.base}")
    assert "redirects are not followed" in outcome.detail
    assert [r.path for r in orchestrator.received] == ["/moved"] and elsewhere.received == []


async def test_no_whole_answer_in_time_is_timed_out(orchestrator: Orchestrator) -> None:
    outcome = await call_http(orchestrator.server.base + "/slow", "POST", {}, None, timeout=0.5)
    assert (outcome.result, outcome.http_status) == ("timed_out", None)
    assert outcome.detail == "no whole answer in 0.5 s"


async def test_nobody_listening_is_a_failure() -> None:
    with socket.socket() as bound:  # a port of ours, not listening: connections are refused
        bound.bind((HOST, 0))
        base = f"http://{HOST}:{bound.getsockname()[1]}"
        outcome = await call_http(base + "/restart", "POST", {"X-Key": "k-1234567890"}, None, 30)
    assert (outcome.result, outcome.http_status) == ("failed", None)
    assert outcome.detail.startswith("the call failed: ")


async def test_an_http_dry_run_sends_nothing_and_names_no_secret(
    orchestrator: Orchestrator,
) -> None:
    headers = {"Authorization": f"Bearer {RESTART_TOKEN}"}
    outcome = await call_http(
        orchestrator.server.base + "/restart?token=abcdef123456",
        "POST",
        headers,
        None,
        30,
        dry_run=True,
    )
    assert orchestrator.received == []
    assert outcome.result == "dry_run"
    assert outcome.detail == (
        f"dry run: would call POST {orchestrator.server.base}/restart?token={FILTERED}"
        " (headers: Authorization)"
    )
    assert RESTART_TOKEN not in outcome.model_dump_json()


def http_remediation(url: str, **fields: object) -> Remediation:
    return Remediation.model_validate(
        {
            "name": "restart-api",
            "when": {"check": "api"},
            "http": {"url": url, "headers_env": {"Authorization": "ORCHESTRATOR_AUTH"}},
            "timeout": "30s",
            **fields,
        }
    )


async def test_a_policy_s_remediation_reads_its_headers_from_the_environment_when_it_runs(
    orchestrator: Orchestrator,
) -> None:
    remediation = http_remediation(orchestrator.server.base + "/restart")
    environ = {"ORCHESTRATOR_AUTH": f"Bearer {RESTART_TOKEN}"}
    outcome = await run_remediation(remediation, environ)
    (got,) = orchestrator.received
    assert got.headers["Authorization"] == f"Bearer {RESTART_TOKEN}"
    assert (outcome.result, outcome.http_status) == ("ok", 202)
    assert RESTART_TOKEN not in outcome.model_dump_json()


async def test_a_header_whose_variable_is_unset_sends_nothing_and_names_the_variable(
    orchestrator: Orchestrator,
) -> None:
    outcome = await run_remediation(http_remediation(orchestrator.server.base + "/restart"), {})
    assert orchestrator.received == []
    assert (outcome.result, outcome.kind, outcome.http_status) == ("failed", "http", None)
    assert outcome.detail == (
        "the environment variable ORCHESTRATOR_AUTH (header Authorization) is not set: not sent"
    )
    dry = await run_remediation(
        http_remediation(orchestrator.server.base + "/restart", dry_run=True), {}
    )
    assert dry.result == "dry_run" and orchestrator.received == []


async def test_a_policy_s_command_runs_with_the_environment_given(tmp_path: Path) -> None:
    remediation = Remediation.model_validate(
        {
            "name": "restart-api",
            "when": {"check": "api"},
            "command": python("import os; print(os.environ.get('SERVICE'))"),
            "timeout": "30s",
        }
    )
    outcome = await run_remediation(remediation, {"SERVICE": "api", "PATH": os.environ["PATH"]})
    assert (outcome.result, outcome.output) == ("ok", "api\n")
