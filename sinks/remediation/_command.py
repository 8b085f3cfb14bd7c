"""A remediation's command: an argv list run without a shell, in a process group of its own
that is stopped whole on timeout, with an environment that holds none of mendline's
settings or secrets."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import time
from collections.abc import Mapping, Sequence

from mendline.analyzers.grouping import child_environment
from mendline.schemas.remediation import OutcomeResult, RemediationOutcome
from mendline.sinks.remediation._output import (
    OUTPUT_LIMIT,
    OutputCapture,
    filtered,
    outcome,
)

__all__ = ["KILL_GRACE", "OUTPUT_GRACE", "command_environment", "run_command"]

#: Seconds between SIGTERM and SIGKILL to a command's process group that ran out of time.
KILL_GRACE = 2.0
#: Seconds the output is still read after the command ended: a process it left behind may
#: hold the output open (a daemon it started); what comes later is not waited for.
OUTPUT_GRACE = 1.0
_CHUNK = 64 * 1024


def command_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without mendline's settings and without what looks secret
    (``child_environment``): a command gets what it needs from its own configuration."""
    return child_environment(environ)


async def run_command(
    argv: Sequence[str],
    timeout: float,
    output_limit: int = OUTPUT_LIMIT,
    env: Mapping[str, str] | None = None,
    *,
    dry_run: bool = False,
) -> RemediationOutcome:
    """Run ``argv`` (no shell: the first item is the program, found on the ``PATH`` of the
    environment) and return what it did.

    The environment is ``env`` (default: this process's) through ``command_environment``;
    stdin is empty; stdout and stderr are kept together, their head and tail up to
    ``output_limit`` characters, secrets filtered. The command runs in a new session (its
    own process group): after ``timeout`` seconds the whole group gets SIGTERM, then SIGKILL
    ``KILL_GRACE`` seconds later, and the outcome is ``timed_out``. Exit status 0 is ``ok``;
    another status, death by a signal, or a program that cannot start is ``failed``.
    Cancelled, it kills the group and re-raises. ``dry_run``: nothing runs; the outcome says
    what would have."""
    if not argv:
        raise ValueError("a remediation command needs at least a program")
    ran = filtered(shlex.join(argv))
    if dry_run:
        return outcome("command", "dry_run", ran, f"dry run: would run {ran}", None)
    environment = command_environment(os.environ if env is None else env)
    started = time.perf_counter()
    read_fd, write_fd = os.pipe()
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=write_fd,
            stderr=write_fd,
            env=environment,
            start_new_session=True,
        )
    except OSError as exc:
        os.close(read_fd)
        reason = exc.strerror or type(exc).__name__
        return outcome("command", "failed", ran, f"could not start {argv[0]}: {reason}", started)
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)  # the command holds its own copy: EOF comes when it (and all) end
    capture = OutputCapture(output_limit)
    try:
        code, left_open = await _supervise(process, read_fd, capture, timeout)
    finally:
        if process.returncode is None:  # cancelled while it ran: no waiting for it
            _signal_group(process.pid, signal.SIGKILL)
    output = capture.text()
    if code is None:
        detail = (
            f"did not finish in {timeout:g} s: its process group was stopped"
            " (SIGTERM, then SIGKILL)"
        )
        return outcome("command", "timed_out", ran, detail, started, output=output)
    detail = _exit_detail(code)
    if left_open:
        detail += "; a process it left behind kept its output open (not waited for)"
    result: OutcomeResult = "ok" if code == 0 else "failed"
    return outcome("command", result, ran, detail, started, exit_code=code, output=output)


def _exit_detail(code: int) -> str:
    if code >= 0:
        return f"exited with status {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"was killed by {name}"


async def _supervise(
    process: asyncio.subprocess.Process, read_fd: int, capture: OutputCapture, timeout: float
) -> tuple[int | None, bool]:
    """Read the output while the command runs: (its exit status, or None when it ran out of
    time and its group was stopped; whether a process it left behind kept the output open)."""
    transport, reader = await _open_pipe(read_fd)
    reading = asyncio.create_task(_read(reader, capture))
    try:
        code: int | None
        try:
            async with asyncio.timeout(timeout):
                code = await process.wait()
        except TimeoutError:
            code = None
            await _stop_group(process)
        return code, await _drained(reading)
    finally:
        reading.cancel()
        transport.close()


async def _open_pipe(read_fd: int) -> tuple[asyncio.ReadTransport, asyncio.StreamReader]:
    """A stream on the pipe's read end; closing the transport closes the pipe."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=_CHUNK)
    pipe = os.fdopen(read_fd, "rb", buffering=0)  # the transport closes it
    try:
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe
        )
    except BaseException:
        pipe.close()
        raise
    return transport, reader


async def _read(reader: asyncio.StreamReader, capture: OutputCapture) -> None:
    """Feed the stream's bytes to ``capture`` until its end."""
    while chunk := await reader.read(_CHUNK):
        capture.feed(chunk)


async def _drained(reading: asyncio.Task[None]) -> bool:
    """Wait up to ``OUTPUT_GRACE`` for the rest of the output; True when it did not end."""
    done, _ = await asyncio.wait({reading}, timeout=OUTPUT_GRACE)
    if reading in done:
        reading.result()  # a failure to read is a bug: let it be seen
        return False
    return True


async def _stop_group(process: asyncio.subprocess.Process) -> None:
    """SIGTERM to the process group, SIGKILL to what is left of it after ``KILL_GRACE``."""
    _signal_group(process.pid, signal.SIGTERM)
    try:
        async with asyncio.timeout(KILL_GRACE):
            await process.wait()
    except TimeoutError:
        pass
    # Also when the leader is gone: what it started in its group goes with it.
    _signal_group(process.pid, signal.SIGKILL)
    await process.wait()


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group is gone already
        os.killpg(pgid, signum)
