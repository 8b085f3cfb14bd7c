"""``mendline audit list`` and ``audit verify`` against a real PostgreSQL: filters, JSON, the
escaping of what the log holds, and verify's exit status and message on a broken chain."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from mendline.schemas.people import SYSTEM_ACTOR, Actor, AuditEntry, StoredAuditEntry
from mendline.schemas.settings import load_settings
from mendline.sinks.postgres import AuditStore, connect_audit
from tests.cli_helpers import cli, failure, json_lines, json_object, run, usage_error
from tests.db_helpers import behind_audit_trigger

pytestmark = pytest.mark.integration
ALICE = Actor(name="alice", role="responder", auth="token", token_id="mlt_ab12cd34")
MALLORY = Actor(name="mallory\x1b[2J", role="viewer", auth="local")


@pytest.fixture
async def store(fresh_db_url: str) -> AsyncIterator[AuditStore]:
    audit = await connect_audit(load_settings(database_url=fresh_db_url))
    try:
        yield audit
    finally:
        await audit.close()


def as_local_admin(url: str) -> dict[str, str]:
    return {"MENDLINE_DATABASE_URL": url, "MENDLINE_TOKEN": "", "MENDLINE_LOCAL_ROLE": "admin"}


async def fill(store: AuditStore) -> list[StoredAuditEntry]:
    return [
        await store.append(AuditEntry(actor=ALICE, action="issue.resolve", target="issue:12")),
        await store.append(AuditEntry(actor=SYSTEM_ACTOR, action="fix.apply", target="fix:3")),
        await store.append(AuditEntry(actor=MALLORY, action="issue.ignore", target="issue:\x07")),
    ]


async def test_list_filters_and_escapes(store: AuditStore, fresh_db_url: str) -> None:
    rows = await fill(store)
    env = as_local_admin(fresh_db_url)

    shown = await cli("audit", "list", env=env)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split() == ["ID", "AT", "ACTOR", "ROLE", "ACTION", "TARGET", "ORIGIN"]
    assert [line.split()[0] for line in lines[1:]] == [str(r.id) for r in reversed(rows)]
    assert "\x1b" not in shown.stdout and "\x07" not in shown.stdout
    assert "mallory" in lines[1]

    issues = json_lines(await cli("audit", "list", "--action", "issue.", "--json", env=env))
    assert [(r["id"], r["actor"]["name"]) for r in issues] == [
        (rows[2].id, MALLORY.name),
        (rows[0].id, "alice"),
    ]
    assert StoredAuditEntry.model_validate(issues[1]) == rows[0]
    by_actor = json_lines(await cli("audit", "list", "--actor", "mendline", "--json", env=env))
    assert [r["target"] for r in by_actor] == ["fix:3"]
    on_target = await cli("audit", "list", "--target", "issue:12", "--json", env=env)
    assert [r["action"] for r in json_lines(on_target)] == ["issue.resolve"]
    recent = json_lines(
        await cli("audit", "list", "--since", "1h", "--limit", "2", "--json", env=env)
    )
    assert [r["id"] for r in recent] == [rows[2].id, rows[1].id]
    future = await cli("audit", "list", "--since", "2999-01-01T00:00:00Z", env=env)
    assert future.stdout == "no audit rows\n"
    assert "ISO 8601" in usage_error(await cli("audit", "list", "--since", "yesterday", env=env))


async def test_verify_exit_status_and_the_broken_row(store: AuditStore, fresh_db_url: str) -> None:
    rows = await fill(store)
    env = as_local_admin(fresh_db_url)
    intact = await cli("audit", "verify", env=env)
    assert intact.returncode == 0, intact.stderr
    assert intact.stdout == f"the audit chain is intact: 3 row(s), last hash {rows[2].row_hash}\n"

    await behind_audit_trigger(
        fresh_db_url, "DELETE FROM mendline.audit_log WHERE id = $1", rows[1].id
    )
    removed = await cli("audit", "verify", env=env)
    assert removed.returncode == 1
    assert removed.stdout == (
        f"the audit chain is broken: the row before {rows[2].id} was removed or altered\n"
    )

    sql = "UPDATE mendline.audit_log SET target = 'issue:13' WHERE id = $1"
    await behind_audit_trigger(fresh_db_url, sql, rows[0].id)
    at = rows[0].at.strftime("%Y-%m-%dT%H:%M:%SZ")
    altered = await cli("audit", "verify", env=env)
    assert altered.returncode == 1
    assert altered.stdout == (
        f"the audit chain is broken: row {rows[0].id} ({at} issue.resolve issue:13 by alice):"
        " its content was altered\n"
    )
    broken = await cli("audit", "verify", "--json", env=env)
    assert broken.returncode == 1
    found = json.loads(broken.stdout)
    assert (found["intact"], found["broken_id"], found["reason"], found["rows"]) == (
        False,
        rows[0].id,
        "altered",
        1,
    )


async def test_reading_the_trail_needs_someone_who_may(
    store: AuditStore, fresh_db_url: str
) -> None:
    await fill(store)
    admin = as_local_admin(fresh_db_url)
    nobody = {**admin, "MENDLINE_LOCAL_ROLE": "none"}
    for command in (("audit", "list"), ("audit", "verify")):
        message, hint = failure(await cli(*command, env=nobody))
        assert message == "acting as the local OS user is off (MENDLINE_LOCAL_ROLE=none)"
        assert "MENDLINE_TOKEN" in hint

    await cli("users", "add", "carol", "--role", "viewer", env=admin)
    made = json_object(await cli("tokens", "create", "--user", "carol", "--json", env=admin))
    carol = {**nobody, "MENDLINE_TOKEN": made["token"]}
    assert len(json_lines(await cli("audit", "list", "--json", env=carol))) == 5
    assert (await cli("audit", "verify", env=carol)).returncode == 0
    await cli("tokens", "revoke", made["token_id"], env=admin)
    for command in (("audit", "list"), ("audit", "verify")):
        message, _ = failure(await cli(*command, env=carol))
        assert message.startswith("the token was revoked at ")


async def test_verify_expect_holds_a_hash_kept_outside_the_database(
    store: AuditStore, fresh_db_url: str
) -> None:
    rows = await fill(store)
    env = as_local_admin(fresh_db_url)
    kept = json.loads((await cli("audit", "verify", "--json", env=env)).stdout)["last_hash"]
    assert kept == rows[2].row_hash
    held = await cli("audit", "verify", "--expect", kept.upper(), env=env)
    assert held.returncode == 0, held.stdout
    assert held.stdout == (
        f"the audit chain is intact: 3 row(s), last hash {kept}; row {rows[2].id} has the"
        " expected hash\n"
    )
    await store.append(AuditEntry(actor=ALICE, action="issue.merge", target="issue:12"))
    assert (await cli("audit", "verify", "--expect", kept, env=env)).returncode == 0

    # The two newest rows removed: the chain is intact, but no longer holds the kept hash.
    await behind_audit_trigger(
        fresh_db_url, "DELETE FROM mendline.audit_log WHERE id >= $1", rows[2].id
    )
    assert (await cli("audit", "verify", env=env)).returncode == 0
    lost = await cli("audit", "verify", "--expect", kept, "--json", env=env)
    assert lost.returncode == 1
    found = json.loads(lost.stdout)
    assert (found["intact"], found["holds"], found["expected_id"]) == (True, False, None)
    assert found["message"].startswith(f"the audit chain does not hold the expected hash {kept}")
    assert "64 hexadecimal" in usage_error(await cli("audit", "verify", "--expect", "abc", env=env))


@pytest.mark.parametrize(
    "args",
    [
        ("issues", "list", "--first-seen-since", "99999999d"),
        ("issues", "list", "--last-seen-since", "99999999d"),
        ("audit", "list", "--since", "99999999d"),
        ("audit", "list", "--until", "99999999d"),
    ],
)
def test_a_duration_too_long_for_a_date_is_a_usage_error(args: tuple[str, ...]) -> None:
    said = usage_error(run(*args))
    assert "99999999d" in said and "36500d" in said
