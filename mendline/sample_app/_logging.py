"""structlog set up with mendline's processor, and the shop's failures logged without the app."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TextIO

import structlog

from mendline.ingest import ErrorEventProcessor
from mendline.sample_app.shop import average_basket, place_order

__all__ = ["FAILURES", "configure_logging", "run_failures"]

#: name -> (function that raises, context bound on the logger when it is logged)
FAILURES: dict[str, tuple[Callable[[], object], dict[str, Any]]] = {
    "bad_quantity": (lambda: place_order({"qty": "n/a"}), {"path": "/orders", "user_id": 42}),
    "unknown_sku": (
        lambda: place_order({"qty": "2", "sku": "sku-404"}),
        {"path": "/orders", "authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"},
    ),
    "empty_report": (lambda: average_basket([]), {"report": "daily"}),
    "payment_declined": (
        lambda: place_order({"qty": "1"}),
        {"db": "postgresql://shop:hunter2@db.internal/shop", "password": "hunter2"},
    ),
}


def configure_logging(
    service: str, stream: TextIO | None = None, **processor_options: Any
) -> ErrorEventProcessor:
    """Configure structlog with the mendline processor before the renderer; return it.

    Context bound with ``structlog.contextvars`` is merged in. The app's own log lines (one a
    log call, the traceback left out for brevity) go to ``stream``, standard error by default.
    """
    processor = ErrorEventProcessor(service, **processor_options)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            processor,
            structlog.processors.KeyValueRenderer(
                key_order=["timestamp", "level", "event"], drop_missing=True
            ),
        ],
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
    return processor


def run_failures(names: list[str] | None = None) -> list[str]:
    """Run the named failures (all by default), logging each with log.exception()."""
    log = structlog.get_logger().bind(logger="shop.orders")
    done = []
    for name in names or list(FAILURES):
        func, context = FAILURES[name]
        try:
            func()
        except Exception:
            log.bind(**context).exception("order_failed", failure=name)
            done.append(name)
    return done
