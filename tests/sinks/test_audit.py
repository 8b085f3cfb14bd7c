"""The audit trail in a real PostgreSQL: appended in the caller's transaction and chained in
order under concurrency, refused any change by its trigger, and its chain walked to the first
row altered or removed behind the trigger's back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest

from mendline.schemas.people import GENESIS_HASH, SYSTEM_ACTOR, Actor, AuditEntry
from mendline.schemas.settings import load_settings
from mendline.sinks.postgres import AuditStore, append_audit, connect_audit
from tests.db_helpers import behind_audit_trigger, query, repeatable_read_pool

pytestmark = pytest.mark.integration
ALICE = Actor(name="alice", role="responder", auth="token", user_id=3, token_id="mlt_ab12cd34")
BOB = Actor(name="bob", role="approver", auth="local")


def entry(action: str = "issue.resolve", target: str = "issue:12", **fields: object) -> AuditEntry:
    values: dict[str, object] = {
        "actor": ALICE,
        "action": action,
        "target": target,
        "before": {"status": "open"},
        "after": {"status": "resolved"},
        "origin": "cli@host",
    }
    return AuditEntry.model_validate({**values, **fields})


@pytest.fixture
async def store(fresh_db_url: str) -> AsyncIterator[AuditStore]:
    audit = await connect_audit(load_settings(database_url=fresh_db_url))
    try:
        yield audit
    finally:
        await audit.close()


async def test_an_entry_rolled_back_with_its_change_leaves_no_row(
    store: AuditStore, fresh_db_url: str
) -> None:
    conn = await asyncpg.connect(fresh_db_url)
    try:
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await append_audit(conn, entry(target="issue:1"))
                raise RuntimeError("the change failed")
        async with conn.transaction():
            kept = await append_audit(conn, entry(target="issue:2"))
    finally:
        await conn.close()
    assert [r.target for r in await store.list()] == ["issue:2"]
    assert kept.prev_hash == GENESIS_HASH
    check = await store.verify()
    assert (check.intact, check.rows, check.last_hash) == (True, 1, kept.row_hash)


async def test_concurrent_appends_chain_in_order(store: AuditStore, fresh_db_url: str) -> None:
    async def one(n: int) -> None:
        conn = await asyncpg.connect(fresh_db_url)
        try:
            async with conn.transaction():
                await append_audit(conn, entry(target=f"issue:{n}", after={"n": n}))
        finally:
            await conn.close()

    await asyncio.gather(*(one(n) for n in range(20)))
    rows = list(reversed(await store.list(limit=100)))
    assert sorted(r.target for r in rows) == sorted(f"issue:{n}" for n in range(20))
    assert [r.prev_hash for r in rows[1:]] == [r.row_hash for r in rows[:-1]]
    assert [r.at for r in rows] == sorted(r.at for r in rows)
    check = await store.verify()
    assert (check.intact, check.rows) == (True, 20)


async def test_the_stored_json_is_what_was_hashed(store: AuditStore) -> None:
    odd = {"big": 1e20, "tenth": 0.1, "text": "é\u2028<b>", "nested": {"z": [1, None, True]}}
    stored = await store.append(entry(before=odd, after=None))
    assert stored.before == {**odd, "big": 10**20}  # as jsonb gives it back
    assert (await store.list())[0] == stored
    assert (await store.verify()).intact


async def test_values_jsonb_refuses_do_not_fail_the_change(store: AuditStore) -> None:
    odd = {"ratio": float("nan"), "limit": float("inf"), "name\x00": "a\x00b", "at": ALICE}
    stored = await store.append(entry(before=odd, after={"when": timedelta(hours=1)}))
    assert stored.before == {
        "ratio": "NaN",
        "limit": "Infinity",
        "name": "ab",
        "at": {
            "name": "alice",
            "role": "responder",
            "auth": "token",
            "user_id": 3,
            "token_id": "mlt_ab12cd34",
        },
    }
    assert stored.after == {"when": "1:00:00"}
    assert (await store.list())[0] == stored
    assert (await store.verify()).intact


async def test_a_repeatable_read_transaction_is_refused(
    store: AuditStore, fresh_db_url: str
) -> None:
    conn = await asyncpg.connect(fresh_db_url)
    try:
        with pytest.raises(ValueError, match="read committed"):
            async with conn.transaction(isolation="repeatable_read"):
                await append_audit(conn, entry())
    finally:
        await conn.close()
    assert await store.list() == []


async def test_append_asks_for_read_committed_whatever_the_servers_default(
    store: AuditStore, fresh_db_url: str
) -> None:
    async with repeatable_read_pool(fresh_db_url) as strict:
        stored = await AuditStore(strict).append(entry())
    assert [r.row_hash for r in await store.list()] == [stored.row_hash]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE mendline.audit_log SET target = 'issue:99'",
        "DELETE FROM mendline.audit_log",
        "TRUNCATE mendline.audit_log",
    ],
)
async def test_the_trigger_refuses_any_change(
    store: AuditStore, fresh_db_url: str, statement: str
) -> None:
    await store.append(entry())
    with pytest.raises(asyncpg.RestrictViolationError, match=r"mendline\.audit_log is append-only"):
        await query(fresh_db_url, statement)
    assert [r.target for r in await store.list()] == ["issue:12"]
    assert (await store.verify()).intact


async def test_verify_names_an_altered_row(store: AuditStore, fresh_db_url: str) -> None:
    rows = [await store.append(entry(target=f"issue:{n}")) for n in range(4)]
    await behind_audit_trigger(
        fresh_db_url, f"UPDATE mendline.audit_log SET after = '{{}}' WHERE id = {rows[2].id}"
    )
    check = await store.verify()
    assert check.broken is not None
    assert (check.broken.row.id, check.broken.reason, check.rows) == (rows[2].id, "altered", 3)
    assert check.last_hash == rows[1].row_hash


async def test_verify_names_the_row_after_a_removed_one(
    store: AuditStore, fresh_db_url: str
) -> None:
    rows = [await store.append(entry(target=f"issue:{n}")) for n in range(4)]
    await behind_audit_trigger(
        fresh_db_url, f"DELETE FROM mendline.audit_log WHERE id = {rows[1].id}"
    )
    check = await store.verify()
    assert check.broken is not None
    assert (check.broken.row.id, check.broken.reason) == (rows[2].id, "removed")


async def test_list_filters_and_pages(store: AuditStore) -> None:
    first = await store.append(entry("issue.resolve", "issue:1"))
    await store.append(entry("issue.ignore", "issue:2", actor=BOB))
    await store.append(entry("issuer.x", "issue:2", actor=SYSTEM_ACTOR))
    last = await store.append(entry("user.add", "user:carol", actor=BOB))

    async def targets(**filters: object) -> list[tuple[str, str]]:
        return [(r.action, r.target) for r in await store.list(**filters)]  # type: ignore[arg-type]

    assert await targets(actor="bob") == [("user.add", "user:carol"), ("issue.ignore", "issue:2")]
    assert await targets(action="issue.") == [
        ("issue.ignore", "issue:2"),
        ("issue.resolve", "issue:1"),
    ]
    assert await targets(action="issue%") == []  # a prefix, not a pattern
    assert await targets(target="issue:2", actor="mendline") == [("issuer.x", "issue:2")]
    assert len(await store.list(since=first.at)) == 4
    assert await targets(since=last.at) == [("user.add", "user:carol")]
    assert len(await store.list(until=last.at)) == 3
    assert await store.list(since=last.at + timedelta(seconds=1)) == []
    page = await store.list(limit=2)
    assert [r.id for r in page] == sorted((r.id for r in page), reverse=True)
    rest = await store.list(limit=2, before_id=page[-1].id)
    assert [r.target for r in rest] == ["issue:2", "issue:1"]
