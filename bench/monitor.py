"""Health monitor: one monitor running many HTTP checks, and the time from an outage to the page.

Run: .venv/bin/python bench/monitor.py [--checks N] [--duration S] [--interval S] [--quick]

(1) One MonitorWorker in this process (the settings' defaults: 200 checks at once, a look
    for due slots every 0.5 s, a pool of 4 connections) runs N HTTP checks every
    ``--interval`` seconds against one loopback aiohttp server (a fast 200, in a process of
    its own), with the real PostgreSQL and broker. After one interval of warm-up, for
    ``--duration`` seconds: the slots that fell due on each check's grid and have no result
    (missed), the scheduling delay (started_at - scheduled_at), CPU seconds per check run (this
    process; the database server's and the broker's processes separately), this process's
    peak resident memory, and the growth of the health tables scaled to a day per check.
    Baseline, same run, same server: the same N checks by a bare loop of run_check under
    asyncio.gather (as many at once as the monitor), no store, no schedule: the probing alone.
(2) A few checks (failure_threshold 3, the same interval) against a loopback server that
    starts answering 503, with the real alert stage (group_wait 0s) paging a PagerDuty
    stand-in: the seconds from the server going down to each page, and in intervals (the
    third failed slot after the outage: between 2 and 3 intervals, plus the alert's path).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import math
import multiprocessing
import pstats
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from aiohttp import web
from pydantic import TypeAdapter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mendline.analyzers.health import CheckSet, slot_offset  # noqa: E402
from mendline.devstack import DevStack  # noqa: E402
from mendline.ingest.probes import HttpClients, run_check  # noqa: E402
from mendline.schemas.checks import Check  # noqa: E402
from mendline.schemas.settings import Settings, load_settings  # noqa: E402
from mendline.sinks.channels import make_channel  # noqa: E402
from mendline.sinks.postgres import connect_alerts, connect_checkins, connect_health  # noqa: E402
from mendline.sinks.routing import load_routes  # noqa: E402
from mendline.stages.alert import AlertWorker  # noqa: E402
from mendline.stages.monitor import MonitorWorker  # noqa: E402
from tests.channel_servers import FakePagerDuty, fake_pagerduty  # noqa: E402
from tests.db_helpers import fresh_database, query  # noqa: E402
from tests.loopback import HOST  # noqa: E402
from tests.probe_servers import http_target  # noqa: E402

PAGE_HEALTH = """
[receivers.pager]
type = "pagerduty"
routing_key_env = "BENCH_PD_KEY"
events_url = "{pagerduty}"

[[routes]]
match_re = {{ kind = "health_.*" }}
receivers = ["pager"]
group_wait = "0s"
"""


# -- the target server, in a process of its own -------------------------------------------


def serve_target(reply: Connection, origins: int) -> None:
    """A fast 200 on ``/health``, on ``origins`` free loopback ports (sent back through
    ``reply``), until the process is terminated."""

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/health", health)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        for _ in range(origins):
            await web.TCPSite(runner, HOST, 0, backlog=1024).start()
        reply.send([address[1] for address in runner.addresses])
        await asyncio.Event().wait()

    asyncio.run(main())


@contextmanager
def target_process(origins: int) -> Iterator[tuple[list[str], psutil.Process]]:
    """The URLs of the target server's ``/health`` (one per origin) and its process, stopped
    afterwards."""
    ours, theirs = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(
        target=serve_target, args=(theirs, origins)
    )
    process.start()
    try:
        if not ours.poll(60):
            raise SystemExit("the target server did not start")
        urls = [f"http://{HOST}:{port}/health" for port in ours.recv()]
        yield urls, psutil.Process(process.pid)
    finally:
        process.terminate()
        process.join(10)


# -- measuring ---------------------------------------------------------------------------


def tree_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) of a process and its children, those that ended too."""
    if pid is None:
        return 0.0
    try:
        root = psutil.Process(pid)
        total = 0.0
        for proc in (root, *root.children(recursive=True)):
            with_children = proc.cpu_times()
            total += with_children.user + with_children.system
            total += with_children.children_user + with_children.children_system
        return total
    except psutil.Error:
        return math.nan


async def table_bytes(url: str) -> tuple[int, int]:
    """Bytes of the check results (every partition) and of the rollups, as they stand."""
    rows = await query(
        url,
        """SELECT (SELECT sum(pg_total_relation_size(relid))::bigint
                   FROM pg_partition_tree('mendline.check_results_raw') WHERE isleaf) AS raw,
                  pg_total_relation_size('mendline.check_rollups') AS rollups""",
    )
    return int(rows[0]["raw"]), int(rows[0]["rollups"])


