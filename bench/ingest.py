"""Ingest throughput: `mendline consume` against a naive reference consumer, same topic, same run.

Run: .venv/bin/python bench/ingest.py [--workload a|b|both] [--events N] [--distinct-events N]
     [--consumers K] [--batch N] [--timeout S] [--profile]

Two workloads of realistic events (3 to 30 frames, about 1.6 KB, timestamps of the last hour),
each on a fresh embedded broker and database: (a) --events events (100,000) from --issues (300)
recurring call sites; (b) --distinct-events events (100,000), each from its own call site, so
each its own issue. Each workload's topic is then read three times, back to back:

- a consume-only aiokafka loop, the ceiling;
- the naive reference, K processes of this script in a group of their own: per record
  json.loads and a sha1 of the exception types and the in-app frames' module, function and
  source line; per batch one transaction that COPYs the events into naive.events (event_id
  primary key, fingerprint, ts, payload jsonb) and upserts the fingerprints' counts into
  naive.issues, then the offsets are committed. No validation, scrubbing, grouping rules,
  dedupe, triggers or pipelining;
- `mendline consume`, K processes (--consumers, 1 by default, for both).

Each runs until every event is stored: its group's committed offsets cover the topic (polled
every 0.1 s, without touching the database), then the rows are counted in PostgreSQL. Printed
per workload: each one's events/s in the steady state (from the first committed batch to the
last), mendline's as a ratio of the naive reference's (targets: >= 2x on (a), >= 1x on (b)),
peak resident memory of a process (target < 300 MB), and the CPU per event of the consumers,
PostgreSQL and the broker in the steady state (this bench's child processes only: the machine
may be shared). --profile records the first `mendline consume` process with py-spy (when
installed next to the interpreter; not a dependency) from its first commit on, and prints where
its CPU went by category and by function; the profiled run is slower.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from mendline.analyzers.grouping.scrubbing import SCRUBBED_HEADER, Scrubber
from mendline.devstack import DevStack

SCRIPT = Path(__file__).resolve()
PROFILE = Path("/tmp/mendline-ingest-profile.txt")
PARTITIONS = 6
NAIVE_GROUP = "bench-naive"
MENDLINE_GROUP = "bench-mendline"
NAIVE_FLAG = "--naive-worker"  # how the bench runs itself as one naive reference process
POLL = 0.1  # seconds between looks at the committed offsets and the memory
# Digits spelled as letters that are not hex digits: mendline's grouping takes a run of four
# digits or more in a function name for a generated one, so 100,000 call sites need letters.
_SPELLED = str.maketrans("0123456789", "ghijklmnop")

NAIVE_SCHEMA = """
CREATE SCHEMA naive;
CREATE TABLE naive.events (
    event_id    uuid        PRIMARY KEY,
    fingerprint text        NOT NULL,
    ts          timestamptz NOT NULL,
    payload     jsonb       NOT NULL
);
CREATE TABLE naive.issues (
    fingerprint text        PRIMARY KEY,
    times_seen  bigint      NOT NULL,
    first_seen  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL
);
"""
NAIVE_UPSERT = """
INSERT INTO naive.issues AS i (fingerprint, times_seen, first_seen, last_seen)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::timestamptz[])
ON CONFLICT (fingerprint) DO UPDATE
SET times_seen = i.times_seen + excluded.times_seen,
    first_seen = least(i.first_seen, excluded.first_seen),
    last_seen = greatest(i.last_seen, excluded.last_seen)
