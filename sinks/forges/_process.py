"""Programs run without a shell: a timeout that ends their whole process group, and their
output kept to its head and tail."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Capped", "Ran", "run"]

_CHUNK = 65536
_GRACE = 2.0  # seconds the pipes may stay open once the process group is killed


class Capped:
    """Bytes kept to ``limit``: the first half and the last half of what was fed, and how
    much was cut between them."""

    def __init__(self, limit: int) -> None:
        self._half = max(limit // 2, 1)
        self._head = bytearray()
        self._tail = bytearray()
        self.cut = 0

    def feed(self, chunk: bytes) -> None:
        """Keep what fits of ``chunk``."""
        room = self._half - len(self._head)
        self._head += chunk[:room]
        self._tail += chunk[max(room, 0) :]
        over = len(self._tail) - self._half
        if over > 0:
            del self._tail[:over]
            self.cut += over

    def bytes(self) -> bytes:
        """Everything kept, without the marker (for output that must be whole)."""
        return bytes(self._head + self._tail)

    def text(self) -> str:
        """What was kept as text, with ``[... N bytes cut ...]`` where bytes were left out."""
        head = self._head.decode("utf-8", "replace")
        tail = self._tail.decode("utf-8", "replace")
        if not self.cut:
            return head + tail
        return f"{head}\n[... {self.cut} bytes cut ...]\n{tail}"


@dataclass(frozen=True)
class Ran:
    """How a program ran: its exit code (None when it timed out; negative when a signal
    ended it), how long, and its output (stderr is merged into stdout when asked)."""

    exit_code: int | None
    timed_out: bool
    seconds: float
    stdout: Capped
    stderr: Capped


async def run(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    limit: int,
    stdin: bytes | None = None,
    merge: bool = False,
) -> Ran:
    """Run ``argv`` in ``cwd`` with exactly ``env``, in a process group of its own that is
    killed on timeout or cancellation (the caller's CancelledError is re-raised). Raises
    OSError when the program cannot start."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT if merge else asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    out, err = Capped(limit), Capped(limit)
    io = asyncio.gather(
        _pump(process.stdout, out), _pump(process.stderr, err), _write(process.stdin, stdin)
    )
    timed_out = False
    try:
        async with asyncio.timeout(timeout):
            await asyncio.shield(io)
            await process.wait()
    except TimeoutError:
        timed_out = True
    finally:
        if process.returncode is None:
            _kill(process)
            await process.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(io, _GRACE)  # a daemonised grandchild may hold the pipes
    code = None if timed_out else process.returncode
    return Ran(code, timed_out, time.monotonic() - started, out, err)


async def _pump(stream: asyncio.StreamReader | None, sink: Capped) -> None:
    if stream is None:
        return
    while chunk := await stream.read(_CHUNK):
        sink.feed(chunk)


async def _write(stream: asyncio.StreamWriter | None, data: bytes | None) -> None:
    if stream is None or data is None:
        return
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stream.write(data)
        await stream.drain()
    stream.close()


def _kill(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
