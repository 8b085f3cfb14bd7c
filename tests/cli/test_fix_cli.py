"""``mendline fix list|show|propose|approve|reject|deployed`` and ``fix policy explain`` on the
real PostgreSQL, as token users: the policy's decision with its reasons (the shipped default
denies for want of a repository; a file naming one asks for approval, or lets it go up to
max_per_hour), approvals by role and the two-person rule, refusals in one line that change
nothing, the patch shown escaped (coloured on a terminal only), --json, paging."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from mendline.schemas.fix import CommandOutcome, Delivery, Verification
from mendline.schemas.settings import load_settings
from mendline.sinks.postgres import connect_fixes
from tests.cli_helpers import (
    cli,
    failure,
    json_lines,
    json_object,
    migrated_env,
    run_on_terminal,
    token_of,
)
from tests.db_helpers import finding_of_new_issue, query

pytestmark = pytest.mark.integration

PATCH = "--- a/app/orders.py\n+++ b/app/orders.py\n@@ -1 +1 @@\n-int(q)\n+int(q or 0)\n"
# An added line as an LLM might write it after reading an event: a terminal title, a clear.
EVIL = "\x1b]0;owned\x07\x1b[2J"
EVIL_PATCH = PATCH.replace("+int(q or 0)", f"+int(q or 0)  # {EVIL}")
NO_REPOSITORY = (
    "- no repository is configured ([[repositories]] in the fix policy file): no fix can be applied"
)

AUDITED = """SELECT actor_name, actor_auth, action, after FROM mendline.audit_log
             WHERE target = $1 ORDER BY id"""


def mapped(patch: str) -> str:
    """``patch`` with shop's paths, as the policy renders it."""
    return patch.replace("app/", "src/app/").replace("@@ -1 +1 @@", "@@ -1,1 +1,1 @@")


@pytest.fixture
async def env(fresh_db_url: str) -> dict[str, str]:
    return await migrated_env(fresh_db_url, MENDLINE_FIX_POLICY_FILE="")


def with_policy(env: dict[str, str], tmp_path: Path, auto: str = "") -> dict[str, str]:
    """``env`` with a fix policy naming the repository shop (app/ is its src/app/), and
    ``auto``'s lines in its [auto] table."""
    path = tmp_path / "fixes.toml"
    path.write_text(
        f"[auto]\n{auto}\n"
        "[[repositories]]\n"
        'name = "shop"\n'
        f'path = "{tmp_path / "shop"}"\n'
        "[[repositories.mappings]]\n"
        'stack_root = "app/"\n'
        'source_root = "src/app/"\n'
    )
    return {**env, "MENDLINE_FIX_POLICY_FILE": str(path)}


async def fix_state(url: str, fix_id: int) -> tuple[str, list[str]]:
    """Where fix ``fix_id`` stands: its state and its approvers."""
    (row,) = await query(
        url,
        """SELECT state, ARRAY(SELECT approver FROM mendline.fix_approvals a
                               WHERE a.fix_id = f.id ORDER BY a.id) AS approvers
           FROM mendline.fix_jobs f WHERE id = $1""",
        fix_id,
    )
    return row["state"], list(row["approvers"])


