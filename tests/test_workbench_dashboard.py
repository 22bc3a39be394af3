"""Scenario 8 in real Chromium: the dashboard follows the team's event stream live.

One browser context watches the dashboard while others (browser contexts and plain HTTP
clients) change things. What the dashboard shows is compared with what the server says:
its event stream (``GET /api/events``), its locks, reviews and workflows.
"""

from __future__ import annotations

import asyncio
import collections
import math
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page

from persistence.audit import Actor, AuditContext, EventDraft, append_event
from persistence.schema import documents
from persistence.schema import ideas as ideas_table
from tests.chromium import needs_chromium, save_screenshot
from tests.support import TIMEOUT, RunningServer
from tests.workbench import MEMO, VALUATION, browser, metrics, open_doc, person, wait_for

__all__ = ["browser"]

pytestmark = needs_chromium

TENANT = "default"
READY = "document.querySelector('.dashboard')?.dataset.ready === 'true'"
LIVE = "document.querySelector('#stream-status')?.dataset.state === 'live'"
FEED_SEQS = "[...document.querySelectorAll('#feed tr[data-seq]')].map((r) => Number(r.dataset.seq))"
TOTAL_IS = "(n) => document.querySelector('#chart-total')?.dataset.total === String(n)"
STREAM_IS = "(s) => document.querySelector('#stream-status')?.dataset.state === s"
LAST_SEQ_IS = "(n) => document.querySelector('#stream-status')?.dataset.lastSeq === String(n)"
GROWN_PAST = ("(n) => { const t = Number(document.querySelector('#chart-total').dataset.total);"
              " return t > n && t; }")
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


async def steps_in(page: Page, state: str) -> str | None:
    return await page.get_attribute(f"#step-states [data-state={state}]", "data-count")


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
    """Dana's dashboard shows the team's last hour and then, without a reload, each new event
    once under its type, Ann on the memo stage, her lock until she releases it, and reviews and
    workflow steps as others move them."""
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
        assert await steps_in(dana, "in_progress") == "1"
        assert await steps_in(dana, "pending") == "2"

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
        await wait_for(dana, TOTAL_IS, len(events))
        assert await dana.evaluate(LEGEND) == per_type(events)
        assert await feed_seqs(dana) == [e["seq"] for e in reversed(events)]
        await save_screenshot(dana, "dashboard", full_page=True)

        # Reviews and workflow steps moved by others change the queue and the steps live.
        await team.call("rex", "POST", f"/api/reviews/{world['soon']['id']}/transition",
                        {"to": "in_progress"}, role="reviewer")
        soon = f"#review-queue [data-id='{world['soon']['id']}']"
        await wait_for(dana, "(s) => document.querySelector(s)?.dataset.status === 'in_progress'",
                       soon)
        assert "In review" in await dana.inner_text(soon)
        await team.call("ann", "POST", f"/api/reviews/{world['late']['id']}/transition",
                        {"to": "withdrawn"})
        await wait_for(dana, "document.querySelector('#queue-count').dataset.overdue === '0'")
        assert await dana.locator("#review-queue .queue-item").count() == 1
        assert "none overdue" in await dana.inner_text("#tile-reviews")
        research = world["flow"]["steps"][0]["id"]
        await team.call("ann", "POST", f"/api/workflows/steps/{research}/complete",
                        {"approved": True})
        await wait_for(dana, "document.querySelector('#step-states [data-state=completed]')"
                             "?.dataset.count === '1'")
        assert await steps_in(dana, "ready") == "1"
        assert "Build the model" in await dana.inner_text("#step-list")

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
            await wait_for(dana, TOTAL_IS, len(expected))
            assert await feed_seqs(dana) == [e["seq"] for e in reversed(expected)]
            assert await dana.evaluate(LEGEND) == per_type(expected)

        # One idea: its events only; its review, its workflow, its lock.
        await dana.select_option("#filter-idea", acme)
        await shows([e for e in events if e["idea"] == acme])
        assert f"idea={acme}" in dana.url
        assert "ACME Corp" in await dana.inner_text("#filter-note")
        assert await dana.locator("#review-queue .queue-item").count() == 1
        assert await steps_in(dana, "pending") == "2"
        assert await dana.locator("#lock-list li[data-path]").count() == 1
        await dana.select_option("#filter-idea", globex)
        await shows([e for e in events if e["idea"] == globex])
        queued = await dana.get_attribute("#review-queue .queue-item", "data-id")
        assert queued == world["soon"]["id"]
        assert await steps_in(dana, "pending") == "0"
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
        await shows([e for e in events
                     if e["type"].startswith("workflow.") and e["kind"] == "memo"])
        await dana.click("#filter-clear")
        await shows(events)
        assert "?" not in dana.url.split("#")[1]
    finally:
        await team.close()


