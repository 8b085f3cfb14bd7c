"""mendline run by a role that owns nothing, on the real PostgreSQL: the owner migrates and
applies what `mendline grants ROLE` prints; the role then connects (no DDL when nothing is
pending), reads and changes users with their audit rows, keeps the daily partitions, and
may not rewrite the audit log."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from mendline.schemas.errors import DatabaseUnavailable
from mendline.schemas.people import Actor
from mendline.schemas.settings import load_settings
from mendline.sinks.postgres import (
    connect_audit,
    connect_health,
    connect_people,
    connect_store,
    grant_statements,
    migrated_pool,
)
from tests.cli_helpers import cli, json_lines, json_object
from tests.db_helpers import query

pytestmark = pytest.mark.integration
ROOT = Actor(name="root", role="admin", auth="local")


def as_role(url: str, role: str, password: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{role}:{password}@{parts.hostname}:{parts.port}"))


@pytest.fixture
async def app_url(fresh_db_url: str) -> AsyncIterator[str]:
    """The URL of a new login role given what `mendline grants` prints, and nothing else,
    on a database migrated by its owner."""
    (await migrated_pool(fresh_db_url, 1)).terminate()
    role, password = f"app_{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    owner = {"MENDLINE_DATABASE_URL": fresh_db_url, "MENDLINE_TOKEN": ""}
    printed = await cli("grants", role, env=owner)
    assert printed.returncode == 0, printed.stderr
    assert f'GRANT SELECT, INSERT ON mendline."audit_log" TO "{role}";' in printed.stdout
    conn = await asyncpg.connect(fresh_db_url)
    try:
        await conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        await conn.execute(printed.stdout)
        yield as_role(fresh_db_url, role, password)
    finally:
        await conn.execute(f"DROP OWNED BY {role}")
        await conn.execute(f"DROP ROLE {role}")
        await conn.close()


async def test_a_role_owning_nothing_runs_the_stores_and_audits_its_changes(
    app_url: str,
) -> None:
    settings = load_settings(database_url=app_url)
    assert not (await query(app_url, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))[
        0
    ]["rolsuper"]
    people = await connect_people(settings)
    audit = await connect_audit(settings)
    store = await connect_store(settings)  # today's event partitions, made as the owner
    health = await connect_health(settings)
    try:
        await people.add_user(ROOT, "alice", "admin")
        await people.set_role(ROOT, "alice", "admin")
        assert [u.name for u in await people.list_users()] == ["alice"]
        assert [r.action for r in await audit.list()][-1] == "user.add"
        assert (await audit.verify()).intact
        # The monitor keeps and prunes its daily partitions as the owner, too.
        old = datetime.now(UTC) - timedelta(days=30)
        await health.ensure_partitions(old.date())
        pruned = await health.prune(raw_days=7)
        assert f"check_results_raw_{old:%Y%m%d}" in pruned.partitions
    finally:
        for closing in (people, audit, store, health):
            await closing.close()
    conn = await asyncpg.connect(app_url)
    try:
        for statement in (
            "UPDATE mendline.audit_log SET origin = ''",
            "DELETE FROM mendline.audit_log",
            "ALTER TABLE mendline.audit_log DISABLE TRIGGER USER",
            "UPDATE mendline.schema_migrations SET version = 'x'",
            "SELECT mendline.drop_daily_partition('users')",
        ):
            with pytest.raises((asyncpg.InsufficientPrivilegeError, asyncpg.PostgresError)):
                await conn.execute(statement)
    finally:
        await conn.close()


async def test_the_command_line_as_a_role_owning_nothing(app_url: str) -> None:
    env = {"MENDLINE_DATABASE_URL": app_url, "MENDLINE_TOKEN": "", "MENDLINE_LOCAL_ROLE": "admin"}
    added = json_object(await cli("users", "add", "alice", "--role", "admin", "--json", env=env))
    assert added["name"] == "alice"
    assert [u["name"] for u in json_lines(await cli("users", "list", "--json", env=env))] == [
        "alice"
    ]
    (row,) = json_lines(await cli("audit", "list", "--json", env=env))
    assert (row["action"], row["target"]) == ("user.add", "user:alice")
    assert (await cli("audit", "verify", env=env)).returncode == 0


async def test_a_pending_migration_the_role_may_not_apply_says_who_must(
    app_url: str, fresh_db_url: str
) -> None:
    await query(fresh_db_url, "DELETE FROM mendline.schema_migrations WHERE version LIKE '0017%'")
    with pytest.raises(DatabaseUnavailable, match="migrations are pending and the role app_") as e:
        await connect_people(load_settings(database_url=app_url))
    assert e.value.hint is not None and "`mendline migrate` as the schema's owner" in e.value.hint


def test_grants_quote_names_and_limit_the_audit_log() -> None:
    statements = grant_statements(
        'app"; DROP',
        [("audit_log", "r"), ("events", "p"), ("open_issues", "v"), ("issues_id_seq", "S")],
    )
    assert statements == [
        'REVOKE ALL ON ALL TABLES IN SCHEMA mendline FROM "app""; DROP";',
        'REVOKE ALL ON ALL SEQUENCES IN SCHEMA mendline FROM "app""; DROP";',
        'GRANT USAGE ON SCHEMA mendline TO "app""; DROP";',
        'GRANT SELECT, INSERT ON mendline."audit_log" TO "app""; DROP";',
        'GRANT SELECT, INSERT, UPDATE, DELETE ON mendline."events" TO "app""; DROP";',
        'GRANT SELECT ON mendline."open_issues" TO "app""; DROP";',
        'GRANT USAGE, SELECT ON SEQUENCE mendline."issues_id_seq" TO "app""; DROP";',
        'GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA mendline TO "app""; DROP";',
    ]


def test_read_only_grants_select_and_nothing_else() -> None:
    statements = grant_statements(
        "reader",
        [("audit_log", "r"), ("events", "p"), ("open_issues", "v"), ("issues_id_seq", "S")],
        read_only=True,
    )
    assert statements == [
        'REVOKE ALL ON ALL TABLES IN SCHEMA mendline FROM "reader";',
        'REVOKE ALL ON ALL SEQUENCES IN SCHEMA mendline FROM "reader";',
        'GRANT USAGE ON SCHEMA mendline TO "reader";',
        'GRANT SELECT ON mendline."audit_log" TO "reader";',
        'GRANT SELECT ON mendline."events" TO "reader";',
        'GRANT SELECT ON mendline."open_issues" TO "reader";',
    ]
