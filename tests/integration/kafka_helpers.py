"""Reading a topic back in the tests."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer


def unique_topic(prefix: str = "t") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:12]}"


async def read_events(
    bootstrap: str, topic: str, expected: int, timeout: float = 30.0, settle: float = 0.5
) -> list[dict[str, Any]]:
    """Read a topic from the start until ``expected`` records came (then ``settle`` seconds
    more, to catch duplicates) or ``timeout`` passed."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        metadata_max_age_ms=1000,
    )
    await consumer.start()
    events: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + timeout
        settle_until: float | None = None
        while time.monotonic() < deadline:
            if settle_until is not None and time.monotonic() >= settle_until:
                break
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            for records in batches.values():
                events.extend(json.loads(r.value) for r in records)
            if len(events) >= expected and settle_until is None:
                settle_until = time.monotonic() + settle
    finally:
        await consumer.stop()
    return events
