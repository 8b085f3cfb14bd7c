"""Realistic ErrorEvent v1 wire documents for consumer tests and benchmarks."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

# Relative to today: the consumer stores a timestamp older than the retention (30 days) as the
# time of receipt, so a fixed date would change what these events are after a month.
_T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)


def make_event(issue: int, n: int = 0, *, service: str = "api", frames: int = 10) -> dict[str, Any]:
    """An event of issue number ``issue`` (its own call site), differing in data by ``n``."""
    stack = [
        {
            "filename": f"/srv/app/v{n % 3}/app/module{k}.py",  # deploy paths differ
            "module": f"app.module{k}",
            "function": f"handler_{issue}" if k == frames - 1 else f"step{k}",
            "lineno": 10 + k + (n % 5),  # line numbers differ
            "context_line": f"return step{k + 1}(request)"
            if k < frames - 1
            else f"int(q[{issue}])",
            "in_app": True,
        }
        for k in range(frames)
    ]
    return {
        "schema_version": 1,
        "event_id": uuid.uuid4().hex,
        "timestamp": (_T0 + timedelta(milliseconds=n)).isoformat().replace("+00:00", "Z"),
        "service": service,
        "environment": random.choice(["production", "staging"]),
        "release": f"1.{n % 4}.0",
        "host": f"web-{n % 7}",
        "level": "error",
        "logger": "app.orders",
        "message": "order_failed",
        "exceptions": [
            {
                "type": "ValueError",
                "module": "builtins",
                "value": f"invalid literal for int() with base 10: 'x{n}'",
                "frames": stack,
                "frames_omitted": 0,
            }
        ],
        "context": {"order_id": n, "user_id": n % 1000, "path": "/orders", "attempt": 1},
        "tags": {"region": "eu"},
        "fingerprint": None,
    }


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()
