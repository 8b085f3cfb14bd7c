"""``mendline issues list|show|events`` and ``events show`` on the real PostgreSQL, over
events stored the consumer's way: filters and pages from the command line, the chosen event
whole with its in-app frames marked, JSON, what is not there, and stored text that tries to
steer the terminal shown escaped."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from mendline.schemas.redaction import FILTERED
from mendline.schemas.settings import load_settings
from mendline.sinks.postgres import connect_findings
from tests.cli_helpers import cli, failure, json_lines, json_object, usage_error
from tests.db_helpers import patch_finding, query, store_events
from tests.integration.event_factory import make_event


def now() -> datetime:
    """The time now (each test's events are minutes old when it runs, however long the run
    took to reach it)."""
    return datetime.now(UTC).replace(microsecond=0)


EVIL = "\x1b[2J\x1b]0;pwned\x07line one\nFAKE: line two\r"


def event(issue: int, minutes_ago: int, **fields: Any) -> dict[str, Any]:
    doc = make_event(issue, frames=3)
    doc["timestamp"] = (now() - timedelta(minutes=minutes_ago)).isoformat().replace("+00:00", "Z")
    doc["environment"] = "production"
    doc.update(fields)
    return doc


def hostile(issue: int) -> dict[str, Any]:
    """An event whose message, tag, context and frames carry escapes and newlines, with a
    library frame among the app's and a password the scrubber filters."""
    doc = event(issue, 1, message=f"order {EVIL}", tags={"region": EVIL, "plan": "pro"})
    doc["context"] = {"password": "hunter2", "note": EVIL}
    frames = doc["exceptions"][0]["frames"]
    frames[0].update(in_app=False, filename="/usr/lib/python3/json/decoder.py", function="decode")
    frames[-1].update(function=f"handler{EVIL}", context_line=f"    int(q){EVIL}")
    doc["exceptions"].insert(
        0,
        {
            "type": "OSError",
            "module": "builtins",
            "value": "disk gone",
            "frames": [],
            "exception_id": 1,
            "parent_id": 0,
            "source": "__context__",
        },
    )
    doc["exceptions"][1]["exception_id"] = 0
    return doc


async def seeded(url: str) -> dict[str, str]:
    """Issue 1 (three events, a finding, comments), issue 2 (one hostile event), issue 3
    (another service); the CLI's environment."""
    await store_events(
        url,
        [event(1, 30, release="1.0")],  # a batch each: the latest received is the latest
        [event(1, 20, release="1.1")],
        [event(1, 10, release="1.2")],
        [hostile(2)],
        [event(3, 40, service="billing", release="1.0")],
    )
    findings = await connect_findings(load_settings(database_url=url), 1)
    try:
        await findings.save(patch_finding(None, confidence=0.834), issue_id=1, cache_key="one")
    finally:
        await findings.pool.close()
    await query(
        url,
        """INSERT INTO mendline.issue_comments (issue_id, author, body)
           VALUES (1, 'user:ada', 'looking'), (1, 'user:bo', 'deployed 1.2'),
                  (2, 'user:eve', $1)""",
        EVIL,
    )
    return {"MENDLINE_DATABASE_URL": url}


def assert_terminal_safe(text: str) -> None:
    assert "\x1b" not in text and "\r" not in text and "\x07" not in text
    assert not any(line.startswith("FAKE") for line in text.splitlines()), text


