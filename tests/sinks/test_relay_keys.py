"""The relay's keys against a real PostgreSQL: created for a service, listed, revoked and
rotated with a grace, every change authorized and audited."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from mendline.schemas.errors import ConfigError, PermissionDenied, RelayKeyNotFound
from mendline.schemas.people import Actor
from mendline.sinks.postgres import RelayKeyStore, append_audit, migrated_pool
from tests.db_helpers import RESPONDER

pytestmark = pytest.mark.integration

ADMIN = Actor(name="ada", role="admin", auth="local")


@pytest.fixture
async def keys(fresh_db_url: str) -> AsyncIterator[RelayKeyStore]:
    store = RelayKeyStore(await migrated_pool(fresh_db_url, 2), append_audit, "cli@test")
    yield store
    await store.close()


async def audit(store: RelayKeyStore) -> list[tuple[str, str, object, object]]:
    rows = await store.pool.fetch(
        "SELECT action, target, before, after FROM mendline.audit_log ORDER BY id"
    )
    return [
        (
            r["action"],
            r["target"],
            r["before"] and json.loads(r["before"]),
            r["after"] and json.loads(r["after"]),
        )
        for r in rows
    ]


async def test_a_key_is_made_for_a_service_and_listed_until_revoked(keys: RelayKeyStore) -> None:
    key = await keys.create_key(
        ADMIN, "checkout", "production", label="web", origins=("https://Shop.example.com",)
    )
    assert len(key.public_key) == 32 and int(key.public_key, 16) >= 0
    assert (key.project_id, key.service, key.environment) == (key.id, "checkout", "production")
    assert key.allowed_origins == ("https://shop.example.com",)
    assert key.rate_limit is None and key.in_force(datetime.now(UTC))
    other = await keys.create_key(ADMIN, "billing", "staging", rate_limit=120)
    assert other.public_key != key.public_key and other.project_id == other.id
    assert [k.id for k in await keys.list_keys()] == [key.id, other.id]
    revoked = await keys.revoke_key(ADMIN, key.public_key)  # by its public key
    assert revoked.revoked_at is not None and not revoked.in_force(datetime.now(UTC))
    assert [k.id for k in await keys.list_keys()] == [other.id]
    assert [k.id for k in await keys.list_keys(all_keys=True)] == [key.id, other.id]
    again = await keys.revoke_key(ADMIN, str(key.id))  # by its id: nothing more to do
    assert again.revoked_at == revoked.revoked_at
    trail = await audit(keys)
    assert [(a, t) for a, t, _, _ in trail] == [
        ("relay_key.create", f"relay_key:{key.id}"),
        ("relay_key.create", f"relay_key:{other.id}"),
        ("relay_key.revoke", f"relay_key:{key.id}"),
    ]
    assert trail[0][3]["service"] == "checkout" and trail[2][3]["revoked_at"] is not None


async def test_a_rotated_key_keeps_its_project_and_serves_until_its_grace_ends(
    keys: RelayKeyStore,
) -> None:
    old = await keys.create_key(ADMIN, "checkout", "production", rate_limit=60)
    new, retired = await keys.rotate_key(ADMIN, str(old.id), timedelta(hours=1))
    assert (new.project_id, new.service, new.rate_limit) == (old.project_id, "checkout", 60)
    assert new.public_key != old.public_key and retired.rotated_to == new.id
    assert retired.revoked_at is not None
    now = datetime.now(UTC)
    assert retired.in_force(now) and not retired.in_force(now + timedelta(hours=2))
    assert {k.id for k in await keys.list_keys()} == {old.id, new.id}
    with pytest.raises(ConfigError, match=f"rotate key {new.id}"):  # rotate the newest
        await keys.rotate_key(ADMIN, str(old.id), timedelta(0))
    # Revoked now, ahead of its grace; a revoked key is not rotated.
    await keys.revoke_key(ADMIN, str(old.id))
    assert [k.id for k in await keys.list_keys()] == [new.id]
    with pytest.raises(ConfigError, match="is revoked"):
        await keys.rotate_key(ADMIN, str(old.id), timedelta(0))
    actions = [a for a, _, _, _ in await audit(keys)]
    assert actions == ["relay_key.create", "relay_key.rotate", "relay_key.revoke"]


@pytest.mark.parametrize(
    ("service", "origins", "rate_limit", "refused"),
    [
        ("", ("*",), None, "a service is 1 to 200"),
        ("x" * 201, ("*",), None, "a service is 1 to 200"),
        ("checkout", ("https://shop example.com",), None, "is not an origin"),
        ("checkout", ("javascript:alert(1)",), None, "is not an origin"),
        ("checkout", ("*",), -1, "a rate limit"),
    ],
)
async def test_a_key_that_cannot_be_is_refused_with_why(
    keys: RelayKeyStore,
    service: str,
    origins: tuple[str, ...],
    rate_limit: int | None,
    refused: str,
) -> None:
    with pytest.raises(ConfigError, match=refused):
        await keys.create_key(ADMIN, service, "production", origins=origins, rate_limit=rate_limit)
    assert await keys.list_keys(all_keys=True) == []


async def test_only_an_admin_changes_keys_and_an_unknown_key_is_named(
    keys: RelayKeyStore, fresh_db_url: str
) -> None:
    with pytest.raises(PermissionDenied):
        await keys.create_key(RESPONDER, "checkout", "production")
    key = await keys.create_key(ADMIN, "checkout", "production")
    for change in (
        keys.revoke_key(RESPONDER, str(key.id)),
        keys.rotate_key(RESPONDER, str(key.id), timedelta(0)),
    ):
        with pytest.raises(PermissionDenied):
            await change
    with pytest.raises(RelayKeyNotFound, match="no relay key '0123'"):
        await keys.revoke_key(ADMIN, "0123")
    conn = await asyncpg.connect(fresh_db_url)
    try:
        with pytest.raises(asyncpg.CheckViolationError):  # the table holds only real keys
            await conn.execute(
                """INSERT INTO mendline.relay_keys (public_key, project_id, service,
                       environment, created_by) VALUES ('nope', 1, 's', 'e', 'x')"""
            )
    finally:
        await conn.close()
