"""Scenario 7 in real Chromium: an admin builds and publishes a workflow template in the
builder (the server's validation shown beside the faulty step), an analyst starts a workflow
from it on an idea, and both see every step move live on the idea's page; a refused move is
written out, pausing stops the steps, and admins skip and retry."""

from __future__ import annotations

import asyncio
from typing import Any

from playwright.async_api import Browser, Page

from tests.chromium import needs_chromium, save_screenshot
from tests.support import TIMEOUT, RunningServer
from tests.workbench import browser, person, wait_for

__all__ = ["browser"]

pytestmark = needs_chromium

READY = "document.querySelector('.idea-page')?.dataset.ready === 'true'"
STEP_STATE = ("([k, s]) => document.querySelector(`#workflow .step[data-key=${k}]`)"
              "?.dataset.state === s")
MESSAGE = "document.querySelector('#workflow-message').textContent"


async def step_is(page: Page, key: str, state: str) -> None:
    await wait_for(page, STEP_STATE, [key, state])


def step(page: Page, key: str, verb: str) -> str:
    return f"#workflow .step[data-key={key}] button[data-verb={verb}]"


async def call(server: RunningServer, token: str, method: str, path: str,
               body: Any = None) -> dict[str, Any]:
    async with server.http(token) as http:
        response = await asyncio.wait_for(http.request(method, path, json=body), TIMEOUT)
    assert response.status_code in (200, 201), response.text
    return response.json()  # type: ignore[no-any-return]


async def open_idea(page: Page, idea: str) -> None:
    await page.goto(page.url.split("#")[0] + f"#/i/{idea}")
    await wait_for(page, READY)


