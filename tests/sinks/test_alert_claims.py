"""Which deliveries ``AlertStore.claim_due`` takes, case by case, and what a claimed one
carries, against a real PostgreSQL: a table of outboxes and the deliveries each claim takes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from mendline.sinks.postgres import AlertStore, migrated_pool
from tests.db_helpers import fresh_database, store_events
from tests.integration.event_factory import make_event

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

ISSUES = 4


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A database with issues 1 to ISSUES, one for the module; each test empties the outbox."""
    async with fresh_database(database_url) as url:
        await store_events(url, [make_event(n) for n in range(ISSUES)])
        pool = await migrated_pool(url, 4)
        try:
            yield pool
        finally:
            await pool.close()


@dataclass(frozen=True)
class Row:
    """A delivery of a case, each with a trigger of its own; times in seconds from now."""

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


@dataclass(frozen=True)
class Case:
    what: str
    rows: list[Row]
    claimed: set[str]
    claim: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case("due now, not the one due later", [Row("now"), Row("later", issue=2, due=60)], {"now"}),
    Case(
        "a lease held is left, a lapsed one taken",
        [Row("held", lease=60), Row("lapsed", issue=2, lease=-1)],
        {"lapsed"},
    ),
    Case(
        "only pending ones",
        [
            Row("delivered", status="delivered"),
            Row("failed", issue=2, status="failed"),
            Row("suppressed", issue=3, status="suppressed"),
        ],
        set(),
    ),
    Case(
        "one at a time per issue and receiver",
        [Row("first"), Row("update", mode="update"), Row("other receiver", receiver="ops")],
        {"first", "other receiver"},
    ),
    Case(
        "the next waits for one not due yet",
        [Row("first", due=60), Row("update", mode="update")],
        set(),
    ),
    Case(
        "the next waits for one being sent",
        [Row("sending", lease=60), Row("update", mode="update")],
        set(),
    ),
    Case(
        "the next goes once the one before is sent",
        [Row("first", status="delivered"), Row("update", mode="update")],
        {"update"},
    ),
    Case(
        "receivers still sending are left",
        [Row("team"), Row("ops", receiver="ops", issue=2)],
        {"team"},
        {"exclude": ["ops"]},
    ),
    Case(
        "only the receivers held, and those gone from the routes",
        [
            Row("held"),
            Row("another's", receiver="ops", issue=2),
            Row("gone", receiver="old", issue=3),
        ],
        {"held", "gone"},
        {"owned": ["team"], "known": ["team", "ops"]},
    ),
    Case(
        "early when its finding is in",
        [
            Row("found", due=60, wait=True, finding=True),
            Row("no finding", issue=2, due=60, wait=True, route="r2"),
            Row("not waiting", issue=3, due=60, finding=True, route="r3"),
        ],
        {"found"},
    ),
    Case(
        "a group waits for the finding of every member",
        [Row("found", due=60, wait=True, finding=True), Row("not yet", issue=2, due=60, wait=True)],
        set(),
    ),
    Case(
        "a group early takes its members along",
        [
            Row("a", due=60, wait=True, finding=True),
            Row("b", issue=2, due=60, wait=True, finding=True),
            Row("member", issue=3, due=60),
            Row("other route", issue=4, due=60, route="r2"),
        ],
        {"a", "b", "member"},
    ),
    Case(
        "a member being sent, or behind its issue's earlier one, stays",
        [
            Row("a", due=60, wait=True, finding=True),
            Row("being sent", issue=2, due=60, lease=60),
            Row("earlier", issue=3, due=3600, route="r2"),
            Row("behind", issue=3, due=60),
        ],
        {"a"},
    ),
    Case(
        "the earliest due first, up to the limit",
        [Row("third", due=-1), Row("first", issue=2, due=-3), Row("second", issue=3, due=-2)],
        {"first", "second"},
        {"limit": 2},
    ),
]


