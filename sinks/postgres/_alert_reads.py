"""The alert deliveries' read side, for the dashboard: counts by receiver and status, the
deliveries newest first (keyset-paged), what is pending oldest first, and what failed or is
being retried. Read only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mendline.sinks.postgres._errors import translating

if TYPE_CHECKING:
    import asyncpg

__all__ = ["DeliveryCount", "DeliveryReads", "DeliveryRow"]

# A delivery as the dashboard shows it: mendline.alert_deliveries' columns, and whether it
# waits for its finding, and whether a worker holds it now (being sent).
_COLUMNS = """d.id, d.issue_id, i.service, i.title, d.receiver, d.kind, d.severity, d.mode,
    d.status, d.attempts, d.last_error, d.created_at, d.due_at, d.delivered_at,
    d.wait_finding, coalesce(d.lease_until > now(), false) AS sending, d.silence_id,
    d.reasons"""

# Counted over the deliveries made since $1 (deliveries_created).
_COUNTS = """
SELECT receiver, status, count(*) AS count FROM mendline.deliveries
WHERE created_at >= $1 GROUP BY receiver, status ORDER BY receiver, status
"""

_PAGE = f"""
SELECT {_COLUMNS}
FROM mendline.deliveries d JOIN mendline.issues i ON i.id = d.issue_id
WHERE ($1::text IS NULL OR d.receiver = $1) AND ($2::text IS NULL OR d.status = $2)
  AND ($3::bigint IS NULL OR d.id < $3)
ORDER BY d.id DESC LIMIT $4
"""

_PENDING = f"""
SELECT {_COLUMNS}
FROM mendline.deliveries d JOIN mendline.issues i ON i.id = d.issue_id
WHERE d.status = 'pending' AND ($1::text IS NULL OR d.receiver = $1)
ORDER BY d.created_at, d.id LIMIT $2
"""

# Failed or dead, or pending after a failed attempt (its due_at is the next attempt): the
# predicate of the partial index deliveries_troubled.
_TROUBLED = f"""
SELECT {_COLUMNS}
FROM mendline.deliveries d JOIN mendline.issues i ON i.id = d.issue_id
WHERE (d.status IN ('failed', 'dead') OR (d.status = 'pending' AND d.last_error IS NOT NULL))
  AND ($1::text IS NULL OR d.receiver = $1)
ORDER BY d.id DESC LIMIT $2
"""


@dataclass(frozen=True)
class DeliveryCount:
    """How many deliveries to ``receiver`` are in ``status``."""

    receiver: str
    status: str
    count: int


@dataclass(frozen=True)
class DeliveryRow:
    """One delivery: its issue, receiver, what it says, where it stands, its attempts and
    last error. ``due_at``: when it may be sent (after a failure: its next attempt);
    ``sending``: a worker holds it now."""

    id: int
    issue_id: int
    service: str
    title: str
    receiver: str
    kind: str
    severity: str
    mode: str
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    due_at: datetime
    delivered_at: datetime | None
    wait_finding: bool
    sending: bool
    silence_id: int | None
    reasons: tuple[str, ...]


@translating
class DeliveryReads:
    """The alert deliveries' reads (AlertStore has them)."""

    pool: asyncpg.Pool

    async def delivery_counts(self, since: datetime) -> list[DeliveryCount]:
        """Deliveries made since ``since``, by receiver and status."""
        rows = await self.pool.fetch(_COUNTS, since)
        return [DeliveryCount(r["receiver"], r["status"], r["count"]) for r in rows]

    async def deliveries(
        self,
        *,
        receiver: str | None = None,
        status: str | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[DeliveryRow]:
        """Deliveries newest first, to ``receiver``, in ``status``; at most ``limit``. The
        next page: ``before_id`` the last one's id."""
        rows = await self.pool.fetch(_PAGE, receiver, status, before_id, limit)
        return [_row(r) for r in rows]

    async def pending_deliveries(
        self, *, receiver: str | None = None, limit: int = 50
    ) -> list[DeliveryRow]:
        """What is pending, oldest first."""
        return [_row(r) for r in await self.pool.fetch(_PENDING, receiver, limit)]

    async def troubled_deliveries(
        self, *, receiver: str | None = None, limit: int = 50
    ) -> list[DeliveryRow]:
        """Failures and retries, newest first: failed or dead, or pending after a failed
        attempt."""
        return [_row(r) for r in await self.pool.fetch(_TROUBLED, receiver, limit)]


def _row(row: Any) -> DeliveryRow:
    return DeliveryRow(**{**dict(row), "reasons": tuple(row["reasons"] or ())})
