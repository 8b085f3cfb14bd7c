"""CLI commands around analysis: analyze --issue, findings list|show|mark, issues resolve."""

from __future__ import annotations

import json

import asyncpg
import pytest

from mendline.schemas.finding import confidence_label
from tests.cli_helpers import cli, failure, json_lines, json_object
from tests.llm_server import FakeLLM, Reply

from .stage_helpers import analyze_settings, ingest, issue_events

pytestmark = pytest.mark.integration


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


async def test_a_fallen_back_finding_shows_why_with_its_code(
    fresh_db_url: str, llm: FakeLLM
) -> None:
    await ingest(analyze_settings(fresh_db_url), issue_events(range(1)))
    llm.default = Reply.error(500)
    env = {
        "MENDLINE_DATABASE_URL": fresh_db_url,
        "MENDLINE_LLM_BASE_URL": llm.url,
        "MENDLINE_LLM_MAX_RETRIES": "0",
    }
    analysed = json.loads((await cli("analyze", "--issue", "1", "--json", env=env)).stdout)
    assert (analysed["analyser"], analysed["fallback_code"]) == ("heuristic", "llm_http_error")
    assert analysed["fallback_reason"]  # and words for people
    listed = json_lines(await cli("findings", "list", "--json", env=env))
    assert [r["fallback_code"] for r in listed] == ["llm_http_error"]
    text = (await cli("findings", "show", "1", env=env)).stdout
    (note,) = [line for line in text.splitlines() if "the LLM was not used" in line]
    assert note.endswith(" [llm_http_error]")

    llm.default = Reply.finding()
    fresh = json.loads((await cli("analyze", "--issue", "1", "--json", env=env)).stdout)
    assert (fresh["analyser"], fresh["fallback_code"]) == ("llm", None)  # not served: fell back
    assert "the LLM was not used" not in (await cli("findings", "show", "2", env=env)).stdout


async def test_findings_list_show_and_mark(fresh_db_url: str) -> None:
    await ingest(analyze_settings(fresh_db_url), issue_events(range(2)))
    env = {"MENDLINE_DATABASE_URL": fresh_db_url}
    for issue in ("1", "2"):
        assert (await cli("analyze", "--issue", issue, env=env)).returncode == 0

    rows = json_lines(await cli("findings", "list", "--json", env=env))
    assert [r["issue_id"] for r in rows] == [2, 1]  # newest first
    assert all(r["analyser"] == "heuristic" and "prompt" not in r for r in rows)
    only = await cli("findings", "list", "--issue", "1", env=env)
    header, row = only.stdout.splitlines()
    assert header.split() == ["ID", "ISSUE", "SEVERITY", "CATEGORY", "CONFIDENCE", "ROOT", "CAUSE"]
    first = rows[1]
    assert row.split()[:5] == [
        "1",
        "1",
        first["severity"],
        first["category"],
        confidence_label(first["confidence"]),
    ]
    assert first["root_cause"][:40] in row

    marked = await cli("findings", "mark", "1", "right", env=env)
    assert marked.returncode == 0 and marked.stdout == "marked finding 1 right\n"
    marked = await cli(
        "findings", "mark", "1", "wrong", "--note", "it was the proxy", "--json", env=env
    )
    assert json_object(marked) == {
        "finding": 1,
        "verdict": "wrong",
        "note": "it was the proxy",
        "changed": True,
    }
    shown = json.loads((await cli("findings", "show", "1", "--json", env=env)).stdout)
    assert (shown["verdict"], shown["verdict_note"]) == ("wrong", "it was the proxy")
    text = (await cli("findings", "show", "1", env=env)).stdout
    assert "verdict     wrong: it was the proxy" in text

    # A finding marked wrong is not served again: the next ask analyses afresh.
    again = json.loads((await cli("analyze", "--issue", "1", "--json", env=env)).stdout)
    assert again["served_from_store"] is False and again["id"] == 3


async def test_issues_resolve_records_the_note(fresh_db_url: str) -> None:
    await ingest(analyze_settings(fresh_db_url), issue_events(range(2)))
    env = {"MENDLINE_DATABASE_URL": fresh_db_url}
    done = await cli("issues", "resolve", "1", "--note", "guarded the parser", env=env)
    assert done.returncode == 0 and done.stdout == "resolved issue 1\n"
    as_json = await cli("issues", "resolve", "2", "--json", env=env)
    assert json_object(as_json) == {
        "issue": 2,
        "status": "resolved",
        "resolution": "now",
        "note": None,
        "changed": True,
    }
    conn = await asyncpg.connect(fresh_db_url)
    try:
        rows = await conn.fetch(
            "SELECT status, resolution_note, resolved_at FROM mendline.issues ORDER BY id"
        )
    finally:
        await conn.close()
    assert [(r["status"], r["resolution_note"]) for r in rows] == [
        ("resolved", "guarded the parser"),
        ("resolved", None),
    ]
    assert all(r["resolved_at"] is not None for r in rows)


ISSUES_HINT = "`mendline issues list --status all` shows the issues and their ids"
FINDINGS_HINT = "`mendline findings list` shows the findings and their ids"


