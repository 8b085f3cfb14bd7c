"""The dev stack starts real servers that real clients use, and cleans up after itself."""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from mendline.devstack import DevStack, EmbeddedPostgres, KafkaBroker, free_port
from mendline.schemas.errors import DevStackError

from .kafka_helpers import produce

pytestmark = pytest.mark.integration

BrokerFactory = Callable[..., KafkaBroker]
PostgresFactory = Callable[..., EmbeddedPostgres]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie waiting for its parent counts as gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def children_of(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rpartition(")")[2].split()[1]) == pid:
                found.add(int(stat.parent.name))
        except (OSError, ValueError):
            continue
    return found


def wait_gone(pids: set[int], timeout: float = 5.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while (left := {p for p in pids if alive(p)}) and time.monotonic() < deadline:
        time.sleep(0.01)
    return left


def refuses(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


# -- Kafka ------------------------------------------------------------------------------------


async def test_a_record_goes_through_the_broker(kafka_bootstrap: str) -> None:
    topic = unique("roundtrip")
    await produce(kafka_bootstrap, topic, [b"hello"], headers=[("reason", b"test")])
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 10)
    finally:
        await consumer.stop()
    assert (record.key, record.value, list(record.headers)) == (
        b"k",
        b"hello",
        [("reason", b"test")],
    )


async def test_a_consumer_group_commits_its_offsets(kafka_bootstrap: str) -> None:
    topic, group = unique("commits"), unique("group")
    await produce(kafka_bootstrap, topic, [b"1", b"2", b"3"], partition=0)
    member = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        # Tansu holds a JoinGroup for half the session timeout (5 s by default).
        session_timeout_ms=2000,
        heartbeat_interval_ms=500,
    )
    await member.start()
    try:
        seen = [(await asyncio.wait_for(member.getone(), 10)).value for _ in range(3)]
        await member.commit()
    finally:
        await member.stop()
    assert seen == [b"1", b"2", b"3"]

    # Read back through another client of the group, without joining it.
    reader = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group)
    await reader.start()
    try:
        assert await reader.committed(TopicPartition(topic, 0)) == 3
    finally:
        await reader.stop()


def test_a_killed_broker_refuses_connections_and_leaves_no_process(
    kafka_broker_factory: BrokerFactory,
) -> None:
    broker = kafka_broker_factory()
    pid = broker.pid
    assert pid is not None and alive(pid)
    assert not refuses(broker.host, broker.port)

    broker.kill()

    assert refuses(broker.host, broker.port)
    assert not alive(pid)
    assert broker.pid is None
    broker.kill()  # idempotent
    broker.stop()


async def test_a_broker_can_start_late_on_a_port_chosen_up_front(
    kafka_broker_factory: BrokerFactory,
) -> None:
    port = free_port()
    broker = kafka_broker_factory(port, start=False)
    assert broker.bootstrap == f"127.0.0.1:{port}"
    assert refuses(broker.host, port)

    broker.start()

    topic = unique("late")
    await produce(broker.bootstrap, topic, [b"finally"])
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        assert (await asyncio.wait_for(consumer.getone(), 10)).value == b"finally"
    finally:
        await consumer.stop()


