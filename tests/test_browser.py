"""What the old dev console proved, in the workbench: a viewer may look but not write."""

from __future__ import annotations

import asyncio

from playwright.async_api import Browser

from tests.chromium import needs_chromium, save_screenshot
from tests.support import TIMEOUT, RunningServer
from tests.workbench import MEMO, browser, create_doc, open_doc, person, wait_for

__all__ = ["browser"]

pytestmark = needs_chromium


async def test_a_guest_reads_but_a_forced_write_is_refused_and_shown(
    browser: Browser, server: RunningServer
) -> None:
    """The anonymous guest sees the memo read only; a write pushed past the UI is refused
    with `forbidden`, shown as such, and the document does not change."""
    doc = await create_doc(server, kind="memo", title="Read only", state=MEMO)
    context = await asyncio.wait_for(browser.new_context(), TIMEOUT)
    context.set_default_timeout(TIMEOUT * 1000)
    page = await asyncio.wait_for(context.new_page(), TIMEOUT)
    await page.goto(server.http_url + "/")
    await page.click("text=Browse as a guest (read only)")
    await page.click(".places a[href='#/documents']")  # the front page lists ideas
    await wait_for(page, "document.querySelectorAll('#list tr').length === 1")
    assert await page.locator("#create").count() == 0
    await page.click("#list a")
    await wait_for(page, "document.querySelector('.doc-page')?.dataset.ready === 'true'")
    assert "Read only" in await page.inner_text("#read-only-note")
    assert await page.locator("#text-thesis").get_attribute("readonly") is not None
    assert await page.locator("[aria-label='Lock section Thesis']").count() == 0

    await page.evaluate("coedit.sync.edit([{op: 'splice', path: '/sections/thesis/text', "
                        "at: 0, remove: 0, insert: 'Sell. '}])")
    await wait_for(page, "document.querySelector('.conflict')?.textContent"
                         ".includes('You may not edit this document')")
    await wait_for(page, "document.querySelector('#text-thesis').value === 'ACME is cheap.'")
    await save_screenshot(page, "viewer-refused")
    await page.click(".conflict button:has-text('Discard mine')")
    assert await page.locator(".conflict").count() == 0
    async with server.http(server.token(tenant="default")) as http:
        stored = (await asyncio.wait_for(http.get(f"/api/documents/{doc['id']}"), TIMEOUT)).json()
    assert stored["version"] == 1


async def test_a_reviewer_sees_edits_live_without_edit_controls(
    browser: Browser, server: RunningServer
) -> None:
    """A signed-in reviewer follows an analyst's typing but has no lock or edit controls."""
    doc = await create_doc(server, kind="memo", title="ACME memo", state=MEMO)
    ann = await person(browser, server, "Ann")
    rita = await person(browser, server, "Rita", role="reviewer")
    await open_doc(ann, doc["id"])
    await open_doc(rita, doc["id"])
    assert await rita.locator(".lock-button").count() == 0
    await ann.click("#text-catalysts")
    await ann.keyboard.type("Spin-off in Q3.")
    await wait_for(rita, "document.querySelector('#text-catalysts').value === 'Spin-off in Q3.'")
    assert await rita.locator("#text-catalysts").get_attribute("readonly") is not None
