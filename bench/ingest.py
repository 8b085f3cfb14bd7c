"""Ingest throughput: `mendline consume` against a consume-only aiokafka loop, same topic, same run.

Run: .venv/bin/python bench/ingest.py [--events N] [--profile]

Produces N realistic events (3 to 30 frames, about 1.5 KB, a few hundred distinct issues) to a
fresh topic on the embedded broker, then measures (a) a consume-only aiokafka loop over the
topic, the ceiling, and (b) `mendline consume` as a subprocess until every event is committed
in PostgreSQL, with its peak resident memory. --profile records (b) with py-spy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from mendline.devstack import DevStack

ROOT = Path(__file__).resolve().parent.parent
PROFILE = Path("/tmp/mendline-ingest-profile.txt")


def realistic_event(issue: int, n: int) -> bytes:
    rng = random.Random(issue)
    depth = min(30, 3 + int(rng.expovariate(1 / 5)))  # 3 to 30 frames, mostly few
    frames = [
        {
            "filename": f"/srv/app/{['orders', 'billing', 'auth'][issue % 3]}/m{k}.py",
            "module": f"app.{['orders', 'billing', 'auth'][issue % 3]}.m{k}",
            "function": f"handle_{issue}_{k}",
            "lineno": 20 + k + n % 3,
            "context_line": f"return step_{k}(req)",
            "in_app": k % 4 != 0,
        }
        for k in range(depth)
    ]
    event = {
        "schema_version": 1,
        "event_id": uuid.uuid4().hex,
        "timestamp": "2026-11-29T12:00:00.000000Z",
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


async def produce(bootstrap: str, topic: str, count: int, issues: int) -> float:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 6, 1)])
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
    for n in range(count):
        value = realistic_event(n % issues, n)
        sizes += len(value)
        futures.append(await producer.send(topic, value, key=uuid.uuid4().hex.encode()))
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


async def stored(conn: asyncpg.Connection) -> int:
    """Events committed so far: the sum of the issues' counts (equal to the stored events,
    which the crash tests check), read from a few hundred rows rather than counting 100,000."""
    if not await conn.fetchval("SELECT to_regclass('mendline.issues') IS NOT NULL"):
        return 0
    return int(await conn.fetchval("SELECT coalesce(sum(times_seen), 0) FROM mendline.issues"))


async def run_consume(
    env: dict[str, str], count: int, url: str, profile: bool, consumers: int = 1
) -> dict[str, float]:
    argv = [sys.executable, "-m", "mendline", "consume"]
    processes = [
        subprocess.Popen(  # noqa: ASYNC220 - started once, watched by polling
            argv, env={**os.environ, **env}, stderr=subprocess.DEVNULL
        )
        for _ in range(consumers)
    ]
    process = processes[0]
    spy = None
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if profile and py_spy:
        spy = subprocess.Popen(  # noqa: ASYNC220
            [
                py_spy,
                "record",
                "--pid",
                str(process.pid),
                "-o",
                str(PROFILE),
                "-f",
                "raw",
                "-r",
                "200",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    t0 = time.perf_counter()
    first_at = None
    peak = 0
    before = cpu_by_program()
    # One connection for the polling: a new one each time would fork a backend each time.
    conn = await asyncpg.connect(url)
    try:
        targets = [psutil.Process(p.pid) for p in processes]
        while True:
            n = await stored(conn)
            now = time.perf_counter()
            if n and first_at is None:
                first_at, first_n = now, n
            with contextlib.suppress(psutil.Error):
                peak = max(peak, *(t.memory_info().rss for t in targets))
            if n >= count:
                break
            await asyncio.sleep(0.2)
        done = time.perf_counter()
        after = cpu_by_program()
    finally:
        await conn.close()
        for each in processes:
            each.send_signal(2)
        for each in processes:
            each.wait(60)
        if spy is not None:
            spy.wait(60)
    steady = (count - first_n) / (done - first_at) if first_at and done > first_at else 0.0
    cpu = {name: after.get(name, 0.0) - before.get(name, 0.0) for name in after}
    return {
        "wall": done - t0,
        "overall": count / (done - t0),
        "steady": steady,
        "rss_mb": peak / 2**20,
        **{f"cpu_{name}": seconds for name, seconds in cpu.items()},
    }


def cpu_by_program() -> dict[str, float]:
    """CPU seconds (user + system) used so far by the consumer, PostgreSQL and the broker."""
    totals: dict[str, float] = {}
    for proc in psutil.process_iter(["name", "cmdline", "cpu_times"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "mendline consume" in cmdline:
            name = "consumer"
        elif proc.info["name"] == "postgres":
            name = "postgres"
        elif proc.info["name"] == "tansu" or "tansu" in cmdline:
            name = "broker"
        else:
            continue
        times = proc.info["cpu_times"]
        totals[name] = totals.get(name, 0.0) + times.user + times.system
    return totals


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--issues", type=int, default=300)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--batch", type=int, help="MENDLINE_BATCH_MAX_RECORDS for (b)")
    parser.add_argument(
        "--consumers", type=int, default=1, help="`mendline consume` processes in the group"
    )
    args = parser.parse_args()
    with DevStack() as stack:
        topic = f"bench.{uuid.uuid4().hex[:8]}"
        size = await produce(stack.kafka_bootstrap, topic, args.events, args.issues)
        ceiling = await consume_only(stack.kafka_bootstrap, topic, args.events)
        env = {
            "MENDLINE_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
            "MENDLINE_DATABASE_URL": stack.database_url,
            "MENDLINE_ERRORS_TOPIC": topic,
            "MENDLINE_DLQ_TOPIC": topic + ".dlq",
            "MENDLINE_CONSUMER_GROUP": "bench",
            "MENDLINE_KAFKA_SESSION_TIMEOUT": "6",
        }
        if args.batch:
            env["MENDLINE_BATCH_MAX_RECORDS"] = str(args.batch)
        result = await run_consume(
            env, args.events, stack.database_url, args.profile, args.consumers
        )
    print(f"{args.events} events, {args.issues} issues, {size:.0f} bytes each on average")
    print(f"  (a) consume-only aiokafka loop      {ceiling:10.0f} events/s")
    print(
        f"  (b) mendline consume x{args.consumers}, steady state {result['steady']:10.0f} events/s "
        f"({result['steady'] / ceiling * 100:.1f}% of (a); target >= 25,000 and >= 15%)"
    )
    print(
        f"      including start-up and group join {result['overall']:8.0f} events/s "
        f"({result['wall']:.1f} s in all)"
    )
    print(f"      peak resident memory              {result['rss_mb']:8.0f} MB (target < 300)")
    print("      CPU time during (b), microseconds per event:")
    for name in ("consumer", "postgres", "broker"):
        seconds = result.get(f"cpu_{name}", 0.0)
        print(f"        {name:10s} {seconds / args.events * 1e6:8.1f} us ({seconds:.1f} s)")


if __name__ == "__main__":
    asyncio.run(main())
