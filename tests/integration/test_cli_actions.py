"""``mendline issues ignore|resolve|merge|unmerge|reopen|assign|comment``, ``findings mark``
and ``events prune`` as API token users on the real PostgreSQL: a role too low is one clear
refusal with nothing changed, a role high enough changes and leaves one audit row naming the
token's user, the chain intact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mendline.schemas.settings import load_settings
from mendline.sinks.postgres import connect_store
from tests.cli_helpers import cli, failure, json_lines
from tests.db_helpers import query

from .stage_helpers import analyze_settings, ingest, issue_events

pytestmark = pytest.mark.integration

STATE = """SELECT (SELECT array_agg(status || ':' || coalesce(merged_into::text, '')
                                  ORDER BY id) FROM mendline.issues) AS issues,
                  (SELECT array_agg(coalesce(verdict, '-') ORDER BY id)
                   FROM mendline.findings) AS verdicts,
                  (SELECT count(*) FROM pg_inherits
                   WHERE inhparent = 'mendline.events'::regclass) AS partitions"""

# (the command, who may, the action, its target, what the audit row's after says of it)
ACTIONS = [
    (
        ("issues", "ignore", "3", "--until-events", "10"),
        "rita",
        "issue.ignore",
        "issue:3",
        {"status": "ignored", "ignore_until_seen": 13, "until": "until 10 more events"},
    ),
    (
        ("issues", "resolve", "1", "--note", "guarded the parser", "--in-next-release"),
        "rita",
        "issue.resolve",
        "issue:1",
        {
            "status": "resolved",
            "resolution": "next_release",
            "resolved_in_release": "1.2.0",
            "resolution_note": "guarded the parser",
        },
    ),
    (
        ("issues", "merge", "1", "2"),
        "rita",
        "issue.merge",
        "issue:2",
        {"status": "merged", "merged_into": 1, "fingerprints": 1},
    ),
    (
        ("issues", "unmerge", "2"),
        "rita",
        "issue.unmerge",
        "issue:2",
        {
            "status": "unresolved",
            "merged_into": None,
            "taken_from": 1,
            "fingerprints": 1,
            "events": 3,
        },
    ),
    (("issues", "reopen", "3"), "rita", "issue.reopen", "issue:3", {"status": "unresolved"}),
    (
        ("issues", "assign", "1", "team:payments"),
        "rita",
        "issue.assign",
        "issue:1",
        {"assignee": "team:payments"},
    ),
    (
        ("issues", "comment", "1", "the proxy strips the header"),
        "rita",
        "issue.comment",
        "issue:1",
        {"comment_id": 1, "body": "the proxy strips the header"},
    ),
    (
        ("findings", "mark", "1", "wrong", "--note", "it was the proxy"),
        "rita",
        "finding.mark",
        "finding:1",
        {"verdict": "wrong", "verdict_note": "it was the proxy"},
    ),
    (("events", "prune", "--days", "30"), "ada", "events.prune", "events", None),
]
NEEDED = {"rita": "responder", "ada": "admin"}


async def test_token_users_act_by_their_role_each_change_audited_and_refusals_change_nothing(
    fresh_db_url: str,
) -> None:
    settings = analyze_settings(fresh_db_url)
    for issue in range(3):  # one at a time: issue ids 1, 2, 3
        await ingest(settings, issue_events(range(issue, issue + 1)))
    store = await connect_store(load_settings(database_url=fresh_db_url))
    try:
        await store.ensure_partitions((datetime.now(UTC) - timedelta(days=40)).date())
    finally:
        await store.close()
    env = {
        "MENDLINE_DATABASE_URL": fresh_db_url,
        "MENDLINE_TOKEN": "",
        "MENDLINE_LOCAL_ROLE": "admin",
    }
    assert (await cli("analyze", "--issue", "1", env=env)).returncode == 0  # finding 1
    tokens = {}
    for name, role in (("vic", "viewer"), ("rita", "responder"), ("ada", "admin")):
        assert (await cli("users", "add", name, "--role", role, env=env)).returncode == 0
        made = await cli("tokens", "create", "--user", name, env=env)
        tokens[name] = made.stdout.strip()

    def as_user(name: str) -> dict[str, str]:
        return {**env, "MENDLINE_TOKEN": tokens[name], "MENDLINE_LOCAL_ROLE": "none"}

    before = await query(fresh_db_url, STATE)
    refusals = [(args, "vic", action) for args, _, action, _, _ in ACTIONS]
    refusals.append((ACTIONS[-1][0], "rita", "events.prune"))
    for args, name, action in refusals:
        message, hint = failure(await cli(*args, env=as_user(name)))
        role = "viewer" if name == "vic" else "responder"
        needed = "admin" if action == "events.prune" else "responder"
        assert message == f"{name} ({role}) may not {action}: it needs the role {needed}"
        assert hint == "ask an admin: `mendline users set-role NAME ROLE`"
    assert await query(fresh_db_url, STATE) == before

    for args, name, _, _, _ in ACTIONS:
        done = await cli(*args, env=as_user(name))
        assert done.returncode == 0, done.stderr
    (after,) = await query(fresh_db_url, STATE)
    assert after["issues"] == ["resolved:", "unresolved:", "unresolved:"]
    assert after["verdicts"] == ["wrong"]
    assert after["partitions"] == before[0]["partitions"] - 3

    trail = json_lines(await cli("audit", "list", "--json", env=as_user("vic")))
    acted = [row for row in reversed(trail) if not row["action"].startswith(("user.", "token."))]
    assert [(r["actor"]["name"], r["action"], r["target"]) for r in acted] == [
        (name, action, target) for _, name, action, target, _ in ACTIONS
    ]
    for row, (_, name, _, _, said) in zip(acted, ACTIONS, strict=True):
        assert row["actor"]["auth"] == "token" and row["actor"]["role"] == NEEDED[name]
        assert row["actor"]["token_id"] == tokens[name][:12]
        assert row["origin"].startswith("cli@")
        if said is not None:
            assert row["after"] == said
    assert len(acted[-1]["after"]["dropped_partitions"]) == 3
    verified = await cli("audit", "verify", env=as_user("vic"))
    assert verified.returncode == 0 and "intact: 15 row(s)" in verified.stdout, verified.stdout
