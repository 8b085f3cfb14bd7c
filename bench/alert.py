"""Alerting: latency from an issue's first event to Slack, and deliveries per second per worker.

Run: .venv/bin/python bench/alert.py [--samples N] [--deliveries M]

(1) N new issues, one at a time (Slack allows one message a second per channel, so they are
    spaced 1.1 s apart), each with group_wait 0: the time from the batch that created the
    issue committing in PostgreSQL to the loopback Slack webhook receiving the alert.
(2) M new issues at once routed to a PagerDuty receiver (one Events API call each, no rate
    limit): deliveries per second of one `mendline alert` worker, from routing to the last
    delivery marked in PostgreSQL; then, to the same server in the same run, M bare Events
    API calls one after another, and the ratio of the two rates. The PagerDuty stand-in runs
    in a process of its own, as PagerDuty does: in the worker's, its threads would compete
    with the worker for the interpreter lock, and the more so the more it sends at once.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mendline.analyzers.grouping.scrubbing import Scrubber  # noqa: E402
from mendline.devstack import EmbeddedPostgres  # noqa: E402
from mendline.ingest import prepare_record  # noqa: E402
from mendline.schemas.settings import Settings, load_settings  # noqa: E402
from mendline.sinks.channels import make_channel  # noqa: E402
from mendline.sinks.postgres import connect_alerts, connect_store  # noqa: E402
from mendline.sinks.routing import load_routes  # noqa: E402
from mendline.stages.alert import AlertWorker  # noqa: E402
from tests.channel_servers import fake_pagerduty, fake_slack  # noqa: E402
from tests.integration.event_factory import encode, make_event  # noqa: E402

ROUTES = """
[receivers.team]
type = "slack"
webhook_url_env = "BENCH_SLACK_WEBHOOK"

[receivers.pager]
type = "pagerduty"
routing_key_env = "BENCH_PD_KEY"
events_url = "{pd}"

[[routes]]
match = {{ service = "latency" }}
receivers = ["team"]
group_wait = "0s"
group_interval = "1ms"

[[routes]]
match = {{ service = "throughput" }}
receivers = ["pager"]
group_wait = "0s"
"""


def serve_pagerduty(reply: Connection) -> None:
    """The PagerDuty stand-in until the process is terminated; its URL sent through ``reply``."""
    with fake_pagerduty() as pd:
        reply.send(pd.events_url)
        threading.Event().wait()


@contextmanager
def pagerduty_process() -> Iterator[str]:
    """The Events API URL of a PagerDuty stand-in in a process of its own, stopped after."""
    ours, theirs = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(target=serve_pagerduty, args=(theirs,))
    process.start()
    try:
        if not ours.poll(60):
            raise SystemExit("the PagerDuty stand-in did not start")
        yield ours.recv()
    finally:
        process.terminate()
        process.join(10)


async def run_worker(settings: Settings, environ: dict[str, str], stop: asyncio.Event) -> None:
    table = load_routes(settings.routes_file)
    channels = {n: make_channel(n, r, environ) for n, r in table.receivers.items()}
    store = await connect_alerts(settings)
    try:
        await AlertWorker(settings, store, table, channels).run(stop)
    finally:
        for channel in channels.values():
            await channel.aclose()
        await store.pool.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--deliveries", type=int, default=2000)
    args = parser.parse_args()
    with (
        EmbeddedPostgres() as pg,
        fake_slack() as slack,
        pagerduty_process() as events_url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        path = Path(tmp) / "routes.toml"
        path.write_text(ROUTES.format(pd=events_url))
        settings = load_settings(
            database_url=pg.url, routes_file=path, frequency_threshold=0, alert_lease=300
        )
        environ = {"BENCH_SLACK_WEBHOOK": slack.webhook_url(), "BENCH_PD_KEY": "K" * 32}
        store = await connect_store(settings)
        scrubber = Scrubber()
        stop = asyncio.Event()
        worker = asyncio.create_task(run_worker(settings, environ, stop))
        await asyncio.sleep(1.0)  # started and listening

        latencies = []
        for n in range(args.samples):
            batch = [prepare_record(encode(make_event(n, 0, service="latency")), scrubber)]
            await store.write(batch)
            committed = time.monotonic()
            deadline = time.monotonic() + 30
            while len(slack.requests) <= n:
                if worker.done() or time.monotonic() > deadline:
                    await worker  # raises what stopped it
                    raise SystemExit("no alert arrived in 30 s")
                await asyncio.sleep(0.001)
            latencies.append(slack.requests[n].at - committed)
            await asyncio.sleep(1.1)

        conn = await asyncpg.connect(pg.url)
        events = [
            prepare_record(encode(make_event(10_000 + k, 0, service="throughput")), scrubber)
            for k in range(args.deliveries)
        ]
        started = time.monotonic()
        for k in range(0, len(events), 500):
            await store.write(events[k : k + 500])
        while True:
            done = await conn.fetchval(
                "SELECT count(*) FROM mendline.deliveries"
                " WHERE receiver = 'pager' AND status = 'delivered'"
            )
            if done >= args.deliveries:
                break
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - started
        await conn.close()
        # The baseline, same server, same run: the bare Events API calls, one after another.
        async with httpx.AsyncClient() as client:
            body = {
                "routing_key": "K" * 32,
                "event_action": "trigger",
                "dedup_key": "x",
                "payload": {"summary": "s", "source": "s", "severity": "error"},
            }
            bare_started = time.monotonic()
            for _ in range(args.deliveries):
                await client.post(events_url, json=body)
            bare = time.monotonic() - bare_started
        stop.set()
        await worker
        await store.close()
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"(1) first event committed -> alert at the Slack webhook, {len(latencies)} issues:")
    print(
        f"    median {statistics.median(latencies) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms,"
        f" max {latencies[-1] * 1000:.0f} ms (group_wait 0)"
    )
    rate, bare_rate = args.deliveries / elapsed, args.deliveries / bare
    print(
        f"(2) {args.deliveries} PagerDuty deliveries by one worker: {elapsed:.1f} s,"
        f" {rate:.0f} deliveries/s; the bare Events API calls alone: {bare_rate:.0f}/s"
        f" (ratio {rate / bare_rate:.2f})"
    )


if __name__ == "__main__":
    if "BENCH_SLACK_WEBHOOK" in os.environ:
        raise SystemExit("unset BENCH_SLACK_WEBHOOK")
    asyncio.run(main())