def test_a_broker_that_cannot_start_raises_with_its_log(
    kafka_broker_factory: BrokerFactory,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        broker = kafka_broker_factory(taken.getsockname()[1], start=False)
        with pytest.raises(DevStackError, match="Address in use"):
            broker.start(timeout=5)
    assert broker.pid is None


def test_a_broker_started_from_a_short_lived_thread_outlives_it(
    kafka_broker_factory: BrokerFactory,
) -> None:
    broker = kafka_broker_factory(start=False)
    thread = threading.Thread(target=broker.start)
    thread.start()
    thread.join()
    pid = broker.pid
    assert pid is not None
    time.sleep(0.1)  # the parent-death signal would have landed by now
    assert alive(pid) and not refuses(broker.host, broker.port)


def test_servers_die_with_the_process_that_started_them(tmp_path: Path) -> None:
    script = (
        "import time\n"
        "from pathlib import Path\n"
        "from mendline.devstack import KafkaBroker\n"
        f"broker = KafkaBroker(workdir=Path({str(tmp_path)!r}))\n"
        "broker.start()\n"
        "print(broker.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    starter = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert starter.stdout is not None
        pid = int(starter.stdout.readline())
        assert alive(pid)
    finally:
        starter.kill()  # no atexit, no cleanup: only the parent-death signal is left
        starter.wait()
    orphans = wait_gone({pid})
    for orphan in orphans:
        os.kill(orphan, signal.SIGKILL)
    assert not orphans


# -- PostgreSQL -------------------------------------------------------------------------------


async def test_postgres_keeps_its_data_across_stop_and_start(
    postgres_factory: PostgresFactory,
) -> None:
    server = postgres_factory()
    url = server.url
    assert url.startswith("postgresql://postgres:") and url.endswith(
        f"@127.0.0.1:{server.port}/mendline"
    )
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE kept (id int PRIMARY KEY, note text)")
        await conn.execute("INSERT INTO kept VALUES (1, 'before the outage')")
    finally:
        await conn.close()

    server.stop()
    assert refuses(server.host, server.port)
    server.stop()  # idempotent
    server.start()

    assert server.url == url
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetch("SELECT id, note FROM kept") == [(1, "before the outage")]
    finally:
        await conn.close()


async def test_killing_postgres_leaves_no_process_behind(
    postgres_factory: PostgresFactory,
) -> None:
    server = postgres_factory()
    conn = await asyncpg.connect(server.url)  # so there is a client backend too
    pid = server.pid
    assert pid is not None
    family = {pid, *children_of(pid)}
    assert len(family) > 3  # postmaster, checkpointer, walwriter, a backend...

    server.kill()

    assert not wait_gone(family)
    assert refuses(server.host, server.port)
    conn.terminate()

    server.start()  # crash recovery on the same data dir
    conn = await asyncpg.connect(server.url)
    try:
        assert await conn.fetchval("SELECT current_database()") == "mendline"
    finally:
        await conn.close()


def sysv_segments() -> set[int]:
    """The ids of the SysV shared-memory segments on this machine."""
    lines = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    return {int(line.split()[1]) for line in lines}


def test_a_database_left_by_a_killed_process_is_swept_by_the_next_one_to_start_a_server() -> None:
    script = (
        "import time\n"
        "from mendline.devstack import EmbeddedPostgres\n"
        "server = EmbeddedPostgres()\n"
        "server.start()\n"
        "print(server.workdir, server.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    starter = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert starter.stdout is not None
        workdir_text, pid_text = starter.stdout.readline().split()
        workdir, pid = Path(workdir_text), int(pid_text)
        family = {pid, *children_of(pid)}
    finally:
        starter.kill()  # no atexit, no cleanup: the files and the segment stay behind
        starter.wait()
    assert not wait_gone(family)
    shmid = int((workdir / "data" / "postmaster.pid").read_text().splitlines()[6].split()[1])
    assert workdir.is_dir() and shmid in sysv_segments()

    # A broker, not a database: whichever server starts first sweeps every kind's leftovers.
    sweeper = "from mendline.devstack import KafkaBroker\nKafkaBroker().close()\n"
    subprocess.run([sys.executable, "-c", sweeper], check=True, timeout=60)

    assert not workdir.exists()
    assert shmid not in sysv_segments()


# -- the stack --------------------------------------------------------------------------------


def test_the_stack_uses_external_servers_named_in_the_environment(
    monkeypatch: pytest.MonkeyPatch, kafka_broker_factory: BrokerFactory, database_url: str
) -> None:
    external = kafka_broker_factory()
    monkeypatch.setenv("MENDLINE_KAFKA_BOOTSTRAP", external.bootstrap)
    monkeypatch.setenv("MENDLINE_DATABASE_URL", database_url)
    before = children_of(os.getpid())

    with DevStack() as stack:
        assert stack.kafka_bootstrap == external.bootstrap
        assert stack.database_url == database_url
        assert stack.environ == {
            "MENDLINE_KAFKA_BOOTSTRAP": external.bootstrap,
            "MENDLINE_DATABASE_URL": database_url,
        }
        assert children_of(os.getpid()) - before == set()

    assert not refuses(external.host, external.port)  # not the stack's to stop


# -- the database's password ------------------------------------------------------------------


async def test_postgres_wants_its_random_password_over_scram(
    postgres_factory: PostgresFactory,
) -> None:
    server = postgres_factory()
    passfile = server.passfile
    assert passfile.stat().st_mode & 0o777 == 0o600
    password = passfile.read_text().strip().rsplit(":", 1)[1]
    assert len(password) >= 24 and password in server.url
    assert password not in server.url_without_password

    for wrong in ("not-the-password", ""):
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(server.url_without_password, password=wrong or None)
    conn = await asyncpg.connect(server.url_without_password, passfile=str(passfile))
    try:
        stored = await conn.fetchval("SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'")
        rules = await conn.fetch("SELECT DISTINCT auth_method FROM pg_hba_file_rules")
    finally:
        await conn.close()
    assert stored.startswith("SCRAM-SHA-256$") and password not in stored
    assert [rule["auth_method"] for rule in rules] == ["scram-sha-256"]


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A work dir of our own that a server running as another user (under root) can enter."""
    path = Path(tempfile.mkdtemp(prefix="given-workdir-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_a_reused_work_dir_keeps_its_password(
    postgres_factory: PostgresFactory, workdir: Path
) -> None:
    first = postgres_factory(workdir=workdir)
    first.stop()
    again = postgres_factory(workdir=workdir)
    assert again.url.split("@")[0] == first.url.split("@")[0]
    conn = await asyncpg.connect(again.url)
    await conn.close()


def test_devstack_prints_no_password_and_names_the_file_that_holds_it(
    kafka_bootstrap: str,
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MENDLINE_DATABASE_URL"}
    process = subprocess.Popen(
        [sys.executable, "-m", "mendline", "devstack", "--json"],
        env={**env, "MENDLINE_KAFKA_BOOTSTRAP": kafka_bootstrap},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(120, process.kill)
    watchdog.start()
    try:
        assert process.stdout is not None
        printed = process.stdout.readline()
        shown = json.loads(printed)
        url, passfile = shown["MENDLINE_DATABASE_URL"], Path(shown["PGPASSFILE"])
        password = passfile.read_text().strip().rsplit(":", 1)[1]
        assert url.startswith("postgresql://postgres@") and password not in printed

        async def count_databases() -> int:
            conn = await asyncpg.connect(url, passfile=str(passfile))
            try:
                return int(await conn.fetchval("SELECT count(*) FROM pg_database"))
            finally:
                await conn.close()

        assert asyncio.run(count_databases()) > 0
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    finally:
        watchdog.cancel()
        process.kill()
        process.wait()
    assert process.stderr is not None and password not in process.stderr.read()


def test_devstack_says_which_server_died_and_exits_non_zero(database_url: str) -> None:
    # The database is the session's: the embedded broker is the command's one child.
    process = subprocess.Popen(
        [sys.executable, "-m", "mendline", "devstack", "--json"],
        env={**os.environ, "MENDLINE_DATABASE_URL": database_url, "MENDLINE_KAFKA_BOOTSTRAP": ""},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(120, process.kill)
    watchdog.start()
    try:
        assert process.stdout is not None and process.stderr is not None
        assert "MENDLINE_KAFKA_BOOTSTRAP" in json.loads(process.stdout.readline())
        assert process.stderr.readline() == "running; press Ctrl-C to stop\n"
        (broker,) = children_of(process.pid)
        os.kill(broker, signal.SIGKILL)
        assert process.wait(30) == 1
        said = process.stderr.read().splitlines()
    finally:
        watchdog.cancel()
        process.kill()
        process.wait()
    assert said[0].startswith("mendline: the embedded kafka")
    assert said[0].endswith("stopped running; the dev stack is down")
    assert said[1] == "hint: start `mendline devstack` again"


# -- the sweep of abandoned work dirs ---------------------------------------------------------

_IPC_RMID = 0
_libc = ctypes.CDLL(None, use_errno=True)


_MAKE_SEGMENT = """
import ctypes, os, sys
shmid = ctypes.CDLL(None).shmget(int(sys.argv[1]), 4096, 0o1000 | 0o600)
print(shmid, os.getpid())
"""


@pytest.fixture
def segment() -> Iterator[tuple[int, int, int]]:
    """A SysV segment of ours, nothing attached, made by a process that has ended, as a
    killed postmaster leaves it: (key, shmid, the pid that made it). Removed after the test."""
    key = int.from_bytes(os.urandom(3)) | 0x5A000000
    made = subprocess.run(
        [sys.executable, "-c", _MAKE_SEGMENT, str(key)], capture_output=True, text=True, check=True
    )
    shmid, maker = map(int, made.stdout.split())
    assert shmid >= 0 and shmid in sysv_segments()
    yield key, shmid, maker
    _libc.shmctl(shmid, _IPC_RMID, None)


@pytest.fixture
def sleeper() -> Iterator[int]:
    """A live process of ours that is not a server: its pid."""
    process = subprocess.Popen(["sleep", "300"])
    yield process.pid
    process.kill()
    process.wait()


def abandoned_workdir(path: Path, postmaster_pid: int, key: int, shmid: int) -> Path:
    """A dev-stack work dir as a killed run leaves it: an owner that is gone, and a data dir
    whose postmaster.pid names ``postmaster_pid`` and the segment (``key``, ``shmid``)."""
    path.mkdir(mode=0o700)
    gone = subprocess.Popen(["true"])
    gone.wait()
    (path / "owner.pid").write_text(str(gone.pid))
    (path / "data").mkdir(mode=0o700)
    lines = [
        str(postmaster_pid),
        str(path / "data"),
        "0",
        "5432",
        "",
        "127.0.0.1",
        f"{key} {shmid}",
    ]
    pid_file = path / "data" / "postmaster.pid"
    pid_file.write_text("\n".join(lines) + "\n")
    pid_file.chmod(0o600)
    return path


def sweep() -> None:
    """Start (and close) a server in a new process: its first start sweeps abandoned dirs."""
    sweeper = "from mendline.devstack import KafkaBroker\nKafkaBroker().close()\n"
    subprocess.run([sys.executable, "-c", sweeper], check=True, timeout=60)


def test_the_sweep_kills_no_process_and_frees_no_segment_a_file_names_but_did_not_make(
    segment: tuple[int, int, int], sleeper: int
) -> None:
    key, shmid, _ = segment
    # The pid is a live process of ours, but no postgres of that folder; the segment's key
    # matches, but that pid did not create it.
    workdir = abandoned_workdir(
        Path(tempfile.gettempdir()) / unique("mendline-planted"), sleeper, key, shmid
    )
    try:
        sweep()
        assert alive(sleeper)
        assert shmid in sysv_segments()
        assert not workdir.exists()  # a dead owner, no server running there: its files go
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="making files someone else owns needs root")
def test_the_sweep_leaves_folders_and_files_of_others_and_symlinks_alone(
    segment: tuple[int, int, int], tmp_path: Path
) -> None:
    key, shmid, maker = segment
    nobody = pwd.getpwnam("nobody").pw_uid
    temp = Path(tempfile.gettempdir())
    # Each names the segment and the process that made it, as a killed postmaster's would:
    # only whose file it is, and where it lies, says it is not ours to act on.
    theirs = abandoned_workdir(temp / unique("mendline-theirs"), maker, key, shmid)
    os.chown(theirs, nobody, -1)
    planted = abandoned_workdir(temp / unique("mendline-planted"), maker, key, shmid)
    os.chown(planted / "data" / "postmaster.pid", nobody, -1)
    target = abandoned_workdir(tmp_path / "target", maker, key, shmid)
    link = temp / unique("mendline-link")
    link.symlink_to(target)
    try:
        sweep()
        assert theirs.is_dir() and (target / "owner.pid").exists() and link.is_symlink()
        assert shmid in sysv_segments()
        assert not planted.exists()  # our folder: its files go, the segment it names stays
    finally:
        link.unlink(missing_ok=True)
        for folder in (theirs, planted):
            shutil.rmtree(folder, ignore_errors=True)
