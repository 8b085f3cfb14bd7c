"""A small structlog web shop with realistic, deterministic bugs: `mendline demo` drives it."""

from ._cli import main
from ._logging import FAILURES, configure_logging, run_failures
from ._traffic import TRAFFIC, DriveResult, RequestSpec, drive
from .shop import PaymentDeclined
from .web import serving

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
