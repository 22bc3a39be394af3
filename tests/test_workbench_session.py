"""Scenario 9 in real Chromium: signing in (dev login, a token), reconnecting by itself after a
node goes away or the network drops, and never losing or repeating a change."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from playwright.async_api import Browser

from server.session import CloseCode
from tests.chromium import needs_chromium, save_screenshot
from tests.support import TIMEOUT, RunningServer
from tests.workbench import MEMO, browser, create_doc, open_doc, person, wait_for

__all__ = ["browser"]

pytestmark = needs_chromium

SETTLED = "document.querySelector('#save-status').dataset.unsaved === '0'"
THESIS_IS = "(t) => document.querySelector('#text-thesis').value === t"


async def stored_thesis(server: RunningServer, doc_id: str) -> str:
    async with server.http(server.token(tenant="default")) as http:
        response = await asyncio.wait_for(http.get(f"/api/documents/{doc_id}"), TIMEOUT)
    return str(response.json()["state"]["sections"]["thesis"]["text"])


async def test_dev_login_shows_the_user_and_the_documents(
    browser: Browser, server: RunningServer
) -> None:
    """The sign-in form of dev mode leads to the document list with the user in the header."""
    await create_doc(server, kind="memo", title="ACME initiation", state=MEMO)
    context = await asyncio.wait_for(browser.new_context(viewport={"width": 1280, "height": 800}),
                                     TIMEOUT)
    context.set_default_timeout(TIMEOUT * 1000)
    page = await asyncio.wait_for(context.new_page(), TIMEOUT)
    await page.goto(server.http_url + "/")
    await page.wait_for_selector("#login")
    # Keyboard only: the name field has the focus, Enter sends the form.
    await page.keyboard.type("Ann Analyst")
    await save_screenshot(page, "sign-in")
    await page.keyboard.press("Enter")
    await wait_for(page, "document.querySelector('#who')?.textContent.includes('Ann Analyst')")
    await page.click(".places a[href='#/documents']")  # the front page lists ideas
    await wait_for(page, "document.querySelectorAll('#list tr').length === 1")
    assert "analyst · default" in await page.inner_text("#who")
    await save_screenshot(page, "documents")


@pytest.mark.parametrize("settings_overrides", [{"dev_auth": False}])
async def test_with_a_secret_the_page_signs_in_with_a_token(
    browser: Browser, server: RunningServer, settings_overrides: dict[str, Any]
) -> None:
    """Dev login off: the page asks for a token, refuses a bad one, and works with a good one
    over HTTP (bearer) and the WebSocket (live edits reach another user)."""
    doc = await create_doc(server, kind="memo", title="Token memo", state=MEMO)
    context = await asyncio.wait_for(browser.new_context(), TIMEOUT)
    context.set_default_timeout(TIMEOUT * 1000)
    page = await asyncio.wait_for(context.new_page(), TIMEOUT)
    await page.goto(server.http_url + "/")
    await page.wait_for_selector("#token-login")
    assert await page.locator("#login").count() == 0
    await page.fill("#token-login textarea", "not-a-token")
    await page.click("#token-login button")
    await wait_for(page, "document.querySelector('#sign-in-error').textContent.includes('token')")
    await save_screenshot(page, "sign-in-token")

    await page.fill("#token-login textarea", server.token(name="Tess", tenant="default"))
    await page.click("#token-login button")
    await wait_for(page, "document.querySelector('#connection')?.dataset.status === 'live'")
    assert "Tess" in await page.inner_text("#who")
    await open_doc(page, doc["id"])
    await page.click("#text-catalysts")
    await page.keyboard.type("New CEO.")
    await wait_for(page, SETTLED)
    async with server.http(server.token(tenant="default")) as http:
        response = await asyncio.wait_for(http.get(f"/api/documents/{doc['id']}"), TIMEOUT)
    assert response.json()["state"]["sections"]["catalysts"]["text"] == "New CEO."
    # A reload keeps the tab signed in (the token stays for the tab's session).
    await page.reload()
    await wait_for(page, "document.querySelector('#connection')?.dataset.status === 'live'")


async def test_the_page_reconnects_after_the_node_goes_away_and_resends_nothing_twice(
    browser: Browser, server: RunningServer
) -> None:
    """The server closes every session (1001 going away) while Ann and Bob type; both pages
    reconnect by themselves, resume with `since`, and hold every character exactly once."""
    doc = await create_doc(server, kind="memo", title="ACME memo", state=MEMO)
    ann = await person(browser, server, "Ann")
    bob = await person(browser, server, "Bob")
    await open_doc(ann, doc["id"])
    await open_doc(bob, doc["id"])
    await ann.click("#text-thesis")
    await ann.keyboard.press("End")
    await bob.click("#text-risks")
    await bob.keyboard.press("End")

    typing = asyncio.gather(ann.keyboard.type(" Cash rich.", delay=40),
                            bob.keyboard.type(" FX.", delay=40))
    await asyncio.sleep(0.15)
    await asyncio.wait_for(server.coedit.close_sessions(CloseCode.GOING_AWAY, within=5.0),
                           TIMEOUT)
    await asyncio.wait_for(typing, TIMEOUT)
    for page in (ann, bob):
        await wait_for(page, "document.querySelector('#connection').dataset.status === 'live'")
        await wait_for(page, SETTLED)
        await wait_for(page, THESIS_IS, "ACME is cheap. Cash rich.")
        await wait_for(page, "document.querySelector('#text-risks').value === 'Leverage. FX.'")
    assert await stored_thesis(server, doc["id"]) == "ACME is cheap. Cash rich."
    assert await ann.evaluate("coedit.wire.connections") >= 2


async def test_text_typed_offline_is_merged_with_what_others_typed_meanwhile(
    browser: Browser, server: RunningServer
) -> None:
    """Ann types in the thesis offline while Bob types in it online; back online, her splices
    rebase over his and both pages show both sentences, each once."""
    doc = await create_doc(server, kind="memo", title="ACME memo", state=MEMO)
    ann = await person(browser, server, "Ann")
    bob = await person(browser, server, "Bob")
    await open_doc(ann, doc["id"])
    await open_doc(bob, doc["id"])
    await ann.context.set_offline(True)
    await wait_for(ann, "document.querySelector('#connection').dataset.status === 'offline'")
    await ann.click("#text-thesis")
    await ann.keyboard.press("End")
    await ann.keyboard.type(" Net cash.")
    assert "unsaved" in await ann.inner_text("#save-status")
    await save_screenshot(ann, "memo-offline")
    await bob.click("#text-thesis")
    await bob.keyboard.press("Control+Home")
    await bob.keyboard.type("Buy. ")
    await wait_for(bob, SETTLED)
    await ann.context.set_offline(False)
    expected = "Buy. ACME is cheap. Net cash."
    for page in (ann, bob):
        await wait_for(page, THESIS_IS, expected)
        await wait_for(page, SETTLED)
    assert await stored_thesis(server, doc["id"]) == expected
    assert await ann.locator(".conflict").count() == 0
