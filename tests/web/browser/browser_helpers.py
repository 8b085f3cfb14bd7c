"""What the browser tests share: logging a page in through the real form, watching a page for
what must never happen (a dialog from injected script, a Content-Security-Policy violation, a
failed script), and saving screenshots."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Page,
    Response,
)

from tests.web.web_helpers import ServedWeb


@dataclass
class Watch:
    """What a page did that it must not: dialogs opened (an ``alert`` from injected script),
    console errors (CSP violations among them) and uncaught exceptions; and the answers of 400
    and above it was given (``failed``: status and path), which a test compares with those it
    caused on purpose."""

    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    #: The questions our own buttons ask (``data-confirm``), answered yes; any other dialog
    #: (an ``alert`` from injected script) is recorded in ``dialogs`` and dismissed.
    confirmed: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        """Start watching ``page``."""
        page.on("dialog", self._dialog)
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("response", self._response)

    def _response(self, response: Response) -> None:
        if response.status >= 400:
            self.failed.append((response.status, urlsplit(response.url).path))

    async def _dialog(self, dialog: Dialog) -> None:
        if dialog.type == "confirm":
            self.confirmed.append(dialog.message)
            await dialog.accept()
            return
        self.dialogs.append(dialog.message)
        await dialog.dismiss()

    def _console(self, message: ConsoleMessage) -> None:
        # A failed load is in ``failed`` with its address; the rest are the page's own.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(message.text)


async def new_page(browser: Browser, web: ServedWeb) -> tuple[BrowserContext, Page, Watch]:
    """A fresh context (no cookies) and page on the dashboard, watched."""
    context = await browser.new_context(base_url=web.url, viewport={"width": 1360, "height": 900})
    page = await context.new_page()
    watch = Watch()
    watch.attach(page)
    return context, page, watch


async def log_in(page: Page, web: ServedWeb, user: str, password: str | None = None) -> None:
    """Log ``page`` in as ``user`` through the login form, as a person would."""
    await page.goto("/login")
    await page.get_by_label("User name").fill(user)
    await page.get_by_label("Password").fill(password or web.passwords[user])
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(lambda url: "/login" not in url)


async def shoot(page: Page, where: Path, name: str) -> Path:
    """A full-page screenshot of ``page`` as ``where/name.png``."""
    path = where / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
