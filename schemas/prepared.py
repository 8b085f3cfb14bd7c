"""The hand-over between the consumer (ingest) and the store (sinks)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

__all__ = ["BatchResult", "EventSink", "PreparedEvent"]


@dataclass(slots=True)  # not frozen: a frozen dataclass is slow to build, and this is hot
class PreparedEvent:
    """A validated, scrubbed and fingerprinted event, ready to store."""

    event_id: str
    timestamp: datetime
    service: str
    environment: str
    release: str | None
    host: str | None
    level: str
    level_rank: int
    message: str
    fingerprint: str
    algorithm_version: int
    basis: str
    components: tuple[str, ...]
    title: str
    culprit: str | None
    payload: bytes
    partition: int | None = None
    offset: int | None = None
    #: schemas.event.content_hash of the validated event: a replay of its event_id with
    #: another hash is a conflict, not a duplicate. None: unknown (any replay is a duplicate).
    content_hash: str | None = None
    #: The occurrences the event stands for (an emitter's roll-up of repeats), at least 1.
    count: int = 1
    #: When the first of them happened: ``timestamp`` unless the event was rolled up.
    first_timestamp: datetime | None = None
    #: Events its emitter counted but could not send since its previous one.
    lost: int = 0
    #: The event's tags (scrubbed), as in ``payload``: what a trigger carries for routing.
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class BatchResult:
    """What storing one batch did."""

    stored: int = 0
    duplicates: int = 0
    new_issues: int = 0
    regressions: int = 0
    triggers: int = 0
    #: The triggers made, by kind (``new_issue``, ``regression``, ``frequency``).
    trigger_kinds: dict[str, int] = field(default_factory=dict)
    #: Events the stored events' emitters reported lost (not received), in all.
    lost: int = 0
    #: Events counted but not stored whole, as sampling decided (``stored`` includes them).
    sampled_out: int = 0
    #: Events not stored because their event_id was stored (or came earlier in the batch)
    #: with other content, each with the content hash stored for that id.
    conflicts: list[tuple[PreparedEvent, str]] = field(default_factory=list)


class EventSink(Protocol):
    """Where the consumer writes its batches: one transaction each, idempotent by event_id."""

    async def write(self, batch: list[PreparedEvent]) -> BatchResult:
        """Store the batch atomically; a redelivered event changes nothing, and an event_id
        seen with other content is left out and listed in ``conflicts``. Failures of the
        store come out as ``DatabaseError``: ``DatabaseUnavailable`` (retriable, waited out)
        or ``RejectedData`` (something in the batch was refused), never as driver errors."""
        ...
