"""``python -m mendline.sample_app``: serve the shop until signalled, then flush its events."""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Sequence

from mendline.sample_app._logging import configure_logging
from mendline.sample_app.web import _logger, serving
from mendline.schemas.settings import load_settings

__all__ = ["main"]


async def _serve_until_stopped(host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with serving(host, port) as url:
        print(f"listening on {url}", flush=True)
        _logger().info("shop_started", url=url)
        await stop.wait()
        _logger().info("shop_stopping")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mendline.sample_app``: serve the shop until SIGTERM or SIGINT, then flush
    the events still queued (or spool them) and return 0.

    mendline's settings come from the environment (``MENDLINE_*``). Prints one line,
    ``listening on http://HOST:PORT``, once the shop accepts connections; its own log lines
    go to standard error.
    """
    parser = argparse.ArgumentParser(
        prog="python -m mendline.sample_app",
        description="A small web shop that logs realistic errors through mendline.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port; 0 takes a free one")
    parser.add_argument("--service", default="shop", help="service name on the events")
    parser.add_argument("--release", default="1.4.2", help="release on the events")
    parser.add_argument("--environment", default="demo", help="environment on the events")
    args = parser.parse_args(argv)
    settings = load_settings()
    processor = configure_logging(
        args.service, settings=settings, release=args.release, environment=args.environment
    )
    try:
        asyncio.run(_serve_until_stopped(args.host, args.port))
    finally:
        processor.shipper.shutdown(settings.shutdown_timeout)
    return 0
