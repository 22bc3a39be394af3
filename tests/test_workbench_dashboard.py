"""Scenario 8 in real Chromium: the dashboard follows the team's event stream live.

One browser context watches the dashboard while others (browser contexts and plain HTTP
clients) change things. What the dashboard shows is compared with what the server says:
its event stream (``GET /api/events``), its locks, reviews and workflows.
"""

from __future__ import annotations

import asyncio
import collections
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page

from tests.chromium import needs_chromium, save_screenshot
from tests.support import TIMEOUT, RunningServer
from tests.workbench import MEMO, VALUATION, browser, open_doc, person, wait_for

__all__ = ["browser"]

pytestmark = needs_chromium

TENANT = "default"
READY = "document.querySelector('.dashboard')?.dataset.ready === 'true'"
LIVE = "document.querySelector('#stream-status')?.dataset.state === 'live'"
FEED_SEQS = "[...document.querySelectorAll('#feed tr[data-seq]')].map((r) => Number(r.dataset.seq))"
LEGEND = ("Object.fromEntries([...document.querySelectorAll('#chart-legend [data-type]')]"
          ".map((b) => [b.dataset.type, Number(b.dataset.count)]))")


class Team:
    """HTTP clients of the tenant, one per person, for the changes the test makes."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.clients: dict[str, httpx.AsyncClient] = {}

    def of(self, who: str, role: str = "analyst") -> httpx.AsyncClient:
        if who not in self.clients:
            token = self.server.token(user=who, name=who.title(), roles=[role], tenant=TENANT)
            self.clients[who] = self.server.http(token)
        return self.clients[who]

    async def call(self, who: str, method: str, path: str, body: Any = None, *,
                   role: str = "analyst", expect: int = 200, **headers: str) -> Any:
        response = await asyncio.wait_for(
            self.of(who, role).request(method, path, json=body, headers=headers), TIMEOUT)
        assert response.status_code == expect, response.text
        return response.json()

    async def patch(self, who: str, doc: str, version: int, path: str, value: Any) -> int:
        answer = await self.call(who, "PATCH", f"/api/documents/{doc}",
                                 [{"op": "replace", "path": path, "value": value}],
                                 **{"If-Match": f'"{version}"'})
        return int(answer["version"])

    async def events(self, **params: str) -> list[dict[str, Any]]:
        """Every event of the tenant (matching ``params``), in seq order."""
        found: list[dict[str, Any]] = []
        cursor = ""
        while True:
            query = {"limit": "1000", **params, **({"cursor": cursor} if cursor else {})}
            response = await asyncio.wait_for(self.of("auditor", "viewer").get(
                "/api/events", params=query), TIMEOUT)
            page = response.json()
            found += page["events"]
            if not page["next"]:
                return found
            cursor = page["next"]

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()


async def open_dashboard(page: Page, query: str = "") -> None:
    await page.goto(page.url.split("#")[0] + f"#/dashboard{query}")
    await wait_for(page, READY)


async def feed_seqs(page: Page) -> list[int]:
    return list(await page.evaluate(FEED_SEQS))


async def seed(team: Team) -> dict[str, Any]:
    """Two ideas with documents, reviews (one overdue), a running workflow and a lock."""
    acme = await team.call("ann", "POST", "/api/ideas", {"title": "ACME Corp", "ticker": "ACME"},
                           expect=201)
    globex = await team.call("ann", "POST", "/api/ideas", {"title": "Globex", "ticker": "GBX"},
                             expect=201)
    memo = await team.call("ann", "POST", "/api/documents", {
        "kind": "memo", "title": "ACME initiation", "state": MEMO, "idea": acme["id"]}, expect=201)
    model = await team.call("bob", "POST", "/api/documents", {
        "kind": "valuation", "title": "ACME DCF", "state": VALUATION, "idea": acme["id"]},
        expect=201)
    thesis = await team.call("cho", "POST", "/api/documents", {
        "kind": "memo", "title": "Globex thesis", "state": MEMO, "idea": globex["id"]}, expect=201)
    version = 1
    for n in range(3):
        version = await team.patch("ann", memo["id"], version, "/sections/risks/text",
                                   f"Leverage, draft {n}.")
    await team.patch("bob", model["id"], 1, "/assumptions/growth", 0.09)
    await team.patch("cho", thesis["id"], 1, "/sections/thesis/text", "Globex compounds.")
    now = datetime.now(UTC)
    late = await team.call("ann", "POST", f"/api/documents/{memo['id']}/reviews", {
        "reviewer": {"id": "rita", "name": "Rita"}, "due": (now - timedelta(days=2)).isoformat()},
        expect=201)
    soon = await team.call("cho", "POST", f"/api/documents/{thesis['id']}/reviews", {
        "reviewer": {"id": "rex", "name": "Rex"}, "due": (now + timedelta(days=5)).isoformat()},
        expect=201)
    template = await team.call("ada", "POST", "/api/workflows/templates", {
        "name": "Investment committee", "steps": [
            {"key": "research", "title": "Research", "action": "approval", "role": "analyst"},
            {"key": "model", "title": "Build the model", "action": "approval", "role": "analyst",
             "after": ["research"]},
            {"key": "vote", "title": "Committee vote", "action": "approval", "role": "admin",
             "after": ["model"]}]}, role="admin", expect=201)
    await team.call("ada", "POST", f"/api/workflows/templates/{template['id']}/publish",
                    role="admin")
    flow = await team.call("ann", "POST", f"/api/workflows/templates/{template['id']}/instantiate",
                           {"idea": acme["id"]}, expect=201)
    await team.call("ann", "POST", f"/api/workflows/steps/{flow['steps'][0]['id']}/start", {})
    lock = await team.call("bob", "POST", f"/api/documents/{model['id']}/locks",
                           {"path": "/assumptions/wacc", "ttl_ms": 600_000}, expect=201)
    return {"acme": acme, "globex": globex, "memo": memo, "model": model, "thesis": thesis,
            "late": late, "soon": soon, "flow": flow, "lock": lock["lock"]}


def per_type(events: list[dict[str, Any]]) -> dict[str, int]:
    return dict(collections.Counter(e["type"] for e in events))


async def test_events_appear_live_counted_per_type_with_presence_and_locks(
    browser: Browser, server: RunningServer
) -> None:
    """Dana's dashboard shows what the team did in the last hour and then, without a reload,
    each new event once, counted under its type; Ann opening a memo appears on the memo stage,
    and her lock appears in the locks panel and goes when she releases it."""
    team = Team(server)
    try:
        world = await seed(team)
        dana = await person(browser, server, "Dana", role="viewer")
        await open_dashboard(dana)
        events = await team.events()
        assert await feed_seqs(dana) == [e["seq"] for e in reversed(events)]
        assert await dana.evaluate(LEGEND) == per_type(events)
        assert await dana.get_attribute("#chart-total", "data-total") == str(len(events))
        assert await dana.get_attribute("#tile-events", "data-value") == str(len(events))
        # The seeded lock, the overdue review first in the queue, the running workflow.
        lock_row = dana.locator(f"#lock-list li[data-doc='{world['model']['id']}']")
        assert "ACME DCF" in await lock_row.inner_text()
        assert "cell wacc" in await lock_row.inner_text()
        assert "Bob" in await lock_row.inner_text()
        first = dana.locator("#review-queue .queue-item").first
        assert await first.get_attribute("data-overdue") == "true"
        assert await dana.get_attribute("#step-states [data-state=in_progress]", "data-count") == "1"
        assert await dana.get_attribute("#step-states [data-state=pending]", "data-count") == "2"

        # Ann works in the browser: she opens the memo (presence) and locks a section.
        ann = await person(browser, server, "Ann")
        await open_doc(ann, world["memo"]["id"])
        await wait_for(dana, "[...document.querySelectorAll('#stage-board [data-kind=memo] "
                             ".stage-person')].some((p) => p.textContent.includes('Ann'))")
        assert "ACME initiation" in await dana.inner_text("#stage-board [data-kind=memo]")
        await ann.click(".section[data-key=thesis] .lock-button")
        await wait_for(dana, "document.querySelectorAll('#lock-list li[data-path]').length === 2")
        assert "section thesis" in await dana.inner_text(
            f"#lock-list li[data-doc='{world['memo']['id']}']")
        # She types: each accepted write is one more edit on the dashboard, live.
        edits = per_type(events)["patch.applied"]
        await ann.click("#text-thesis")
        await ann.keyboard.press("End")
        await ann.keyboard.type(" Cheap.", delay=40)
        await wait_for(ann, "document.querySelector('#save-status')?.textContent"
                            ".includes('All changes saved')")
        events = await team.events()
        assert per_type(events)["patch.applied"] > edits
        await wait_for(dana, f"document.querySelector('#chart-total').dataset.total === '{len(events)}'")
        assert await dana.evaluate(LEGEND) == per_type(events)
        assert await feed_seqs(dana) == [e["seq"] for e in reversed(events)]
        await save_screenshot(dana, "dashboard", full_page=True)

        # The lock released in the browser leaves the dashboard too.
        await ann.click(".section[data-key=thesis] .lock-button")
        await wait_for(dana, "document.querySelectorAll('#lock-list li[data-path]').length === 1")
        await ann.goto(ann.url.split("#")[0] + "#/")
        await wait_for(dana, "!document.querySelector('#stage-board [data-kind=memo]')"
                             ".textContent.includes('Ann')")
    finally:
        await team.close()


async def test_filters_narrow_every_panel_and_an_overdue_review_stands_out(
    browser: Browser, server: RunningServer
) -> None:
    """Filtering by idea, stage and type narrows the chart, the feed, the locks, the review
    queue and the workflow steps to exactly what the server holds for that filter, is kept in
    the address, and the overdue review leads the queue with words, an icon and a marked edge."""
    team = Team(server)
    try:
        world = await seed(team)
        acme, globex = world["acme"]["id"], world["globex"]["id"]
        dana = await person(browser, server, "Dana", role="viewer")
        await open_dashboard(dana)
        events = await team.events()

        # The overdue review: first, in words, with an icon and a 5px edge; the tile says so.
        first = dana.locator("#review-queue .queue-item").first
        assert await first.get_attribute("data-id") == world["late"]["id"]
        assert "Overdue by 2 days" in await first.inner_text()
        assert await first.locator("svg.icon-alert").count() == 1
        assert await first.evaluate("(e) => getComputedStyle(e).borderLeftWidth") == "5px"
        second = dana.locator("#review-queue .queue-item").nth(1)
        assert await second.get_attribute("data-overdue") == "false"
        assert "Due " in await second.inner_text()
        assert "1 overdue" in await dana.inner_text("#tile-reviews")
        assert await dana.get_attribute("#queue-count", "data-overdue") == "1"
        await save_screenshot(dana, "dashboard-review-queue", full_page=True)

        async def shows(expected: list[dict[str, Any]]) -> None:
            await wait_for(dana, f"document.querySelector('#chart-total').dataset.total === "
                                 f"'{len(expected)}'")
            assert await feed_seqs(dana) == [e["seq"] for e in reversed(expected)]
            assert await dana.evaluate(LEGEND) == per_type(expected)

        # One idea: its events only; its review, its workflow, its lock.
        await dana.select_option("#filter-idea", acme)
        await shows([e for e in events if e["idea"] == acme])
        assert f"idea={acme}" in dana.url
        assert "ACME Corp" in await dana.inner_text("#filter-note")
        assert await dana.locator("#review-queue .queue-item").count() == 1
        assert await dana.get_attribute("#step-states [data-state=pending]", "data-count") == "2"
        assert await dana.locator("#lock-list li[data-path]").count() == 1
        await dana.select_option("#filter-idea", globex)
        await shows([e for e in events if e["idea"] == globex])
        assert await dana.get_attribute("#review-queue .queue-item", "data-id") == world["soon"]["id"]
        assert await dana.get_attribute("#step-states [data-state=pending]", "data-count") == "0"
        assert "No step waits" in await dana.inner_text("#step-list")
        assert await dana.locator("#lock-list li[data-path]").count() == 0

        # An idea and a stage together: ACME's valuation, with its lock and no memo review.
        await dana.select_option("#filter-idea", acme)
        await dana.select_option("#filter-kind", "valuation")
        await shows([e for e in events if e["idea"] == acme and e["kind"] == "valuation"])
        assert await dana.locator("#lock-list li[data-path]").count() == 1
        assert "No open reviews" in await dana.inner_text("#review-queue")
        assert await dana.locator("#stage-board .stage-column.filtered-out").count() == 3

        # A type picked from the chart's legend (by keyboard), then a whole family.
        await dana.click("#filter-clear")
        await shows(events)
        await dana.focus("#chart-legend [data-type='review.assigned']")
        await dana.keyboard.press("Enter")
        await shows([e for e in events if e["type"] == "review.assigned"])
        assert await dana.input_value("#filter-type") == "review.assigned"
        assert await dana.get_attribute("#chart-legend [data-type='review.assigned']",
                                        "aria-pressed") == "true"
        await dana.select_option("#filter-type", "workflow.*")
        await shows([e for e in events if e["type"].startswith("workflow.")])

        # The address keeps the filters: a reload shows the same narrowed dashboard.
        await dana.select_option("#filter-kind", "memo")
        await dana.reload()
        await wait_for(dana, READY)
        assert await dana.input_value("#filter-type") == "workflow.*"
        assert await dana.input_value("#filter-kind") == "memo"
        await shows([e for e in events if e["type"].startswith("workflow.") and e["kind"] == "memo"])
        await dana.click("#filter-clear")
        await shows(events)
        assert "?" not in dana.url.split("#")[1]
    finally:
        await team.close()


async def test_after_a_cut_network_every_event_is_shown_exactly_once(
    browser: Browser, server: RunningServer
) -> None:
    """While events keep coming, Dana's dashboard loses its network twice; each time it says
    it is offline and will resume, and once back it shows every event of the server's stream
    exactly once: none missed while away, none repeated from before."""
    team = Team(server)
    try:
        doc = await team.call("ann", "POST", "/api/documents",
                              {"kind": "memo", "title": "Busy memo", "state": MEMO}, expect=201)
        dana = await person(browser, server, "Dana", role="viewer")
        await open_dashboard(dana)
        writes = 0
        done = asyncio.Event()

        async def keep_writing() -> None:
            nonlocal writes
            version = 1
            while not done.is_set() and writes < 400:
                version = await team.patch("ann", doc["id"], version, "/sections/risks/text",
                                           f"Draft {version}")
                writes += 1
                await asyncio.sleep(0.03)

        writer = asyncio.create_task(keep_writing())
        try:
            for _cut in range(2):
                shown = int(await wait_for(dana, "(n) => { const t = Number(document.querySelector("
                                                 "'#chart-total').dataset.total); return t > n && t; }",
                                           len(await feed_seqs(dana)) + 3))
                await dana.context.set_offline(True)
                await wait_for(dana, "document.querySelector('#stream-status').dataset.state === 'paused'")
                assert "resume after event #" in await dana.inner_text("#stream-status")
                paused_at = await dana.get_attribute("#stream-status", "data-last-seq")
                before = writes
                await asyncio.sleep(1.0)
                assert writes >= before + 5  # the team went on writing meanwhile
                assert await dana.get_attribute("#stream-status", "data-last-seq") == paused_at
                assert int(await dana.get_attribute("#chart-total", "data-total") or 0) >= shown
                await save_screenshot(dana, "dashboard-offline", full_page=False)
                await dana.context.set_offline(False)
                await wait_for(dana, LIVE)
        finally:
            done.set()
            await asyncio.wait_for(writer, TIMEOUT)
        events = await team.events()
        last = events[-1]["seq"]
        await wait_for(dana, f"document.querySelector('#stream-status').dataset.lastSeq === '{last}'")
        await wait_for(dana, f"document.querySelector('#chart-total').dataset.total === '{len(events)}'")
        seqs = await feed_seqs(dana)
        assert seqs == [e["seq"] for e in reversed(events)][:200]
        assert len(seqs) == len(set(seqs))
        assert await dana.evaluate(LEGEND) == per_type(events)
        # Everything the page kept, not only the rows on screen, is the server's list.
        kept = await dana.evaluate("window.coedit.dashboard.records.map((r) => r.seq)")
        assert kept == [e["seq"] for e in events]
        stats = await dana.evaluate("window.coedit.dashboard.stream.stats")
        assert stats["subscriptions"] == 3
        print(f"\n{writes} writes during two cuts; the stream was subscribed {stats['subscriptions']}"
              f" times and dropped {stats['duplicates']} duplicate events")
    finally:
        await team.close()