async def test_after_a_cut_network_every_event_is_shown_exactly_once(
    browser: Browser, server: RunningServer
) -> None:
    """While events keep coming, Dana's dashboard loses its network twice, says each time that
    it will resume, and once back shows every event of the server's stream exactly once."""
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
                shown = int(await wait_for(dana, GROWN_PAST, len(await feed_seqs(dana)) + 3))
                await dana.context.set_offline(True)
                await wait_for(dana, STREAM_IS, "paused")
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
        await wait_for(dana, LAST_SEQ_IS, last)
        await wait_for(dana, TOTAL_IS, len(events))
        seqs = await feed_seqs(dana)
        assert seqs == [e["seq"] for e in reversed(events)][:200]
        assert len(seqs) == len(set(seqs))
        assert await dana.evaluate(LEGEND) == per_type(events)
        # Everything the page kept, not only the rows on screen, is the server's list.
        kept = await dana.evaluate("window.coedit.dashboard.records.map((r) => r.seq)")
        assert kept == [e["seq"] for e in events]
        stats = await dana.evaluate("window.coedit.dashboard.stream.stats")
        assert stats["subscriptions"] == 3
        print(f"\n{writes} writes during two cuts; the stream was subscribed "
              f"{stats['subscriptions']} times and dropped {stats['duplicates']} duplicates")
    finally:
        await team.close()


PEOPLE = [Actor("ann", "Ann"), Actor("bob", "Bob"), Actor("cho", "Cho"), Actor("dev", "Dev"),
          Actor("rita", "Rita"), Actor("feed-bot", "Prices bot", "bot")]
ACTIVITY = [("patch.applied", 70), ("lock.acquired", 6), ("lock.released", 6), ("comment.added", 7),
            ("comment.resolved", 2), ("review.transitioned", 3), ("workflow.step_transitioned", 4),
            ("access.denied", 2)]


