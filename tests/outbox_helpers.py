"""Outboxes written as a test needs them: deliveries in given states, each with a trigger of
its own (and its finding, if asked), on issues already stored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg


@dataclass(frozen=True)
class Row:
    """A delivery, with a trigger of its own; times in seconds from now."""

    name: str
    receiver: str = "team"
    issue: int = 1
    mode: str = "new"
    status: str = "pending"
    due: float = -1.0
    wait: bool = False  # it may go before it is due, when its finding is in
    finding: bool = False  # its trigger's finding is in
    lease: float | None = None  # a worker's lease on it (negative: lapsed)
    route: str = "r1"
    kind: str = "new_issue"


async def outbox(where: asyncpg.Pool | str, rows: list[Row]) -> dict[int, str]:
    """Empty the outbox of ``where`` (a pool, or a database's URL), then write ``rows`` in
    order (ids ascending) in one transaction, so that equal offsets give equal times; the
    rows' names by id."""
    if isinstance(where, str):
        conn = await asyncpg.connect(where)
        try:
            return await _write(conn, rows)
        finally:
            await conn.close()
    async with where.acquire() as conn:
        return await _write(conn, rows)


async def _write(conn: Any, rows: list[Row]) -> dict[int, str]:
    names = {}
    async with conn.transaction():
        await conn.execute(
            """DELETE FROM mendline.deliveries; DELETE FROM mendline.alert_state;
               DELETE FROM mendline.alert_groups;
               DELETE FROM mendline.findings;
               DELETE FROM mendline.triggers WHERE dedup_key LIKE 'claim:%'"""
        )
        for n, row in enumerate(rows):
            trigger = await conn.fetchval(
                """INSERT INTO mendline.triggers (issue_id, kind, dedup_key, routed_at)
                   VALUES ($1, $2, $3, now()) RETURNING id""",
                row.issue,
                row.kind,
                f"claim:{n}",
            )
            if row.finding:
                await conn.execute(
                    """INSERT INTO mendline.findings (issue_id, trigger_id, cache_key, analyser,
                           root_cause, confidence, category, severity, suggested_fix)
                       VALUES ($1, $2, $3, 'heuristic', $4, 0.8, 'bad_input', 'critical',
                               'check the input')""",
                    row.issue,
                    trigger,
                    f"claim:{n}",
                    f"the cause of {row.name}",
                )
            delivery = await conn.fetchval(
                """INSERT INTO mendline.deliveries (receiver, route_key, issue_id, trigger_id,
                       kind, severity, mode, status, due_at, wait_finding, lease_until, owner)
                   VALUES ($1, $2, $3, $4, $5, 'error', $6, $7,
                           now() + make_interval(secs => $8), $9,
                           now() + make_interval(secs => $10),
                           CASE WHEN $10::float8 IS NULL THEN NULL ELSE 'another' END)
                   RETURNING id""",
                row.receiver,
                row.route,
                row.issue,
                trigger,
                row.kind,
                row.mode,
                row.status,
                row.due,
                row.wait,
                row.lease,
            )
            names[delivery] = row.name
    return names