async def test_the_shipped_default_denies_for_want_of_a_repository(
    env: dict[str, str], fresh_db_url: str
) -> None:
    first = await finding_of_new_issue(fresh_db_url, 1, PATCH)
    second = await finding_of_new_issue(fresh_db_url, 2, PATCH)
    rita = await token_of(env, "rita", "responder")

    proposed = await cli("fix", "propose", str(first), env=rita)
    assert proposed.returncode == 0, proposed.stderr
    assert proposed.stdout.splitlines() == [
        f"fix 1 of finding {first} (issue 1) is rejected: the fix policy (the shipped default)"
        " denies it",
        "  verdict: deny: never applied",
        "  " + NO_REPOSITORY,
    ]
    shown = json_object(await cli("fix", "propose", str(second), "--json", env=rita))
    assert (shown["id"], shown["state"], shown["created"], shown["policy"]) == (
        2,
        "rejected",
        True,
        "the shipped default",
    )
    assert (shown["requested_by"], shown["rejected_by"], shown["repository"]) == (
        "rita",
        "mendline",
        None,
    )
    assert shown["decision"] == {
        "verdict": "deny",
        "reasons": [NO_REPOSITORY.removeprefix("- ")],
        "approvals_needed": 0,
        "repository": None,
    }

    vic = await token_of(env, "vic", "viewer")
    message, hint = failure(await cli("fix", "propose", str(first), env=vic))
    assert message == "vic (viewer) may not fix.propose: it needs the role responder"
    assert "set-role" in hint
    message, hint = failure(await cli("fix", "propose", "999", env=rita))
    assert message == "there is no finding 999" and "findings list" in hint
    assert [f["id"] for f in json_lines(await cli("fix", "list", "--json", env=vic))] == [2, 1]


async def test_a_policy_with_a_repository_explains_then_asks_an_approver(
    env: dict[str, str], fresh_db_url: str, tmp_path: Path
) -> None:
    finding = await finding_of_new_issue(fresh_db_url, 1, PATCH)
    env = with_policy(env, tmp_path)
    policy = env["MENDLINE_FIX_POLICY_FILE"]
    vic = await token_of(env, "vic", "viewer")
    rita = await token_of(env, "rita", "responder")
    ann = await token_of(env, "ann", "approver")

    explained = await cli("fix", "policy", "explain", str(finding), env=vic)
    assert explained.returncode == 0, explained.stderr
    lines = explained.stdout.splitlines()
    assert lines[:3] == [
        f"finding {finding} (issue 1), by the fix policy ({policy}) now; nothing was changed",
        "  verdict: approval: applied once one person approves",
        "  repository: shop",
    ]
    assert "  - the finding does not say what kind of fix it is (fix_kind)" in lines
    assert "  - confidence 0.8 is at least [auto] min_confidence 0.8" not in lines  # held
    as_json = json_object(await cli("fix", "policy", "explain", str(finding), "--json", env=vic))
    assert (as_json["finding_id"], as_json["policy"]) == (finding, policy)
    decision = as_json["decision"]
    assert (decision["verdict"], decision["approvals_needed"], decision["repository"]) == (
        "approval",
        1,
        "shop",
    )
    assert decision["mapped_patch"] == mapped(PATCH)
    assert [f"  - {reason}" for reason in decision["reasons"]] == lines[3:]
    assert await query(fresh_db_url, "SELECT id FROM mendline.fix_jobs") == []

    proposed = await cli("fix", "propose", str(finding), env=rita)
    assert proposed.returncode == 0, proposed.stderr
    assert proposed.stdout.splitlines() == [
        f"proposed fix 1 of finding {finding} (issue 1), as the fix policy ({policy}) decided",
        *lines[1:],
        "next: an approver runs `mendline fix approve 1`",
    ]
    again = json_object(await cli("fix", "propose", str(finding), "--json", env=rita))
    assert (again["id"], again["state"], again["created"]) == (1, "proposed", False)

    message, _ = failure(await cli("fix", "approve", "1", env=rita))
    assert message == "rita (responder) may not fix.approve: it needs the role approver"
    assert await fix_state(fresh_db_url, 1) == ("proposed", [])

    approved = await cli("fix", "approve", "1", "--note", "read the test", env=ann)
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout == "approved fix 1 (issue 1): 1 of 1 approvals\n"
    message, hint = failure(await cli("fix", "approve", "1", env=ann))
    assert message == (
        "a fix that is approved cannot become approved (it can become rejected, applying)"
    )
    assert hint == "`mendline fix show 1` shows where it stands"

    rejected = json_object(
        await cli("fix", "reject", "1", "--reason", "not this way", "--json", env=ann)
    )
    assert (rejected["state"], rejected["rejected_by"], rejected["rejected_reason"]) == (
        "rejected",
        "ann",
        "not this way",
    )
    trail = await query(fresh_db_url, AUDITED, "fix:1")
    assert [(r["actor_name"], r["actor_auth"], r["action"]) for r in trail] == [
        ("rita", "token", "fix.propose"),
        ("ann", "token", "fix.approve"),
        ("ann", "token", "fix.reject"),
    ]
    assert json.loads(trail[1]["after"])["note"] == "read the test"


