"""``mendline users passwd`` on the real PostgreSQL: the password asked twice on a real
terminal (without echo) or read from standard input, never from the command line; an admin
sets anyone's, a user their own; refusals as one line with a hint."""

from __future__ import annotations

import asyncio
import os
import pty
import select
import sys

import pytest

from tests.cli_helpers import cli, failure, json_object, migrated_env, token_of, usage_error
from tests.db_helpers import query

PASSWORD = "four random words here"


@pytest.fixture
async def env(fresh_db_url: str) -> dict[str, str]:
    env = await migrated_env(fresh_db_url, "admin")
    assert (await cli("users", "add", "alice", "--role", "viewer", env=env)).returncode == 0
    return env


async def stored_hash(url: str, name: str) -> str | None:
    rows = await query(url, "SELECT password_hash FROM mendline.users WHERE name = $1", name)
    return rows[0]["password_hash"]


async def test_an_admin_sets_a_password_read_from_stdin(
    env: dict[str, str], fresh_db_url: str
) -> None:
    done = await cli("users", "passwd", "alice", "--password-stdin", env=env, stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "set the password of alice\n"
    assert PASSWORD not in done.stdout + done.stderr
    stored = await stored_hash(fresh_db_url, "alice")
    assert stored is not None and stored.startswith("$argon2id$")
    shown = json_object(
        await cli("users", "passwd", "alice", "--password-stdin", "--json", env=env, stdin=PASSWORD)
    )
    assert shown["name"] == "alice" and shown["password_set_at"] is not None
    assert shown["sessions_ended"] == 0 and PASSWORD not in str(shown)
    assert await stored_hash(fresh_db_url, "alice") != stored  # a new salt each time


async def test_a_user_sets_their_own_password_and_no_one_elses(env: dict[str, str]) -> None:
    bob = await token_of(env, "bob", "responder")
    own = await cli("users", "passwd", "bob", "--password-stdin", env=bob, stdin=PASSWORD)
    assert own.returncode == 0, own.stderr
    message, hint = failure(
        await cli("users", "passwd", "alice", "--password-stdin", env=bob, stdin=PASSWORD)
    )
    assert message == "bob (responder) may not user.password: it needs the role admin"
    assert "set-role" in hint


async def test_weak_passwords_and_missing_users_are_refused(env: dict[str, str]) -> None:
    message, hint = failure(
        await cli("users", "passwd", "alice", "--password-stdin", env=env, stdin="hunter2\n")
    )
    assert (message, hint) == (
        "a password has at least 12 characters",
        "choose a longer passphrase, e.g. four words",
    )
    await cli("users", "add", "alice-in-chains", env=env)
    message, _ = failure(
        await cli(
            "users",
            "passwd",
            "alice-in-chains",
            "--password-stdin",
            env=env,
            stdin="Alice-In-Chains",
        )
    )
    assert message == "a password may not be the user's name"
    message, _ = failure(
        await cli("users", "passwd", "nobody", "--password-stdin", env=env, stdin=PASSWORD)
    )
    assert message == "there is no user 'nobody'"


async def test_without_a_terminal_it_asks_for_stdin_and_never_takes_argv(
    env: dict[str, str],
) -> None:
    said = usage_error(await cli("users", "passwd", "alice", env=env, stdin=""))
    assert said == "no terminal to ask for the password on"
    assert usage_error(await cli("users", "passwd", "alice", PASSWORD, env=env, stdin=""))


def on_terminal(env: dict[str, str], args: list[str], typed: list[str]) -> tuple[int, str]:
    """Run ``mendline ARGS`` on a new pseudo-terminal (its controlling terminal, as a person's
    shell has it), type each of ``typed`` after each prompt; its exit status and everything
    the terminal showed."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: become the command
        os.execve(sys.executable, [sys.executable, "-m", "mendline", *args], {**os.environ, **env})
    shown = b""
    pending = list(typed)
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], 60)
            assert ready, f"the command said nothing for a minute: {shown!r}"
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the command ended and closed the terminal
                break
            if not chunk:
                break
            shown += chunk
            if pending and shown.endswith(b": "):  # a prompt, with echo already off
                os.write(fd, pending.pop(0).encode() + b"\n")
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), shown.decode()


async def test_on_a_terminal_the_password_is_asked_twice_without_echo(
    env: dict[str, str], fresh_db_url: str
) -> None:
    args = ["users", "passwd", "alice"]
    status, shown = await asyncio.to_thread(on_terminal, env, args, [PASSWORD, PASSWORD])
    assert status == 0, shown
    assert "New password:" in shown and "Again:" in shown
    assert "set the password of alice" in shown
    assert PASSWORD not in shown  # typed, not echoed
    assert (await stored_hash(fresh_db_url, "alice") or "").startswith("$argon2id$")


async def test_on_a_terminal_two_different_passwords_change_nothing(
    env: dict[str, str], fresh_db_url: str
) -> None:
    args = ["users", "passwd", "alice"]
    status, shown = await asyncio.to_thread(on_terminal, env, args, [PASSWORD, PASSWORD + " typo"])
    assert status == 2 and "the two passwords differ" in shown
    assert await stored_hash(fresh_db_url, "alice") is None
