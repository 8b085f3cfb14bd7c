"""The dashboard on big data: server time of the pages people open most, with 10,000 issues and
1,000,000 events, against the frame's own floor in the same run.

Run: .venv/bin/python bench/web.py [--issues N] [--events N] [--requests N]

Seeds an embedded PostgreSQL the consumer's way (events validated, scrubbed, fingerprinted and
written by the store in batches of 1,000; the apps' timestamps spread over the last 7 days,
issue sizes Zipf-like so a few issues hold most events; the store counts each event in the
minute it receives it, so every count sits in the few minutes of seeding: the worst case for the
overview and the trend sort, which read the minutes still filling), then resolves a fifth of the
issues, ignores a tenth, gives a fifth a finding, and serves the dashboard in this process. Each
page is asked ``--requests`` times (after 5 warm-up requests) by an admin's API token; the
figure is the handler's own time from the ``Server-Timing`` header (what the target, p95 < 100
ms, is about), with the round trip on loopback beside it. The floor is ``/healthz`` through the
same middlewares. A rare tag (one no event has) makes the tag filter read every candidate
issue's events: its worst case.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mendline.analyzers.grouping.scrubbing import Scrubber  # noqa: E402
from mendline.devstack import EmbeddedPostgres  # noqa: E402
from mendline.ingest import prepare_record  # noqa: E402
from mendline.schemas.finding import Finding  # noqa: E402
from mendline.schemas.people import SYSTEM_ACTOR  # noqa: E402
from mendline.schemas.settings import load_settings  # noqa: E402
from mendline.sinks.postgres import (  # noqa: E402
    FindingStore,
    PeopleStore,
    append_audit,
    connect_store,
    migrated_pool,
)
from mendline.web import WebDeps, build_app, serving_web  # noqa: E402

SERVICES = ("orders", "billing", "auth", "search", "catalog", "checkout", "mail", "media")


def event(issue: int, n: int, now: datetime, rng: random.Random) -> bytes:
    """One event of issue ``issue`` (its call site and exception type make its fingerprint),
    at a random time in the last 7 days."""
    service = SERVICES[issue % len(SERVICES)]
    frames = [
        {
            "filename": f"/srv/{service}/app/m{issue % 97}.py",
            "module": f"app.m{issue % 97}",
            "function": f"handle_{issue}_{k}",
            "lineno": 20 + k,
            "context_line": f"return step_{k}(request)",
            "in_app": True,
        }
        for k in range(3 + issue % 5)
    ]
    at = now - timedelta(seconds=rng.uniform(0, 7 * 86400))
    document = {
        "schema_version": 1,
        "event_id": uuid.uuid4().hex,
        "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "service": service,
        "environment": "production",
        "release": f"1.{n % 10}.0",
        "host": f"web-{n % 12}",
        "level": ("error", "error", "error", "warning", "critical")[issue % 5],
        "logger": "app.requests",
        "message": f"request failed while handling item {n}",
        "exceptions": [
            {
                "type": f"Error{issue % 23}",
                "value": f"step {issue} failed for item {n}",
                "module": "app.errors",
                "frames": frames,
            }
        ],
        "tags": {"region": ("eu", "us", "ap")[n % 3], "plan": ("free", "pro")[issue % 2]},
        "context": {"path": f"/api/{service}/{issue}"},
    }
    return json.dumps(document).encode()


def sizes(issues: int, events: int, rng: random.Random) -> list[int]:
    """Events per issue: Zipf-like (weight 1/rank^0.9), every issue at least one."""
    weights = [1 / (rank + 1) ** 0.9 for rank in range(issues)]
    total = sum(weights)
    counts = [max(1, int(events * w / total)) for w in weights]
    rng.shuffle(counts)
    return counts


async def seed(url: str, issues: int, events: int) -> float:
    """Store the events the consumer's way; the seconds it took."""
    rng = random.Random(16)
    now = datetime.now(UTC)
    settings = load_settings(database_url=url, frequency_threshold=10**9)
    store = await connect_store(settings)
    scrubber = Scrubber()
    started = time.perf_counter()
    try:
        counts = sizes(issues, events, rng)
        plan = [issue for issue, count in enumerate(counts) for _ in range(count)]
        rng.shuffle(plan)
        for start in range(0, len(plan), 1000):
            batch = [
                prepare_record(event(issue, start + i, now, rng), scrubber)
                for i, issue in enumerate(plan[start : start + 1000])
            ]
            await store.write(batch)
            if start % 100_000 == 0:
                print(f"  seeded {start:,} of {len(plan):,} events", flush=True)
    finally:
        await store.close()
    return time.perf_counter() - started


