"""Scenarios 2 and 4 in real Chromium: a live valuation, and a conflict after working offline."""

from __future__ import annotations

import asyncio
from typing import Any

from playwright.async_api import Browser, Page

from tests.chromium import needs_chromium, save_screenshot
from tests.support import TIMEOUT, RunningServer
from tests.workbench import VALUATION, browser, create_doc, open_doc, person, wait_for

__all__ = ["browser"]

pytestmark = needs_chromium


def per_share(a: dict[str, float]) -> float:
    """The five-year DCF of docs/workbench.md, written again here to check the page's."""
    revenue, pv = a["revenue"], 0.0
    fcf = 0.0
    for year in range(1, 6):
        revenue *= 1 + a["growth"]
        fcf = revenue * a["ebit_margin"] * (1 - a["tax_rate"])
        pv += fcf / (1 + a["wacc"]) ** year
    terminal = fcf * (1 + a["terminal_growth"]) / (a["wacc"] - a["terminal_growth"])
    ev = pv + terminal / (1 + a["wacc"]) ** 5
    return (ev - a["net_debt"]) / a["shares"]


async def set_cell(page: Page, key: str, text: str) -> None:
    await page.fill(f"#cell-{key}", text)
    await page.keyboard.press("Enter")


async def shown_per_share(page: Page) -> float:
    return float((await page.inner_text("#per-share")).replace(",", ""))


async def stored(server: RunningServer, doc_id: str) -> dict[str, Any]:
    async with server.http(server.token(tenant="default")) as http:
        response = await asyncio.wait_for(http.get(f"/api/documents/{doc_id}"), TIMEOUT)
    return response.json()  # type: ignore[no-any-return]


async def test_a_cell_change_updates_everyones_figures(
    browser: Browser, server: RunningServer
) -> None:
    """Ann changes growth; Bob's table and derived figures follow, the same as Ann's."""
    doc = await create_doc(server, kind="valuation", title="ACME DCF", state=VALUATION)
    ann = await person(browser, server, "Ann")
    bob = await person(browser, server, "Bob")
    await open_doc(ann, doc["id"])
    await open_doc(bob, doc["id"])
    assert abs(await shown_per_share(bob) - per_share(VALUATION["assumptions"])) < 0.006

    await set_cell(ann, "growth", "12")
    await wait_for(bob, "document.querySelector('#cell-growth').value === '12'")
    expected = per_share({**VALUATION["assumptions"], "growth": 0.12})
    await wait_for(bob, "(v) => document.querySelector('#per-share').textContent === v",
                   f"{expected:,.2f}")
    assert await ann.inner_text("#per-share") == await bob.inner_text("#per-share")
    assert await ann.inner_text("#enterprise-value") == await bob.inner_text("#enterprise-value")
    await set_cell(bob, "shares", "200")
    halved = per_share({**VALUATION["assumptions"], "growth": 0.12, "shares": 200})
    await wait_for(ann, "(v) => document.querySelector('#per-share').textContent === v",
                   f"{halved:,.2f}")
    await save_screenshot(bob, "valuation")
    assert (await stored(server, doc["id"]))["state"]["assumptions"]["growth"] == 0.12


async def test_an_offline_edit_that_meets_a_newer_one_is_shown_beside_it(
    browser: Browser, server: RunningServer
) -> None:
    """Ann edits growth offline while Bob saves another value; back online, the refused edit
    is shown next to Bob's, and each of keep theirs, reapply mine and merge by hand works."""
    doc = await create_doc(server, kind="valuation", title="ACME DCF", state=VALUATION)
    ann = await person(browser, server, "Ann")
    bob = await person(browser, server, "Bob")
    await open_doc(ann, doc["id"])
    await open_doc(bob, doc["id"])

    async def offline_clash(mine: str, theirs: str) -> None:
        await ann.context.set_offline(True)
        await wait_for(ann, "document.querySelector('#connection').dataset.status === 'offline'")
        await set_cell(ann, "growth", mine)
        await wait_for(ann, "document.querySelector('#save-status').dataset.unsaved === '1'")
        assert "Offline: 1 unsaved change kept" in await ann.inner_text("#save-status")
        await set_cell(bob, "growth", theirs)
        await wait_for(bob, "document.querySelector('#save-status').dataset.unsaved === '0'")
        await ann.context.set_offline(False)
        await wait_for(ann, "(s) => !!document.querySelector(s)",
                       ".conflict[data-path='/assumptions/growth']")
        await wait_for(ann, f"document.querySelector('#cell-growth').value === '{theirs}'")
        card = await ann.inner_text(".conflict")
        assert f"{theirs} %" in card and f"{mine} %" in card and "Bob" in card

    await offline_clash("10", "12")
    await save_screenshot(ann, "valuation-conflict")
    await ann.click(".conflict button:has-text('Reapply mine')")
    await wait_for(bob, "document.querySelector('#cell-growth').value === '10'")
    assert await ann.locator(".conflict").count() == 0

    await offline_clash("11", "13")
    await ann.click(".conflict button:has-text('Merge by hand')")
    await ann.fill(".conflict .merge-input", "12.5")
    await ann.click(".conflict button:has-text('Save merged')")
    await wait_for(bob, "document.querySelector('#cell-growth').value === '12.5'")

    await offline_clash("9", "14")
    await ann.click(".conflict button:has-text('Keep theirs')")
    await wait_for(ann, "document.querySelector('#save-status').dataset.unsaved === '0'")
    assert await ann.locator(".conflict").count() == 0
    assert (await stored(server, doc["id"]))["state"]["assumptions"]["growth"] == 0.14
