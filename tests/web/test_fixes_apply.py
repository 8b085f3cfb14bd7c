"""Apply and Rollback from the dashboard on a real git repository and the real PostgreSQL: a
proposed fix approved and applied in one click by an approver (claimed at once, verified by
the repository's own tests in a worktree and committed on its branch in a job of the web
process), rolled back with a revert commit; an apply cut off by the web process stopping,
taken over by a heal worker once its lease ran out."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from mendline.analyzers.policy import load_policy
from mendline.schemas.settings import load_settings
from mendline.sinks.postgres import FindingStore, FixStore, append_audit
from mendline.stages.heal import Healer
from tests.db_helpers import query
from tests.git_helpers import git, make_repo, snapshot
from tests.web.fixes_helpers import WAITS, fix_now, policy_file, proposed_by_policy
from tests.web.web_helpers import served_web

pytestmark = pytest.mark.integration


async def ended(client: httpx.AsyncClient, fix_id: int) -> dict[str, Any]:
    """The fix, once the dashboard's job on it has ended (at most a minute)."""
    for _ in range(600):
        shown: dict[str, Any] = (await client.get(f"/api/v1/fixes/{fix_id}")).json()
        if shown["job"] is not None and not shown["job"]["running"]:
            return shown
        await asyncio.sleep(0.1)
    raise AssertionError(f"the job on fix {fix_id} did not end: {shown['job']}")


async def trail(url: str, fix_id: int) -> list[tuple[str, str, str]]:
    rows = await query(
        url,
        "SELECT actor_name, action, origin FROM mendline.audit_log WHERE target = $1 ORDER BY id",
        f"fix:{fix_id}",
    )
    return [(r["actor_name"], r["action"], r["origin"]) for r in rows]


async def test_an_approver_applies_a_proposed_fix_in_one_click_and_rolls_it_back(
    fresh_db_url: str, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path)
    policy = policy_file(tmp_path, repo)
    settings = {"fix_policy_file": str(policy), "fix_work_root": str(tmp_path / "work")}
    async with served_web(fresh_db_url, **settings) as web:
        fix = await proposed_by_policy(web.database_url, policy)
        assert (fix.state, fix.decision.verdict) == ("proposed", "approval")
        before = snapshot(repo)
        async with web.client("approver") as client:
            page = await client.get(f"/fixes/{fix.id}")
            assert 'id="fix-apply"' in page.text and ">Approve and apply</button>" in page.text
            clicked = await client.post(f"/fixes/{fix.id}/apply")
            assert clicked.status_code == 303
            assert (await fix_now(web.database_url, fix.id)).state in ("applying", "applied")
            applied = await ended(client, fix.id)
            page = await client.get(f"/fixes/{fix.id}")
        assert applied["state"] == "applied", applied["job"]
        assert applied["verification"]["passed"] is True
        assert applied["job"]["outcome"].startswith(f"applied fix {fix.id}: ")
        branch = f"mendline/fix-{fix.issue_id}-{fix.id}"
        assert applied["delivery"]["branch"] == branch
        assert "return table.get(key)" in git(repo, "show", f"{branch}:calc/core.py")
        assert "Approved-by: approver" in git(repo, "show", branch, "--format=%B", "--no-patch")
        assert snapshot(repo) == before  # the user's checkout untouched
        assert 'data-state="applied"' in page.text and 'data-passed="yes"' in page.text
        assert 'id="fix-rollback"' in page.text and 'id="fix-apply"' not in page.text
        web_origin = "web@127.0.0.1"
        assert await trail(web.database_url, fix.id) == [
            ("responder", "fix.propose", "test"),
            ("approver", "fix.approve", web_origin),
            ("approver", "fix.apply", web_origin),
            ("approver", "fix.applied", web_origin),
        ]

        async with web.client("responder") as client:
            refused = await client.post(f"/api/v1/fixes/{fix.id}/rollback", json={"reason": "x"})
        assert refused.status_code == 403
        async with web.client("approver") as client:
            unsaid = await client.post(f"/api/v1/fixes/{fix.id}/rollback", json={})
            started = await client.post(
                f"/api/v1/fixes/{fix.id}/rollback", json={"reason": "wrong fix"}
            )
            assert unsaid.status_code == 400 and started.status_code == 202
            assert started.json()["message"] == f"rolling back fix {fix.id}"
            rolled = await ended(client, fix.id)
        assert rolled["state"] == "rolled_back", rolled["job"]["outcome"]
        assert "return table[key]" in git(repo, "show", f"{branch}:calc/core.py")
        assert "wrong fix" in git(repo, "show", branch, "--format=%B", "--no-patch")
        assert (await trail(web.database_url, fix.id))[-1] == (
            "approver",
            "fix.rollback",
            web_origin,
        )
        assert snapshot(repo) == before


