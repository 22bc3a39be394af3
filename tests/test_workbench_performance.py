"""Volumes in real Chromium: a list of 1,000 documents and a memo of 200 sections stay quick.

Timings are measured in the page (performance.now) and printed, never asserted: speed is
compared in bench/, not judged in tests. What is asserted is that everything arrives.
"""

from __future__ import annotations

import asyncio
import statistics
from typing import Any

import pytest
from playwright.async_api import Browser

from tests.chromium import needs_chromium, save_screenshot
from tests.support import TIMEOUT, RunningServer
from tests.workbench import browser, create_doc, metrics, open_doc, person, wait_for

__all__ = ["browser"]

pytestmark = [needs_chromium,
              # The figures concern the page; one database backend is enough to serve it.
              pytest.mark.parametrize("backend", ["sqlite"], indirect=True)]

PROSE = ("Management guides to margin expansion as the new plant ramps; pricing held through "
         "the downturn and the order book covers most of next year. ") * 3


def big_memo(sections: int) -> dict[str, Any]:
    keys = [f"s{n:03d}" for n in range(sections)]
    return {"order": keys,
            "sections": {k: {"title": f"Section {n + 1}", "text": PROSE}
                         for n, k in enumerate(keys)}}


async def test_a_thousand_documents_and_a_memo_of_two_hundred_sections(
    browser: Browser, server: RunningServer
) -> None:
    """The list shows all 1,000 documents; a 200-section memo renders, and remote edits in
    the middle of it reach the other page; the page's timings are printed."""
    token = server.token(tenant="default", name="Loader")
    async with server.http(token) as http:
        async def make(n: int) -> None:
            response = await http.post("/api/documents", json={
                "kind": "memo" if n % 3 else "valuation", "title": f"Company {n:04d} note",
                "state": {}})
            assert response.status_code == 201, response.text
        for start in range(0, 999, 50):
            batch = range(start, min(start + 50, 999))
            await asyncio.wait_for(asyncio.gather(*(make(n) for n in batch)), TIMEOUT * 3)
    memo = await create_doc(server, kind="memo", title="ACME deep dive", state=big_memo(200))

    ann = await person(browser, server, "Ann")
    await ann.click(".places a[href='#/documents']")  # the front page lists ideas
    await wait_for(ann, "document.querySelector('.documents')?.dataset.loaded === 'true'")
    assert await ann.locator("#list tr").count() == 1000
    await ann.fill("#filter", "Company 0042")
    await wait_for(ann, "document.querySelectorAll('#list tr').length === 1")
    list_figures = await metrics(ann)
    await ann.fill("#filter", "")
    await wait_for(ann, "document.querySelectorAll('#list tr').length === 1000")
    list_figures["listRenderMs"] = (await metrics(ann))["listRenderMs"]

    bob = await person(browser, server, "Bob")
    await open_doc(ann, memo["id"])
    await open_doc(bob, memo["id"])
    assert await ann.locator(".section").count() == 200
    open_figures = await metrics(ann)
    await bob.click("#text-s100")
    await bob.keyboard.press("Control+Home")
    await bob.keyboard.type("Update: ", delay=30)
    await wait_for(ann, "document.querySelector('#text-s100').value.startsWith('Update: ')")
    await wait_for(ann, "window.coeditMetrics.remoteApplyMs.length >= 1")
    applied = (await metrics(ann))["remoteApplyMs"]
    await save_screenshot(ann, "memo-200-sections", full_page=False)

    print(f"\nlist of 1,000: first page rendered in {list_figures['listFirstPaintMs']:.0f} ms, "
          f"all 1,000 in {list_figures['listAllMs']:.0f} ms; "
          f"rendering 1,000 rows alone {list_figures['listRenderMs']:.1f} ms")
    print(f"memo of 200 sections: on screen {open_figures['docFirstRenderMs']:.0f} ms after "
          f"opening, building the editor alone {open_figures['docRenderMs']:.1f} ms")
    print(f"remote delta applied and rendered: median {statistics.median(applied):.2f} ms, "
          f"max {max(applied):.2f} ms over {len(applied)} deltas")