async def test_two_people_approve_a_critical_fix_the_requester_may_be_one(
    env: dict[str, str], fresh_db_url: str, tmp_path: Path
) -> None:
    finding = await finding_of_new_issue(fresh_db_url, 1, PATCH, severity="critical")
    env = with_policy(env, tmp_path)
    ann = await token_of(env, "ann", "approver")
    bob = await token_of(env, "bob", "approver")

    proposed = await cli("fix", "propose", str(finding), env=ann)
    assert proposed.returncode == 0, proposed.stderr
    assert "  verdict: approval: applied once two people approve" in proposed.stdout
    assert (
        "  - two people must approve: severity critical is in [approval.two_person] severities"
        in proposed.stdout
    )
    once = await cli("fix", "approve", "1", env=ann)
    assert once.stdout == (
        "approved fix 1 (issue 1): 1 of 2 approvals; it needs 1 more, from someone else\n"
    )
    message, hint = failure(await cli("fix", "approve", "1", env=ann))
    assert message == "ann approved fix 1 already; it needs 1 more approval(s), from someone else"
    assert hint == "another approver must approve it"
    assert await fix_state(fresh_db_url, 1) == ("proposed", ["ann"])
    (listed,) = json_lines(await cli("fix", "list", "--json", env=bob))
    assert (listed["state"], listed["approvals"], listed["approvals_needed"]) == (
        "proposed",
        ["ann"],
        2,
    )
    table = await cli("fix", "list", env=bob)
    assert table.stdout.splitlines()[1].split()[:6] == [
        "1",
        "1",
        "proposed",
        "shop",
        "approval",
        "1/2",
    ]

    twice = json_object(await cli("fix", "approve", "1", "--json", env=bob))
    assert (twice["state"], twice["approvals"]) == ("approved", ["ann", "bob"])


async def test_auto_fixes_count_per_repository_up_to_max_per_hour(
    env: dict[str, str], fresh_db_url: str, tmp_path: Path
) -> None:
    alone = {"severity": "low", "fix_kind": "import", "confidence": 0.9}
    first = await finding_of_new_issue(fresh_db_url, 1, PATCH, **alone)
    second = await finding_of_new_issue(fresh_db_url, 2, PATCH, **alone)
    env = with_policy(env, tmp_path, auto="max_per_hour = 1")
    rita = await token_of(env, "rita", "responder")

    proposed = await cli("fix", "propose", str(first), env=rita)
    assert proposed.returncode == 0, proposed.stderr
    assert "  verdict: auto: applied without a person" in proposed.stdout
    assert (
        "  - 0 automatic fixes in repository shop in the last hour, fewer than [auto]"
        " max_per_hour 1" in proposed.stdout
    )
    fixes = await connect_fixes(load_settings(database_url=fresh_db_url), origin="test")
    try:
        [claimed] = await fixes.claim("heal-1", 60, 1)  # as the heal stage will
    finally:
        await fixes.close()
    assert claimed.state == "applying"

    explained = await cli("fix", "policy", "explain", str(second), env=rita)
    assert explained.returncode == 0, explained.stderr
    assert "  verdict: approval: applied once one person approves" in explained.stdout
    assert (
        "  - 1 automatic fixes in repository shop in the last hour already: [auto]"
        " max_per_hour is 1" in explained.stdout
    )
    none = await finding_of_new_issue(fresh_db_url, 3, None)
    message, hint = failure(await cli("fix", "policy", "explain", str(none), env=rita))
    assert message == f"finding {none} has no patch: there is nothing to decide on"
    assert "findings list" in hint


