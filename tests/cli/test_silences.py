"""``mendline silences`` on the real PostgreSQL: add, list, expire, and bad input refused."""

from __future__ import annotations

import pytest

from mendline.sinks.postgres import migrated_pool
from tests.cli_helpers import cli, json_lines, json_object, usage_error


@pytest.fixture
async def env(fresh_db_url: str) -> dict[str, str]:
    pool = await migrated_pool(fresh_db_url, 1)
    await pool.close()
    return {
        "MENDLINE_DATABASE_URL": fresh_db_url,
        "MENDLINE_TOKEN": "",
        "MENDLINE_LOCAL_ROLE": "responder",
    }


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