async def outbox(pool: asyncpg.Pool, rows: list[Row]) -> dict[int, str]:
    """Empty the outbox, then write ``rows`` in order (ids ascending) in one transaction, so
    that equal offsets give equal times; the rows' names by id."""
    names = {}
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """DELETE FROM mendline.deliveries; DELETE FROM mendline.alert_state;
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


@pytest.mark.parametrize("case", CASES, ids=[c.what for c in CASES])
async def test_what_a_claim_takes(pool: asyncpg.Pool, case: Case) -> None:
    names = await outbox(pool, case.rows)
    claimed = await AlertStore(pool).claim_due("w1", 30, **case.claim)
    assert {names[d.id] for d in claimed} == case.claimed
    # Each taken once, for this worker, for the lease; the attempt counted.
    assert len(claimed) == len({d.id for d in claimed})
    leased = await pool.fetch(
        """SELECT id FROM mendline.deliveries WHERE owner = 'w1' AND attempts = 1
             AND lease_until > now() + interval '20 seconds'"""
    )
    assert {names[r["id"]] for r in leased} == case.claimed
    again = await AlertStore(pool).claim_due("w2", 30, **case.claim)
    assert not {d.id for d in again} & {d.id for d in claimed}  # none taken twice


async def test_what_a_claimed_delivery_carries(pool: asyncpg.Pool) -> None:
    rows = [
        Row("raised", finding=True),
        Row("told before", issue=2),
        Row("check", issue=3, kind="health_down"),
        Row("unknown kind", issue=4),
    ]
    names = await outbox(pool, rows)
    ids = {name: id_ for id_, name in names.items()}
    await pool.execute(
        "UPDATE mendline.deliveries SET kind = 'nonsense' WHERE id = $1", ids["unknown kind"]
    )
    await pool.execute(
        """INSERT INTO mendline.alert_state (issue_id, receiver, last_sent_at, reference)
           VALUES (2, 'team', now(), '{"channel": "C1", "ts": "1.5"}')"""
    )
    # The check's issue has a finding of an earlier outage: not this one's.
    await pool.execute(
        """INSERT INTO mendline.findings (issue_id, cache_key, analyser, root_cause, confidence,
               category, severity, suggested_fix)
           VALUES (3, 'earlier', 'heuristic', 'an earlier outage', 0.5, 'infra', 'low', 'wait')"""
    )
    await pool.execute(
        """UPDATE mendline.triggers SET environment = 'staging', tags = '{"team": "pay"}'
           WHERE id = (SELECT trigger_id FROM mendline.deliveries WHERE id = $1)""",
        ids["raised"],
    )
    await pool.execute(
        """UPDATE mendline.deliveries SET details = '{"reasons": ["new"]}', route_key = 'k1'
           WHERE id = $1""",
        ids["raised"],
    )
    store = AlertStore(pool, "https://mendline.test/issues/{id}")
    claimed = {names[d.id]: d for d in await store.claim_due("w1", 30)}
    assert sorted(claimed) == ["check", "raised", "told before"]

    raised = claimed["raised"]
    assert raised.alert.severity == "critical"  # raised by its finding (critical)
    assert raised.alert.finding is not None
    assert raised.alert.finding.root_cause == "the cause of raised"
    assert raised.finding_id is not None and raised.previous is None
    assert raised.alert.labels == {
        "severity": "critical",
        "kind": "new_issue",
        "service": "api",
        "environment": "staging",
        "tag:team": "pay",
    }
    assert raised.alert.details == {"reasons": ["new"]}
    assert raised.alert.link == "https://mendline.test/issues/1"
    assert raised.alert.delivery_id == raised.id
    assert (raised.route_key, raised.attempts, raised.issue_id) == ("k1", 1, 1)
    assert raised.alert.issue.id == 1 and raised.alert.issue.service == "api"
    assert raised.alert.issue.times_seen == 1 and raised.alert.issue.level == "error"

    told = claimed["told before"]
    assert told.previous == {"channel": "C1", "ts": "1.5"}
    assert told.alert.finding is None and told.alert.severity == "error"

    check = claimed["check"]
    assert check.alert.finding is None and check.finding_id is None

    failed = await pool.fetchrow(
        "SELECT status, lease_until, last_error FROM mendline.deliveries WHERE id = $1",
        ids["unknown kind"],
    )
    assert failed["status"] == "failed" and failed["lease_until"] is None
    assert failed["last_error"].startswith("cannot build the notification")