"""


def realistic_event(issue: int, n: int, timestamp: str) -> bytes:
    rng = random.Random(issue)
    depth = min(30, 3 + int(rng.expovariate(1 / 5)))  # 3 to 30 frames, mostly few
    area = ["orders", "billing", "auth"][issue % 3]
    site = str(issue).translate(_SPELLED)
    frames = [
        {
            "filename": f"/srv/app/{area}/m{k}.py",
            "module": f"app.{area}.m{k}",
            "function": f"handle_{site}_{k}",
            "lineno": 20 + k + n % 3,
            "context_line": f"return step_{k}(req)",
            "in_app": k % 4 != 0,
        }
        for k in range(depth)
    ]
    event = {
        "schema_version": 1,
        "event_id": uuid.uuid4().hex,
        "timestamp": timestamp,
        "service": f"svc-{issue % 8}",
        "environment": "production",
        "release": f"1.{n % 10}.0",
        "host": f"web-{n % 12}",
        "level": "error",
        "logger": "app.requests",
        "message": "request_failed",
        "exceptions": [
            {
                "type": rng.choice(["ValueError", "KeyError", "TimeoutError"]),
                "module": "builtins",
                "value": f"upstream answered {n % 500} for order {n}",
                "frames": frames,
                "frames_omitted": 0,
            }
        ],
        "context": {"order_id": n, "user_id": n % 9973, "path": "/api/orders", "attempt": 1},
        "tags": {"region": "eu-west-1", "tier": "web"},
        "fingerprint": None,
    }
    return json.dumps(event, separators=(",", ":")).encode()


async def produce(
    bootstrap: str, topic: str, count: int, issues: int, headers: list[tuple[str, bytes]] | None
) -> float:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=20,
        max_batch_size=1024 * 1024,
        max_request_size=4 * 1024 * 1024,
    )
    await producer.start()
    sizes = 0
    futures = []
    # The last hour, with microseconds, as mendline's emitters write a time: an event that
    # comes out of validation byte for byte as it went in is stored as it came.
    start = time.time() - 3600
    for n in range(count):
        moment = datetime.fromtimestamp(start + n * 3600 / count + 1e-6, UTC)
        timestamp = moment.isoformat(timespec="microseconds")[:-6] + "Z"
        value = realistic_event(n % issues, n, timestamp)
        sizes += len(value)
        key = uuid.uuid4().hex.encode()
        futures.append(await producer.send(topic, value, key=key, headers=headers))
        if len(futures) >= 5000:
            await asyncio.gather(*futures)
            futures.clear()
    await asyncio.gather(*futures)
    await producer.stop()
    return sizes / count


async def consume_only(bootstrap: str, topic: str, count: int) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    seen = 0
    start = None
    while seen < count:
        batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
        for records in batches.values():
            if start is None:
                start = time.perf_counter()
            seen += len(records)
    elapsed = time.perf_counter() - (start or time.perf_counter())
    await consumer.stop()
    return count / elapsed


# -- The naive reference: what one would write in an afternoon ---------------------------------


def naive_fingerprint(event: dict[str, Any]) -> str:
    digest = hashlib.sha1(usedforsecurity=False)
    for exc in event.get("exceptions") or ():
        digest.update(str(exc.get("type")).encode())
        for frame in exc.get("frames") or ():
            if frame.get("in_app"):
                line = f"{frame.get('module')}|{frame.get('function')}|{frame.get('context_line')}"
                digest.update(line.encode())
    return digest.hexdigest()


async def naive_store(conn: asyncpg.Connection, records: list[ConsumerRecord]) -> None:
    rows = []
    issues: dict[str, list[Any]] = {}  # fingerprint: [count, first seen, last seen]
    for record in records:
        event = json.loads(record.value)
        hashed = naive_fingerprint(event)
        ts = datetime.fromisoformat(event["timestamp"])
        rows.append((event["event_id"], hashed, ts, record.value.decode()))
        issue = issues.setdefault(hashed, [0, ts, ts])
        issue[0] += 1
        issue[1], issue[2] = min(issue[1], ts), max(issue[2], ts)
    hashes = sorted(issues)  # in one order: two processes upserting never deadlock
    async with conn.transaction():
        await conn.copy_records_to_table(
            "events",
            schema_name="naive",
            columns=["event_id", "fingerprint", "ts", "payload"],
            records=rows,
        )
        await conn.execute(
            NAIVE_UPSERT,
            hashes,
            [issues[h][0] for h in hashes],
            [issues[h][1] for h in hashes],
            [issues[h][2] for h in hashes],
        )


async def naive_worker() -> None:
    """One naive reference process, configured by the MENDLINE_* variables mendline gets."""
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    conn = await asyncpg.connect(os.environ["MENDLINE_DATABASE_URL"])
    consumer = AIOKafkaConsumer(
        os.environ["MENDLINE_ERRORS_TOPIC"],
        bootstrap_servers=os.environ["MENDLINE_KAFKA_BOOTSTRAP"],
        group_id=NAIVE_GROUP,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=2000,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    limit = int(os.environ.get("MENDLINE_BATCH_MAX_RECORDS", "2000"))
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500, max_records=limit)
            if not batches:
                continue
            await naive_store(conn, [r for records in batches.values() for r in records])
            await consumer.commit({tp: records[-1].offset + 1 for tp, records in batches.items()})
    finally:
        await consumer.stop()
        await conn.close()


# -- Running K consumer processes until everything is stored ------------------------------------


@dataclass
class Run:
    """One consumer's measurement."""

    wall: float = 0.0
    steady: float = 0.0
    overall: float = 0.0
    rss_mb: float = 0.0
    complete: bool = True
    cpu: dict[str, float] = field(default_factory=dict)  # "role:pid": CPU seconds, steady state
    issues: int = 0
    measured: int = 0  # events stored from the first committed batch on