async def shape(url: str) -> None:
    """Resolve a fifth of the issues, ignore a tenth, give a fifth a finding."""
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    try:
        ids = [r["id"] for r in await pool.fetch("SELECT id FROM mendline.issues ORDER BY id")]
        await pool.execute(
            """UPDATE mendline.issues SET status = 'resolved', resolution = 'now',
                   resolved_at = now() WHERE id = ANY($1::bigint[])""",
            ids[::5],
        )
        await pool.execute(
            "UPDATE mendline.issues SET status = 'ignored' WHERE id = ANY($1::bigint[])",
            ids[1::10],
        )
        findings = FindingStore(pool)
        for issue in ids[2::5]:
            await findings.save(
                Finding(
                    analyser="heuristic",
                    root_cause=f"step {issue} reads a value that can be missing",
                    confidence=0.8,
                    category="bad_input",
                    severity="medium",
                    suggested_fix="check the value first",
                ),
                issue_id=issue,
                cache_key=f"bench {issue}",
            )
        await pool.execute("ANALYZE")
    finally:
        await pool.close()


def figures(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(0.95 * len(values)))]
    return f"p50 {statistics.median(values):6.1f}  p95 {p95:6.1f}  max {values[-1]:6.1f}"


async def measure(url: str, requests: int) -> None:
    settings = load_settings(database_url=url)
    pool = await migrated_pool(url, 8)
    try:
        people = PeopleStore(pool, append_audit, origin="bench")
        await people.add_user(SYSTEM_ACTOR, "bench", "admin")
        token, _ = await people.create_token(SYSTEM_ACTOR, "bench")
        busiest = await pool.fetchval(
            "SELECT id FROM mendline.issues ORDER BY times_seen DESC LIMIT 1"
        )
        typical = await pool.fetchval(
            "SELECT id FROM mendline.issues ORDER BY times_seen DESC OFFSET 500 LIMIT 1"
        )
        pages = [
            ("/healthz (the floor)", "/healthz"),
            ("overview", "/"),
            ("issues, unresolved", "/issues"),
            ("issues, by events", "/issues?sort=events"),
            ("issues, search", "/issues?q=Error7"),
            ("issues, tag filter (common tag)", "/issues?q=region:eu"),
            ("issues, tag filter (rare tag)", "/issues?q=plan:enterprise"),
            ("issues, trend", "/issues?sort=trend"),
            (f"issue page, busiest (#{busiest})", f"/issues/{busiest}"),
            (f"issue page, typical (#{typical})", f"/issues/{typical}"),
            ("API issues", "/api/v1/issues"),
        ]
        app = build_app(WebDeps(settings=settings, pool=pool))
        async with (
            serving_web(app, "127.0.0.1", 0) as base,
            httpx.AsyncClient(
                base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60
            ) as client,
        ):
            print(f"\n{'page':34} server time (ms, Server-Timing)", end="")
            print("        round trip on loopback (ms)")
            for label, path in pages:
                server: list[float] = []
                trip: list[float] = []
                status = 0
                # The rare tag reads every candidate's events: seconds each, so asked 5 times.
                asked = min(requests, 5) if "rare tag" in label else requests
                warm = 1 if "rare tag" in label else 5
                for i in range(warm + asked):
                    started = time.perf_counter()
                    response = await client.get(path)
                    elapsed = (time.perf_counter() - started) * 1000
                    status = response.status_code
                    if i >= warm:
                        timing = response.headers.get("Server-Timing", "app;dur=nan")
                        server.append(float(timing.partition(";dur=")[2]))
                        trip.append(elapsed)
                note = "" if status == 200 else f"  (answered {status})"
                print(f"{label:34} {figures(server)}   {figures(trip)}{note}", flush=True)
    finally:
        await pool.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issues", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    with EmbeddedPostgres() as pg:
        url = pg.url
        await (await migrated_pool(url, 1)).close()
        print(f"seeding {args.issues:,} issues with {args.events:,} events...")
        seconds = await seed(url, args.issues, args.events)
        await shape(url)
        print(f"  seeded in {seconds:.0f} s ({args.events / seconds:,.0f} events/s)")
        pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
        counts = await pool.fetchrow(
            "SELECT (SELECT count(*) FROM mendline.issues) AS issues,"
            " (SELECT count(*) FROM mendline.events) AS events"
        )
        await pool.close()
        print(f"database: {counts['issues']:,} issues, {counts['events']:,} events")
        await measure(url, args.requests)


if __name__ == "__main__":
    asyncio.run(main())
