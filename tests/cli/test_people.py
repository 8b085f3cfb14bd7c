"""``mendline users`` and ``tokens`` on the real PostgreSQL: the first admin made as the
local OS user, tokens printed once and then acted with, refusals as one clear line."""

from __future__ import annotations

import os
import pwd

import pytest

from mendline.cli._actor import local_user_name  # the one place that reads the passwd entry
from tests.cli_helpers import cli, failure, json_lines, json_object, migrated_env, usage_error
from tests.db_helpers import query

OS_USER = pwd.getpwuid(os.geteuid()).pw_name


@pytest.fixture
async def env(fresh_db_url: str) -> dict[str, str]:
    return await migrated_env(fresh_db_url)


def local(env: dict[str, str], role: str = "admin") -> dict[str, str]:
    return {**env, "MENDLINE_LOCAL_ROLE": role}


def with_token(env: dict[str, str], token: str) -> dict[str, str]:
    return {**env, "MENDLINE_TOKEN": token, "MENDLINE_LOCAL_ROLE": "none"}


async def test_the_first_admin_then_a_token_printed_once_and_acted_with(
    env: dict[str, str], fresh_db_url: str
) -> None:
    added = json_object(
        await cli("users", "add", "alice", "--role", "admin", "--json", env=local(env))
    )
    assert (added["name"], added["role"], added["created_by"]) == (
        "alice",
        "admin",
        OS_USER,
    )

    created = await cli("tokens", "create", "--user", "alice", "--name", "ci", env=local(env))
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("mlt_") and created.stdout == token + "\n"
    assert "shown only this once" in created.stderr and token not in created.stderr

    bob = await cli("users", "add", "bob", env=with_token(env, token))
    assert bob.returncode == 0 and bob.stdout == "added user bob (viewer)\n", bob.stderr
    listed = json_lines(await cli("users", "list", "--json", env=with_token(env, token)))
    assert [(u["name"], u["role"], u["created_by"]) for u in listed] == [
        ("alice", "admin", OS_USER),
        ("bob", "viewer", "alice"),
    ]
    for shown in (
        await cli("tokens", "list", env=with_token(env, token)),
        await cli("tokens", "list", "--json", env=with_token(env, token)),
    ):
        assert shown.returncode == 0 and token[:12] in shown.stdout
        assert token not in shown.stdout + shown.stderr and token[13:] not in shown.stdout
    (used,) = await query(fresh_db_url, "SELECT last_used_at FROM mendline.api_tokens")
    assert used["last_used_at"] is not None


async def test_refusals_are_one_line_with_a_hint(env: dict[str, str]) -> None:
    message, hint = failure(await cli("users", "list", env=local(env, "none")))
    assert message == "acting as the local OS user is off (MENDLINE_LOCAL_ROLE=none)"
    assert "MENDLINE_TOKEN" in hint

    message, _ = failure(await cli("users", "add", "eve", env=local(env, "responder")))
    assert message.endswith("(responder) may not user.add: it needs the role admin")

    await cli("users", "add", "carol", "--role", "viewer", env=local(env))
    created = await cli("tokens", "create", "--user", "carol", "--json", env=local(env))
    viewer = json_object(created)
    assert viewer["role"] == "viewer" and viewer["token"].startswith(viewer["token_id"] + "_")
    await cli("users", "add", "dave", env=local(env))
    assert (await cli("tokens", "create", "--user", "dave", env=local(env))).returncode == 0
    message, _ = failure(
        await cli("tokens", "create", "--user", "carol", "--role", "admin", env=local(env))
    )
    assert message == "a token's role cannot exceed its user's: admin > viewer"

    carols = json_lines(
        await cli(
            "tokens", "list", "--user", "carol", "--json", env=with_token(env, viewer["token"])
        )
    )
    assert [t["token_id"] for t in carols] == [viewer["token_id"]]
    own = json_lines(await cli("tokens", "list", "--json", env=with_token(env, viewer["token"])))
    assert [t["token_id"] for t in own] == [viewer["token_id"]]  # theirs, not everyone's
    message, _ = failure(
        await cli("tokens", "list", "--user", "alice", env=with_token(env, viewer["token"]))
    )
    assert message == "carol (viewer) may not token.list_all: it needs the role admin"

    revoked = json_object(
        await cli(
            "tokens", "revoke", viewer["token_id"], "--json", env=with_token(env, viewer["token"])
        )
    )
    assert revoked["revoked_at"] is not None
    message, _ = failure(await cli("users", "list", env=with_token(env, viewer["token"])))
    assert message.startswith("the token was revoked at ")
    message, hint = failure(await cli("users", "list", env=with_token(env, "mlt_nonsense")))
    assert message == "not a mendline token (expected mlt_<id>_<secret>)"
    message, _ = failure(await cli("users", "set-role", "nobody", "admin", env=local(env)))
    assert message == "there is no user 'nobody'"
    assert usage_error(await cli("tokens", "create", "--expires", "soon", env=local(env)))


async def test_names_from_the_database_reach_the_terminal_escaped(
    env: dict[str, str], fresh_db_url: str
) -> None:
    evil = "mallory\x1b]0;owned\x07\x1b[2J"
    message, _ = failure(await cli("users", "add", evil, env=local(env)))
    assert message == "a user's name may not hold the control character U+001B"
    message, _ = failure(await cli("users", "add", "mendline", env=local(env)))
    assert message == "'mendline' is mendline's own name in the audit trail"
    # A row written by hand, or before names were checked, is shown escaped all the same.
    await query(
        fresh_db_url,
        "INSERT INTO mendline.users (name, role, created_by) VALUES ($1, 'viewer', 'psql')",
        evil,
    )
    shown = await cli("users", "list", env=local(env))
    assert shown.returncode == 0 and "mallory" in shown.stdout
    assert "\x1b" not in shown.stdout and "\x07" not in shown.stdout


