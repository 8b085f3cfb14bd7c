"""CLI commands around analysis: analyze --issue, findings list|show|mark, issues resolve."""

from __future__ import annotations

import json
from collections.abc import Iterator

import asyncpg
import pytest

from tests.llm_server import FakeLLM, fake_llm

from .test_analyze import analyze_settings, ingest, issue_events
from .test_cli_consume import cli, error_lines

pytestmark = pytest.mark.integration


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    with fake_llm() as server:
        yield server


async def test_analyze_one_issue_then_serve_it_from_the_store(
    fresh_db_url: str, llm: FakeLLM
) -> None:
    await ingest(analyze_settings(fresh_db_url), issue_events(range(2)))
    env = {"MENDLINE_DATABASE_URL": fresh_db_url, "MENDLINE_LLM_BASE_URL": llm.url}

    first = await cli("analyze", "--issue", "1", env=env)
    assert first.returncode == 0, first.stderr
    assert "finding #1 for issue #1, by the LLM (test-model-1)" in first.stdout
    assert "root cause  orders.parse_quantity passes the raw query value" in first.stdout
    assert "usage       120 + 40 tokens" in first.stdout

    again = await cli("analyze", "--issue", "1", "--json", env=env)
    assert again.returncode == 0, again.stderr
    shown = json.loads(again.stdout)
    assert shown["served_from_store"] is True and shown["id"] == 1
    assert len(llm.requests) == 1  # the same fingerprint and release: no second call

    fresh = await cli("analyze", "--issue", "1", "--fresh", "--json", env=env)
    assert json.loads(fresh.stdout)["id"] == 2 and len(llm.requests) == 2

    offline = await cli("analyze", "--issue", "2", env={"MENDLINE_DATABASE_URL": fresh_db_url})
    assert offline.returncode == 0, offline.stderr
    assert "by the heuristic analyser" in offline.stdout
    assert len(llm.requests) == 2


async def test_findings_list_show_and_mark(fresh_db_url: str) -> None:
    await ingest(analyze_settings(fresh_db_url), issue_events(range(2)))
    env = {"MENDLINE_DATABASE_URL": fresh_db_url}
    for issue in ("1", "2"):
        assert (await cli("analyze", "--issue", issue, env=env)).returncode == 0

    listed = await cli("findings", "list", "--json", env=env)
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["issue_id"] for r in rows] == [2, 1]  # newest first
    assert all(r["analyser"] == "heuristic" and "prompt" not in r for r in rows)
    only = await cli("findings", "list", "--issue", "1", env=env)
    assert only.stdout.count("\n") == 1 and "issue #1" in only.stdout

    marked = await cli("findings", "mark", "1", "wrong", "--note", "it was the proxy", env=env)
    assert marked.returncode == 0 and "marked finding 1 wrong" in marked.stdout
    shown = json.loads((await cli("findings", "show", "1", "--json", env=env)).stdout)
    assert (shown["verdict"], shown["verdict_note"]) == ("wrong", "it was the proxy")
    text = (await cli("findings", "show", "1", env=env)).stdout
    assert "verdict     wrong: it was the proxy" in text

    # A finding marked wrong is not served again: the next ask analyses afresh.
    again = json.loads((await cli("analyze", "--issue", "1", "--json", env=env)).stdout)
    assert again["served_from_store"] is False and again["id"] == 3


async def test_issues_resolve_records_the_note(fresh_db_url: str) -> None:
    await ingest(analyze_settings(fresh_db_url), issue_events(range(1)))
    env = {"MENDLINE_DATABASE_URL": fresh_db_url}
    done = await cli("issues", "resolve", "1", "--note", "guarded the parser", env=env)
    assert done.returncode == 0 and "resolved issue 1" in done.stdout
    conn = await asyncpg.connect(fresh_db_url)
    try:
        row = await conn.fetchrow(
            "SELECT status, resolution_note, resolved_at FROM mendline.issues WHERE id = 1"
        )
    finally:
        await conn.close()
    assert row is not None
    assert (row["status"], row["resolution_note"]) == ("resolved", "guarded the parser")
    assert row["resolved_at"] is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("analyze", "--issue", "99"), "mendline: there is no issue 99"),
        (("findings", "show", "99"), "mendline: there is no finding 99"),
        (("findings", "mark", "99", "right"), "mendline: there is no finding 99"),
        (("issues", "resolve", "99"), "mendline: there is no issue 99 (or it was merged)"),
        (("analyze", "--fresh"), "mendline: --fresh and --json go with --issue"),
    ],
)
async def test_bad_ids_get_one_clear_line(
    fresh_db_url: str, args: tuple[str, ...], message: str
) -> None:
    await ingest(analyze_settings(fresh_db_url), issue_events(range(1)))
    result = await cli(*args, env={"MENDLINE_DATABASE_URL": fresh_db_url})
    assert result.returncode == 1
    assert error_lines(result) == [message]


async def test_analyze_refuses_an_unmigrated_database(fresh_db_url: str) -> None:
    result = await cli("analyze", "--issue", "1", env={"MENDLINE_DATABASE_URL": fresh_db_url})
    assert result.returncode == 1
    assert error_lines(result) == [
        "mendline: the database has no mendline tables yet: run `mendline migrate`"
    ]


async def test_issues_list_show_and_ignore(fresh_db_url: str) -> None:
    await ingest(analyze_settings(fresh_db_url), issue_events(range(3), per_issue=2))
    env = {"MENDLINE_DATABASE_URL": fresh_db_url}
    assert (await cli("analyze", "--issue", "1", env=env)).returncode == 0

    listed = await cli("issues", "list", "--json", env=env)
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert sorted(r["id"] for r in rows) == [1, 2, 3]
    assert all(r["times_seen"] == 2 and r["status"] == "unresolved" for r in rows)

    shown = await cli("issues", "show", "1", env=env)
    assert "issue #1  ValueError: invalid literal for int()" in shown.stdout
    assert "root cause" in shown.stdout and "not analysed yet" not in shown.stdout
    as_json = json.loads((await cli("issues", "show", "2", "--json", env=env)).stdout)
    assert as_json["id"] == 2 and as_json["finding"] is None

    ignored = await cli("issues", "ignore", "3", env=env)
    assert ignored.returncode == 0 and "ignored issue 3" in ignored.stdout
    unresolved = await cli("issues", "list", "--json", env=env)
    assert sorted(json.loads(x)["id"] for x in unresolved.stdout.splitlines()) == [1, 2]
    only = await cli("issues", "list", "--status", "ignored", env=env)
    assert only.stdout.startswith("#3 ")

    missing = await cli("issues", "show", "99", env=env)
    assert missing.returncode == 1 and error_lines(missing) == ["mendline: there is no issue 99"]