async def test_an_admin_builds_a_template_and_an_analyst_runs_it_live_with_the_admin(
    browser: Browser, server: RunningServer
) -> None:
    """Ada builds a three-step template (a refused publish names the faulty step, she fixes
    it), publishes it; Ann starts a workflow from it on an idea; Ann's claims, starts and
    checklist, the memo she creates and Ada's approval move the steps on both pages."""
    setup = server.token(tenant="default", name="Setup")
    idea = await call(server, setup, "POST", "/api/ideas", {"title": "Globex rerating",
                                                              "ticker": "GBX"})
    ada = await person(browser, server, "Ada", role="admin")
    ann = await person(browser, server, "Ann")

    # Ada: Templates, a new draft.
    await ada.click(".places a[href='#/templates']")
    await ada.fill("#new-template-name", "Initiation")
    await ada.click("#new-template button[type=submit]")
    await wait_for(ada, "document.querySelector('#template-state')?.dataset.status === 'draft'")
    assert "version 1" in await ada.inner_text("#template-state")

    # Step 1: a checklist; step 2: the committee's approval (waits for step 1 by default).
    await ada.click("#add-step")
    await ada.fill("#tstep-0-title", "Normalize the numbers")
    assert await ada.input_value("#tstep-0-key") == "normalize_the_numbers"
    await ada.fill("#tstep-0-items", "Revenue ties to filings\nMargins normalized")
    await ada.click("#add-step")
    await ada.fill("#tstep-1-title", "Committee sign-off")
    await ada.select_option("#tstep-1-action", "approval")
    await ada.select_option("#tstep-1-role", "admin")
    assert await ada.is_checked("#tstep-1-after-0")
    # Step 3: the memo, moved to the top; it still waits for the committee, now a later step.
    await ada.click("#add-step")
    await ada.fill("#tstep-2-title", "Write the memo")
    await ada.select_option("#tstep-2-action", "document")
    await ada.click("#tstep-2-up")
    await ada.click("#tstep-1-up")
    assert await ada.input_value("#tstep-0-title") == "Write the memo"
    assert "not an earlier step" in await ada.inner_text("#tstep-0 .after-warning")

    # Publishing is refused by the server, in words, beside the step it names.
    await ada.click("#publish-template")
    await wait_for(ada, "document.querySelector('#template-message').textContent"
                        ".includes('not an earlier step')")
    assert "Not published" in await ada.inner_text("#template-message")
    assert await ada.locator("#tstep-0.faulty .tstep-fault").count() == 1
    assert await ada.get_attribute("#template-state", "data-status") == "draft"
    await save_screenshot(ada, "template-builder-refused", full_page=False)
    await ada.click("#tstep-0 .after-warning button")
    await ada.click("#publish-template")
    await wait_for(ada, "document.querySelector('#template-state')?.dataset.status"
                        " === 'published'")
    assert "Published version 1" in await ada.inner_text("#template-status")
    await ada.evaluate("window.scrollTo(0, 0)")
    await save_screenshot(ada, "template-builder", full_page=False)

    # Ann starts a workflow from it on the idea; Ada watches the same page.
    await open_idea(ann, idea["id"])
    await open_idea(ada, idea["id"])
    await wait_for(ann, "document.querySelectorAll('#start-template option[value]').length"
                        " && document.querySelector('#start-template').value !== ''")
    await ann.click("#start-workflow button[type=submit]")
    await step_is(ann, "normalize_the_numbers", "ready")
    await step_is(ada, "normalize_the_numbers", "ready")
    await step_is(ada, "write_the_memo", "ready")
    await step_is(ada, "committee_sign_off", "pending")
    assert await ann.inner_text("#flow-status") == "Running"
    # Ann has no verb on the committee's step (an admin's); Ada may skip it.
    assert await ann.locator("#workflow .step[data-key=committee_sign_off] button").count() == 0
    assert await ada.locator(step(ada, "committee_sign_off", "skip")).count() == 1

    # Ann claims and starts the numbers: Ada's page follows.
    await ann.click(step(ann, "normalize_the_numbers", "claim"))
    await wait_for(ada, "document.querySelector('#workflow .step[data-key=normalize_the_numbers]"
                        " .step-who')?.textContent.includes('Ann')")
    await ann.click(step(ann, "normalize_the_numbers", "start"))
    await step_is(ada, "normalize_the_numbers", "in_progress")
    # Completing with one item ticked is refused and said; with both it completes.
    await ann.click(step(ann, "normalize_the_numbers", "complete"))
    numbers = "#workflow .step[data-key=normalize_the_numbers]"
    await ann.check(f"{numbers} input[data-item='Revenue ties to filings']")
    await ann.click(f"{numbers} .step-form button[type=submit]")
    await wait_for(ann, MESSAGE + ".includes('Margins normalized')")
    await ann.check(f"{numbers} input[data-item='Margins normalized']")
    await ann.click(f"{numbers} .step-form button[type=submit]")
    await step_is(ada, "normalize_the_numbers", "completed")
    await step_is(ada, "committee_sign_off", "ready")

    # The memo's step completes by itself once Ann creates the memo from its stage card.
    await ann.click(".stage-card[data-kind=memo] button[data-create]")
    await wait_for(ann, "document.querySelector('.doc-page')?.dataset.ready === 'true'")
    await step_is(ada, "write_the_memo", "completed")
    await ada.evaluate("window.scrollTo(0, document.querySelector('#workflow')"
                       ".getBoundingClientRect().top + window.scrollY - 80)")
    await save_screenshot(ada, "workflow-panel", full_page=False)

    # Ada approves: the workflow is completed on both pages.
    await ada.click(step(ada, "committee_sign_off", "start"))
    await ada.click(step(ada, "committee_sign_off", "complete"))
    await ada.check("#workflow .step[data-key=committee_sign_off] input[value=true]")
    await ada.click("#workflow .step[data-key=committee_sign_off] button[type=submit]")
    await wait_for(ada, "document.querySelector('#flow-status')?.dataset.status === 'completed'")
    await open_idea(ann, idea["id"])
    await wait_for(ann, "document.querySelector('#flow-status')?.dataset.status === 'completed'")
    assert await ann.inner_text("#idea-state") == "Workflow completed · 3 of 3 steps done"

    # A change to the published template is a draft of version 2; the run keeps version 1.
    await ada.goto(ada.url.split("#")[0] + "#/templates")
    await ada.click("#template-list a")
    await wait_for(ada, "document.querySelector('#template-state')?.dataset.status"
                        " === 'published'")
    await ada.fill("#template-description", "For every new idea.")
    await ada.click("#save-template")
    await wait_for(ada, "document.querySelector('#template-state')?.textContent"
                        " === 'Draft · version 2'")
    assert "template v1" in await ann.inner_text("#workflow .flow-name")
    # Ann sees the templates read only.
    await ann.goto(ann.url.split("#")[0] + "#/templates")
    await ann.click("#template-list a")
    await wait_for(ann, "document.querySelector('#template-state')?.dataset.status === 'draft'")
    assert await ann.locator("#add-step, #save-template, #new-template").count() == 0
    assert await ann.get_attribute("#template-name", "readonly") is not None


