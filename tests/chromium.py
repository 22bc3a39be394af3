"""The system Chromium for browser tests, launched one way for every test module that needs it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from playwright.async_api import Browser, async_playwright

__all__ = ["CHROMIUM", "launch_chromium", "needs_chromium"]

CHROMIUM = os.environ.get("COEDIT_TEST_CHROMIUM", "/usr/bin/chromium")

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
