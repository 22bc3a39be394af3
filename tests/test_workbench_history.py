"""Scenario 6 in real Chromium: a document's timeline, the document as it was, its hash chain."""

from __future__ import annotations

from playwright.async_api import Browser

from tests.chromium import needs_chromium, save_screenshot
from tests.support import RunningServer
from tests.workbench import VALUATION, browser, create_doc, open_doc, person, wait_for

__all__ = ["browser"]

pytestmark = needs_chromium


async def test_the_timeline_shows_who_changed_what_and_any_version_can_be_seen(
    browser: Browser, server: RunningServer
) -> None:
    """Two changes by two people appear in the timeline; version 2 shows the value it had
    then; the hash chain verifies."""
    doc = await create_doc(server, kind="valuation", title="ACME DCF", state=VALUATION)
    ann = await person(browser, server, "Ann")
    bob = await person(browser, server, "Bob")
    await open_doc(ann, doc["id"])
    await open_doc(bob, doc["id"])
    await ann.fill("#cell-growth", "12")
    await ann.keyboard.press("Enter")
    await wait_for(bob, "document.querySelector('#save-status').dataset.version === '2'")
    await bob.fill("#cell-growth", "15")
    await bob.keyboard.press("Enter")
    await wait_for(ann, "document.querySelector('#save-status').dataset.version === '3'")

    await ann.click(".tabs a:has-text('History')")
    await wait_for(ann, "document.querySelector('.history')?.dataset.ready === 'true'")
    items = await ann.locator("#timeline li").all_inner_texts()
    assert len(items) == 3, items
    assert "v3" in items[0] and "Bob" in items[0] and "Revenue growth 12 % → 15 %" in items[0]
    assert "v2" in items[1] and "Ann" in items[1] and "Revenue growth 8 % → 12 %" in items[1]
    assert "v1" in items[2] and "created the document" in items[2]

    await ann.click("#timeline button[data-version='2']")
    await wait_for(ann, "document.querySelector('#snapshot').dataset.version === '2'")
    assert "Version 2 of 3" in await ann.inner_text("#as-of")
    assert "12 %" in await ann.inner_text("#snapshot .assumptions")

    await ann.click("#verify")
    await wait_for(ann, "document.querySelector('#verify-result').textContent"
                        ".includes('Hash chain intact: 3 events verified')")
    await save_screenshot(ann, "history")

    # Back to editing: the keyboard reaches the timeline's buttons too.
    await ann.focus("#timeline button[data-version='1']")
    await ann.keyboard.press("Enter")
    await wait_for(ann, "document.querySelector('#snapshot').dataset.version === '1'")
    assert "8 %" in await ann.inner_text("#snapshot .assumptions")