async def test_apply_is_refused_when_this_dashboard_has_no_such_repository(
    fresh_db_url: str, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path)
    policy = policy_file(tmp_path, repo)
    async with served_web(fresh_db_url, fix_work_root=str(tmp_path / "work")) as web:
        # Proposed by a policy naming the repository; the dashboard runs the shipped one.
        fix = await proposed_by_policy(web.database_url, policy)
        async with web.client("approver") as client:
            refused = await client.post(f"/api/v1/fixes/{fix.id}/apply", json={})
        assert refused.status_code == 400
        assert refused.json()["error"]["message"].startswith(
            f"this dashboard cannot apply fix {fix.id}: "
        )
        now = await fix_now(web.database_url, fix.id)
        assert (now.state, now.approvals) == ("proposed", ())  # not even approved


async def test_an_apply_cut_off_by_the_web_stopping_is_taken_over_by_a_heal_worker(
    fresh_db_url: str, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path)
    started, go_on, script = tmp_path / "started", tmp_path / "go-on", tmp_path / "waits.py"
    script.write_text(WAITS)
    policy = policy_file(
        tmp_path, repo, test=(sys.executable, str(script), str(started), str(go_on))
    )
    settings: dict[str, Any] = {"fix_policy_file": policy, "fix_work_root": tmp_path / "work"}
    async with served_web(fresh_db_url, **settings) as web:
        fix = await proposed_by_policy(web.database_url, policy)
        async with web.client("approver") as client:
            clicked = await client.post(f"/api/v1/fixes/{fix.id}/apply", json={})
            assert clicked.status_code == 202
            for _ in range(600):  # until the verification is running
                if started.exists():
                    break
                await asyncio.sleep(0.1)
            assert started.exists()
    # The web process is gone, its job cancelled mid-verification: the fix stays claimed.
    cut = await fix_now(fresh_db_url, fix.id)
    assert cut.state == "applying" and cut.owner is not None and cut.owner.startswith("web ")
    await query(
        fresh_db_url,
        "UPDATE mendline.fix_jobs SET lease_until = now() - interval '1 minute' WHERE id = $1",
        fix.id,
    )
    go_on.touch()
    pool_settings = load_settings(database_url=fresh_db_url, **settings)
    fixes = FixStore(await _pool(fresh_db_url), append_audit, origin="heal test")
    try:
        healer = Healer(pool_settings, load_policy(policy), fixes, FindingStore(fixes.pool))
        await healer.cleanup()
        assert await healer.apply_next()
    finally:
        await fixes.close()
    done = await fix_now(fresh_db_url, fix.id)
    assert (done.state, done.attempts) == ("applied", 2)
    assert [(who, what) for who, what, _ in await trail(fresh_db_url, fix.id)] == [
        ("responder", "fix.propose"),
        ("approver", "fix.approve"),
        ("approver", "fix.apply"),
        ("mendline", "fix.apply"),  # taken over once the lease ran out
        ("mendline", "fix.applied"),
    ]


async def _pool(url: str) -> Any:
    import asyncpg

    return await asyncpg.create_pool(url, min_size=1, max_size=2)
