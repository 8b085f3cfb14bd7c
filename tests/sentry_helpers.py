"""The real Sentry SDK (sentry-sdk) as the tests use it: pointed at a relay, sending only
what a test captures."""

from __future__ import annotations

from typing import Any

import sentry_sdk

__all__ = ["init_sdk"]


def init_sdk(dsn: str, **options: Any) -> None:
    """``sentry_sdk.init`` for ``dsn`` with no integrations and no sessions: the SDK sends
    what the test captures and its client reports, nothing else."""
    sentry_sdk.init(
        dsn=dsn,
        default_integrations=False,
        auto_enabling_integrations=False,
        auto_session_tracking=False,
        **options,
    )
