"""The outbox against a real PostgreSQL: which deliveries ``AlertStore.claim_due`` takes, case
by case (a table of outboxes and the deliveries each claim takes), what a claimed one
carries, and what ``AlertStore.mark`` records of a batch of outcomes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from mendline.schemas.errors import RejectedData
from mendline.sinks.postgres import (
    AlertStore,
    Delivered,
    GiveUp,
    Retry,
    Suppressed,
    migrated_pool,
)
from tests.db_helpers import fresh_database, store_events
from tests.integration.event_factory import make_event
from tests.outbox_helpers import Row, outbox

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


async def test_a_batch_of_marks_records_each_delivery_as_it_went(pool: asyncpg.Pool) -> None:
    rows = [
        Row("head", route="g"),
        Row("member", issue=2, route="g"),
        Row("update", issue=3, mode="update"),
        Row("retried", issue=4),
        Row("refused", receiver="ops"),
        Row("silenced", issue=2, receiver="ops"),
        Row("taken over", issue=3, receiver="ops"),
    ]
    names = await outbox(pool, rows)
    await pool.execute(
        """INSERT INTO mendline.alert_state (issue_id, receiver, last_sent_at, reference)
           VALUES (3, 'team', '2020-01-01', '{"ts": "first"}')"""
    )
    store = AlertStore(pool)
    claimed = {names[d.id]: d for d in await store.claim_due("w1", 30)}
    assert len(claimed) == len(rows)
    # Its lease ran out while it was being sent, and another worker took it.
    await pool.execute(
        "UPDATE mendline.deliveries SET owner = 'w2' WHERE id = $1", claimed["taken over"].id
    )
    silence = await pool.fetchval(
        """INSERT INTO mendline.silences (matchers, starts_at, ends_at, created_by, comment)
           VALUES ('[{"name": "service", "value": "api"}]', now(),
                   now() + interval '1 hour', 'rita', 'deploy') RETURNING id"""
    )
    await store.mark(
        [
            Delivered((claimed["head"], claimed["member"]), {"ts": "9"}),
            Delivered((claimed["update"],), {"ts": "10"}),
            Retry(claimed["retried"], "http_500: down", 30),
            GiveUp(claimed["refused"], "http_400: bad event", "failed"),
            Suppressed(claimed["silenced"], "silenced: deploy", silence),
            Delivered((claimed["taken over"],), {"ts": "11"}),
        ],
        "w1",
    )
    after = {
        names[r["id"]]: r
        for r in await pool.fetch(
            """SELECT *, due_at > now() + interval '20 seconds' AS later
               FROM mendline.deliveries"""
        )
    }
    head, member = after["head"], after["member"]
    assert (head["status"], member["status"]) == ("delivered", "delivered")
    assert (head["digest_of"], member["digest_of"]) == (None, head["id"])
    assert head["reference"] == member["reference"] == '{"ts": "9"}'
    assert after["update"]["status"] == "delivered"
    retried = after["retried"]
    assert (retried["status"], retried["lease_until"], retried["later"]) == ("pending", None, True)
    assert retried["last_error"] == "http_500: down"
    refused = after["refused"]
    assert (refused["status"], refused["last_error"]) == ("failed", "http_400: bad event")
    silenced = after["silenced"]
    assert (silenced["status"], silenced["silence_id"]) == ("suppressed", silence)
    assert silenced["reasons"][-1] == "silenced: deploy"
    taken = after["taken over"]  # not this worker's to mark any more
    assert (taken["status"], taken["owner"]) == ("pending", "w2")
    assert all(r["lease_until"] is None for n, r in after.items() if n != "taken over")
    state = {
        (r["issue_id"], r["receiver"]): r
        for r in await pool.fetch("SELECT *, reference::text AS ref FROM mendline.alert_state")
    }
    assert state[(1, "team")]["ref"] == state[(2, "team")]["ref"] == '{"ts": "9"}'
    # An update keeps the first message's reference, and does not count as a message sent.
    assert state[(3, "team")]["ref"] == '{"ts": "first"}'
    assert state[(3, "team")]["last_sent_at"].year == 2020
    assert (1, "ops") not in state and (2, "ops") not in state  # refused, silenced
    # The message taken over was sent all the same: the receiver was told.
    assert state[(3, "ops")]["ref"] == '{"ts": "11"}'
    groups = await pool.fetch("SELECT receiver, route_key FROM mendline.alert_groups")
    assert sorted((g["receiver"], g["route_key"]) for g in groups) == [
        ("ops", "r1"),
        ("team", "g"),
        ("team", "r1"),
    ]


@pytest.mark.parametrize(
    "bad",
    [
        lambda item: Suppressed(item, "silenced", silence_id=-1),  # no such silence
        lambda item: Retry(item, "http_503", 1e300),  # a peer's Retry-After: no interval
    ],
    ids=["no such silence", "retry after 1e300"],
)
async def test_a_mark_the_database_refuses_costs_the_others_of_its_batch_nothing(
    pool: asyncpg.Pool, bad: Any
) -> None:
    names = await outbox(pool, [Row("sent"), Row("refused", issue=2)])
    store = AlertStore(pool)
    claimed = {names[d.id]: d for d in await store.claim_due("w1", 30)}
    # The batch is refused as a whole; each is then written on its own.
    await store.mark([Delivered((claimed["sent"],), {"ts": "1"}), bad(claimed["refused"])], "w1")
    rows = {
        names[r["id"]]: r
        for r in await pool.fetch("SELECT id, status, owner, lease_until FROM mendline.deliveries")
    }
    # The message sent is marked so (else it would be sent again once its lease ran out);
    # the refused one is still this worker's, unmarked: it comes back after its lease.
    assert rows["sent"]["status"] == "delivered"
    assert (rows["refused"]["status"], rows["refused"]["owner"]) == ("pending", "w1")
    assert rows["refused"]["lease_until"] is not None
    assert await pool.fetchval("SELECT count(*) FROM mendline.alert_state") == 1
    with pytest.raises(RejectedData):  # alone, a refused mark is said
        await store.mark([bad(claimed["refused"])], "w1")