async def committed(watcher: AIOKafkaConsumer, topic: str) -> int:
    """Records the group has committed: the sum of its offsets (the topic is fresh)."""
    offsets = [await watcher.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)]
    return sum(offset or 0 for offset in offsets)


def spy_on(pid: int) -> subprocess.Popen[bytes] | None:
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if py_spy is None:
        print("(py-spy is not installed next to the interpreter: no profile)")
        return None
    PROFILE.unlink(missing_ok=True)
    argv = [
        py_spy,
        "record",
        "--pid",
        str(pid),
        "-o",
        str(PROFILE),
        "-f",
        "raw",
        "-r",
        "200",
    ]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def run_consumers(
    argv: list[str],
    env: dict[str, str],
    group: str,
    count: int,
    *,
    profile: bool = False,
    consumers: int = 1,
    timeout: float = 600.0,
) -> Run:
    processes = [
        subprocess.Popen(  # noqa: ASYNC220 - started once, watched by polling
            argv, env={**os.environ, **env}, stderr=subprocess.DEVNULL
        )
        for _ in range(consumers)
    ]
    watcher = AIOKafkaConsumer(
        bootstrap_servers=env["MENDLINE_KAFKA_BOOTSTRAP"], group_id=group, enable_auto_commit=False
    )
    await watcher.start()
    run, spy = Run(), None
    t0 = time.perf_counter()
    first_at, first_n, peak = 0.0, 0, 0
    # CPU and the profile from the first committed batch on, as the steady rate: start-up
    # (imports, migrations, joining the group) is left out.
    before: dict[str, float] = {}
    try:
        targets = [psutil.Process(p.pid) for p in processes]
        while True:
            n = await committed(watcher, env["MENDLINE_ERRORS_TOPIC"])
            now = time.perf_counter()
            if n and not first_at:
                first_at, first_n, before = now, n, cpu_by_role()
                spy = spy_on(processes[0].pid) if profile else None
            with contextlib.suppress(psutil.Error):
                peak = max(peak, *(t.memory_info().rss for t in targets))
            if n >= count or now - t0 > timeout:
                run.complete = n >= count
                break
            ended = [p.returncode for p in processes if p.poll() is not None]
            if ended:
                raise SystemExit(f"{' '.join(argv[1:])} ended (status {ended[0]}) at {n} events")
            await asyncio.sleep(POLL)
        after = cpu_by_role()
    finally:
        await watcher.stop()
        for each in processes:
            each.send_signal(signal.SIGINT)
        for each in processes:
            each.wait(60)
        if spy is not None:
            spy.wait(60)
    run.wall = now - t0
    run.overall = n / run.wall
    run.measured = n - first_n
    run.steady = run.measured / (now - first_at) if first_at and now > first_at else 0.0
    run.rss_mb = peak / 2**20
    run.cpu = {key: seconds - before.get(key, 0.0) for key, seconds in after.items()}
    return run


def cpu_by_role() -> dict[str, float]:
    """CPU seconds (user + system) used so far by this bench's consumers, PostgreSQL and
    broker: its own child processes only, not those of other work on the machine. Processes
    that ended meanwhile are not counted (the consumers' connections last as long as they)."""
    totals: dict[str, float] = {}
    for proc in psutil.Process().children(recursive=True):
        try:
            cmdline = " ".join(proc.cmdline())
            name = proc.name()
            times = proc.cpu_times()
        except psutil.Error:
            continue
        if "mendline consume" in cmdline:
            role = "mendline"
        elif NAIVE_FLAG in cmdline:
            role = "naive"
        elif name == "postgres":
            role = "postgres"
        elif "tansu" in name or "tansu" in cmdline:
            role = "broker"
        else:
            continue
        # Keyed by pid: a process that started during the run counts from zero.
        totals[f"{role}:{proc.pid}"] = times.user + times.system
    return totals