async def backdated_history(server: RunningServer, *, events: int,
                            minutes: int) -> dict[str, Any]:
    """An hour and more of a busy team's history, written straight into the log with the
    times it would have had (the API stamps the present), in ``seq`` and time order."""
    db = server.coedit.db
    rng = random.Random(8)
    start = datetime.now(UTC) - timedelta(minutes=minutes)
    ideas = [("Northwind", "NWD"), ("Initech", "INTC"), ("Umbrella", "UMB")]
    kinds = ["memo", "valuation", "normalization", "monitoring"]
    docs: list[tuple[str, str, str]] = []
    system = AuditContext(Actor("setup", "Setup"), TENANT, "http")
    async with db.transaction() as conn:
        for n, (title, ticker) in enumerate(ideas):
            idea = str(uuid.uuid4())
            await conn.execute(ideas_table.insert().values(
                id=idea, tenant=TENANT, title=title, ticker=ticker, created_by_id="setup",
                created_by_name="Setup", created_at=start))
            await append_event(conn, system, EventDraft(
                "idea.created", None, None, None, {"title": title, "ticker": ticker}, idea),
                ts=start + timedelta(seconds=n))
            for kind in kinds[: 2 + n]:
                doc = str(uuid.uuid4())
                label = {"memo": "memo", "valuation": "DCF", "normalization": "normalized P&L",
                         "monitoring": "monitoring"}[kind]
                await conn.execute(documents.insert().values(
                    id=doc, tenant=TENANT, kind=kind, title=f"{title} {label}", version=1,
                    state="{}", created_at=start, created_by="setup", updated_at=start,
                    updated_by="setup", idea=idea))
                await append_event(conn, system, EventDraft(
                    "document.created", doc, kind, 1, {"title": f"{title} {label}", "state": {}},
                    idea), ts=start + timedelta(seconds=5))
                docs.append((doc, kind, idea))
    # Activity swells and ebbs over the hour, as a working team's does.
    weights = [1.0 + 0.9 * math.sin(m / 7.0) + rng.random() * 0.6 for m in range(minutes)]
    total = sum(weights)
    stamps: list[datetime] = []
    for m, weight in enumerate(weights):
        for _ in range(round(events * weight / total)):
            stamps.append(start + timedelta(minutes=m, seconds=10 + rng.random() * 49))
    stamps.sort()
    types = [t for t, w in ACTIVITY for _ in range(w)]
    versions = collections.Counter[str]()
    for chunk in range(0, len(stamps), 500):
        async with db.transaction() as conn:
            for ts in stamps[chunk:chunk + 500]:
                doc, kind, idea = rng.choice(docs)
                kind_of_event = rng.choice(types)
                actor = rng.choice(PEOPLE)
                section = rng.choice(["thesis", "catalysts", "risks", "valuation"])
                data: dict[str, Any] = {"path": f"/sections/{section}"}
                version = None
                if kind_of_event == "patch.applied":
                    versions[doc] += 1
                    version = versions[doc] + 1
                    data = {"ops": [{"op": "splice", "path": f"/sections/{section}/text",
                                     "at": 0, "remove": 0, "insert": "x"}],
                            "before": {}, "after": {}}
                elif kind_of_event == "review.transitioned":
                    data = {"review": "r", "from": "assigned", "to": "in_progress", "note": None}
                elif kind_of_event == "workflow.step_transitioned":
                    data = {"step": "s", "key": "model", "from": "ready", "to": "in_progress"}
                ctx = AuditContext(actor, TENANT, "ws")
                await append_event(conn, ctx, EventDraft(kind_of_event, doc, kind, version, data,
                                                         idea), ts=ts)
    return {"docs": docs, "count": len(stamps)}


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_first_render_with_thousands_of_events_in_the_last_hour(
    browser: Browser, server: RunningServer
) -> None:
    """With an hour and a quarter of busy history in the log, the dashboard starts its stream
    at the first event of the last hour and shows exactly that hour's events (the time it took
    is printed)."""
    history = await backdated_history(server, events=4000, minutes=75)
    team = Team(server)
    try:
        world = await seed(team)
        ann = await person(browser, server, "Ann")
        await open_doc(ann, world["memo"]["id"])
        await ann.click(".section[data-key=thesis] .lock-button")
        bob = await person(browser, server, "Bob")
        await open_doc(bob, world["model"]["id"])
        dana = await person(browser, server, "Dana", role="viewer")
        await dana.goto(dana.url.split("#")[0] + "#/dashboard")  # a fresh page load
        await wait_for(dana, READY)
        figures = await metrics(dana)
        store = await dana.evaluate("({start: window.coedit.dashboard.windowStart(),"
                                    " since: window.coedit.dashboard.history.since,"
                                    " kept: window.coedit.dashboard.records.length})")
        events = await team.events()
        cutoff = datetime.fromtimestamp(store["start"] / 1000, UTC)
        older = [e for e in events if datetime.fromisoformat(e["ts"]) < cutoff]
        recent = [e for e in events if datetime.fromisoformat(e["ts"]) >= cutoff]
        assert older and len(recent) > 2500
        assert store["since"] == older[-1]["seq"]  # the look-back starts right at the hour
        assert store["kept"] == len(recent)
        await wait_for(dana, TOTAL_IS, len(recent))
        assert await dana.evaluate(LEGEND) == per_type(recent)
        await wait_for(dana, "document.querySelector('#people-count').dataset.count === '2'")
        await wait_for(dana, "document.querySelectorAll('#lock-list li[data-path]').length === 2")
        await dana.mouse.move(1, 1)  # no bar hovered in the picture
        await save_screenshot(dana, "dashboard", full_page=True)
        await save_screenshot(dana, "dashboard-top", full_page=False)

        # One more edit: the time to put it on screen with thousands of events kept.
        await team.patch("bob", world["model"]["id"], 2, "/assumptions/growth", 0.1)
        await wait_for(dana, TOTAL_IS, len(recent) + 1)
        live = await metrics(dana)
        dashboard = figures["dashboard"]
        print(f"\nhistory of {history['count']} backdated events, {len(recent)} in the last hour: "
              f"look-back found in {dashboard['windowFindMs']:.0f} ms with "
              f"{dashboard['windowProbes']} one-row reads; first render (empty panels) "
              f"{dashboard['firstRenderMs']:.0f} ms; everything on screen "
              f"{dashboard['historyRenderMs']:.0f} ms after the page opened; a live event "
              f"redrawn in {live['dashboard']['lastDrawMs']:.1f} ms")
    finally:
        await team.close()
