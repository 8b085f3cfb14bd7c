"""What one error log costs the calling thread, with and without mendline, and with sentry-sdk;
and what an error storm loses.

Run: .venv/bin/python bench/emit.py [--calls N] [--storm-only] [--storm-seconds S]
(needs the bench extra: sentry-sdk)

Every variant raises the same 10-frame exception and logs it with log.exception(); the
baseline is the same structlog chain without the mendline processor, measured in the same
run (this machine is shared and noisy, so only same-run differences mean anything).

The storms: one thread logs exceptions at a paced 10,000 a second for S seconds (10 by
default), (a) of 20 distinct kinds, (b) each a distinct error; the events go through the
broker and `mendline consume` into PostgreSQL, and the occurrences counted there (the issues'
times_seen, and what the app reported lost) are compared with the calls made.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import structlog

from mendline.devstack import DevStack, KafkaBroker, free_port
from mendline.ingest import ErrorEventProcessor
from mendline.schemas.settings import load_settings

STORM_RATE = 10_000  # calls a second
#: 20 distinct errors: each its own exception type.
STORM_KINDS = [type(f"StormError{k}", (Exception,), {}) for k in range(20)]


def deep(n: int) -> None:
    if n <= 1:
        raise ValueError(f"bad quantity {n!r}")
    deep(n - 1)


def configure(extra: list[object]) -> Callable[[], None]:
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            *extra,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=True,
    )
    log = structlog.get_logger("bench").bind(user_id=42, path="/orders")

    def call() -> None:
        try:
            deep(9)  # 10 frames with the caller's
        except ValueError:
            log.exception("order_failed", order_id=7)

    return call


def sentry_call() -> Callable[[], None]:
    import sentry_sdk
    from sentry_sdk.transport import Transport

    class DropTransport(Transport):
        def capture_envelope(self, envelope: object) -> None:
            pass

    sentry_sdk.init(
        dsn="http://public@127.0.0.1:9/1",
        transport=DropTransport,
        default_integrations=False,
        traces_sample_rate=0,
    )

    def call() -> None:
        try:
            deep(9)
        except ValueError as exc:
            sentry_sdk.capture_exception(exc)

    return call


def per_call(call: Callable[[], None], calls: int) -> list[float]:
    """Seconds per call of each call, in order."""
    clock = time.perf_counter
    out = []
    for _ in range(calls):
        t0 = clock()
        call()
        out.append(clock() - t0)
    return out


def median_of_rounds(call: Callable[[], None], calls: int, rounds: int = 5) -> float:
    for _ in range(200):
        call()  # warm up caches and the shipper thread
    meds = []
    for _ in range(rounds):
        gc.collect()
        meds.append(statistics.median(per_call(call, calls)))
    return statistics.median(meds)


def fail(kind: type[Exception], n: int) -> None:
    raise kind(f"storm occurrence {n}")


def storm(processor: ErrorEventProcessor, seconds: float, distinct: bool) -> tuple[int, float]:
    """Log exceptions at a paced STORM_RATE a second for ``seconds`` through a light chain
    (the processor and a trivial renderer: the baseline chain's format_exc_info alone costs
    about 190 us, so one thread could not log 10,000 a second through it); the calls made and
    the rate reached."""
    structlog.configure(
        processors=[structlog.processors.add_log_level, processor, lambda *_: ""],
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=True,
    )
    log = structlog.get_logger("storm")
    calls = int(seconds * STORM_RATE)
    start = time.perf_counter()
    for n in range(calls):
        if n % 100 == 0:  # pace by sleeping, which lets the shipper thread have the GIL
            ahead = start + n / STORM_RATE - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
        try:
            fail(STORM_KINDS[n % 20], n)
        except Exception:
            if distinct:
                log.exception(f"order {n} failed")  # each call its own error
            else:
                log.exception("order_failed", n=n)
    elapsed = time.perf_counter() - start
    return calls, calls / elapsed


async def counted(url: str, service: str) -> tuple[int, int]:
    """The occurrences PostgreSQL counted for ``service`` (times_seen), and those its app
    reported lost."""
    conn = await asyncpg.connect(url)
    try:
        if not await conn.fetchval("SELECT to_regclass('mendline.lost_events') IS NOT NULL"):
            return 0, 0
        seen = await conn.fetchval(
            "SELECT coalesce(sum(times_seen), 0) FROM mendline.issues WHERE service = $1", service
        )
        lost = await conn.fetchval(
            "SELECT coalesce(sum(lost), 0) FROM mendline.lost_events WHERE service = $1", service
        )
        return int(seen), int(lost)
    finally:
        await conn.close()


async def until_counted(url: str, service: str, calls: int) -> tuple[int, int]:
    """Wait until every call is counted or reported lost, or nothing changed for 20 s."""
    last, still_since = (-1, -1), time.monotonic()
    while True:
        now = await counted(url, service)
        if sum(now) >= calls:
            return now
        if now != last:
            last, still_since = now, time.monotonic()
        elif time.monotonic() - still_since > 20:
            return now
        await asyncio.sleep(0.5)


def storms(seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp, DevStack() as stack:
        env = {
            **os.environ,
            "MENDLINE_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
            "MENDLINE_DATABASE_URL": stack.database_url,
            "MENDLINE_CONSUMER_GROUP": "storm-bench",
        }
        consumer = subprocess.Popen(
            [sys.executable, "-m", "mendline", "consume"], env=env, stderr=subprocess.DEVNULL
        )
        try:
            print(f"error storms, one thread at a paced {STORM_RATE:,} calls/s for {seconds:g} s:")
            for name, distinct in (("20 kinds", False), ("all distinct", True)):
                settings = load_settings(
                    kafka_bootstrap=stack.kafka_bootstrap, spool_dir=Path(tmp) / name
                )
                service = f"storm-{'distinct' if distinct else 'kinds'}"
                processor = ErrorEventProcessor(service, settings=settings)
                calls, rate = storm(processor, seconds, distinct)
                flushed = processor.shipper.flush(120)
                stats = processor.shipper.stats
                processor.shipper.shutdown(10)
                seen, lost = asyncio.run(until_counted(stack.database_url, service, calls))
                print(
                    f"  ({name}) {calls:,} calls at {rate:,.0f}/s: {stats.sent:,} events sent"
                    f" ({stats.rolled_up:,} occurrences rolled up), dropped at the app"
                    f" {stats.dropped['queue_full']:,}, all flushed: {flushed}"
                )
                print(
                    f"      stored: times_seen {seen:,} + reported lost {lost:,} ="
                    f" {seen + lost:,} of {calls:,} calls"
                    f" ({'exact' if seen + lost == calls else 'NOT EXACT'});"
                    f" not received {calls - seen:,}"
                )
        finally:
            consumer.send_signal(2)
            consumer.wait(60)
        structlog.reset_defaults()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000, help="calls per round")
    parser.add_argument("--storm-seconds", type=float, default=10.0)
    parser.add_argument("--storm-only", action="store_true", help="only the storms")
    args = parser.parse_args()
    if args.storm_only:
        storms(args.storm_seconds)
        return

    with tempfile.TemporaryDirectory() as tmp, KafkaBroker() as broker:
        settings = load_settings(kafka_bootstrap=broker.bootstrap, spool_dir=Path(tmp) / "up")
        baseline = median_of_rounds(configure([]), args.calls)
        processor = ErrorEventProcessor("bench", settings=settings)
        with_mendline = median_of_rounds(configure([processor]), args.calls)
        flushed = processor.shipper.flush(120)
        stats = processor.shipper.stats
        processor.shipper.shutdown(10)

        down = load_settings(
            kafka_bootstrap=f"127.0.0.1:{free_port()}", spool_dir=Path(tmp) / "down"
        )
        outage = ErrorEventProcessor("bench-down", settings=down)
        structlog.reset_defaults()
        call_down = configure([outage])
        samples = sorted(per_call(call_down, 10_000))
        outage.shipper.shutdown(5)
        baseline_samples = sorted(per_call(configure([]), 10_000))

        sentry = median_of_rounds(sentry_call(), args.calls)

    added = with_mendline - baseline
    print(f"structlog log.exception, 10-frame traceback, median of 5 rounds x {args.calls}:")
    print(f"  plain structlog (baseline)        {baseline * 1e6:8.1f} us/call")
    print(f"  structlog + mendline processor    {with_mendline * 1e6:8.1f} us/call")
    print(f"  added by mendline                 {added * 1e6:8.1f} us/call (target < 50)")
    print(f"  sentry_sdk.capture_exception      {sentry * 1e6:8.1f} us/call (transport drops)")
    sentry_added = sentry - (baseline - 0)  # sentry replaces logging; compare whole calls too
    print(f"  sentry-sdk / mendline (added)     {sentry / max(added, 1e-9):8.1f} x")
    print(f"  sentry-sdk / mendline (whole)     {sentry / with_mendline:8.1f} x")
    print(
        f"  shipper: {stats.received} received, {stats.sent} sent to the broker,"
        f" dropped {stats.dropped}, all flushed: {flushed}"
    )
    print("with the broker down (10,000 calls, events spooled to disk):")
    for name, data in (("mendline", samples), ("baseline", baseline_samples)):
        print(
            f"  {name:9s} p50 {data[5000] * 1e6:7.1f} us  p99 {data[9900] * 1e6:7.1f} us"
            f"  max {data[-1] * 1e3:6.2f} ms"
        )
    del sentry_added
    structlog.reset_defaults()
    storms(args.storm_seconds)


if __name__ == "__main__":
    main()
