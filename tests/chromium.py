"""The system Chromium for browser tests, launched one way for every test module that needs it."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

__all__ = ["CHROMIUM", "SCREENSHOTS", "launch_chromium", "needs_chromium", "save_screenshot"]

CHROMIUM = os.environ.get("COEDIT_TEST_CHROMIUM", "/usr/bin/chromium")

# Where browser tests leave what a person would have seen, to be looked at after a run.
SCREENSHOTS = Path(os.environ.get("COEDIT_TEST_SCREENSHOTS",
                                  Path(tempfile.gettempdir()) / "coedit-screenshots"))

needs_chromium = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"Chromium is not installed at {CHROMIUM} (scripts/test installs Debian's chromium)",
)


@asynccontextmanager
async def launch_chromium() -> AsyncIterator[Browser]:
    """A headless Chromium, closed on exit; the launch is bounded like every other await."""
    async with async_playwright() as playwright:
        launched = await asyncio.wait_for(playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        ), 30)
        try:
            yield launched
        finally:
            await launched.close()


async def save_screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Save the page as ``SCREENSHOTS/<name>.png`` (named by what it shows) and return it;
    ``full_page=False`` keeps to the window, for pages too long to picture whole."""
    os.makedirs(SCREENSHOTS, exist_ok=True)  # a local directory: no real wait
    path = SCREENSHOTS / f"{name}.png"
    await asyncio.wait_for(page.screenshot(path=str(path), full_page=full_page), 10)
    return path
