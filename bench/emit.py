"""What one error log costs the calling thread, with and without mendline, and with sentry-sdk.

Run: .venv/bin/python bench/emit.py [--calls N]   (needs the bench extra: sentry-sdk)

Every variant raises the same 10-frame exception and logs it with log.exception(); the
baseline is the same structlog chain without the mendline processor, measured in the same
run (this machine is shared and noisy, so only same-run differences mean anything).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from mendline.devstack import KafkaBroker, free_port
from mendline.ingest import ErrorEventProcessor
from mendline.schemas.settings import load_settings


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000, help="calls per round")
    args = parser.parse_args()

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


if __name__ == "__main__":
    main()