async def test_a_user_disabled_then_enabled(env: dict[str, str]) -> None:
    await cli("users", "add", "alice", env=local(env))
    await cli("users", "disable", "alice", env=local(env))
    enabled = await cli("users", "enable", "alice", env=local(env))
    assert enabled.returncode == 0, enabled.stderr
    assert enabled.stdout == "enabled alice; their tokens not revoked or expired work again\n"
    again = json_object(await cli("users", "enable", "alice", "--json", env=local(env)))
    assert (again["disabled"], again["changed"]) == (False, False)
    message, _ = failure(await cli("users", "enable", "alice", env=local(env, "approver")))
    assert message.endswith("may not user.enable: it needs the role admin")
    trail = json_lines(await cli("audit", "list", "--json", env=local(env)))
    assert [row["action"] for row in trail] == ["user.enable", "user.disable", "user.add"]


async def test_every_change_is_in_the_audit_trail_chained_and_never_the_token(
    env: dict[str, str], fresh_db_url: str
) -> None:
    await cli("users", "add", "alice", "--role", "admin", env=local(env))
    token = (await cli("tokens", "create", "--user", "alice", env=local(env))).stdout.strip()
    await cli("users", "add", "bob", env=with_token(env, token))
    await cli("users", "set-role", "bob", "responder", env=with_token(env, token))
    trail = json_lines(await cli("audit", "list", "--json", env=local(env)))
    by_action = sorted((row["action"], row["target"], row["actor"]["name"]) for row in trail)
    assert by_action == [
        ("token.create", f"token:{token[:12]}", OS_USER),
        ("user.add", "user:alice", OS_USER),
        ("user.add", "user:bob", "alice"),
        ("user.set_role", "user:bob", "alice"),
    ]
    (role_change,) = [row for row in trail if row["action"] == "user.set_role"]
    assert role_change["actor"]["auth"] == "token"
    assert (role_change["before"]["role"], role_change["after"]["role"]) == (
        "viewer",
        "responder",
    )
    rows = await query(fresh_db_url, "SELECT * FROM mendline.audit_log")
    assert token[13:] not in repr([dict(row) for row in rows])
    verified = await cli("audit", "verify", env=local(env))
    assert verified.returncode == 0 and "intact: 4 row(s)" in verified.stdout, verified.stdout


async def test_the_last_admin_is_kept(env: dict[str, str]) -> None:
    await cli("users", "add", "alice", "--role", "admin", env=local(env))
    token = (await cli("tokens", "create", "--user", "alice", env=local(env))).stdout.strip()
    message, hint = failure(
        await cli("users", "set-role", "alice", "viewer", env=with_token(env, token))
    )
    assert message == (
        "alice is the last active admin: user.set_role would leave no one to manage users"
    )
    assert "users set-role NAME admin" in hint
    message, _ = failure(await cli("users", "disable", "alice", env=local(env)))
    assert message.startswith("alice is the last active admin: user.disable")
    await cli("users", "add", "bob", "--role", "admin", env=with_token(env, token))
    demoted = await cli("users", "set-role", "alice", "viewer", env=with_token(env, token))
    assert demoted.returncode == 0 and demoted.stdout == "alice is now viewer\n"
    listed = json_lines(await cli("users", "list", "--json", env=local(env)))
    assert [(u["name"], u["role"]) for u in listed] == [("alice", "viewer"), ("bob", "admin")]


async def test_the_local_user_is_the_effective_uids_whatever_the_environment_says(
    env: dict[str, str],
) -> None:
    spoofed = {**local(env), "LOGNAME": "mallory", "USER": "mallory", "LNAME": "mallory"}
    added = json_object(
        await cli("users", "add", "alice", "--role", "admin", "--json", env=spoofed)
    )
    assert added["created_by"] == OS_USER != "mallory"


def test_a_uid_without_a_passwd_entry_is_named_uid_n() -> None:
    if os.geteuid() != 0:
        pytest.skip("taking a uid without a passwd entry needs root")
    known = {entry.pw_uid for entry in pwd.getpwall()}
    uid = next(n for n in range(54321, 64000) if n not in known)
    assert local_user_name() == OS_USER
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child takes the uid, names it, and exits
        try:
            os.seteuid(uid)
            os.write(write, local_user_name().encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as said:
        name = said.read()
    os.waitpid(child, 0)
    assert name == f"uid:{uid}"


async def test_setting_the_role_a_user_has_says_so_and_records_nothing(
    env: dict[str, str],
) -> None:
    await cli("users", "add", "alice", "--role", "responder", env=local(env))
    same = await cli("users", "set-role", "alice", "responder", env=local(env))
    assert same.returncode == 0 and same.stdout == "alice was already responder\n"
    changed = json_object(
        await cli("users", "set-role", "alice", "viewer", "--json", env=local(env))
    )
    assert (changed["role"], changed["changed"]) == ("viewer", True)
    trail = json_lines(await cli("audit", "list", "--json", env=local(env)))
    assert [row["action"] for row in trail] == ["user.set_role", "user.add"]