@pytest.mark.parametrize(
    ("args", "message", "hint"),
    [
        (("analyze", "--issue", "99"), "there is no issue 99", ISSUES_HINT),
        (("issues", "show", "99"), "there is no issue 99", ISSUES_HINT),
        (("issues", "ignore", "99"), "there is no issue 99 (or it was merged)", ISSUES_HINT),
        (("issues", "resolve", "99"), "there is no issue 99 (or it was merged)", ISSUES_HINT),
        (("findings", "show", "99"), "there is no finding 99", FINDINGS_HINT),
        (("findings", "mark", "99", "right"), "there is no finding 99", FINDINGS_HINT),
    ],
)
@pytest.mark.parametrize("as_json", [False, True])
async def test_an_unknown_id_is_one_clear_line_and_where_to_find_the_ids(
    fresh_db_url: str, args: tuple[str, ...], message: str, hint: str, as_json: bool
) -> None:
    await ingest(analyze_settings(fresh_db_url), issue_events(range(1)))
    argv = (*args, "--json") if as_json else args  # errors are text on stderr either way
    result = await cli(*argv, env={"MENDLINE_DATABASE_URL": fresh_db_url})
    assert failure(result) == (message, hint)


async def test_issues_list_show_and_ignore(fresh_db_url: str) -> None:
    await ingest(analyze_settings(fresh_db_url), issue_events(range(3), per_issue=2))
    env = {"MENDLINE_DATABASE_URL": fresh_db_url}
    assert (await cli("analyze", "--issue", "1", env=env)).returncode == 0

    rows = json_lines(await cli("issues", "list", "--json", env=env))
    assert sorted(r["id"] for r in rows) == [1, 2, 3]
    assert all(r["times_seen"] == 2 and r["status"] == "unresolved" for r in rows)

    shown = await cli("issues", "show", "1", env=env)
    assert "issue #1  ValueError: invalid literal for int()" in shown.stdout
    assert "root cause" in shown.stdout and "not analysed yet" not in shown.stdout
    as_json = json.loads((await cli("issues", "show", "2", "--json", env=env)).stdout)
    assert as_json["id"] == 2 and as_json["finding"] is None

    ignored = await cli("issues", "ignore", "3", env=env)
    assert ignored.returncode == 0 and ignored.stdout == "ignored issue 3 forever\n"
    as_json = await cli("issues", "ignore", "2", "--json", env=env)
    assert json_object(as_json) == {
        "issue": 2,
        "status": "ignored",
        "until": None,
        "until_events": None,
        "until_rate": None,
        "changed": True,
    }
    unresolved = json_lines(await cli("issues", "list", "--json", env=env))
    assert [r["id"] for r in unresolved] == [1]

    table = await cli("issues", "list", "--status", "ignored", env=env)
    header, *lines = table.stdout.splitlines()
    assert header.split() == [
        "ID",
        "STATUS",
        "LEVEL",
        "SERVICE",
        "EVENTS",
        "1H",
        "LAST",
        "SEEN",
        "TITLE",
    ]
    assert sorted(line.split()[0] for line in lines) == ["2", "3"]
    assert all(line.split()[1:5] == ["ignored", "error", "api", "2"] for line in lines)
    assert all("ValueError: invalid literal for int()" in line for line in lines)
    assert table.stderr == ""

    none = await cli("issues", "list", "--status", "resolved", env=env)
    assert (none.returncode, none.stdout, none.stderr) == (0, "", "no issues (resolved)\n")
    assert json_lines(await cli("issues", "list", "--status", "resolved", "--json", env=env)) == []


# A title that would set the window title to "pwned", clear the screen and show the rest of
# the line backwards, were it printed raw.
_HOSTILE = "\x1b]0;pwned\x07\x1b[2J\u202e"


async def test_text_from_events_reaches_the_terminal_escaped_never_raw(fresh_db_url: str) -> None:
    (event,) = issue_events(range(1), per_issue=1)
    event["exceptions"][0]["value"] = f"bad input {_HOSTILE}here"
    await ingest(analyze_settings(fresh_db_url), [event])
    env = {"MENDLINE_DATABASE_URL": fresh_db_url}
    analysed = await cli("analyze", "--issue", "1", env=env)
    assert analysed.returncode == 0 and "\x1b" not in analysed.stdout, analysed.stdout
    # Stored as it came (so the commands below have something to escape), and --json keeps
    # it whole, as \u escapes.
    (stored,) = json_lines(await cli("issues", "list", "--json", env=env))
    assert _HOSTILE in stored["title"]

    for argv in (
        ("issues", "list"),
        ("issues", "show", "1"),
        ("findings", "list"),
        ("findings", "show", "1"),
        ("issues", "list", "--json"),
        ("issues", "show", "1", "--json"),
        ("findings", "show", "1", "--json"),
    ):
        shown = await cli(*argv, env=env)
        assert shown.returncode == 0, (argv, shown.stderr)
        for raw in ("\x1b", "\x07", "\u202e"):
            assert raw not in shown.stdout, (argv, raw)
        if argv[0] == "issues" and "--json" not in argv:
            assert "bad input \\x1b]0;pwned\\x07\\x1b[2J\\u202ehere" in shown.stdout, argv
