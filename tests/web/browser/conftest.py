"""A real headless Chromium (Debian's ``chromium`` package: Playwright's own browser download
is not reachable from here) driven by Playwright's async API, in the test's event loop, so the
dashboard served by the same loop answers it. Screenshots go to ``.artifacts/screenshots``.

These tests are never skipped: without a Chromium they fail, saying how to install one (the
README's test command does)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

#: The flags a root, offline, headless Chromium needs here: no sandbox (root), no GPU, and none
#: of the background connections this machine's closed network refuses.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
)

SCREENSHOTS = Path(__file__).resolve().parents[3] / ".artifacts" / "screenshots"


def chromium_path() -> str:
    """The Chromium to drive: ``MENDLINE_CHROMIUM``, else ``chromium`` on PATH."""
    found = os.environ.get("MENDLINE_CHROMIUM") or shutil.which("chromium")
    if found is None:
        pytest.fail(
            "no Chromium: install Debian's package (`apt-get install chromium`, as the README's"
            " test command does) or set MENDLINE_CHROMIUM to a Chromium binary"
        )
    return found


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """A headless Chromium for the test, closed after it."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium_path(), args=list(CHROMIUM_ARGS), headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def screenshots() -> Path:
    """Where the tests save their screenshots (kept as CI artefacts)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
