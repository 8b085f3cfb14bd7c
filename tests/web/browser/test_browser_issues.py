"""The issues in a real Chromium: the list a responder opens, new issues appearing on it as
the consumer's store writes them (the second one too, within the first one's wait), the issue
page with its finding marked right, and text from events shown as text."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.db_helpers import finding_of_new_issue, query, store_events
from tests.integration.event_factory import make_event
from tests.web.browser.browser_helpers import log_in, new_page, shoot
from tests.web.web_helpers import ServedWeb

pytestmark = pytest.mark.integration

SCRIPT = "<script>alert(1)</script>"
IMAGE = '"><img src=x onerror=alert(1)>'

PATCH = (
    "--- a/app/module9.py\n+++ b/app/module9.py\n@@ -19 +19 @@\n"
    "-    int(q[1])\n+    int(q.get(1, 0))\n"
)


async def issue_of(web: ServedWeb, call_site: int) -> int:
    """The id of the issue whose events come from ``call_site`` (make_event's issue number)."""
    rows = await query(
        web.database_url,
        "SELECT id FROM mendline.issues WHERE culprit LIKE $1",
        f"%handler_{call_site}",
    )
    return int(rows[0]["id"])


async def test_new_issues_appear_on_the_open_list_as_they_are_stored(
    browser: Browser, web: ServedWeb, screenshots: Path
) -> None:
    await store_events(web.database_url, [make_event(1), make_event(2)])
    context, page, watch = await new_page(browser, web)
    await log_in(page, web, "responder")
    await page.goto("/issues")
    rows = page.get_by_test_id("issue-row")
    await expect(rows).to_have_count(2)
    await store_events(web.database_url, [make_event(3)])
    third = page.locator(f'[data-testid="issue-row"][data-issue-id="{await issue_of(web, 3)}"]')
    await expect(third).to_be_visible(timeout=5_000)
    # Stored within the wait that follows the last refresh: put off, not lost.
    await store_events(web.database_url, [make_event(4)])
    fourth = page.locator(f'[data-testid="issue-row"][data-issue-id="{await issue_of(web, 4)}"]')
    await expect(fourth).to_be_visible(timeout=5_000)
    await expect(rows).to_have_count(4)
    await shoot(page, screenshots, "issues")
    assert watch.dialogs == [] and watch.errors == [] and watch.failed == []
    await context.close()


async def test_a_responder_marks_the_finding_right_on_the_issue_page(
    browser: Browser, web: ServedWeb, screenshots: Path
) -> None:
    await finding_of_new_issue(web.database_url, 1, PATCH)
    issue = await issue_of(web, 1)
    context, page, watch = await new_page(browser, web)
    await log_in(page, web, "responder")
    await page.goto("/issues")
    await page.locator(f'[data-issue-id="{issue}"] a').first.click()
    await expect(page).to_have_url(f"{web.url}/issues/{issue}")
    await expect(page.locator("#finding")).to_contain_text("the quantity is not a number")
    await expect(page.locator("#fix-patch .add")).to_contain_text("int(q.get(1, 0))")
    await shoot(page, screenshots, "issue")
    await page.locator("#verdict-note").fill("yes, q had no 1")
    await page.locator("#verdict-right").click()
    await expect(page.locator("#verdict-given")).to_contain_text("right")
    rows = await query(web.database_url, "SELECT verdict, verdict_note FROM mendline.findings")
    assert [tuple(r) for r in rows] == [("right", "yes, q had no 1")]
    assert watch.dialogs == [] and watch.errors == [] and watch.failed == []
    await context.close()


async def test_an_events_text_is_shown_as_text_and_never_runs(
    browser: Browser, web: ServedWeb
) -> None:
    hostile = make_event(1)
    hostile["exceptions"][0]["value"] = SCRIPT
    hostile["message"] = SCRIPT
    hostile["tags"] = {"region": IMAGE}
    await store_events(web.database_url, [hostile])
    issue = await issue_of(web, 1)
    context, page, watch = await new_page(browser, web)
    await log_in(page, web, "viewer")
    await page.goto("/issues")
    await expect(page.get_by_test_id("issue-row")).to_contain_text(SCRIPT)
    await page.goto(f"/issues/{issue}")
    await expect(page.locator("#issue-title")).to_contain_text(SCRIPT)
    await expect(page.locator("#event-tags")).to_contain_text(IMAGE)
    assert await page.locator("main script").count() == 0
    assert await page.locator("main img").count() == 0
    assert watch.dialogs == [] and watch.errors == []
    await context.close()
