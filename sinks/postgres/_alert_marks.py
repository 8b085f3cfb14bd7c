"""What became of claimed deliveries (sent, to be tried again, given up, suppressed), written
many at a time in one transaction."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from mendline.schemas.alert import ENDS_INCIDENT

if TYPE_CHECKING:
    from mendline.sinks.postgres._alerts import DueDelivery

__all__ = ["Delivered", "GiveUp", "Mark", "Retry", "Suppressed", "write_marks"]


@dataclass(frozen=True)
class Delivered:
    """Deliveries sent as one message (a delivery, or a digest's, the first one its head),
    with the channel's reference to it."""

    items: tuple[DueDelivery, ...]
    reference: dict[str, str]


@dataclass(frozen=True)
class _OneDelivery:
    item: DueDelivery

    @property
    def items(self) -> tuple[DueDelivery, ...]:
        return (self.item,)


@dataclass(frozen=True)
class Retry(_OneDelivery):
    """A delivery to try again ``after`` seconds from now, after ``error``."""

    error: str
    after: float


@dataclass(frozen=True)
class GiveUp(_OneDelivery):
    """A delivery not to try again: ``failed`` (the channel refused it) or ``dead`` (retried
    too long)."""

    error: str
    status: Literal["failed", "dead"]


@dataclass(frozen=True)
class Suppressed(_OneDelivery):
    """A delivery not sent, with why: a silence matched it when it was to be sent
    (``silence_id``), or its receiver is disabled."""

    reason: str
    silence_id: int | None = None


Mark = Delivered | Retry | GiveUp | Suppressed


async def write_marks(conn: Any, marks: Sequence[Mark], owner: str) -> None:
    """Record ``marks``, in the caller's transaction: a few statements, whatever their
    number. A delivery ``owner`` no longer holds (its lease ran out and another worker took
    it) is left as it is."""
    sent = [(mark, item) for mark in marks if isinstance(mark, Delivered) for item in mark.items]
    if sent:
        await conn.executemany(
            """UPDATE mendline.deliveries SET status = 'delivered', delivered_at = now(),
                   lease_until = NULL, finding_id = $2, reference = $3::jsonb,
                   digest_of = $4, last_error = NULL, severity = $6
               WHERE id = $1 AND owner = $5""",
            [
                (
                    item.id,
                    item.finding_id,
                    json.dumps(mark.reference),
                    mark.items[0].id if item.id != mark.items[0].id else None,
                    owner,
                    item.alert.severity,
                )
                for mark, item in sent
            ],
        )
        # The first message's reference is kept: updates and repeats refer to it.
        await conn.executemany(
            """INSERT INTO mendline.alert_state (issue_id, receiver, last_sent_at, reference)
               VALUES ($1, $2, now(), $3::jsonb)
               ON CONFLICT (issue_id, receiver) DO UPDATE SET
                   last_sent_at = CASE WHEN $4 THEN alert_state.last_sent_at ELSE now() END,
                   reference = coalesce(alert_state.reference, EXCLUDED.reference)""",
            [
                (
                    item.issue_id,
                    item.receiver,
                    json.dumps(mark.reference),
                    item.mode == "update" or item.alert.kind in ENDS_INCIDENT,
                )
                for mark, item in sent
            ],
        )
        await conn.executemany(
            """INSERT INTO mendline.alert_groups (receiver, route_key, last_sent_at)
               VALUES ($1, $2, now())
               ON CONFLICT (receiver, route_key) DO UPDATE SET last_sent_at = now()""",
            sorted({(item.receiver, item.route_key) for _, item in sent}),
        )
    retries = [m for m in marks if isinstance(m, Retry)]
    if retries:
        await conn.executemany(
            """UPDATE mendline.deliveries SET due_at = now() + make_interval(secs => $2),
                   wait_finding = false, lease_until = NULL, last_error = $3
               WHERE id = $1 AND owner = $4""",
            [(m.item.id, m.after, m.error[:1000], owner) for m in retries],
        )
    given_up = [m for m in marks if isinstance(m, GiveUp)]
    if given_up:
        await conn.executemany(
            """UPDATE mendline.deliveries SET status = $2, lease_until = NULL, last_error = $3
               WHERE id = $1 AND owner = $4""",
            [(m.item.id, m.status, m.error[:1000], owner) for m in given_up],
        )
    suppressed = [m for m in marks if isinstance(m, Suppressed)]
    if suppressed:
        await conn.executemany(
            """UPDATE mendline.deliveries SET status = 'suppressed', lease_until = NULL,
                   last_error = $2, silence_id = $3, reasons = array_append(reasons, $2)
               WHERE id = $1 AND owner = $4""",
            [(m.item.id, m.reason[:1000], m.silence_id, owner) for m in suppressed],
        )
