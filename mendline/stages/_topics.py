"""A stage's topics, created before it reads or writes them: `mendline topics ensure`'s way."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection

from aiokafka.errors import KafkaConnectionError

from mendline.analyzers.backoff import Backoff
from mendline.ingest import ensure_topics
from mendline.schemas.settings import Settings
from mendline.stages._waiting import wait_any

__all__ = ["ensure_stage_topics"]

log = logging.getLogger("mendline")


async def ensure_stage_topics(
    settings: Settings,
    topics: Collection[str],
    *,
    timeout: float,
    stop: asyncio.Event | None = None,
) -> bool:
    """Create ``topics`` where missing, with the configured partitions (``ensure_topics``),
    before a consumer subscribes or a producer sends: a broker that creates topics on first
    use would give them its default partitions, and a DLQ topic would be missing until
    written to. Whether they exist now.

    With ``stop``, a broker not reachable yet is waited for (one warning) until ``stop``; a
    broker that refuses (no right to create topics, say), one that does not answer within
    ``timeout`` seconds, or one not reachable without ``stop``, is one warning and False: the
    stage goes on with the topics as they are.
    """
    backoff = Backoff(0.2, 10.0)
    said_unreachable = False
    while True:
        try:
            async with asyncio.timeout(timeout):
                outcome = await ensure_topics(settings, only=topics)
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            if stop is None or stop.is_set() or not isinstance(exc, KafkaConnectionError):
                names = ", ".join(sorted(topics))
                log.warning("mendline: the topics %s could not be created: %s", names, reason)
                return False
            if not said_unreachable:
                log.warning(
                    "mendline: Kafka unreachable (%s); waiting to create the topics", reason
                )
                said_unreachable = True
            await wait_any(stop, None, backoff.next())
            continue
        for topic, what in sorted(outcome.items()):
            if what == "created":
                log.info("mendline: created the topic %s", topic)
        return True
