"""Scenario 3 in real Chromium: locks on a section and a cell, seen by everyone as they change."""

from __future__ import annotations

import asyncio

from playwright.async_api import Browser

from tests.chromium import needs_chromium, save_screenshot
from tests.support import TIMEOUT, RunningServer
from tests.workbench import MEMO, VALUATION, browser, create_doc, open_doc, person, wait_for

__all__ = ["browser"]

pytestmark = needs_chromium


async def test_a_locked_section_is_closed_to_others_until_released_or_taken_over(
    browser: Browser, server: RunningServer
) -> None:
    """Ann locks the thesis: Bob sees who holds it and cannot type; release, a take-over by an
    admin and the holder leaving are each shown as they happen."""
    doc = await create_doc(server, kind="memo", title="ACME memo", state=MEMO)
    ann = await person(browser, server, "Ann")
    bob = await person(browser, server, "Bob")
    ada = await person(browser, server, "Ada", role="admin")
    for page in (ann, bob, ada):
        await open_doc(page, doc["id"])

    await ann.click("[aria-label='Lock section Thesis']")
    await wait_for(bob, "document.querySelector('[data-key=thesis] .lock-badge')?.textContent"
                        ".includes('Locked by Ann')")
    assert await bob.get_attribute("[data-key=thesis] .lock-badge", "aria-label") == (
        "section Thesis locked by Ann")
    assert await bob.locator("#text-thesis").get_attribute("readonly") is not None
    await bob.click("#text-thesis")
    await bob.keyboard.type("Bob was here ")
    assert await bob.input_value("#text-thesis") == "ACME is cheap."
    await save_screenshot(bob, "memo-locked")

    await ann.click("[aria-label='Unlock section Thesis']")
    await wait_for(bob, "!document.querySelector('[data-key=thesis] .lock-badge')")
    await wait_for(bob, "!document.querySelector('#text-thesis').readOnly")

    # A stolen lock: Ada (admin) takes over Ann's lock; Ann is told, Bob sees the new holder.
    await ann.click("[aria-label='Lock section Risks']")
    take_over = "[aria-label='Take over the lock on section Risks']"
    await wait_for(ada, "(s) => !!document.querySelector(s)", take_over)
    await ada.click(take_over)
    await wait_for(ann, "document.querySelector('#notices')?.textContent"
                        ".includes('Your lock on Risks was taken over by an admin')")
    await wait_for(bob, "document.querySelector('[data-key=risks] .lock-badge')?.textContent"
                        ".includes('Locked by Ada')")
    await wait_for(ann, "document.querySelector('#text-risks').readOnly")
    await save_screenshot(ann, "memo-lock-stolen")

    # The holder goes away: the lock ends and the others can type again.
    await ada.context.close()
    await wait_for(bob, "document.querySelector('#notices')?.textContent"
                        ".includes(\"Ada's lock on Risks ended\")")
    await wait_for(bob, "!document.querySelector('#text-risks').readOnly")


async def test_a_locked_cell_cannot_be_changed_by_another(
    browser: Browser, server: RunningServer
) -> None:
    """Bob locks the WACC cell; Ann sees his name on it and her input is read only."""
    doc = await create_doc(server, kind="valuation", title="ACME DCF", state=VALUATION)
    ann = await person(browser, server, "Ann")
    bob = await person(browser, server, "Bob")
    await open_doc(ann, doc["id"])
    await open_doc(bob, doc["id"])
    await bob.click("[aria-label='Lock Discount rate (WACC)']")
    await wait_for(ann, "document.querySelector('tr[data-key=wacc] .lock-badge')?.textContent"
                        ".includes('Locked by Bob')")
    assert await ann.locator("#cell-wacc").get_attribute("readonly") is not None
    await bob.fill("#cell-wacc", "10")
    await bob.keyboard.press("Enter")
    await wait_for(ann, "document.querySelector('#cell-wacc').value === '10'")
    await bob.click("[aria-label='Unlock Discount rate (WACC)']")
    await wait_for(ann, "!document.querySelector('#cell-wacc').readOnly")


async def test_a_lapsed_lock_is_shown_as_expired_and_the_section_opens_again(
    browser: Browser, server: RunningServer
) -> None:
    """A script holds the risks section over HTTP (its lease is not renewed by any
    connection); when the lease runs out, the open page says the lock expired and lets the
    analyst type there again."""
    doc = await create_doc(server, kind="memo", title="ACME memo", state=MEMO)
    ann = await person(browser, server, "Ann")
    await open_doc(ann, doc["id"])
    bot = server.token(tenant="default", name="Feed bot", roles=["bot"])
    async with server.http(bot) as http:
        response = await asyncio.wait_for(
            http.post(f"/api/documents/{doc['id']}/locks",
                      json={"path": "/sections/risks", "ttl_ms": 1500}), TIMEOUT)
    assert response.status_code in (200, 201), response.text
    await wait_for(ann, "document.querySelector('[data-key=risks] .lock-badge')?.textContent"
                        ".includes('Locked by Feed bot')")
    assert await ann.locator("#text-risks").get_attribute("readonly") is not None
    await wait_for(ann, "document.querySelector('#notices')?.textContent"
                        ".includes(\"Feed bot's lock on Risks expired\")")
    await wait_for(ann, "!document.querySelector('[data-key=risks] .lock-badge')")
    await wait_for(ann, "!document.querySelector('#text-risks').readOnly")
    await save_screenshot(ann, "memo-lock-expired")
