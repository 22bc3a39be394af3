"""Scenario 1 in real Chromium: two analysts write one memo together and see each other."""

from __future__ import annotations

import asyncio

from playwright.async_api import Browser

from tests.chromium import needs_chromium, save_screenshot
from tests.support import TIMEOUT, RunningServer
from tests.workbench import MEMO, browser, create_doc, open_doc, person, section_text, wait_for

__all__ = ["browser"]

pytestmark = needs_chromium


async def test_two_analysts_typing_in_one_section_both_keep_their_words(
    browser: Browser, server: RunningServer
) -> None:
    """Ann and Bob type into the thesis at the same time; both pages end with both sentences."""
    doc = await create_doc(server, kind="memo", title="ACME initiation", state=MEMO)
    ann = await person(browser, server, "Ann")
    bob = await person(browser, server, "Bob")
    await open_doc(ann, doc["id"])
    await open_doc(bob, doc["id"])
    await wait_for(ann, "document.querySelectorAll('.people .person').length === 2")

    # Ann types at the end, Bob at the start, keystroke by keystroke, at the same time.
    await ann.click("#text-thesis")
    await ann.keyboard.press("End")
    await bob.click("#text-thesis")
    await bob.keyboard.press("Control+Home")
    await asyncio.wait_for(asyncio.gather(
        ann.keyboard.type(" Margins will double.", delay=15),
        bob.keyboard.type("Buy. ", delay=15),
    ), TIMEOUT * 2)
    expected = "Buy. ACME is cheap. Margins will double."
    for page in (ann, bob):
        await wait_for(page, "(t) => document.querySelector('#text-thesis').value === t", expected)
        await wait_for(page, "document.querySelector('#save-status').dataset.unsaved === '0'")
    # Each sees the other in the header and a mark on the section the other is in.
    await wait_for(ann, "document.querySelector('[data-key=thesis] .focus-mark')?.textContent"
                        ".includes('Bob is here')")
    assert "Ann" in await bob.inner_text("[data-key=thesis] .focus-mark")
    await save_screenshot(ann, "memo-two-analysts")

    async with server.http(server.token(tenant="default")) as http:
        stored = (await asyncio.wait_for(http.get(f"/api/documents/{doc['id']}"), TIMEOUT)).json()
    assert stored["state"]["sections"]["thesis"]["text"] == expected


async def test_stage_badges_and_people_here_follow_who_opens_what(
    browser: Browser, server: RunningServer
) -> None:
    """The header counts people per stage; the document shows its people and drops a leaver."""
    memo = await create_doc(server, kind="memo", title="ACME memo", state=MEMO)
    ann = await person(browser, server, "Ann")
    bob = await person(browser, server, "Bob")
    await open_doc(ann, memo["id"])
    await open_doc(bob, memo["id"])
    await wait_for(ann, "document.querySelector('[data-kind=memo] .stage-count')"
                        ".textContent === '2'")
    label = await ann.get_attribute("[data-kind=memo] .stage-badge", "aria-label")
    assert label is not None and "Ann" in label and "Bob" in label
    assert await ann.get_attribute("[data-kind=valuation] .stage-badge", "aria-label") == (
        "Valuation stage: nobody")
    await bob.context.close()
    await wait_for(ann, "document.querySelectorAll('.people .person').length === 1")
    await wait_for(ann, "document.querySelector('[data-kind=memo] .stage-count')"
                        ".textContent === '1'")


async def test_sections_can_be_added_and_titles_renamed(
    browser: Browser, server: RunningServer
) -> None:
    """A new section and a renamed title reach the other analyst."""
    memo = await create_doc(server, kind="memo", title="ACME memo", state=MEMO)
    ann = await person(browser, server, "Ann")
    bob = await person(browser, server, "Bob")
    await open_doc(ann, memo["id"])
    await open_doc(bob, memo["id"])
    await ann.fill(".add-section input", "Management")
    await ann.click(".add-section button")
    await ann.keyboard.type("Founder-led.")
    await wait_for(bob, "document.querySelector('#text-management')?.value === 'Founder-led.'")
    await bob.fill("#title-risks", "Key risks")
    await bob.keyboard.press("Enter")
    await wait_for(ann, "document.querySelector('#title-risks').value === 'Key risks'")
    assert await section_text(ann, "management") == "Founder-led."
