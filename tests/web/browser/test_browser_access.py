"""Logging in and out, and what a role may not do, in a real Chromium: the login form, the
session cookie out of scripts' reach, a viewer without the fix buttons whose forged POST is
refused, and another site's form refused by the CSRF checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.web.browser.browser_helpers import log_in, new_page, shoot
from tests.web.fixes_helpers import fix_now, proposed_fix
from tests.web.web_helpers import ServedWeb

pytestmark = pytest.mark.integration


async def test_logging_in_and_out_through_the_form(
    browser: Browser, web: ServedWeb, screenshots: Path
) -> None:
    context, page, watch = await new_page(browser, web)
    await page.goto("/fixes")
    await expect(page).to_have_url(f"{web.url}/login?next=/fixes")
    await shoot(page, screenshots, "login")
    await page.get_by_label("User name").fill("viewer")
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_test_id("login-error")).to_be_visible()
    await page.get_by_label("Password").fill(web.passwords["viewer"])
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url(f"{web.url}/fixes")
    cookies = {c["name"]: c for c in await context.cookies()}
    assert cookies["mendline_session"]["httpOnly"] is True
    assert cookies["mendline_session"]["sameSite"] == "Lax"
    assert "mendline_session" not in await page.evaluate("document.cookie")
    await page.get_by_role("button", name="Log out").click()
    await expect(page).to_have_url(f"{web.url}/login")
    await page.goto("/fixes")
    await expect(page).to_have_url(f"{web.url}/login?next=/fixes")
    assert watch.dialogs == [] and watch.errors == []
    assert watch.failed == [(401, "/login")]  # the wrong password
    await context.close()


async def test_a_viewer_sees_no_fix_buttons_and_a_forged_post_is_refused(
    browser: Browser, web: ServedWeb
) -> None:
    fix = await proposed_fix(web.database_url)
    context, page, watch = await new_page(browser, web)
    await log_in(page, web, "viewer")
    await page.goto(f"/fixes/{fix.id}")
    await expect(page.locator("#fix-state")).to_be_visible()
    assert await page.locator("#fix-apply").count() == 0
    assert await page.get_by_role("button", name="Approve").count() == 0
    # The viewer forges the approver's request with their own session and its CSRF token.
    csrf = await page.locator('meta[name="csrf-token"]').get_attribute("content")
    forged = await page.request.post(
        f"/fixes/{fix.id}/apply", headers={"X-CSRF-Token": csrf or "", "Origin": web.url}
    )
    assert forged.status == 403
    assert (await fix_now(web.database_url, fix.id)).state == "proposed"
    assert watch.dialogs == [] and watch.errors == [] and watch.failed == []
    await context.close()


async def test_another_sites_form_cannot_act_with_the_session(
    browser: Browser, web: ServedWeb
) -> None:
    fix = await proposed_fix(web.database_url)
    context, page, _ = await new_page(browser, web)
    await log_in(page, web, "approver")
    # A page of another origin (another port) that posts to the dashboard with the
    # approver's cookie (same site, so SameSite=Lax sends it): only CSRF checks stop it.
    attacker = await context.new_page()
    await attacker.route(
        "http://127.0.0.1:9/evil",
        lambda route: route.fulfill(
            content_type="text/html",
            body=(
                f'<form id="f" method="post" action="{web.url}/fixes/{fix.id}/approve">'
                '<input name="note" value="pwned"></form>'
                "<script>document.getElementById('f').submit()</script>"
            ),
        ),
    )
    async with attacker.expect_navigation(url=f"{web.url}/fixes/{fix.id}/approve"):
        await attacker.goto("http://127.0.0.1:9/evil")
    assert "403" in await attacker.content()
    now = await fix_now(web.database_url, fix.id)
    assert (now.state, now.approvals) == ("proposed", ())
    await context.close()