async def test_list_filters_sorts_and_pages_from_the_command_line(fresh_db_url: str) -> None:
    env = await seeded(fresh_db_url)
    rows = json_lines(await cli("issues", "list", "--json", env=env))
    assert [r["id"] for r in rows] == [2, 1, 3]
    assert rows[1]["times_seen"] == 3 and rows[1]["events_1h"] == 3
    for args, expected in [
        (("--service", "billing"), [3]),
        (("--release", "1.1"), [1]),
        (("--tag", "plan=pro"), [2]),
        (("--tag", "plan=pro", "--tag", "region=eu"), []),
        (("--query", "HANDLER_3"), [3]),
        (("--environment", "staging"), []),
        (("--first-seen-since", "35m"), [2, 1]),
        (("--last-seen-since", (now() - timedelta(minutes=15)).isoformat()), [2, 1]),
        (("--sort", "events"), [1, 3, 2]),
        (("--sort", "first_seen", "--status", "all"), [2, 1, 3]),
        (("--status", "resolved"), []),
        (("--assignee", "user:ada"), []),
    ]:
        found = json_lines(await cli("issues", "list", "--json", *args, env=env))
        assert [r["id"] for r in found] == expected, args

    walked = []
    cursor: list[str] = []
    for _ in range(4):
        page = await cli("issues", "list", "--limit", "1", "--sort", "events", *cursor, env=env)
        assert page.returncode == 0, page.stderr
        (row,) = page.stdout.splitlines()[1:]
        walked.append(int(row.split()[0]))
        nexts = [line for line in page.stderr.splitlines() if line.startswith("next: ")]
        if not nexts:
            break
        cursor = nexts[0].removeprefix("next: ").split()
    assert walked == [1, 3, 2]

    table = await cli("issues", "list", env=env)
    assert table.stdout.splitlines()[0].split() == [
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
    assert_terminal_safe(table.stdout)
    empty = await cli("issues", "list", "--service", "nope", env=env)
    assert empty.stdout == "" and "no issues (unresolved)" in empty.stderr


async def test_bad_list_arguments_are_usage_errors(fresh_db_url: str) -> None:
    env = await seeded(fresh_db_url)
    first = await cli("issues", "list", "--limit", "1", env=env)
    token = first.stderr.split("next: --cursor ", 1)[1].split()[0]
    assert "sorted by last_seen, not by events" in usage_error(
        await cli("issues", "list", "--sort", "events", "--cursor", token, env=env)
    )
    assert "is not a cursor of issues" in usage_error(
        await cli("issues", "list", "--cursor", "garbage", env=env)
    )
    assert "an assignee is user:NAME or team:LABEL" in usage_error(
        await cli("issues", "list", "--assignee", "robot:x", env=env)
    )
    assert "expected an ISO 8601 time" in usage_error(
        await cli("issues", "list", "--last-seen-since", "yesterday", env=env)
    )
    assert "invalid choice: 'loud'" in usage_error(
        await cli("issues", "list", "--sort", "loud", env=env)
    )
    assert "is not a cursor of events" in usage_error(
        await cli("issues", "events", "1", "--cursor", token, env=env)
    )


def cursor_token(payload: list[object]) -> str:
    """A cursor forged from ``payload``, the way the CLI encodes one."""
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


async def test_out_of_range_limits_and_forged_cursors_are_usage_errors(fresh_db_url: str) -> None:
    env = await seeded(fresh_db_url)
    said = {
        "events --limit": ("issues", "events", "1", "--limit", str(2**63 - 1)),
        "event id not a uuid": (
            "issues", "events", "1", "--cursor",
            cursor_token(["e", "2024-01-01T00:00:00+00:00", "zz"]),
        ),
        "issue id past bigint": (
            "issues", "list", "--sort", "events",
            "--cursor", cursor_token(["i", "events", 1, 2**70]),
        ),
        "count past bigint": (
            "issues", "list", "--sort", "events",
            "--cursor", cursor_token(["i", "events", 2**70, 1]),
        ),
        "year 1 east of UTC": (
            "issues", "list", "--cursor",
            cursor_token(["i", "last_seen", "0001-01-01T00:00:00+14:00", 1]),
        ),
    }  # fmt: skip
    errors = {name: usage_error(await cli(*args, env=env)) for name, args in said.items()}
    assert "at most 1000" in errors.pop("events --limit")
    assert all("is not a cursor of" in error for error in errors.values()), errors


async def test_show_tells_the_issue_its_trend_finding_comments_and_latest_event(
    fresh_db_url: str,
) -> None:
    env = await seeded(fresh_db_url)
    shown = await cli("issues", "show", "1", env=env)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert out.startswith("issue #1  ValueError: invalid literal for int()")
    assert "  status        unresolved\n" in out
    assert "  assignee      nobody\n" in out
    assert "  events        3 in all, 3 in the last hour, 0 regression(s)\n" in out
    trend = next(line for line in out.splitlines() if line.startswith("  last 24h"))
    assert trend.split()[2:] == ["_" * 23 + "█", "3", "events"]
    assert "in release 1.0\n" in out and "in release 1.2\n" in out
    # the finding: the alerts' severity word, the finding's own judgement, a rounded figure
    assert "severity ERROR (the finding says medium), bad_input, 83% confidence" in out
    assert "comments\n" in out and "user:bo: deployed 1.2\n" in out
    assert out.index("user:ada: looking") < out.index("user:bo: deployed 1.2")
    assert "latest event " in out and "release 1.2" in out
    assert "exception chain (root cause first)\n  ValueError: invalid literal" in out
    assert "    > /srv/app/v0/app/module2.py:12 in handler_1\n" in out
    assert "          int(q[1])\n" in out
    first = await cli("issues", "show", "1", "--event", "first", env=env)
    assert "first event " in first.stdout and "release 1.0" in first.stdout


async def test_show_escapes_every_stored_string_and_marks_in_app_frames(
    fresh_db_url: str,
) -> None:
    env = await seeded(fresh_db_url)
    shown = await cli("issues", "show", "2", env=env)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert_terminal_safe(out)
    escaped = "\\x1b[2J\\x1b]0;pwned\\x07line one\\nFAKE: line two\\r"
    assert f"  message       order {escaped}\n" in out
    assert f"  region = {escaped}\n" in out
    assert f"  note = {escaped}\n" in out
    assert f"  password = {FILTERED}\n" in out
    assert f"user:eve: {escaped}\n" in out
    chain = out[out.index("exception chain") :]
    assert chain.index("OSError: disk gone") < chain.index("while handling it, this was raised:")
    assert "      /usr/lib/python3/json/decoder.py:10 in decode\n" in chain  # no marker
    assert f"    > /srv/app/v0/app/module2.py:12 in handler{escaped}\n" in chain
    assert f"          int(q){escaped}\n" in chain
    coloured = await cli("issues", "show", "2", env={**env, "NO_COLOR": "1"})
    assert coloured.stdout == out  # not a terminal: no colour either way

    by_id = json_lines(await cli("issues", "events", "2", "--json", env=env))
    (only,) = by_id
    again = await cli("events", "show", only["event_id"], env=env)
    assert_terminal_safe(again.stdout)
    assert f"  message       order {escaped}\n" in again.stdout


async def test_json_output_and_what_is_not_there(fresh_db_url: str) -> None:
    env = await seeded(fresh_db_url)
    shown = json_object(await cli("issues", "show", "1", "--json", env=env))
    assert shown["id"] == 1 and shown["times_seen"] == 3
    assert len(shown["trend"]) == 24 and shown["events_24h"] == 3
    assert shown["finding"]["confidence"] == 0.834
    assert [c["body"] for c in shown["comments"]] == ["looking", "deployed 1.2"]
    assert shown["comments_total"] == 2
    latest = shown["event"]
    assert latest["release"] == "1.2" and latest["payload"]["release"] == "1.2"

    events = json_lines(await cli("issues", "events", "1", "--json", env=env))
    assert [e["release"] for e in events] == ["1.2", "1.1", "1.0"]
    page = await cli("issues", "events", "1", "--limit", "2", env=env)
    assert len(page.stdout.splitlines()) == 3  # the header and two events
    token = page.stderr.split("next: --cursor ", 1)[1].split()[0]
    rest = json_lines(await cli("issues", "events", "1", "--json", "--cursor", token, env=env))
    assert len(rest) == 1 and rest[0]["event_id"] not in page.stdout

    chosen = events[1]["event_id"]
    payload = json_object(await cli("events", "show", chosen, "--json", env=env))
    stored = await query(
        fresh_db_url, "SELECT payload FROM mendline.events WHERE event_id = $1::uuid", chosen
    )
    assert payload == json.loads(stored[0]["payload"])
    picked = json_object(await cli("issues", "show", "1", "--event", chosen, "--json", env=env))
    assert picked["event"]["event_id"] == chosen

    message, hint = failure(await cli("issues", "show", "99", env=env))
    assert message == "there is no issue 99" and "issues list --status all" in hint
    message, hint = failure(await cli("issues", "events", "99", env=env))
    assert message == "there is no issue 99"
    message, hint = failure(await cli("issues", "show", "3", "--event", chosen, env=env))
    assert message == f"there is no stored event {chosen} of issue 3"
    assert "issues events ISSUE_ID" in hint
    message, _ = failure(await cli("events", "show", "0" * 32, env=env))
    assert message == f"there is no stored event {'0' * 32}"
    message, _ = failure(await cli("events", "show", "nope\x1b[31m", env=env))
    assert message == "'nope\\x1b[31m' is not an event id (a UUID)"
