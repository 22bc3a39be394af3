"""Ideas in real Chromium: the ideas list is the front page and stays quick with 1,000 ideas;
an idea's page shows its stages, who is on each, its reviews, and lets an analyst open or
create a stage document while a reviewer on the same page sees it all change live."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from playwright.async_api import Browser

from tests.chromium import needs_chromium, save_screenshot
from tests.support import TIMEOUT, RunningServer
from tests.workbench import MEMO, browser, metrics, person, wait_for

__all__ = ["browser"]

pytestmark = needs_chromium

READY = "document.querySelector('.idea-page')?.dataset.ready === 'true'"
CARD = "(k) => document.querySelector(`.stage-card[data-kind=${k}]`)"


async def make_idea(server: RunningServer, title: str, ticker: str | None = None,
                    **fields: Any) -> dict[str, Any]:
    token = server.token(tenant="default", name="Setup", **fields)
    async with server.http(token) as http:
        body = {"title": title, **({"ticker": ticker} if ticker else {})}
        response = await asyncio.wait_for(http.post("/api/ideas", json=body), TIMEOUT)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def stage_doc(server: RunningServer, idea: str, kind: str, title: str,
                    state: dict[str, Any]) -> dict[str, Any]:
    token = server.token(tenant="default", name="Setup")
    async with server.http(token) as http:
        response = await asyncio.wait_for(http.post("/api/documents", json={
            "kind": kind, "title": title, "state": state, "idea": idea}), TIMEOUT)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_thousand_ideas_list_quickly_and_filter_by_the_server(
    browser: Browser, server: RunningServer
) -> None:
    """The front page lists all 1,000 ideas newest first, the filter asks the server for
    words of the title or ticker, and the page's render timings are printed."""
    token = server.token(tenant="default", name="Loader")
    async with server.http(token) as http:
        async def make(n: int) -> None:
            response = await http.post("/api/ideas", json={
                "title": f"Company {n:04d} turnaround", "ticker": f"C{n:04d}"})
            assert response.status_code == 201, response.text
        for start in range(0, 1000, 50):
            await asyncio.wait_for(asyncio.gather(*(make(n) for n in range(start, start + 50))),
                                   TIMEOUT * 3)

    ann = await person(browser, server, "Ann")
    await wait_for(ann, "document.querySelector('.ideas')?.dataset.loaded === 'all'")
    assert await ann.locator("#idea-list tr").count() == 1000
    assert await ann.locator(".places a[aria-current=page]").inner_text() == "Ideas"
    figures = await metrics(ann)
    await save_screenshot(ann, "ideas-list", full_page=False)

    await ann.fill("#idea-filter", "C0042")
    await wait_for(ann, "document.querySelector('.ideas')?.dataset.loaded === 'q:C0042'")
    rows = ann.locator("#idea-list tr")
    assert await rows.count() == 1
    assert "Company 0042 turnaround" in await rows.first.inner_text()
    assert "1 idea matching" in await ann.inner_text("#idea-status")
    await ann.fill("#idea-filter", "nothing-like-this")
    await wait_for(ann, "document.querySelector('#idea-status').textContent.startsWith('No idea')")
    assert await ann.locator("#idea-list tr").count() == 0

    # The documents stay one click away.
    await ann.click(".places a[href='#/documents']")
    await wait_for(ann, "document.querySelector('.documents')?.dataset.loaded === 'true'")
    print(f"\nlist of 1,000 ideas: first page on screen {figures['ideaListFirstPaintMs']:.0f} ms, "
          f"all 1,000 in {figures['ideaListAllMs']:.0f} ms; rendering 1,000 rows alone "
          f"{figures['ideaListRenderMs']:.1f} ms")


async def test_an_idea_page_opens_its_memo_creates_a_stage_and_is_live_for_a_reviewer(
    browser: Browser, server: RunningServer
) -> None:
    """Ann opens the idea from the list and picks its memo; Rita, a reviewer on the idea's
    page, sees Ann on the memo stage, sees the valuation Ann creates from the page appear, and
    starts the review she was asked for from the idea's reviews; Rita may create nothing."""
    idea = await make_idea(server, "ACME margin recovery", "ACME")
    memo = await stage_doc(server, idea["id"], "memo", "ACME initiation memo", MEMO)
    ann = await person(browser, server, "Ann")
    rita = await person(browser, server, "Rita", role="reviewer")
    rita_id = await rita.evaluate("window.coedit.session.user.id")

    # Ann: ideas list, then the idea, by clicking as a person does.
    await wait_for(ann, "document.querySelector('.ideas')?.dataset.loaded === 'all'")
    await ann.click(f"#idea-list tr[data-id='{idea['id']}'] a")
    await wait_for(ann, READY)
    assert await ann.inner_text("#idea-title") == "ACME margin recovery"
    assert await ann.inner_text(".idea-heading .ticker") == "ACME"
    assert await ann.inner_text("#idea-state") == "No workflow yet"
    assert await ann.get_attribute(".stage-card[data-kind=memo]", "data-docs") == "1"
    assert await ann.locator(".stage-card[data-kind=valuation] button[data-create]").count() == 1
    assert await ann.locator("#idea-list").count() == 0

    await rita.goto(rita.url.split("#")[0] + f"#/i/{idea['id']}")
    await wait_for(rita, READY)
    assert await rita.locator("button[data-create]").count() == 0
    assert "No reviews yet" in await rita.inner_text("#review-list")

    # Ann picks the memo: the editor opens, and Rita's memo card says Ann is there.
    await ann.click(".stage-card[data-kind=memo] .stage-doc-link")
    await wait_for(ann, "document.querySelector('.doc-page')?.dataset.ready === 'true'")
    assert memo["id"] in ann.url
    await wait_for(rita, CARD + "?.dataset.present === '1'", "memo")
    assert await rita.get_attribute(".stage-card[data-kind=memo] .stage-here",
                                    "aria-label") == "Memo: Ann here now"

    # Back to the idea (the memo's back link goes there), then a valuation from its card.
    assert await ann.inner_text("#back-link") == "← Idea"
    await ann.click("#back-link")
    await wait_for(ann, READY)
    await wait_for(rita, CARD + "?.dataset.present === '0'", "memo")
    await ann.focus(".stage-card[data-kind=valuation] button[data-create]")
    await ann.keyboard.press("Enter")
    await wait_for(ann, "document.querySelector('.doc-page')?.dataset.ready === 'true'")
    await wait_for(ann, "document.querySelector('#doc-title').textContent"
                        ".endsWith('Valuation')")
    assert await ann.locator("#assumptions, .assumptions").count() >= 1
    await wait_for(rita, CARD + "?.dataset.docs === '1'", "valuation")
    await wait_for(rita, CARD + "?.dataset.present === '1'", "valuation")

    # A review of the memo, asked for elsewhere, reaches Rita's idea page; she starts it there.
    token = server.token(tenant="default", name="Ann", user="ann-elsewhere")
    async with server.http(token) as http:
        response = await asyncio.wait_for(http.post(
            f"/api/documents/{memo['id']}/reviews",
            json={"reviewer": {"id": rita_id, "name": "Rita"}}), TIMEOUT)
    assert response.status_code == 201, response.text
    await wait_for(rita, "document.querySelector('#review-list .review')?.dataset.status"
                         " === 'assigned'")
    assert "memo · asked by Ann" in await rita.inner_text("#review-list .review")
    await rita.click("#review-list [data-move=in_progress]")
    await wait_for(rita, "document.querySelector('#review-list .review')?.dataset.status"
                         " === 'in_progress'")
    await save_screenshot(rita, "idea-page", full_page=False)