def http_checks(
    prefix: str, urls: list[str], count: int, interval: float, **extra: Any
) -> list[Check]:
    """``count`` HTTP checks of ``urls`` in turn (each its own query string), every
    ``interval``."""
    adapter: TypeAdapter[Check] = TypeAdapter(Check)
    return [
        adapter.validate_python(
            {
                "name": f"{prefix}-{n}",
                "kind": "http",
                "url": f"{urls[n % len(urls)]}?n={n}",
                "interval": interval,
                "timeout": min(5.0, interval),
                "conditions": ["[STATUS] == 200", "[RESPONSE_TIME] < 500"],
                **extra,
            }
        )
        for n in range(count)
    ]


def bench_settings(stack: DevStack, url: str, **extra: Any) -> Settings:
    """The settings' defaults, on this database and broker, topics of this run's own."""
    run = uuid.uuid4().hex[:8]
    return load_settings(
        database_url=url,
        kafka_bootstrap=stack.kafka_bootstrap,
        self_checks=False,
        checkins_topic=f"bench-checkins.{run}",
        checkins_dlq_topic=f"bench-checkins-dlq.{run}",
        checkins_group=f"bench-checkins.{run}",
        **extra,
    )


def percentile(values: list[float], p: float) -> float:
    """The ``p`` percentile (nearest rank) of ``values``; nan for none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


@dataclass
class Window:
    """What one measured window of a monitor's run read."""

    started: datetime
    ended: datetime
    runs: int
    cpu: float
    cpu_postgres: float
    cpu_broker: float
    cpu_target: float
    bytes_raw: int
    bytes_rollups: int


def slots_missed(
    rows: list[asyncpg.Record], checks: list[Check], window: Window
) -> tuple[int, int]:
    """The slots on the checks' grids that fell due in the window, and those of them that
    have no stored result."""
    stored: dict[str, set[int]] = {}
    interval = checks[0].interval
    for row in rows:
        offset = slot_offset(row["check_name"], interval)
        k = round((row["scheduled_at"].timestamp() - offset) / interval)
        stored.setdefault(row["check_name"], set()).add(k)
    due = missed = 0
    for check in checks:
        offset = slot_offset(check.name, check.interval)
        first = math.ceil((window.started.timestamp() - offset) / check.interval)
        last = math.ceil((window.ended.timestamp() - offset) / check.interval)  # exclusive
        due += last - first
        missed += sum(1 for k in range(first, last) if k not in stored.get(check.name, set()))
    return due, missed


# -- (1) one monitor, N checks -------------------------------------------------------------


async def monitored(
    stack: DevStack, target: list[str], server: psutil.Process, args: argparse.Namespace
) -> None:
    """Run N checks by one MonitorWorker and print what the window measured."""
    async with fresh_database(stack.database_url) as url:
        settings = bench_settings(stack, url)
        checks = http_checks("api", target, args.checks, args.interval)
        health = await connect_health(settings)
        checkins = await connect_checkins(settings)
        worker = MonitorWorker(
            settings, health, checkins, CheckSet(tuple(checks), "bench", {}), owner="bench"
        )
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop))
        try:
            await asyncio.sleep(args.interval + 2)  # every check has run once
            before = await read_window(stack, server, worker, url)
            await asyncio.sleep(args.duration)
            after = await read_window(stack, server, worker, url)
            await asyncio.sleep(min(5.0, args.interval) + 2)  # the slots due before the end
        finally:
            stop.set()
            await running
            await health.close()
            await checkins.close()
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows = await query(
            url,
            """SELECT check_name, scheduled_at, started_at FROM mendline.check_results_raw
               WHERE scheduled_at >= $1 AND scheduled_at < $2""",
            before.started,
            after.started,
        )
    window = Window(
        before.started,
        after.started,
        *(getattr(after, f) - getattr(before, f) for f in list(Window.__dataclass_fields__)[2:]),
    )
    report_monitor(args, checks, rows, window, peak_rss)


async def read_window(
    stack: DevStack, server: psutil.Process, worker: MonitorWorker, url: str
) -> Window:
    """The counters at one moment (a window is the difference of two)."""
    raw, rollups = await table_bytes(url)
    broker = stack.broker.pid if stack.broker is not None else None
    postgres = stack.postgres.pid if stack.postgres is not None else None
    target = server.cpu_times()
    return Window(
        datetime.now(UTC),
        datetime.now(UTC),
        worker.stats.runs,
        time.process_time(),
        tree_cpu(postgres),
        tree_cpu(broker),
        target.user + target.system,
        raw,
        rollups,
    )


