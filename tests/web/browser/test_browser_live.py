"""Pages that change by themselves, in a real Chromium: a fix applied by one click whose state
changes on the open page, and a check going down on the open health page, both pushed by
Server-Sent Events (no reload, no polling)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from mendline.sinks.postgres import HealthStore
from tests.git_helpers import make_repo
from tests.web.browser.browser_helpers import log_in, new_page, shoot
from tests.web.fixes_helpers import policy_file, proposed_by_policy
from tests.web.status_helpers import T0, http_check, probe_result, record, run_marks
from tests.web.web_helpers import served_web

pytestmark = pytest.mark.integration


async def test_an_approver_applies_a_fix_in_one_click_and_sees_it_verified_live(
    browser: Browser, fresh_db_url: str, tmp_path: Path, screenshots: Path
) -> None:
    repo = make_repo(tmp_path)
    policy = policy_file(tmp_path, repo)
    settings = {"fix_policy_file": str(policy), "fix_work_root": str(tmp_path / "work")}
    async with served_web(fresh_db_url, **settings) as web:
        fix = await proposed_by_policy(web.database_url, policy)
        context, page, watch = await new_page(browser, web)
        await log_in(page, web, "approver")
        await page.goto(f"/fixes/{fix.id}")
        await expect(page.locator("#fix-state")).to_have_attribute("data-state", "proposed")
        await shoot(page, screenshots, "fix-proposed")
        await page.locator("#fix-apply").click()
        # The heal code runs in the web process; the page follows the fix's own topic.
        await expect(page.locator("#fix-state")).to_have_attribute(
            "data-state", "applied", timeout=60_000
        )
        await expect(page.locator("#fix-rollback")).to_be_visible()
        assert watch.confirmed == [
            f"Apply fix #{fix.id} (with your approval): verify it in a worktree and deliver it?"
        ]
        await shoot(page, screenshots, "fix-applied")
        assert watch.dialogs == [] and watch.errors == [] and watch.failed == []
        await context.close()


async def test_the_health_page_shows_a_check_going_down_live(
    browser: Browser, fresh_db_url: str, screenshots: Path
) -> None:
    async with served_web(fresh_db_url) as web:
        store = HealthStore(web.pool)
        await store.ensure_partitions()
        api = http_check("api")
        await store.sync_checks([api], T0)
        await run_marks(store, api, "+")
        context, page, watch = await new_page(browser, web)
        await log_in(page, web, "viewer")
        await page.goto("/health")
        row = page.locator('[data-testid="check-row"][data-check-name="api"]')
        await expect(row).to_have_attribute("data-state", "up")
        await record(store, api, probe_result(api, T0 + timedelta(minutes=1), False))
        await expect(row).to_have_attribute("data-state", "down", timeout=10_000)
        await shoot(page, screenshots, "health")
        assert watch.dialogs == [] and watch.errors == [] and watch.failed == []
        await context.close()
