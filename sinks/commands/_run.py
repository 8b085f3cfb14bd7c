"""Programs run without a shell, in a process group of their own that is stopped whole
(SIGTERM, then SIGKILL) when they run out of time or their caller is cancelled; their
output fed, as it comes, to what keeps it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

__all__ = ["KILL_GRACE", "OUTPUT_GRACE", "OutputSink", "ProgramRun", "run_program"]

#: Seconds between SIGTERM and SIGKILL to the process group of a program that is stopped.
KILL_GRACE = 2.0
#: Seconds the output is still read after the program ended: a process it left behind may
#: hold the output open (a daemon it started); what comes later is not waited for.
OUTPUT_GRACE = 1.0
_CHUNK = 64 * 1024


class OutputSink(Protocol):
    """Where a program's output goes as it comes (an ``OutputCapture``, say)."""

    def feed(self, data: bytes, /) -> None:
        """Take the next bytes of the output."""


@dataclass(frozen=True)
class ProgramRun:
    """How a program ran: its exit status (None when it ran out of time or could not start;
    negative: minus the signal that ended it), how many seconds it took, whether it ran out
    of time (its process group was stopped), why it could not start, and whether a process
    it left behind held its output open past ``OUTPUT_GRACE`` (not waited for)."""

    exit_code: int | None
    seconds: float
    timed_out: bool = False
    not_started: OSError | None = None
    left_open: bool = False


async def run_program(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    timeout: float,
    output: OutputSink,
    errors: OutputSink | None = None,
    cwd: Path | None = None,
    stdin: bytes | None = None,
) -> ProgramRun:
    """Run ``argv`` (no shell: the first item is the program, found on ``env``'s ``PATH``)
    with exactly ``env``, in ``cwd`` (default: this process's), and say how it ran.

    stdout goes to ``output``, stderr to ``errors`` (None: to ``output`` too, interleaved as
    the program wrote them); stdin is ``stdin``, or empty. The program runs in a new session
    (its own process group): after ``timeout`` seconds the whole group gets SIGTERM, then
    SIGKILL ``KILL_GRACE`` seconds later. Cancelled, it does the same to the group and
    re-raises. A program that cannot start is reported (``not_started``), not raised."""
    if not argv:
        raise ValueError("a program to run needs at least its name")
    sinks = [output] if errors is None else [output, errors]
    started = time.monotonic()
    with contextlib.ExitStack() as files:
        pipes = [_pipe(files) for _ in sinks]
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=cwd,
                env=dict(env),
                stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
                stdout=pipes[0][1],
                stderr=pipes[-1][1],
                start_new_session=True,
            )
        except OSError as exc:
            return ProgramRun(None, time.monotonic() - started, not_started=exc)
        finally:
            for _, write in pipes:
                write.close()  # the program holds its own: the output ends when all of it ends
        try:
            readings = [
                await _reading(read, sink, files)
                for (read, _), sink in zip(pipes, sinks, strict=True)
            ]
            code = await _wait(process, stdin, timeout)
        finally:
            if process.returncode is None:  # cancelled while it ran
                await _stop_group(process)
        left_open = await _drained(readings)
    seconds = time.monotonic() - started
    return ProgramRun(code, seconds, timed_out=code is None, left_open=left_open)


def _pipe(files: contextlib.ExitStack) -> tuple[BinaryIO, BinaryIO]:
    """A pipe's read and write ends, closed when ``files`` closes (or before)."""
    read_fd, write_fd = os.pipe()
    read = files.enter_context(os.fdopen(read_fd, "rb", buffering=0))
    write = files.enter_context(os.fdopen(write_fd, "wb", buffering=0))
    return read, write


async def _reading(
    pipe: BinaryIO, sink: OutputSink, files: contextlib.ExitStack
) -> asyncio.Task[None]:
    """A task feeding what comes out of ``pipe`` to ``sink`` until its end; stopped, and the
    pipe's transport closed, when ``files`` closes."""
    reader = asyncio.StreamReader(limit=_CHUNK)
    transport, _ = await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), pipe
    )
    files.callback(transport.close)
    task = asyncio.create_task(_read(reader, sink))
    files.callback(task.cancel)
    return task


async def _read(reader: asyncio.StreamReader, sink: OutputSink) -> None:
    while chunk := await reader.read(_CHUNK):
        sink.feed(chunk)


async def _wait(
    process: asyncio.subprocess.Process, stdin: bytes | None, timeout: float
) -> int | None:
    """The program's exit status, or None when it ran out of time and its group was stopped."""
    try:
        async with asyncio.timeout(timeout):
            await _write(process.stdin, stdin)
            return await process.wait()
    except TimeoutError:
        await _stop_group(process)
        await process.wait()
        return None


async def _write(stream: asyncio.StreamWriter | None, data: bytes | None) -> None:
    """Write ``data`` to the program's stdin and close it (a program that stopped reading
    gets what it read)."""
    if stream is None or data is None:
        return
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stream.write(data)
        await stream.drain()
    stream.close()


async def _drained(readings: list[asyncio.Task[None]]) -> bool:
    """Wait up to ``OUTPUT_GRACE`` for the rest of the output; True when it did not end."""
    done, pending = await asyncio.wait(readings, timeout=OUTPUT_GRACE)
    for reading in done:
        reading.result()  # a failure to read is a bug: let it be seen
    return bool(pending)


async def _stop_group(process: asyncio.subprocess.Process) -> None:
    """SIGTERM to the process group, SIGKILL to what is left of it after ``KILL_GRACE`` (at
    once when this is cancelled in between)."""
    if process.stdin is not None:
        process.stdin.close()  # waiting for the program waits for its stdin to close
    _signal_group(process.pid, signal.SIGTERM)
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(KILL_GRACE):
                await process.wait()
    finally:
        # Also when the leader is gone: what it started in its group goes with it.
        _signal_group(process.pid, signal.SIGKILL)


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone already
        os.killpg(pgid, signum)
