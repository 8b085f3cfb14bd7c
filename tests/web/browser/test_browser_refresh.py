"""What a live refresh must not take from a person in a real Chromium: the boxes they ticked
for a bulk action; and what an htmx action that fails says on the page."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from tests.db_helpers import finding_of_new_issue, store_events
from tests.integration.event_factory import make_event
from tests.web.browser.browser_helpers import log_in, new_page
from tests.web.browser.test_browser_issues import PATCH, issue_of
from tests.web.web_helpers import ServedWeb

pytestmark = pytest.mark.integration


async def test_ticked_boxes_survive_a_live_refresh_of_the_list(
    browser: Browser, web: ServedWeb
) -> None:
    await store_events(web.database_url, [make_event(1), make_event(2), make_event(3)])
    context, page, watch = await new_page(browser, web)
    await log_in(page, web, "responder")
    await page.goto("/issues")
    first, second = await issue_of(web, 1), await issue_of(web, 2)
    for issue in (first, second):
        await page.locator(f'input[name="ids"][value="{issue}"]').check()
    await store_events(web.database_url, [make_event(4)])  # a refresh of the rows
    fourth = await issue_of(web, 4)
    await expect(page.locator(f'[data-issue-id="{fourth}"]')).to_be_visible(timeout=5_000)
    ticked = page.locator('input[name="ids"]:checked')
    await expect(ticked).to_have_count(2)
    values = await ticked.evaluate_all("boxes => boxes.map(box => box.value)")
    assert sorted(int(v) for v in values) == sorted([first, second])
    assert watch.dialogs == [] and watch.errors == [] and watch.failed == []
    await context.close()


async def test_an_action_that_fails_says_why_on_the_page(
    browser: Browser, web: ServedWeb, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mendline.web import _issues

    monkeypatch.setattr(_issues, "MAX_REANALYSES", 0)  # as if the process were busy
    await finding_of_new_issue(web.database_url, 1, PATCH)
    issue = await issue_of(web, 1)
    context, page, watch = await new_page(browser, web)
    await log_in(page, web, "responder")
    await page.goto(f"/issues/{issue}")
    await page.locator("#action-reanalyse").click()
    await expect(page.locator("#flash")).to_be_visible()
    await expect(page.locator("#flash")).to_contain_text("re-analyses are under way")
    assert watch.failed == [(429, f"/issues/{issue}/reanalyse")]
    await context.close()