def by_role(cpu: dict[str, float]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for key, seconds in cpu.items():
        role = key.split(":")[0]
        totals[role] = totals.get(role, 0.0) + seconds
    return totals


async def verify(url: str, count: int, naive: Run, mendline: Run) -> None:
    """Every event stored by both, counted in PostgreSQL; and how many issues each made."""
    conn = await asyncpg.connect(url)
    try:
        naive_n = await conn.fetchval("SELECT coalesce(sum(times_seen), 0) FROM naive.issues")
        naive_rows = await conn.fetchval("SELECT count(*) FROM naive.events")
        mendline_n = await conn.fetchval("SELECT coalesce(sum(times_seen), 0) FROM mendline.issues")
        naive.issues = await conn.fetchval("SELECT count(*) FROM naive.issues")
        mendline.issues = await conn.fetchval("SELECT count(*) FROM mendline.issues")
        mendline_rows = await conn.fetchval("SELECT count(*) FROM mendline.events")
    finally:
        await conn.close()
    print(
        f"  mendline stored {mendline_rows:,} of the {count:,} events whole"
        " (MENDLINE_EVENTS_FULL_PER_HOUR and _SAMPLE_PER_HOUR: the rest counted, not stored)"
    )
    for name, stored, run in (
        ("naive.issues", naive_n, naive),
        ("naive.events", naive_rows, naive),
        ("mendline.issues", mendline_n, mendline),
    ):
        if run.complete and stored != count:
            raise SystemExit(f"offsets committed for {count} events, but {name} holds {stored}")


# -- The workloads ------------------------------------------------------------------------------


@dataclass
class Workload:
    label: str
    events: int
    issues: int


async def measure(workload: Workload, args: argparse.Namespace) -> None:
    with DevStack() as stack:
        topic = f"bench.{uuid.uuid4().hex[:8]}"
        headers = None
        if args.shipper_headers:  # as mendline's shipper sends them: scrubbed with our rules
            headers = [(SCRUBBED_HEADER, (Scrubber().rules_id or "").encode())]
        size = await produce(
            stack.kafka_bootstrap, topic, workload.events, workload.issues, headers
        )
        ceiling = await consume_only(stack.kafka_bootstrap, topic, workload.events)
        env = {
            "MENDLINE_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
            "MENDLINE_DATABASE_URL": stack.database_url,
            "MENDLINE_ERRORS_TOPIC": topic,
            "MENDLINE_DLQ_TOPIC": topic + ".dlq",
            "MENDLINE_KAFKA_SESSION_TIMEOUT": "6",
        }
        if args.batch:
            env["MENDLINE_BATCH_MAX_RECORDS"] = str(args.batch)
        conn = await asyncpg.connect(stack.database_url)
        await conn.execute(NAIVE_SCHEMA)
        await conn.close()
        naive_argv = [sys.executable, str(SCRIPT), NAIVE_FLAG]
        options = {"consumers": args.consumers, "timeout": args.timeout}
        naive = await run_consumers(naive_argv, env, NAIVE_GROUP, workload.events, **options)
        mendline = await run_consumers(
            [sys.executable, "-m", "mendline", "consume"],
            {**env, "MENDLINE_CONSUMER_GROUP": MENDLINE_GROUP},
            MENDLINE_GROUP,
            workload.events,
            profile=args.profile,
            **options,
        )
        await verify(stack.database_url, workload.events, naive, mendline)
    report(workload, args.consumers, size, ceiling, naive, mendline)
    if args.shipper_headers:
        print("  (records with the shipper's mendline.scrubbed header: not checked again)")
    if args.profile:
        print("  (profiled: py-spy slowed mendline down, its figures above are not comparable)")
        report_profile(PROFILE)


def report(
    workload: Workload, consumers: int, size: float, ceiling: float, naive: Run, mendline: Run
) -> None:
    target = 2 if workload.issues < workload.events else 1
    print(
        f"{workload.label} {workload.events} events from {workload.issues} call sites, "
        f"{size:.0f} bytes each on average; {consumers} process(es) per consumer"
    )
    print(f"  consume-only aiokafka loop, the ceiling   {ceiling:8.0f} events/s")
    for name, run in (
        (f"naive reference x{consumers}", naive),
        (f"mendline x{consumers}", mendline),
    ):
        note = "" if run.complete else ", INCOMPLETE: stopped at --timeout"
        print(
            f"  {name:20s} steady state      {run.steady:8.0f} events/s"
            f" ({run.overall:.0f}/s over {run.wall:.1f} s with start-up{note})"
        )
    ratio = mendline.steady / naive.steady if naive.steady else 0.0
    print(f"  mendline / naive                          {ratio:8.2f}x (target >= {target}x)")
    print(
        f"  peak resident memory of a process: naive {naive.rss_mb:.0f} MB, "
        f"mendline {mendline.rss_mb:.0f} MB (target < 300)"
    )
    print(f"  issues: naive {naive.issues}, mendline {mendline.issues}")
    print("  CPU per event in the steady state, us     naive  mendline")
    naive_cpu, mendline_cpu = by_role(naive.cpu), by_role(mendline.cpu)
    for role, label in (
        ("consumer", "consumer processes"),
        ("postgres", "PostgreSQL"),
        ("broker", "broker"),
    ):
        seconds = (
            naive_cpu.get("naive" if role == "consumer" else role, 0.0),
            mendline_cpu.get("mendline" if role == "consumer" else role, 0.0),
        )
        per_event = [
            s / max(r.measured, 1) * 1e6 for s, r in zip(seconds, (naive, mendline), strict=True)
        ]
        print(f"    {label:38s} {per_event[0]:6.1f} {per_event[1]:9.1f}")
    sys.stdout.flush()


# -- Where mendline consume's CPU goes (py-spy's raw stacks) ------------------------------------

# A sample of the main thread in no Python function: in this consumer, py-spy --native shows
# nearly all of them in gc_collect_main (without --native, py-spy slows it down much less).
_NO_FRAME = "no Python frame: the cyclic garbage collector"
# (category, what a frame's text holds): a sample counts for the innermost frame that matches.
CATEGORIES = [
    (_NO_FRAME, _NO_FRAME),
    ("CPython's cyclic garbage collector", "gc_collect_main"),  # with py-spy --native
    ("validation: duplicate-key check", "_reject_duplicate_keys"),
    ("validation (pydantic), JSON out, compare", "parse_event_exact"),
    ("content hash", "content_hash "),
    ("scrubbing (Scrubber.is_clean)", "scrubbing.py"),
    ("fingerprint, title, culprit", "fingerprint.py"),
    ("timestamp window", "_timestamps.py"),
    ("prepare_record: PreparedEvent", "prepare_record "),
    ("asyncpg (encoding, protocol)", "asyncpg/"),
    ("store's Python (sinks/postgres)", "sinks/postgres/"),
    ("aiokafka (fetch, decode, commit)", "aiokafka/"),
    ("consumer loop (ingest/consumer)", "ingest/consumer/"),
    ("asyncio event loop, socket I/O", "asyncio/"),
]


def profile_counts(path: Path) -> tuple[int, Counter[str], Counter[str]]:
    """From py-spy's raw stacks: the samples, those by category, and those by the function
    they were in (its innermost Python function; native code counts for its caller)."""
    own: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames, n = stack.split(";") if stack.strip() else [_NO_FRAME], int(count)
        total += n
        python = [f for f in frames if ".py:" in f or "<frozen" in f]
        function = python[-1] if python else frames[-1]
        if ".py:" in function:  # "name (path:line)": one entry per function
            function = function.rsplit(":", 1)[0].replace(str(Path.cwd()) + "/", "") + ")"
        own[function] += n
        for frame in reversed(frames):
            category = next((c for c, text in CATEGORIES if text in frame), None)
            if category is not None:
                categories[category] += n
                break
        else:
            categories["other"] += n
    return total, categories, own


def report_profile(path: Path) -> None:
    """Where the profiled consumer's CPU went: by category, and the top functions."""
    if not path.exists():
        return
    total, categories, own = profile_counts(path)
    if not total:
        return
    print(f"  py-spy, one mendline consume process, steady state: {total} samples")
    print("  by category (a sample counts for its innermost frame that names one):")
    for category, n in categories.most_common():
        print(f"    {n / total * 100:5.1f}%  {category}")
    print("  top 15 functions by own samples (C code counted for its Python caller):")
    for function, n in own.most_common(15):
        print(f"    {n / total * 100:5.1f}%  {function[:90]}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=["a", "b", "both"], default="both")
    parser.add_argument("--events", type=int, default=100_000, help="events of (a)")
    parser.add_argument("--issues", type=int, default=300, help="call sites of (a)")
    parser.add_argument(
        "--distinct-events", type=int, default=100_000, help="events of (b), each its own issue"
    )
    parser.add_argument("--profile", action="store_true", help="py-spy on mendline, each run")
    parser.add_argument("--batch", type=int, help="MENDLINE_BATCH_MAX_RECORDS of both")
    parser.add_argument("--consumers", type=int, default=1, help="processes of each consumer")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per consumer")
    parser.add_argument(
        "--shipper-headers",
        action="store_true",
        help="records carry the header mendline's shipper sends (mendline.scrubbed)",
    )
    args = parser.parse_args()
    workloads = []
    if args.workload in ("a", "both"):
        workloads.append(Workload("(a)", args.events, args.issues))
    if args.workload in ("b", "both"):
        workloads.append(Workload("(b)", args.distinct_events, args.distinct_events))
    for workload in workloads:
        await measure(workload, args)


if __name__ == "__main__":
    if NAIVE_FLAG in sys.argv:
        asyncio.run(naive_worker())
    else:
        asyncio.run(main())
