"""Every page of the dashboard in a real Chromium with data on it, as an admin: each renders
with no script error, no Content-Security-Policy violation and no failed request, and is saved
as a screenshot (the CI artefacts; a few are copied into docs/screenshots by hand)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from mendline.sinks.postgres import HealthStore
from tests.db_helpers import store_events
from tests.integration.event_factory import make_event
from tests.web.browser.browser_helpers import log_in, new_page, shoot
from tests.web.fixes_helpers import proposed_fix
from tests.web.status_helpers import http_check, run_marks, settle_deliveries
from tests.web.web_helpers import ServedWeb

pytestmark = pytest.mark.integration

#: Each page, the element that shows it rendered, and its screenshot's name.
PAGES = [
    ("/", "#card-metrics", "overview"),
    ("/issues", '[data-testid="issue-row"]', "issues-many"),
    ("/fixes", '[data-testid="fix-row"]', "fixes"),
    ("/health", '[data-testid="check-row"]', "health-list"),
    ("/alerts", "#alerts-live", "alerts"),
    ("/audit", "#chain-status", "audit"),
    ("/admin", "main table", "admin"),
]


async def test_every_page_renders_cleanly_with_data(
    browser: Browser,
    web: ServedWeb,
    tmp_path: Path,
    screenshots: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = datetime.now(UTC)
    batch = []
    for issue in range(1, 9):
        for n in range(issue * 3):
            event = make_event(issue, n, service=("orders", "billing", "auth")[issue % 3])
            at = now - timedelta(minutes=7 * n + issue)
            event["timestamp"] = at.isoformat().replace("+00:00", "Z")
            batch.append(event)
    await store_events(web.database_url, batch)
    await proposed_fix(web.database_url, issue=20)
    store = HealthStore(web.pool)
    await store.ensure_partitions()
    checks = [http_check("api"), http_check("checkout")]
    await store.sync_checks(checks, now - timedelta(hours=1))
    await run_marks(store, checks[0], "+++++-++++", now - timedelta(minutes=20))
    await run_marks(store, checks[1], "++++++----", now - timedelta(minutes=20))
    monkeypatch.setenv("STATUS_TEST_HOOK", "http://127.0.0.1:9/hook")
    await settle_deliveries(web.pool, tmp_path, "connection refused")
    context, page, watch = await new_page(browser, web)
    await log_in(page, web, "admin")
    for path, shown, name in PAGES:
        await page.goto(path)
        await expect(page.locator(shown).first).to_be_visible()
        await shoot(page, screenshots, name)
    assert watch.dialogs == [] and watch.errors == [] and watch.failed == []
    await context.close()