def report_monitor(
    args: argparse.Namespace,
    checks: list[Check],
    rows: list[asyncpg.Record],
    window: Window,
    peak_rss: float,
) -> None:
    seconds = (window.ended - window.started).total_seconds()
    delays = [(r["started_at"] - r["scheduled_at"]).total_seconds() for r in rows]
    due, missed = slots_missed(rows, checks, window)
    runs = max(window.runs, 1)
    per_day = 86400 / seconds / len(checks)
    print(
        f"(1) one monitor, {len(checks)} HTTP checks every {args.interval:g} s"
        f" of {args.origins} origin{'s' if args.origins > 1 else ''},"
        f" {seconds:.0f} s measured after {args.interval + 2:g} s of warm-up:"
    )
    print(f"    slots due {due}, results {len(rows)}, missed {missed} (target 0)")
    print(
        f"    scheduling delay p50 {percentile(delays, 50) * 1000:.0f} ms,"
        f" p95 {percentile(delays, 95) * 1000:.0f} ms,"
        f" p99 {percentile(delays, 99) * 1000:.0f} ms, max {max(delays, default=0) * 1000:.0f} ms"
        " (target p99 < 1 s)"
    )
    print(
        f"    CPU per check run: monitor {window.cpu / runs * 1e6:.0f} us,"
        f" PostgreSQL {window.cpu_postgres / runs * 1e6:.0f} us,"
        f" broker {window.cpu_broker / runs * 1e6:.0f} us,"
        f" target server {window.cpu_target / runs * 1e6:.0f} us ({window.runs} runs;"
        f" monitor {window.cpu / seconds * 100:.0f}% of a core)"
    )
    print(f"    peak resident memory of this process {peak_rss:.0f} MB (target < 150)")
    print(
        f"    health tables grew {window.bytes_raw / 1024:.0f} KiB (results)"
        f" + {window.bytes_rollups / 1024:.0f} KiB (rollups): per check per day"
        f" {window.bytes_raw * per_day / 1024:.0f} KiB results"
        f" + {window.bytes_rollups * per_day / 1024:.0f} KiB rollups (as the pages filled)"
    )


async def bare_probing(
    stack: DevStack, target: list[str], server: psutil.Process, args: argparse.Namespace
) -> None:
    """The baselines: the same checks by run_check with no store and no database, (a) each on
    its own grid by an asyncio timer, for the same window, (b) all at once under
    asyncio.gather (as many at once as the monitor)."""
    settings = bench_settings(stack, stack.database_url)
    checks = http_checks("api", target, args.checks, args.interval)
    limit = asyncio.Semaphore(settings.monitor_concurrency)
    delays: list[float] = []
    async with HttpClients() as http:

        async def one(check: Check, slot: datetime) -> None:
            async with limit:
                result = await run_check(check, slot, settings, {}, http=http)
                delays.append((result.started_at - slot).total_seconds())

        async def on_grid(check: Check, until: float) -> None:
            offset = slot_offset(check.name, check.interval)
            running = set()
            while True:
                k = math.floor((time.time() - offset) / check.interval) + 1
                at = k * check.interval + offset
                if at >= until:
                    break
                await asyncio.sleep(at - time.time())
                task = asyncio.create_task(one(check, datetime.fromtimestamp(at, UTC)))
                running.add(task)
                task.add_done_callback(running.discard)
            await asyncio.gather(*running)

        await asyncio.gather(*(one(c, datetime.now(UTC)) for c in checks))  # connected
        delays.clear()
        cpu, server_cpu = time.process_time(), sum(server.cpu_times()[:2])
        await asyncio.gather(*(on_grid(c, time.time() + args.duration) for c in checks))
        cpu, server_cpu = time.process_time() - cpu, sum(server.cpu_times()[:2]) - server_cpu
        runs = len(delays)
        print(
            f"    baseline (a), each check on its grid by an asyncio timer, run_check, no store:"
            f" {runs} runs, CPU per check run {cpu / max(runs, 1) * 1e6:.0f} us (target server"
            f" {server_cpu / max(runs, 1) * 1e6:.0f} us), delay p50"
            f" {percentile(delays, 50) * 1000:.0f} ms, p99 {percentile(delays, 99) * 1000:.0f} ms"
        )
        cpu, wall = time.process_time(), time.monotonic()
        await asyncio.gather(*(one(c, datetime.now(UTC)) for c in checks))
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    print(
        f"    baseline (b), all {len(checks)} under asyncio.gather"
        f" ({settings.monitor_concurrency} at once), no store: {wall:.1f} s,"
        f" CPU per check run {cpu / len(checks) * 1e6:.0f} us"
    )


