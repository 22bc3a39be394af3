"""The browser workbench in real Chromium: two people on one memo see each other and the edits."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page

from tests.chromium import launch_chromium, needs_chromium, save_screenshot
from tests.support import RunningServer

pytestmark = needs_chromium


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with launch_chromium() as launched:
        yield launched


async def _signed_in(browser: Browser, server: RunningServer, name: str) -> Page:
    page = await (await browser.new_context()).new_page()
    page.set_default_timeout(10_000)
    await page.goto(server.http_url + "/")
    await page.fill("#login input[name=name]", name)
    await page.click("#login button")
    await page.wait_for_function(f"document.querySelector('#who').textContent.includes('{name}')")
    return page


async def test_two_people_see_each_other_and_each_others_edits(
    browser: Browser, server: RunningServer
) -> None:
    """Ann creates and opens a memo, Bob opens it; badges show both; Ann's patch reaches Bob."""
    ann = await _signed_in(browser, server, "Ann")
    bob = await _signed_in(browser, server, "Bob")
    await ann.fill("#create input[name=title]", "ACME initiation")
    await ann.click("#create button")
    await ann.click("#list li")
    await bob.reload()
    await bob.wait_for_function("document.querySelector('#who').textContent.includes('Bob')")
    await bob.click("#list li")
    await ann.wait_for_function("document.querySelectorAll('#presence .badge').length === 2")
    assert await ann.inner_text("#presence") == "Ann (you)Bob"
    await ann.fill("#patch textarea", '[{"op": "add", "path": "/thesis", "value": "cheap"}]')
    await ann.click("#patch button")
    await bob.wait_for_function("document.querySelector('#doc-version').textContent === '2'")
    assert '"thesis": "cheap"' in await bob.inner_text("#doc-state")
    assert "v2 by Ann" in await bob.inner_text("#deltas")
    await save_screenshot(bob, "two-people-bob")
    await save_screenshot(ann, "two-people-ann")
    await bob.close()
    await ann.wait_for_function("document.querySelectorAll('#presence .badge').length === 1")


async def test_a_viewer_is_told_it_may_not_edit(browser: Browser, server: RunningServer) -> None:
    """A viewer's patch is refused and the page says why; the document does not change."""
    token = server.token(tenant="default")
    await server.create(token, title="Read only")
    page = await (await browser.new_context()).new_page()
    page.set_default_timeout(10_000)
    await page.goto(server.http_url + "/")  # no login: the anonymous viewer of tenant default
    await page.click("#list li")
    await page.click("#patch button")
    await page.wait_for_function(
        "document.querySelector('#status').textContent.startsWith('forbidden')")
    assert await page.inner_text("#doc-version") == "1"
    await save_screenshot(page, "viewer-refused")
