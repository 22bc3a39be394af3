"""Driving the browser workbench as people do: sign in, open a document, type, wait to see."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page

from tests.chromium import launch_chromium
from tests.support import TIMEOUT, RunningServer

__all__ = ["MEMO", "VALUATION", "browser", "create_doc", "metrics", "open_doc", "person",
           "section_text", "wait_for"]

VALUATION = {
    "currency": "USD",
    "assumptions": {"revenue": 1000, "growth": 0.08, "ebit_margin": 0.2, "tax_rate": 0.25,
                    "wacc": 0.09, "terminal_growth": 0.02, "net_debt": 250, "shares": 100},
}
MEMO = {
    "order": ["thesis", "catalysts", "risks"],
    "sections": {"thesis": {"title": "Thesis", "text": "ACME is cheap."},
                 "catalysts": {"title": "Catalysts", "text": ""},
                 "risks": {"title": "Risks", "text": "Leverage."}},
}


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with launch_chromium() as launched:
        yield launched


async def person(browser: Browser, server: RunningServer, name: str, *, role: str = "analyst",
                 tenant: str = "default") -> Page:
    """A new browser context (a person) signed in with the dev login form."""
    context: BrowserContext = await asyncio.wait_for(
        browser.new_context(viewport={"width": 1280, "height": 900}), TIMEOUT)
    context.set_default_timeout(TIMEOUT * 1000)
    page = await asyncio.wait_for(context.new_page(), TIMEOUT)
    # The page's own complaints, shown with a failing test's output.
    page.on("console", lambda m: print(f"[{name} console.{m.type}] {m.text}")
            if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: print(f"[{name} page error] {e}"))
    await page.goto(server.http_url + "/")
    await page.fill("#login input[name=name]", name)
    await page.select_option("#login select[name=role]", role)
    await page.fill("#login input[name=tenant]", tenant)
    await page.click("#login button[type=submit]")
    await wait_for(page, "document.querySelector('#connection')?.dataset.status === 'live'")
    return page


async def wait_for(page: Page, expression: str, arg: Any = None) -> Any:
    """Wait (bounded) until ``expression`` is truthy in the page; returns its value."""
    handle = await page.wait_for_function(expression, arg=arg, timeout=TIMEOUT * 1000)
    return await handle.json_value()


async def create_doc(server: RunningServer, *, kind: str, title: str,
                     state: dict[str, Any], tenant: str = "default") -> dict[str, Any]:
    token = server.token(tenant=tenant, name="Setup")
    async with server.http(token) as http:
        response = await asyncio.wait_for(
            http.post("/api/documents", json={"kind": kind, "title": title, "state": state}),
            TIMEOUT)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def open_doc(page: Page, doc_id: str) -> None:
    """Open a document by its address and wait until its editor is on screen and live."""
    await page.goto(page.url.split("#")[0] + f"#/d/{doc_id}")
    await wait_for(page, "document.querySelector('.doc-page')?.dataset.ready === 'true'")


async def section_text(page: Page, key: str) -> str:
    return str(await page.input_value(f"#text-{key}"))


async def metrics(page: Page) -> dict[str, Any]:
    return json.loads(await page.evaluate("JSON.stringify(window.coeditMetrics)"))  # type: ignore[no-any-return]
