"""``mendline fix apply`` and ``fix rollback`` on a real git repository and the real
PostgreSQL, as token users: an approved fix applied in a worktree, verified by the
repository's own tests and committed on its branch (the checkout untouched), a responder
refused before any git work, and the fix undone with a revert commit."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.cli_helpers import cli, failure, json_object, token_of
from tests.db_helpers import finding_of_new_issue, query
from tests.git_helpers import git, make_repo, snapshot

pytestmark = pytest.mark.integration

PATCH = (
    "--- a/calc/core.py\n+++ b/calc/core.py\n@@ -9 +9 @@\n"
    "-    return table[key]\n+    return table.get(key)\n"
)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path)


@pytest.fixture
def env(fresh_db_url: str, tmp_path: Path, repo: Path) -> dict[str, str]:
    policy = tmp_path / "fixes.toml"
    policy.write_text(
        "[[repositories]]\n"
        'name = "calc"\n'
        f'path = "{repo}"\n'
        f'test = ["{sys.executable}", "-m", "pytest"]\n'
        "[[repositories.mappings]]\n"
        'stack_root = ""\n'
        'source_root = ""\n'
    )
    return {
        "MENDLINE_DATABASE_URL": fresh_db_url,
        "MENDLINE_TOKEN": "",
        "MENDLINE_LOCAL_ROLE": "",
        "MENDLINE_FIX_POLICY_FILE": str(policy),
        "MENDLINE_FIX_WORK_ROOT": str(tmp_path / "work"),
    }


async def test_an_approved_fix_is_applied_then_rolled_back_from_the_command_line(
    env: dict[str, str], fresh_db_url: str, repo: Path
) -> None:
    finding = await finding_of_new_issue(fresh_db_url, 1, PATCH, fix_kind="guard")
    rita = await token_of(env, "rita", "responder")
    ann = await token_of(env, "ann", "approver")
    proposed = json_object(await cli("fix", "propose", str(finding), "--json", env=rita))
    assert proposed["decision"]["verdict"] == "approval", proposed
    fix_id = proposed["id"]
    before = snapshot(repo)

    message, _ = failure(await cli("fix", "apply", str(fix_id), env=rita))
    assert message == "rita (responder) may not fix.apply: it needs the role approver"
    message, _ = failure(await cli("fix", "apply", str(fix_id), env=ann))
    assert message == (
        f"fix {fix_id} needs 1 approval(s) before it is applied (has none): fix kind guard is"
        " not one of [auto] kinds (style, formatting, import)"
    )
    assert (await cli("fix", "approve", str(fix_id), env=ann)).returncode == 0

    applied = await cli("fix", "apply", str(fix_id), env=ann)
    assert applied.returncode == 0, applied.stderr
    branch = f"mendline/fix-1-{fix_id}"
    assert applied.stdout.startswith(f"applied fix {fix_id} (issue 1): ")
    assert applied.stdout.rstrip().endswith(f"on {branch}")
    assert snapshot(repo) == before  # the user's checkout: files, index, HEAD untouched
    committed = git(repo, "show", branch, "--format=%B", "--no-patch")
    assert f"Mendline-Fix: {fix_id}" in committed and "Approved-by: ann" in committed
    assert "return table.get(key)" in git(repo, "show", f"{branch}:calc/core.py")

    shown = json_object(await cli("fix", "show", str(fix_id), "--json", env=ann))
    assert shown["state"] == "applied" and shown["verification"]["passed"] is True
    assert [c["exit_code"] for c in shown["verification"]["commands"]][-1] == 0

    message, _ = failure(await cli("fix", "rollback", str(fix_id), "--reason", "x", env=rita))
    assert message == "rita (responder) may not fix.rollback: it needs the role approver"
    rolled = await cli("fix", "rollback", str(fix_id), "--reason", "wrong fix", env=ann)
    assert rolled.returncode == 0, rolled.stderr
    assert "return table[key]" in git(repo, "show", f"{branch}:calc/core.py")
    assert "wrong fix" in git(repo, "show", branch, "--format=%B", "--no-patch")
    assert snapshot(repo) == before
    rows = await query(
        fresh_db_url,
        "SELECT actor_name, action FROM mendline.audit_log WHERE target = $1 ORDER BY id",
        f"fix:{fix_id}",
    )
    assert [(r["actor_name"], r["action"]) for r in rows] == [
        ("rita", "fix.propose"),
        ("ann", "fix.approve"),
        ("ann", "fix.apply"),
        ("ann", "fix.applied"),
        ("ann", "fix.rollback"),
    ]