# -- (2) from the outage to the page --------------------------------------------------------


async def time_to_page(stack: DevStack, args: argparse.Namespace) -> None:
    """Checks of a server that goes down, the real alert stage, a PagerDuty stand-in: the
    seconds from the outage to each check's page."""
    with fake_pagerduty() as pd, tempfile.TemporaryDirectory() as tmp:
        routes = Path(tmp) / "routes.toml"
        routes.write_text(PAGE_HEALTH.format(pagerduty=pd.events_url))
        async with fresh_database(stack.database_url) as url, http_target() as server:
            settings = bench_settings(stack, url, routes_file=routes)
            checks = http_checks(
                "page", [server.url], args.page_checks, args.interval, failure_threshold=3
            )
            health = await connect_health(settings)
            checkins = await connect_checkins(settings)
            monitor = MonitorWorker(settings, health, checkins, CheckSet(tuple(checks), "b", {}))
            alerts = await connect_alerts(settings)
            table = load_routes(routes)
            channels = {
                n: make_channel(n, r, {"BENCH_PD_KEY": "K" * 32})
                for n, r in table.receivers.items()
            }
            stop = asyncio.Event()
            tasks = [
                asyncio.create_task(monitor.run(stop)),
                asyncio.create_task(AlertWorker(settings, alerts, table, channels).run(stop)),
            ]
            try:
                await wait_for_status(url, len(checks), "up", 3 * args.interval)
                down_at = time.monotonic()
                server.mode = "down"
                await wait_for_pages(pd, len(checks), 6 * args.interval)
            finally:
                stop.set()
                await asyncio.gather(*tasks)
                for channel in channels.values():
                    await channel.aclose()
                await health.close()
                await checkins.close()
                await alerts.pool.close()
    report_pages(args, checks, pd, down_at)


async def wait_for_status(url: str, count: int, wanted: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = await query(
            url, "SELECT count(*) AS n FROM mendline.check_status WHERE status = $1", wanted
        )
        if rows[0]["n"] >= count:
            return
        await asyncio.sleep(0.2)
    raise SystemExit(f"the checks were not all {wanted} within {timeout:g} s")


async def wait_for_pages(pd: FakePagerDuty, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(pd.requests) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(pd.requests)} pages of {count} within {timeout:g} s")
        await asyncio.sleep(0.01)


def report_pages(
    args: argparse.Namespace, checks: list[Check], pd: FakePagerDuty, down_at: float
) -> None:
    print(
        f"(2) server down -> page at the PagerDuty stand-in, {len(checks)} checks every"
        f" {args.interval:g} s, failure_threshold 3, group_wait 0s:"
    )
    waits = []
    for check in checks:
        pages = [r for r in pd.requests if f'"{check.name}' in json.dumps(r.body)]
        if not pages or pages[0].body.get("event_action") != "trigger":
            print(f"    {check.name}: no page")
            continue
        wait = pages[0].at - down_at
        waits.append(wait)
        offset = slot_offset(check.name, check.interval)
        print(
            f"    {check.name} (slots at +{offset:4.1f} s in each interval):"
            f" {wait:5.1f} s = {wait / check.interval:.2f} intervals"
        )
    if waits:
        print(
            f"    median {statistics.median(waits):.1f} s, max {max(waits):.1f} s"
            f" = {max(waits) / args.interval:.2f} intervals (expected between 2 and 3)"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--page-checks", type=int, default=5)
    parser.add_argument(
        "--origins", type=int, default=1, help="loopback ports the checks are spread over"
    )
    parser.add_argument("--quick", action="store_true", help="100 checks, 20 s, 4 s interval")
    parser.add_argument(
        "--profile", action="store_true", help="(1) only, under cProfile: where its CPU goes"
    )
    args = parser.parse_args()
    if args.quick:
        args.checks, args.duration, args.interval, args.page_checks = 100, 20.0, 4.0, 2
    with DevStack() as stack, target_process(args.origins) as (target, server):
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            await monitored(stack, target, server, args)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
            return
        await monitored(stack, target, server, args)
        await bare_probing(stack, target, server, args)
        if args.page_checks > 0:
            await time_to_page(stack, args)


if __name__ == "__main__":
    asyncio.run(main())