STEPS = [
    {"key": "numbers", "title": "Normalize the numbers", "action": "checklist",
     "role": "analyst", "config": {"items": ["Revenue", "Margins"]}},
    {"key": "model", "title": "Build the model", "action": "checklist", "role": "analyst",
     "config": {"items": ["DCF"]}},
    {"key": "monitoring", "title": "Set up monitoring", "action": "checklist",
     "role": "analyst", "required": False, "config": {"items": ["Alerts"]}},
]


async def test_a_refused_move_is_shown_pausing_stops_steps_and_admins_skip_and_retry(
    browser: Browser, server: RunningServer
) -> None:
    """While Ann ticks a checklist Ada pauses the workflow: Ann's page says so live, keeps
    her ticks, and her completion is refused in words; after Ada resumes it goes through.
    Ann blocks and unblocks a step by keyboard, fails it, Ada retries it and skips another."""
    admin = server.token(tenant="default", name="Setup admin", roles=["admin"])
    template = await call(server, admin, "POST", "/api/workflows/templates",
                          {"name": "Quick look", "steps": STEPS})
    await call(server, admin, "POST", f"/api/workflows/templates/{template['id']}/publish")
    idea = await call(server, admin, "POST", "/api/ideas", {"title": "Initech spin-off"})
    ada = await person(browser, server, "Ada", role="admin")
    ann = await person(browser, server, "Ann")
    await open_idea(ann, idea["id"])
    await ann.click("#start-workflow button[type=submit]")
    await step_is(ann, "numbers", "ready")
    await open_idea(ada, idea["id"])

    await ann.click(step(ann, "numbers", "start"))
    await step_is(ada, "numbers", "in_progress")
    await ann.click(step(ann, "numbers", "complete"))
    await ann.check("#workflow .step[data-key=numbers] input[data-item=Revenue]")
    await ann.check("#workflow .step[data-key=numbers] input[data-item=Margins]")

    await ada.click("#instance-paused")
    await wait_for(ann, "document.querySelector('#flow-status')?.dataset.status === 'paused'")
    assert "Paused" in await ann.inner_text(".paused-note")
    assert await ann.is_checked("#workflow .step[data-key=numbers] input[data-item=Margins]")
    await ann.click("#workflow .step[data-key=numbers] .step-form button[type=submit]")
    await wait_for(ann, MESSAGE + ".includes('refused')")
    said = await ann.inner_text("#workflow-message")
    assert "paused" in said and "Complete “Normalize the numbers”" in said, said
    assert await ann.get_attribute("#workflow-message", "role") == "alert"
    await save_screenshot(ann, "workflow-refused", full_page=False)

    await ada.click("#instance-active")
    await wait_for(ann, "document.querySelector('#flow-status')?.dataset.status === 'active'")
    await ann.click("#workflow .step[data-key=numbers] .step-form button[type=submit]")
    await step_is(ada, "numbers", "completed")

    # Block with a reason and unblock, by keyboard only.
    await ann.focus(step(ann, "model", "start"))
    await ann.keyboard.press("Enter")
    await step_is(ann, "model", "in_progress")
    await ann.focus(step(ann, "model", "block"))
    await ann.keyboard.press("Enter")
    await ann.keyboard.type("Waiting for the 10-K")
    await ann.keyboard.press("Tab")
    await ann.keyboard.press("Enter")
    await step_is(ada, "model", "blocked")
    assert "Waiting for the 10-K" in await ada.inner_text("#workflow .step[data-key=model]")
    blocked = "#workflow .step-group[data-state=blocked]"
    assert await ada.get_attribute(blocked, "data-count") == "1"
    await ann.focus(step(ann, "model", "unblock"))
    await ann.keyboard.press("Enter")
    await step_is(ada, "model", "in_progress")

    # Ann fails it; only an admin may retry: Ann has no retry, Ada has.
    await ann.click(step(ann, "model", "fail"))
    await ann.fill("#workflow .step[data-key=model] textarea", "The numbers do not tie")
    await ann.click("#workflow .step[data-key=model] .step-form button[type=submit]")
    await step_is(ada, "model", "failed")
    assert await ann.locator(step(ann, "model", "retry")).count() == 0
    await ada.click(step(ada, "model", "retry"))
    await step_is(ann, "model", "ready")
    assert "Ann" in await ann.inner_text("#workflow .step[data-key=model] .step-who")

    # Ada skips the optional monitoring with a reason.
    await ada.click(step(ada, "monitoring", "skip"))
    await ada.fill("#workflow .step[data-key=monitoring] textarea", "Not for a quick look")
    await ada.click("#workflow .step[data-key=monitoring] .step-form button[type=submit]")
    await step_is(ann, "monitoring", "skipped")
