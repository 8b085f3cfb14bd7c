"""Root-cause analysis: heuristic findings per second, the LLM path's overhead, and a pipeline run.

Run: .venv/bin/python bench/analyze.py [--events N] [--issues K]

(1) The heuristic analyser's findings per second over K issues' contexts.
(2) The LLM path's overhead: LLMAnalyser.analyse against a loopback OpenAI-compatible server,
    against a bare httpx POST of the same prompt to the same server (the baseline), same run.
(3) A pipeline run on the embedded broker and database: N events of K issues through
    `mendline consume` and `mendline analyze` (LLM = the loopback server); then every issue
    is resolved and happens again in the same release (a regression: served from the stored
    finding), and once more in a new release (analysed again). It counts triggers, LLM calls
    and findings served from the store; LLM calls must equal the distinct (issue, release)
    pairs analysed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import realistic_event  # noqa: E402
from mendline.analyzers.grouping.scrubbing import Scrubber  # noqa: E402
from mendline.analyzers.rootcause.heuristic import HeuristicAnalyser  # noqa: E402
from mendline.analyzers.rootcause.llm import ChatClient, LLMAnalyser, MemoryLedger  # noqa: E402
from mendline.analyzers.rootcause.prompt import build_prompt  # noqa: E402
from mendline.devstack import DevStack  # noqa: E402
from mendline.schemas.finding import IssueContext, IssueSummary  # noqa: E402
from tests.llm_server import fake_llm  # noqa: E402


def event(issue: int, n: int, release: str) -> bytes:
    document = json.loads(realistic_event(issue, n))
    document["release"] = release
    return json.dumps(document, separators=(",", ":")).encode()


def contexts(issues: int) -> list[IssueContext]:
    out = []
    for issue in range(issues):
        events = [json.loads(realistic_event(issue, n)) for n in range(3)]
        raised = events[0]["exceptions"][-1]
        out.append(
            IssueContext(
                issue=IssueSummary(
                    id=issue + 1,
                    service=events[0]["service"],
                    title=f"{raised['type']}: {raised['value']}",
                    level="error",
                    times_seen=100,
                ),
                events=events,
            )
        )
    return out


def heuristic_rate(items: list[IssueContext]) -> float:
    analyser = HeuristicAnalyser()
    best = 0.0
    for _ in range(5):
        started = time.perf_counter()
        for context in items:
            analyser.diagnose(context)
        best = max(best, len(items) / (time.perf_counter() - started))
    return best


async def llm_overhead(items: list[IssueContext], rounds: int = 300) -> tuple[float, float]:
    """Milliseconds per analysis through LLMAnalyser, and per bare POST of the same prompt."""
    with fake_llm() as server:
        client = ChatClient(server.url, "bench-model")
        analyser = LLMAnalyser(client, MemoryLedger(), concurrency=1)
        bare = httpx.AsyncClient()
        url = server.url + "/chat/completions"
        scrubber = Scrubber()
        try:
            for context in items[:20]:  # warm up both paths
                await analyser.analyse(context)
                await bare.post(
                    url, json={"model": "m", "messages": build_prompt(context, scrubber)}
                )
            best_full = best_bare = float("inf")
            for _ in range(3):
                started = time.perf_counter()
                for k in range(rounds):
                    await analyser.analyse(items[k % len(items)])
                best_full = min(best_full, (time.perf_counter() - started) / rounds)
                prompts = [build_prompt(items[k % len(items)], scrubber) for k in range(rounds)]
                started = time.perf_counter()
                for messages in prompts:
                    response = await bare.post(url, json={"model": "m", "messages": messages})
                    response.json()
                best_bare = min(best_bare, (time.perf_counter() - started) / rounds)
        finally:
            await client.aclose()
            await bare.aclose()
    return best_full * 1000, best_bare * 1000


async def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20)
    await producer.start()
    try:
        futures = []
        for value in values:
            futures.append(await producer.send(topic, value, key=uuid.uuid4().hex.encode()))
            if len(futures) >= 5000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def wait_for(conn: asyncpg.Connection, sql: str, target: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (await conn.fetchval(sql) or 0) >= target:
            return
        await asyncio.sleep(0.3)
    raise SystemExit(f"timed out waiting for {target}: {sql}")


async def pipeline(events: int, issues: int) -> dict[str, Any]:
    with DevStack() as stack, fake_llm() as server:
        topic = f"bench.{uuid.uuid4().hex[:8]}"
        admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic(topic, 6, 1)])
        await admin.close()
        env = {
            **os.environ,
            "MENDLINE_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
            "MENDLINE_DATABASE_URL": stack.database_url,
            "MENDLINE_ERRORS_TOPIC": topic,
            "MENDLINE_DLQ_TOPIC": topic + ".dlq",
            "MENDLINE_CONSUMER_GROUP": "bench",
            "MENDLINE_FREQUENCY_THRESHOLD": "0",
            "MENDLINE_LLM_BASE_URL": server.url,
            "MENDLINE_ANALYZE_POLL_INTERVAL": "0.5",
        }
        stages = [
            subprocess.Popen(  # noqa: ASYNC220 - started once, stopped below
                [sys.executable, "-m", "mendline", stage], env=env, stderr=subprocess.DEVNULL
            )
            for stage in ("consume", "analyze", "analyze")
        ]
        started = time.perf_counter()
        try:
            await produce(
                stack.kafka_bootstrap,
                topic,
                [event(n % issues, n, "2.4.0") for n in range(events)],
            )
            conn = None
            while conn is None:
                try:
                    conn = await asyncpg.connect(stack.database_url)
                    await wait_for(
                        conn, "SELECT to_regclass('mendline.findings') IS NOT NULL", 1, 30
                    )
                except (OSError, asyncpg.PostgresError):
                    conn = None
                    await asyncio.sleep(0.3)
            stored = "SELECT coalesce(sum(times_seen), 0) FROM mendline.issues"
            findings = "SELECT count(*) FROM mendline.findings"
            await wait_for(conn, stored, events, 300)
            await wait_for(conn, findings, issues, 300)
            first_pass = time.perf_counter() - started
            for release, phase in (("2.4.0", 2), ("2.5.0", 3)):
                await conn.execute(
                    "UPDATE mendline.issues SET status = 'resolved', resolved_at = now()"
                    " WHERE status = 'unresolved'"
                )
                await produce(
                    stack.kafka_bootstrap,
                    topic,
                    [event(k % issues, events + k, release) for k in range(issues * 3)],
                )
                await wait_for(conn, stored, events + (phase - 1) * issues * 3, 120)
                await wait_for(conn, findings, issues * phase, 120)
            counts = await conn.fetchrow(
                """SELECT
                     (SELECT count(*) FROM mendline.triggers
                       WHERE kind IN ('new_issue', 'regression')) AS triggers,
                     (SELECT count(*) FROM mendline.triggers WHERE kind = 'regression')
                       AS regressions,
                     (SELECT count(*) FROM mendline.findings) AS findings,
                     (SELECT count(*) FROM mendline.findings WHERE cached_from IS NOT NULL)
                       AS cached,
                     (SELECT count(*) FROM mendline.llm_calls) AS ledger_calls,
                     (SELECT count(DISTINCT cache_key) FROM mendline.findings
                       WHERE cached_from IS NULL) AS distinct_pairs,
                     (SELECT count(*) FROM (SELECT trigger_id FROM mendline.findings
                       GROUP BY trigger_id HAVING count(*) > 1) d) AS doubled"""
            )
            await conn.close()
        finally:
            for stage in stages:
                stage.send_signal(2)
            for stage in stages:
                stage.wait(60)
        return {**dict(counts), "llm_requests": len(server.requests), "first_pass": first_pass}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--issues", type=int, default=300)
    args = parser.parse_args()
    items = contexts(args.issues)
    rate = heuristic_rate(items)
    full_ms, bare_ms = await llm_overhead(items)
    print(f"(1) heuristic analyser       {rate:10.0f} findings/s over {args.issues} issues")
    print(
        f"(2) LLM path, loopback server {full_ms:8.2f} ms per analysis; bare POST of the same"
        f" prompt {bare_ms:.2f} ms; overhead {full_ms - bare_ms:.2f} ms"
    )
    result = await pipeline(args.events, args.issues)
    print(f"(3) {args.events} events over {args.issues} issues, then each regressed twice:")
    print(
        f"    triggers analysed    {result['triggers']:8d}"
        f"  ({result['triggers'] - result['regressions']} new, {result['regressions']} regressions)"
    )
    print(f"    findings             {result['findings']:8d}  (doubled: {result['doubled']})")
    print(
        f"    LLM calls            {result['llm_requests']:8d}  (ledger: {result['ledger_calls']})"
    )
    print(f"    served from store    {result['cached']:8d}")
    print(
        f"    distinct (issue, release) analysed {result['distinct_pairs']}: calls "
        + ("==" if result["llm_requests"] == result["distinct_pairs"] else "!=")
        + " distinct triggers needing a call"
    )
    print(
        f"    first pass (ingest and analysis of {args.events} events) {result['first_pass']:.1f} s"
    )


if __name__ == "__main__":
    asyncio.run(main())
