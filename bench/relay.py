"""The relay's throughput and latency: `mendline relay` against bare aiokafka produce calls.

Run: .venv/bin/python bench/relay.py [--envelopes N] [--concurrency C] [--rate R] [--seconds S]

One `mendline relay` process (a subprocess, on the embedded broker and database) takes gzip
envelopes of a realistic event (a chained error, five frames, tags, a request, about 2.5 KB
before compression) from this process over loopback HTTP, with C requests in flight. In the
same run, on the same broker, the baseline: bare aiokafka `send_and_wait` calls of records
of the same size, C in flight (each answered once acknowledged, as the relay answers). Printed:
envelopes/s of each, the relay's CPU per envelope, and their ratio (target >= 0.5x); beside
them this harness's ceiling: an aiohttp server that reads each body and answers 200 with no
work, driven by the same client (the client needs a core of its own); then, at a steady R
envelopes/s for S seconds (open loop: each sent on its schedule, whatever the answers), the
p50, p99 and worst latency (target p99 < 20 ms), and the relay's peak resident memory.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import re
import statistics
import sys
import time
import uuid
from typing import Any

import aiohttp
import psutil
from aiokafka import AIOKafkaProducer

from mendline.devstack import DevStack, free_port

SERVED = re.compile(r"relay \(Sentry's ingest API\) at (http://127\.0\.0\.1:\d+)/")


def sentry_event(n: int) -> dict[str, Any]:
    frames = [
        {
            "filename": f"/srv/api/{name}.js",
            "module": name,
            "function": function,
            "lineno": 10 + k,
            "colno": 7,
            "in_app": k > 0,
            "context_line": f"  return {function}(req, {k});",
        }
        for k, (name, function) in enumerate(
            [
                ("server", "handle"),
                ("routes", "checkout"),
                ("orders", "load"),
                ("cache", "get"),
                ("db", "query"),
            ]
        )
    ]
    return {
        "event_id": uuid.uuid4().hex,
        "timestamp": time.time(),
        "platform": "node",
        "level": "error",
        "release": "api@2.0.1",
        "environment": "production",
        "server_name": f"api-{n % 4}",
        "exception": {
            "values": [
                {
                    "type": "TypeError",
                    "value": f"Cannot read properties of undefined (reading 'id') #{n}",
                    "stacktrace": {"frames": frames[2:]},
                    "mechanism": {"type": "generic", "handled": True},
                },
                {
                    "type": "Error",
                    "value": "order lookup failed",
                    "stacktrace": {"frames": frames},
                    "mechanism": {"type": "generic", "handled": True},
                },
            ]
        },
        "tags": {"region": "eu-west-1", "tier": "web"},
        "request": {
            "url": "https://shop.example.com/api/orders/7",
            "method": "GET",
            "headers": {"User-Agent": "Mozilla/5.0", "Accept": "application/json"},
        },
        "sdk": {"name": "sentry.javascript.node", "version": "11.12.0"},
    }


def envelope(n: int) -> bytes:
    event = sentry_event(n)
    payload = json.dumps(event).encode()
    header = json.dumps({"event_id": event["event_id"], "sent_at": "2026-12-07T00:00:00Z"})
    item = json.dumps({"type": "event", "length": len(payload)})
    return gzip.compress(f"{header}\n{item}\n".encode() + payload + b"\n")


async def mendline(env: dict[str, str], *argv: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mendline",
        *argv,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode:
        raise SystemExit(err.decode())
    return out.decode()


async def hammer(url: str, bodies: list[bytes], concurrency: int) -> float:
    """Envelopes a second with ``concurrency`` requests in flight (aiohttp's client: httpx
    costs this process more than the relay costs its own)."""
    queue = iter(bodies)
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/x-sentry-envelope"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as client:

        async def worker() -> None:
            for body in queue:
                async with client.post(url, data=body, headers=headers) as answer:
                    if answer.status != 200:
                        raise SystemExit(f"relay answered {answer.status}: {await answer.text()}")
                    await answer.read()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return len(bodies) / (time.perf_counter() - start)


# The floor under any relay in this harness: aiohttp reading each body and answering 200 with
# no work at all (not even decompressing), in a process of its own, driven by the same client.
_EMPTY_SERVER = """
import asyncio, sys
from aiohttp import web

async def post(request):
    await request.read()
    return web.json_response({})