async def test_show_an_applied_fix_whole_with_its_patch_escaped_then_deployed(
    env: dict[str, str], fresh_db_url: str, tmp_path: Path
) -> None:
    finding = await finding_of_new_issue(fresh_db_url, 1, EVIL_PATCH, fix_kind="guard")
    env = with_policy(env, tmp_path)
    rita = await token_of(env, "rita", "responder")
    ann = await token_of(env, "ann", "approver")
    assert (await cli("fix", "propose", str(finding), env=rita)).returncode == 0
    assert (await cli("fix", "approve", "1", env=ann)).returncode == 0
    output = "".join(f"test {n} passed\n" for n in range(30))
    fixes = await connect_fixes(load_settings(database_url=fresh_db_url), origin="test")
    try:
        [claimed] = await fixes.claim("heal-1", 60, 1)
        delivery = Delivery(
            mode="pull_request",
            branch=claimed.branch,
            commit="c" * 40,
            pr_url="https://github.example/acme/shop/pull/7",
        )
        verification = Verification(
            passed=True,
            commands=[
                CommandOutcome(argv=["ruff", "check", "."], exit_code=0, seconds=0.4),
                CommandOutcome(argv=["pytest", "-q"], exit_code=0, seconds=1.5, output=output),
            ],
        )
        assert (await fixes.finish_applied("heal-1", 1, delivery, verification)).done
    finally:
        await fixes.close()

    shown = await cli("fix", "show", "1", env=rita)
    assert shown.returncode == 0, shown.stderr
    assert "\x1b" not in shown.stdout and "\x07" not in shown.stdout
    lines = shown.stdout.splitlines()
    assert lines[0] == "fix #1 of issue #1: applied"
    assert lines[1].startswith("  issue        #1 ValueError: ")
    assert lines[2] == f"  finding      #{finding}: the quantity is not a number"
    assert lines[3] == (
        "               confidence 80%, severity medium, kind guard, category bad_input"
    )
    assert "  branch       mendline/fix-1-1" in lines
    for step in ("proposed", "approved", "applying", "applied"):
        assert any(line.startswith(f"  {step} ") for line in lines), step
    assert "  verdict: approval: applied once one person approves" in lines
    assert "approvals      1 of 1: ann" in lines
    patch = lines.index("patch (repository paths)")
    assert lines[patch + 1 : patch + 6] == [
        "  --- a/src/app/orders.py",
        "  +++ b/src/app/orders.py",
        "  @@ -1,1 +1,1 @@",
        "  -int(q)",
        "  +int(q or 0)  # \\x1b]0;owned\\x07\\x1b[2J",
    ]
    assert "verification   passed" in lines
    assert "  $ ruff check .  (exit 0, 0.4 s)" in lines
    pytest_line = lines.index("  $ pytest -q  (exit 0, 1.5 s)")
    assert lines[pytest_line + 1] == "      ... 10 earlier lines (--json has them)"
    assert lines[pytest_line + 2 : pytest_line + 22] == [
        f"      test {n} passed" for n in range(10, 30)
    ]
    assert "delivery       pull_request: branch mendline/fix-1-1, commit " + "c" * 40 in lines
    assert "  pull request https://github.example/acme/shop/pull/7" in lines

    terminal = await asyncio.to_thread(run_on_terminal, "fix", "show", "1", env=rita)
    assert "\x1b[32m+int(q or 0)  # \\x1b]0;owned\\x07\\x1b[2J\x1b[0m" in terminal
    assert "\x1b[31m-int(q)\x1b[0m" in terminal
    plain = re.sub(r"\x1b\[[0-9;]*m", "", terminal)  # our colours, and nothing else
    assert "\x1b" not in plain and "\x07" not in plain

    as_json = await cli("fix", "show", "1", "--json", env=rita)
    assert "\x1b" not in as_json.stdout
    whole = json_object(as_json)
    assert (whole["state"], whole["branch"], whole["issue"]["id"]) == ("applied", claimed.branch, 1)
    assert whole["issue"]["title"].startswith("ValueError: ")
    assert (whole["finding"]["id"], whole["finding"]["fix_kind"]) == (finding, "guard")
    assert whole["mapped_patch"] == mapped(EVIL_PATCH)
    assert whole["verification"]["commands"][1]["output"] == output
    assert whole["delivery"]["pr_url"] == "https://github.example/acme/shop/pull/7"
    assert whole["decision"]["verdict"] == "approval" and "mapped_patch" not in whole["decision"]

    message, _ = failure(await cli("fix", "deployed", "1", "--release", "2.0.0", env=rita))
    assert message == "rita (responder) may not fix.deployed: it needs the role approver"
    assert await fix_state(fresh_db_url, 1) == ("applied", ["ann"])
    deployed = await cli("fix", "deployed", "1", "--release", "2.0.0", env=ann)
    assert deployed.stdout == "fix 1 (issue 1) is deployed in release 2.0.0\n", deployed.stderr
    again = await cli("fix", "deployed", "1", "--release", "2.0.1", "--json", env=ann)
    message, _ = failure(again)
    assert message == (
        "a fix that is deployed cannot become deployed"
        " (it can become verified, regressed, rolled_back)"
    )
    after = json_object(await cli("fix", "show", "1", "--json", env=rita))
    assert (after["state"], after["release"]) == ("deployed", "2.0.0")
    message, hint = failure(await cli("fix", "show", "99", env=rita))
    assert message == "there is no fix 99" and "fix list" in hint


