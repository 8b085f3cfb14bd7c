"""The people store on the real PostgreSQL: users, roles and tokens; each change authorized
and audited in its own transaction (a recorder standing in for the audit trail writes to a
table of the test, on the change's connection), tokens shown once and stored as a hash."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from mendline.schemas.errors import (
    AuthenticationFailed,
    PermissionDenied,
    RejectedData,
    TokenNotFound,
    UserNotFound,
)
from mendline.schemas.people import SYSTEM_ACTOR, Actor, AuditEntry
from mendline.sinks.postgres import AuditStore, PeopleStore, append_audit, migrated_pool
from tests.db_helpers import query, repeatable_read_pool

ROOT = Actor(name="root", role="admin", auth="local")


async def record(conn: asyncpg.Connection[Any], entry: AuditEntry) -> None:
    """The audit trail's stand-in: one row in the caller's transaction."""
    await conn.execute(
        """INSERT INTO public.test_audit (actor, auth, action, target, before, after, origin)
           VALUES ($1, $2, $3, $4, $5::text::jsonb, $6::text::jsonb, $7)""",
        entry.actor.name,
        entry.actor.auth,
        entry.action,
        entry.target,
        None if entry.before is None else _json(entry.before),
        None if entry.after is None else _json(entry.after),
        entry.origin,
    )


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value)


async def record_then_fail_on_disable(conn: asyncpg.Connection[Any], entry: AuditEntry) -> None:
    """Writes the row like ``record``, then fails for ``user.disable``: the audit row and the
    change must go together."""
    await record(conn, entry)
    if entry.action == "user.disable":
        raise RuntimeError("the audit trail failed")


@pytest.fixture
async def pool(fresh_db_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await migrated_pool(fresh_db_url, 3)
    await pool.execute(
        """CREATE TABLE public.test_audit (id serial PRIMARY KEY, actor text, auth text,
           action text, target text, before jsonb, after jsonb, origin text)"""
    )
    yield pool
    await pool.close()


@pytest.fixture
def store(pool: asyncpg.Pool) -> PeopleStore:
    return PeopleStore(pool, record, origin="cli@test")


async def audit_rows(store: PeopleStore) -> list[tuple[Any, ...]]:
    rows = await store.pool.fetch(
        "SELECT actor, action, target, before, after, origin FROM public.test_audit ORDER BY id"
    )
    return [tuple(row) for row in rows]


async def test_users_are_added_listed_given_roles_and_disabled_each_audited(
    store: PeopleStore,
) -> None:
    alice = await store.add_user(ROOT, "alice", "responder")
    assert (alice.name, alice.role, alice.disabled_at, alice.created_by) == (
        "alice",
        "responder",
        None,
        "root",
    )
    await store.add_user(ROOT, "bob", "viewer")
    assert await store.set_role(ROOT, "bob", "approver") == ((await store.list_users())[1], True)
    disabled = await store.disable_user(ROOT, "alice")
    assert disabled.disabled_at is not None
    assert await store.disable_user(ROOT, "alice") == disabled  # no change, no audit row
    assert [(u.name, u.role, u.disabled_at is not None) for u in await store.list_users()] == [
        ("alice", "responder", True),
        ("bob", "approver", False),
    ]
    assert await audit_rows(store) == [
        ("root", "user.add", "user:alice", None, '{"role": "responder"}', "cli@test"),
        ("root", "user.add", "user:bob", None, '{"role": "viewer"}', "cli@test"),
        (
            "root",
            "user.set_role",
            "user:bob",
            '{"role": "viewer"}',
            '{"role": "approver"}',
            "cli@test",
        ),
        (
            "root",
            "user.disable",
            "user:alice",
            '{"disabled": false}',
            '{"disabled": true}',
            "cli@test",
        ),
    ]


async def test_the_same_role_again_changes_nothing_and_writes_no_row(store: PeopleStore) -> None:
    alice = await store.add_user(ROOT, "alice", "responder")
    assert await store.set_role(ROOT, "alice", "responder") == (alice, False)
    assert [row[1] for row in await audit_rows(store)] == ["user.add"]


async def test_a_disabled_user_is_enabled_again_audited_with_their_tokens(
    store: PeopleStore,
) -> None:
    await store.add_user(ROOT, "alice", "viewer")
    token, _ = await store.create_token(ROOT, "alice")
    await store.disable_user(ROOT, "alice")
    with pytest.raises(AuthenticationFailed):
        await store.authenticate(token)
    enabled, changed = await store.enable_user(ROOT, "alice")
    assert changed and enabled.disabled_at is None
    assert (await store.authenticate(token)).name == "alice"
    assert await store.enable_user(ROOT, "alice") == (enabled, False)  # no change, no row
    with pytest.raises(PermissionDenied, match="needs the role admin"):
        await store.enable_user(Actor(name="eve", role="approver", auth="token"), "alice")
    with pytest.raises(UserNotFound):
        await store.enable_user(ROOT, "nobody")
    assert [row[1:5] for row in await audit_rows(store)][-1] == (
        "user.enable",
        "user:alice",
        '{"disabled": true}',
        '{"disabled": false}',
    )
    assert [row[1] for row in await audit_rows(store)].count("user.enable") == 1


@pytest.mark.parametrize("name", ["mendline", "Mendline", " alice", "bob\n", "eve\x1b[2J"])
async def test_names_that_mislead_are_refused(store: PeopleStore, name: str) -> None:
    with pytest.raises(RejectedData, match=r"a user's name may not|mendline's own name"):
        await store.add_user(ROOT, name, "admin")
    assert await store.list_users() == [] and await audit_rows(store) == []


async def test_a_taken_name_and_an_unknown_user_are_clear_errors(store: PeopleStore) -> None:
    await store.add_user(ROOT, "alice", "viewer")
    with pytest.raises(RejectedData, match="there is a user 'alice' already"):
        await store.add_user(ROOT, "alice", "admin")
    with pytest.raises(UserNotFound, match="there is no user 'nobody'"):
        await store.set_role(ROOT, "nobody", "admin")
    with pytest.raises(UserNotFound):
        await store.disable_user(ROOT, "nobody")
    with pytest.raises(UserNotFound):
        await store.create_token(ROOT, "nobody")
    with pytest.raises(TokenNotFound, match="there is no token 'mlt_00000000'"):
        await store.revoke_token(ROOT, "mlt_00000000")
    assert [u.role for u in await store.list_users()] == ["viewer"]
    assert len(await audit_rows(store)) == 1


@pytest.mark.parametrize("role", ["viewer", "responder", "approver"])
async def test_only_an_admin_manages_users_and_tokens(store: PeopleStore, role: str) -> None:
    await store.add_user(ROOT, "alice", "viewer")
    someone = Actor(name="eve", role=role, auth="token")  # type: ignore[arg-type]
    for change in (
        store.add_user(someone, "mallory", "admin"),
        store.set_role(someone, "alice", "admin"),
        store.disable_user(someone, "alice"),
        store.create_token(someone, "alice"),
    ):
        with pytest.raises(PermissionDenied, match="needs the role admin"):
            await change
    assert [(u.name, u.role, u.disabled_at) for u in await store.list_users()] == [
        ("alice", "viewer", None)
    ]
    assert await store.list_tokens() == []
    assert len(await audit_rows(store)) == 1


async def test_a_token_is_shown_once_stored_as_a_hash_and_authenticates_its_user(
    store: PeopleStore, fresh_db_url: str
) -> None:
    alice = await store.add_user(ROOT, "alice", "approver")
    token, info = await store.create_token(ROOT, "alice", "responder", "ci deploy")
    assert (info.user_name, info.role, info.name, info.created_by) == (
        "alice",
        "responder",
        "ci deploy",
        "root",
    )
    assert token.startswith(info.token_id + "_")
    secret = token.removeprefix(info.token_id + "_")
    # Nowhere in the database: not in the tokens' rows, not in the audit rows.
    for table in ("mendline.api_tokens", "mendline.users", "public.test_audit"):
        for (row,) in await query(fresh_db_url, f"SELECT t::text FROM {table} t"):
            assert token not in row and secret not in row
    assert await store.list_tokens() == [info] and await store.list_tokens("bob") == []
    assert "secret" not in str(info) and token not in str(info)

    actor = await store.authenticate(token)
    assert actor == Actor(
        name="alice", role="responder", auth="token", user_id=alice.id, token_id=info.token_id
    )
    used = (await store.list_tokens("alice"))[0].last_used_at
    assert used is not None
    await store.authenticate(token)  # within the minute: not written again
    assert (await store.list_tokens("alice"))[0].last_used_at == used
    assert (await audit_rows(store))[-1][:3] == ("root", "token.create", f"token:{info.token_id}")


async def test_a_tokens_role_cannot_exceed_its_users_and_follows_a_lowered_one(
    store: PeopleStore,
) -> None:
    await store.add_user(ROOT, "alice", "responder")
    with pytest.raises(PermissionDenied, match="cannot exceed its user's: admin > responder"):
        await store.create_token(ROOT, "alice", "admin")
    token, info = await store.create_token(ROOT, "alice")
    assert info.role == "responder"  # the user's, by default
    await store.set_role(ROOT, "alice", "viewer")
    assert (await store.authenticate(token)).role == "viewer"


async def test_unknown_revoked_expired_and_disabled_tokens_are_refused_with_the_reason(
    store: PeopleStore, fresh_db_url: str
) -> None:
    await store.add_user(ROOT, "alice", "admin")
    await store.add_user(ROOT, "bob", "viewer")
    token, _ = await store.create_token(ROOT, "alice")

    async def refused(text: str) -> str:
        with pytest.raises(AuthenticationFailed) as failed:
            await store.authenticate(text)
        return failed.value.reason

    assert await refused(token[:-1] + ("A" if token[-1] != "A" else "B")) == "unknown"
    assert await refused("mlt_00000000_" + token[13:]) == "unknown"
    assert await refused("not a token") == "malformed"

    revoked, revoked_info = await store.create_token(ROOT, "alice", name="old")
    await store.revoke_token(ROOT, revoked_info.token_id)
    assert await refused(revoked) == "revoked"

    expired, expired_info = await store.create_token(
        ROOT, "alice", expires_at=datetime.now().astimezone() + timedelta(days=1)
    )
    await query(
        fresh_db_url,
        """UPDATE mendline.api_tokens SET created_at = now() - interval '2 days',
           expires_at = now() - interval '1 day' WHERE token_id = $1""",
        expired_info.token_id,
    )
    assert await refused(expired) == "expired"

    bobs, _ = await store.create_token(ROOT, "bob")
    assert (await store.authenticate(bobs)).name == "bob"
    await store.disable_user(ROOT, "bob")
    assert await refused(bobs) == "disabled"
    with pytest.raises(PermissionDenied, match="bob is disabled"):
        await store.create_token(ROOT, "bob")
    assert (await store.authenticate(token)).name == "alice"  # the others still work


async def test_a_user_may_revoke_their_own_token_and_no_one_elses(store: PeopleStore) -> None:
    await store.add_user(ROOT, "alice", "viewer")
    await store.add_user(ROOT, "bob", "viewer")
    alices, alices_info = await store.create_token(ROOT, "alice")
    _, bobs_info = await store.create_token(ROOT, "bob")
    alice = await store.authenticate(alices)
    with pytest.raises(PermissionDenied, match=r"may not token\.revoke:"):
        await store.revoke_token(alice, bobs_info.token_id)
    revoked = await store.revoke_token(alice, alices_info.token_id)
    assert revoked.revoked_at is not None
    assert await store.revoke_token(ROOT, alices_info.token_id) == revoked  # already: no row
    assert (await store.list_tokens("bob"))[0].revoked_at is None
    assert (await audit_rows(store))[-1][:3] == (
        "alice",
        "token.revoke",
        f"token:{alices_info.token_id}",
    )
    assert [row[1] for row in await audit_rows(store)].count("token.revoke") == 1


async def test_the_last_active_admin_can_be_neither_demoted_nor_disabled(
    store: PeopleStore,
) -> None:
    await store.add_user(ROOT, "alice", "admin")
    token, _ = await store.create_token(ROOT, "alice")
    alice = await store.authenticate(token)
    for change in (
        store.set_role(alice, "alice", "approver"),  # by themselves
        store.disable_user(alice, "alice"),
        store.set_role(ROOT, "alice", "viewer"),  # by someone else
        store.disable_user(ROOT, "alice"),
    ):
        with pytest.raises(PermissionDenied, match="alice is the last active admin"):
            await change
    assert (await store.set_role(alice, "alice", "admin"))[1] is False  # no change: allowed
    await store.add_user(alice, "bob", "admin")
    await store.disable_user(alice, "bob")  # a disabled admin is no admin
    with pytest.raises(PermissionDenied, match="last active admin"):
        await store.set_role(ROOT, "alice", "viewer")
    await store.add_user(alice, "carol", "admin")
    assert (await store.set_role(alice, "alice", "viewer"))[0].role == "viewer"
    with pytest.raises(PermissionDenied, match="carol is the last active admin"):
        await store.disable_user(ROOT, "carol")
    users = await store.list_users()
    assert [(u.name, u.role, u.disabled_at is None) for u in users] == [
        ("alice", "viewer", True),
        ("bob", "admin", False),
        ("carol", "admin", True),
    ]
    actions = [row[1] for row in await audit_rows(store)]
    assert actions.count("user.disable") == 1 and actions.count("user.set_role") == 1


async def test_two_admins_removing_each_other_at_once_leave_one(store: PeopleStore) -> None:
    for _ in range(5):
        await store.pool.execute(
            "TRUNCATE mendline.api_tokens, mendline.web_sessions, mendline.users"
        )
        await store.add_user(ROOT, "alice", "admin")
        await store.add_user(ROOT, "bob", "admin")
        results = await asyncio.gather(
            store.set_role(ROOT, "alice", "viewer"),
            store.disable_user(ROOT, "bob"),
            return_exceptions=True,
        )
        refused = [r for r in results if isinstance(r, PermissionDenied)]
        assert len(refused) == 1, results
        admins = [u for u in await store.list_users() if u.role == "admin" and not u.disabled_at]
        assert len(admins) == 1


async def test_a_change_whose_audit_fails_leaves_neither_the_change_nor_its_audit_row(
    pool: asyncpg.Pool,
) -> None:
    store = PeopleStore(pool, record_then_fail_on_disable)
    await store.add_user(SYSTEM_ACTOR, "alice", "viewer")
    with pytest.raises(RuntimeError, match="the audit trail failed"):
        await store.disable_user(ROOT, "alice")
    assert (await store.list_users())[0].disabled_at is None
    assert [row[1] for row in await audit_rows(store)] == ["user.add"]


async def test_changes_are_audited_on_a_server_whose_default_is_repeatable_read(
    pool: asyncpg.Pool, fresh_db_url: str
) -> None:
    async with repeatable_read_pool(fresh_db_url) as strict:
        store = PeopleStore(strict, append_audit, origin="cli@test")
        assert await strict.fetchval("SHOW default_transaction_isolation") == "repeatable read"
        await store.add_user(ROOT, "alice", "viewer")
        await store.set_role(ROOT, "alice", "responder")
        _, info = await store.create_token(ROOT, "alice")
        await store.revoke_token(ROOT, info.token_id)
        await store.disable_user(ROOT, "alice")
        trail = AuditStore(strict)
        assert [r.action for r in reversed(await trail.list())] == [
            "user.add",
            "user.set_role",
            "token.create",
            "token.revoke",
            "user.disable",
        ]
        assert (await trail.verify()).intact
