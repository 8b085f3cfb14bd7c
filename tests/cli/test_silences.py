"""``mendline silences`` on the real PostgreSQL: add, list, expire, and bad input refused."""

from __future__ import annotations

import pytest

from tests.cli_helpers import cli, json_lines, json_object, migrated_env, usage_error


@pytest.fixture
async def env(fresh_db_url: str) -> dict[str, str]:
    return await migrated_env(fresh_db_url, "responder")


async def test_add_list_and_expire_a_silence(env: dict[str, str]) -> None:
    added = json_object(
        await cli(
            "silences",
            "add",
            "--match",
            "service=api",
            "--match",
            "severity=~error|critical",
            "--for",
            "2h",
            "--comment",
            "deploying \x1b[31mapi",
            "--json",
            env=env,
        )
    )
    assert added["matchers"] == ["service=api", "severity=~error|critical"]
    shown = await cli("silences", "list", env=env)
    assert shown.returncode == 0 and "service=api" in shown.stdout
    assert "\x1b" not in shown.stdout  # the comment is shown printable
    expired = await cli("silences", "expire", str(added["id"]), env=env)
    assert expired.stdout == f"expired silence {added['id']}\n"
    assert json_lines(await cli("silences", "list", "--json", env=env)) == []
    assert len(json_lines(await cli("silences", "list", "--all", "--json", env=env))) == 1


async def test_a_bad_matcher_is_a_usage_error(env: dict[str, str]) -> None:
    said = usage_error(
        await cli("silences", "add", "--match", "team=x", "--for", "1h", "--comment", "c", env=env)
    )
    assert "unknown label 'team'" in said


async def test_out_of_range_ids_and_ends_are_usage_errors(env: dict[str, str]) -> None:
    add = ("silences", "add", "--match", "service=api", "--comment", "c")
    said = {
        "expire past bigint": ("silences", "expire", str(2**70)),
        "--for past a date": (*add, "--for", "99999999d"),
        "--until past year 9999 in UTC": (*add, "--until", "9999-12-31T23:59-12:00"),
    }
    errors = {name: usage_error(await cli(*args, env=env)) for name, args in said.items()}
    assert "at most" in errors["expire past bigint"]
    assert "at most 3650d" in errors["--for past a date"]
    assert "at most 3650d from now" in errors["--until past year 9999 in UTC"]


async def test_issues_ignore_until_past_year_9999_is_a_usage_error(env: dict[str, str]) -> None:
    said = usage_error(
        await cli("issues", "ignore", "1", "--until", "9999-12-31T23:59-12:00", env=env)
    )
    assert "at most 3650d from now" in said
