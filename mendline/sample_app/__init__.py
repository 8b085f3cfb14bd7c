"""A small structlog web shop with realistic, deterministic bugs: `mendline demo` drives it."""

from mendline.sample_app._cli import main
from mendline.sample_app._logging import FAILURES, configure_logging, run_failures
from mendline.sample_app._traffic import TRAFFIC, DriveResult, RequestSpec, drive
from mendline.sample_app.shop import PaymentDeclined
from mendline.sample_app.web import serving

__all__ = [
    "FAILURES",
    "TRAFFIC",
    "DriveResult",
    "PaymentDeclined",
    "RequestSpec",
    "configure_logging",
    "drive",
    "main",
    "run_failures",
    "serving",
]