async def test_the_list_pages_newest_first_by_state_and_issue(
    env: dict[str, str], fresh_db_url: str, tmp_path: Path
) -> None:
    findings = [await finding_of_new_issue(fresh_db_url, n, PATCH) for n in range(3)]
    rita = await token_of(env, "rita", "responder")
    for finding in findings[:2]:  # the shipped default: rejected
        assert (await cli("fix", "propose", str(finding), env=rita)).returncode == 0
    proposing = with_policy(rita, tmp_path)
    assert (await cli("fix", "propose", str(findings[2]), env=proposing)).returncode == 0

    page = await cli("fix", "list", "--limit", "2", env=rita)
    assert page.returncode == 0, page.stderr
    header, *rows = page.stdout.splitlines()
    assert header.split() == [
        "ID",
        "ISSUE",
        "STATE",
        "REPOSITORY",
        "VERDICT",
        "REQUESTED",
        "BY",
        "AGE",
    ]
    assert [row.split()[:6] for row in rows] == [
        ["3", "3", "proposed", "shop", "approval", "0/1"],
        ["2", "2", "rejected", "-", "deny", "rita"],
    ]
    assert page.stderr == "next: mendline fix list --limit 2 --before 2\n"
    last = await cli("fix", "list", "--limit", "2", "--before", "2", env=rita)
    assert [row.split()[0] for row in last.stdout.splitlines()[1:]] == ["1"]
    assert last.stderr == ""
    rejected = json_lines(await cli("fix", "list", "--state", "rejected", "--json", env=rita))
    assert [fix["id"] for fix in rejected] == [2, 1]
    of_issue = json_lines(await cli("fix", "list", "--issue", "1", "--json", env=rita))
    assert [(fix["id"], fix["issue_id"]) for fix in of_issue] == [(1, 1)]
    nothing = await cli("fix", "list", "--state", "verified", env=rita)
    assert (nothing.returncode, nothing.stdout, nothing.stderr) == (0, "", "no fixes\n")
    message, _ = failure(await cli("fix", "list", env={**env, "MENDLINE_LOCAL_ROLE": "none"}))
    assert message == "acting as the local OS user is off (MENDLINE_LOCAL_ROLE=none)"