async def main():
    app = web.Application()
    app.router.add_route("POST", "/api/{project}/envelope/", post)
    # As the relay serves: its bodies as they came (it decompresses them itself), no log.
    runner = web.AppRunner(app, access_log=None, auto_decompress=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(sys.argv[1])).start()
    print("serving", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def empty_server_rate(bodies: list[bytes], concurrency: int) -> tuple[float, float]:
    """Envelopes/s and CPU µs per envelope of an aiohttp server that does nothing."""
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _EMPTY_SERVER, str(port), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert server.stdout is not None
        await server.stdout.readline()  # said once bound
        url = f"http://127.0.0.1:{port}/api/1/envelope/"
        await hammer(url, bodies[:500], concurrency)
        return await measured(psutil.Process(server.pid), url, bodies, concurrency)
    finally:
        server.terminate()
        await server.wait()


async def measured(
    process: psutil.Process, url: str, bodies: list[bytes], concurrency: int
) -> tuple[float, float]:
    """hammer's rate, and the CPU the server ``process`` spent per envelope meanwhile (µs)."""
    before = process.cpu_times()
    rate = await hammer(url, bodies, concurrency)
    after = process.cpu_times()
    spent = after.user + after.system - before.user - before.system
    return rate, spent / len(bodies) * 1e6


async def bare(bootstrap: str, topic: str, count: int, size: int, concurrency: int) -> float:
    """Bare aiokafka: records of ``size`` bytes, each awaited, ``concurrency`` in flight."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        values = [os.urandom(size // 2).hex().encode() for _ in range(64)]
        sent = iter(range(count))

        async def worker() -> None:
            for n in sent:
                await producer.send_and_wait(topic, values[n % 64], key=uuid.uuid4().hex.encode())

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return count / (time.perf_counter() - start)
    finally:
        await producer.stop()


async def steady(url: str, bodies: list[bytes], rate: float) -> list[float]:
    """Open loop: one envelope every 1/rate seconds; each one's latency in ms."""
    headers = {"Content-Encoding": "gzip"}
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as client:

        async def one(body: bytes) -> None:
            start = time.perf_counter()
            async with client.post(url, data=body, headers=headers) as answer:
                await answer.read()
                latencies.append((time.perf_counter() - start) * 1000)
                if answer.status != 200:
                    raise SystemExit(f"relay answered {answer.status}")

        tasks = []
        begin = time.perf_counter()
        for n, body in enumerate(bodies):
            delay = begin + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(body)))
        await asyncio.gather(*tasks)
    return latencies


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envelopes", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    with DevStack() as stack:
        port = free_port()
        env = {
            **os.environ,
            "MENDLINE_DATABASE_URL": stack.database_url,
            "MENDLINE_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
            "MENDLINE_ERRORS_TOPIC": f"bench.relay.{uuid.uuid4().hex[:8]}",
            "MENDLINE_RELAY_PORT": str(port),
            "MENDLINE_RELAY_RATE_LIMIT": "0",
            "MENDLINE_LOCAL_ROLE": "admin",
        }
        await mendline(env, "migrate")
        dsn = (await mendline(env, "keys", "create", "bench")).strip()
        key, project = re.match(r"http://(\w+)@[^/]+/(\d+)", dsn).groups()  # type: ignore[union-attr]
        relay = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mendline", "relay", env=env, stderr=asyncio.subprocess.PIPE
        )
        try:
            assert relay.stderr is not None
            while not (found := SERVED.search((await relay.stderr.readline()).decode())):
                pass
            url = f"{found.group(1)}/api/{project}/envelope/?sentry_key={key}"
            memory = psutil.Process(relay.pid)
            bodies = [envelope(n) for n in range(args.envelopes)]
            raw = len(gzip.decompress(bodies[0]))
            await hammer(url, bodies[:500], args.concurrency)  # warm up
            relay_rate, relay_cpu = await measured(memory, url, bodies, args.concurrency)
            bare_rate = await bare(
                stack.kafka_bootstrap,
                env["MENDLINE_ERRORS_TOPIC"] + ".bare",
                args.envelopes,
                2500,
                args.concurrency,
            )
            empty_rate, empty_cpu = await empty_server_rate(bodies, args.concurrency)
            timed = [envelope(n) for n in range(int(args.rate * args.seconds))]
            latencies = sorted(await steady(url, timed, args.rate))
            peak = memory.memory_info().rss
        finally:
            relay.terminate()
            await relay.wait()
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print(
        f"relay: {args.envelopes} gzip envelopes ({len(bodies[0])} bytes, {raw} decompressed),"
        f" {args.concurrency} in flight"
    )
    print(
        f"  mendline relay              {relay_rate:8.0f} envelopes/s"
        f"  ({relay_cpu:.0f} µs of relay CPU each)"
    )
    print(f"  bare aiokafka send_and_wait {bare_rate:8.0f} records/s (2.5 KB, same concurrency)")
    print(
        f"  aiohttp answering 200, no work {empty_rate:5.0f} envelopes/s"
        f"  ({empty_cpu:.0f} µs of server CPU each): {empty_rate / bare_rate:.2f}x bare,"
        " this harness's ceiling"
    )
    print(f"  relay / bare                    {relay_rate / bare_rate:5.2f}x (target >= 0.5x)")
    print(
        f"  steady {args.rate:.0f}/s for {args.seconds:.0f} s: p50 "
        f"{statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms (target < 20),"
        f" worst {latencies[-1]:.1f} ms"
    )
    print(f"  relay resident memory after the run: {peak / 1e6:.0f} MB")


if __name__ == "__main__":
    asyncio.run(main())
