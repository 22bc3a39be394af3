"""Scenario 5 in real Chromium: an analyst asks for a review, the reviewer's bell lights up,
they discuss a section in a comment thread, approval waits for the thread, and everyone on the
document sees each change as it happens. Overdue reviews stand out; viewers get no actions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from playwright.async_api import Browser, Page

from tests.chromium import needs_chromium, save_screenshot
from tests.support import TIMEOUT, RunningServer
from tests.workbench import MEMO, browser, create_doc, open_doc, person, wait_for

__all__ = ["browser"]

pytestmark = needs_chromium

THESIS = ".section[data-key=thesis]"
STATUS_IS = ("(s) => document.querySelector('#review-list .review')?.dataset.status === s")
UNREAD_IS = "(n) => document.querySelector('#bell')?.dataset.unread === String(n)"
OVERDUE = "document.querySelector('#review-list .review')?.dataset.overdue === 'true'"


async def text_of(page: Page, selector: str) -> str:
    return str(await page.inner_text(selector))


async def test_a_review_from_request_to_approval_seen_live_by_both(
    browser: Browser, server: RunningServer
) -> None:
    """Ann asks Rita for a review with a due date; Rita's bell lights up without a reload; Rita
    comments on the thesis, Ann replies, Rita's approval is refused while the thread is open,
    she resolves it and approves; Ann sees every state change as it happens."""
    doc = await create_doc(server, kind="memo", title="ACME initiation", state=MEMO)
    ann = await person(browser, server, "Ann")
    rita = await person(browser, server, "Rita", role="reviewer")
    rita_id = await rita.evaluate("window.coedit.session.user.id")
    await open_doc(ann, doc["id"])
    await wait_for(ann, "document.querySelector('#review-list')?.textContent"
                        ".includes('No reviews yet')")
    assert await rita.locator("#bell").get_attribute("aria-label") == "Notifications: none unread"

    # Ann asks for the review, with a due date a week away, using the form's fields.
    due = (datetime.now(UTC) + timedelta(days=7)).date()
    await ann.fill("#reviewer-name", "Rita")
    await ann.fill("#reviewer-id", rita_id)
    await ann.fill("#review-due", due.isoformat())
    await ann.click("#request-review button[type=submit]")
    await wait_for(ann, STATUS_IS, "assigned")
    assert "Waiting to start" in await text_of(ann, "#review-list .review")
    assert "Due " in await text_of(ann, "#review-list .review .due")
    # Ann may withdraw what she asked for, but not act as the reviewer.
    assert await ann.locator("#review-list [data-move]").evaluate_all(
        "(bs) => bs.map((b) => b.dataset.move)") == ["withdrawn"]

    # Rita, on the document list, is told at once: the bell counts it and lists it.
    await wait_for(rita, UNREAD_IS, 1)
    assert await rita.locator("#bell").get_attribute("aria-label") == "Notifications: 1 unread"
    await rita.click("#bell")
    await wait_for(rita, "!document.querySelector('#bell-panel').hidden")
    assert await rita.get_attribute("#bell", "aria-expanded") == "true"
    item = rita.locator("#bell-panel .bell-item.unread")
    assert await item.count() == 1
    assert "Review requested" in await item.inner_text()
    assert "New" in await item.inner_text()
    await save_screenshot(rita, "review-bell", full_page=False)
    # Following the link opens the document and marks the notification read.
    await item.locator("a.bell-link").click()
    await wait_for(rita, "document.querySelector('.doc-page')?.dataset.ready === 'true'")
    assert doc["id"] in rita.url
    await wait_for(rita, UNREAD_IS, 0)
    assert await rita.locator("#bell-panel").is_hidden()

    # Rita starts the review: Ann's panel changes by itself.
    await wait_for(rita, STATUS_IS, "assigned")
    await rita.click("#review-list [data-move=in_progress]")
    await wait_for(ann, STATUS_IS, "in_progress")
    assert "In review" in await text_of(ann, "#review-list .review")

    # Rita comments on the thesis; Ann sees the count on the section without opening it.
    await rita.click(f"{THESIS} .comment-toggle")
    await rita.fill(f"{THESIS} .new-thread textarea", "Is the 12x multiple sourced?")
    await rita.click(f"{THESIS} .new-thread button[type=submit]")
    await wait_for(ann, "(s) => document.querySelector(s)?.dataset.count === '1'",
                   f"{THESIS} .comment-toggle")
    toggle = ann.locator(f"{THESIS} .comment-toggle")
    assert await toggle.get_attribute("aria-label") == (
        "Comments on Thesis: 1 comment, 1 open thread")
    assert "1 open" in await toggle.inner_text()
    await wait_for(ann, "document.querySelector('#thread-summary').dataset.open === '1'")

    # Ann opens the thread and replies; she may not resolve Rita's thread.
    await toggle.click()
    thread = ann.locator(f"{THESIS} .thread")
    assert "Is the 12x multiple sourced?" in await thread.inner_text()
    assert await thread.locator("button", has_text="Resolve").count() == 0
    await thread.get_by_role("button", name="Reply to: Is the 12x multiple sourced?").click()
    await ann.keyboard.type("Yes: Bloomberg consensus, see note 3.")
    await thread.locator(".reply-form button[type=submit]").click()
    await wait_for(rita, f"document.querySelectorAll('{THESIS} .thread .comment').length === 2")
    # The reply is a notification for Rita, who wrote in the thread.
    await wait_for(rita, UNREAD_IS, 1)

    # Ann edits her own reply; Rita sees the new words and that it was edited.
    await ann.click(f"{THESIS} .thread .comment:nth-child(2) .comment-head button")
    await ann.fill(f"{THESIS} .thread textarea[id^=edit-]", "Yes: Bloomberg consensus, see note 4.")
    await ann.click(f"{THESIS} .thread .comment-form button[type=submit]")
    await wait_for(rita, f"document.querySelector('{THESIS} .thread').textContent"
                         ".includes('see note 4.') && document.querySelector('.edited') !== null")
    await save_screenshot(rita, "review-comment-thread", full_page=False)

    # Approval waits for the open thread, and the page says why.
    await rita.click("#review-list [data-move=approved]")
    await wait_for(rita, "document.querySelector('#review-message').textContent"
                         ".includes('1 comment thread is still open')")
    assert await wait_for(ann, STATUS_IS, "in_progress")

    # Rita resolves the thread (Ann sees it resolved), reopens and resolves it again, approves.
    await rita.get_by_role("button", name="Resolve thread: Is the 12x multiple sourced?").click()
    await wait_for(ann, f"document.querySelector('{THESIS} .thread')?.dataset.resolved === 'true'")
    assert "Resolved by Rita" in await text_of(ann, f"{THESIS} .thread")
    await wait_for(ann, f"document.querySelector('{THESIS} .comment-toggle').dataset.open === '0'")
    await rita.get_by_role("button", name="Reopen thread: Is the 12x multiple sourced?").click()
    await wait_for(ann, f"document.querySelector('{THESIS} .thread')?.dataset.resolved === 'false'")
    await rita.get_by_role("button", name="Resolve thread: Is the 12x multiple sourced?").click()
    await wait_for(rita, "document.querySelector('#thread-summary').dataset.open === '0'")
    await rita.click("#review-list [data-move=approved]")
    await wait_for(ann, STATUS_IS, "approved")
    assert "Approved" in await text_of(ann, "#review-list .review")
    assert await ann.locator("#review-list [data-move]").count() == 0
    # The decision is Ann's notification.
    await wait_for(ann, UNREAD_IS, 1)
    await save_screenshot(ann, "review-panel", full_page=False)


async def test_changes_need_a_note_and_are_seen_live(
    browser: Browser, server: RunningServer
) -> None:
    """Rita sends the memo back: without a note nothing is sent; with one, Ann sees the state and
    the note, and Rita can start again; Ann's bell works by keyboard; Ann withdraws the review."""
    doc = await create_doc(server, kind="memo", title="ACME memo", state=MEMO)
    ann = await person(browser, server, "Ann")
    rita = await person(browser, server, "Rita", role="reviewer")
    rita_id = await rita.evaluate("window.coedit.session.user.id")
    await open_doc(ann, doc["id"])
    await open_doc(rita, doc["id"])
    await ann.fill("#reviewer-name", "Rita")
    await ann.fill("#reviewer-id", rita_id)
    await ann.click("#request-review button[type=submit]")
    await wait_for(rita, STATUS_IS, "assigned")
    assert await rita.locator("#request-review").count() == 0  # a reviewer asks no reviews
    await rita.click("#review-list [data-move=in_progress]")
    await wait_for(ann, STATUS_IS, "in_progress")
    await rita.click("#review-list [data-move=changes_requested]")
    await rita.click("#review-list .note-form button[type=submit]")
    assert "a note is required" in await text_of(rita, "#review-message")
    await rita.fill("#review-list .note-form textarea", "Source the multiple.")
    await rita.click("#review-list .note-form button[type=submit]")
    await wait_for(ann, STATUS_IS, "changes_requested")
    assert "Source the multiple." in await text_of(ann, "#review-list .review")
    await wait_for(rita, "!!document.querySelector('#review-list [data-move=in_progress]')")

    # Ann hears of the decision; the bell works from the keyboard alone.
    await wait_for(ann, UNREAD_IS, 1)
    await ann.focus("#bell")
    await ann.keyboard.press("Enter")
    await wait_for(ann, "!document.querySelector('#bell-panel').hidden")
    assert await ann.evaluate(
        "document.querySelector('#bell-panel').contains(document.activeElement)")
    assert await ann.get_attribute("#bell-panel .bell-item", "data-type") == "review.decided"
    await ann.keyboard.press("Escape")
    await wait_for(ann, "document.querySelector('#bell-panel').hidden")
    assert await ann.evaluate("document.activeElement.id") == "bell"
    await ann.click("#bell")
    await ann.click("#bell-read-all")
    await wait_for(ann, UNREAD_IS, 0)
    assert await ann.locator("#bell-panel .bell-item.unread").count() == 0

    # Ann withdraws the review: Rita sees it withdrawn, with nothing left to do.
    await ann.click("#review-list [data-move=withdrawn]")
    await wait_for(rita, STATUS_IS, "withdrawn")
    assert "Withdrawn" in await text_of(rita, "#review-list .review")
    assert await rita.locator("#review-list [data-move]").count() == 0


async def test_an_overdue_review_stands_out_and_a_viewer_gets_no_actions(
    browser: Browser, server: RunningServer
) -> None:
    """A review due yesterday says it is overdue in words and is marked; a viewer sees the
    reviews and comments but no button that would change them."""
    doc = await create_doc(server, kind="memo", title="Late memo", state=MEMO)
    token = server.token(tenant="default", name="Setup")
    yesterday = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    async with server.http(token) as http:
        review = await asyncio.wait_for(http.post(
            f"/api/documents/{doc['id']}/reviews",
            json={"reviewer": {"id": "rev-1", "name": "Rex"}, "due": yesterday}), TIMEOUT)
        assert review.status_code == 201, review.text
        comment = await asyncio.wait_for(http.post(
            f"/api/documents/{doc['id']}/comments",
            json={"body": "Check leverage.", "path": "/sections/risks"}), TIMEOUT)
        assert comment.status_code == 201, comment.text

    vic = await person(browser, server, "Vic", role="viewer")
    await open_doc(vic, doc["id"])
    await wait_for(vic, OVERDUE)
    card = vic.locator("#review-list .review")
    assert "Overdue: was due" in await card.inner_text()
    assert "2 days late" in await card.inner_text()
    assert await card.evaluate("(e) => getComputedStyle(e).borderLeftWidth") == "5px"
    assert await vic.locator("#review-list [data-move]").count() == 0
    assert await vic.locator("#request-review").count() == 0
    await save_screenshot(vic, "review-overdue", full_page=False)
    await vic.click(".section[data-key=risks] .comment-toggle")
    thread = vic.locator(".section[data-key=risks] .thread")
    assert "Check leverage." in await thread.inner_text()
    assert await vic.locator(".section[data-key=risks] .comments button").count() == 0
    assert await vic.locator(".section[data-key=risks] .comments textarea").count() == 0

    # A reviewer who is not the one assigned sees the review but cannot act on it.
    rita = await person(browser, server, "Rita", role="reviewer")
    await open_doc(rita, doc["id"])
    await wait_for(rita, OVERDUE)
    assert await rita.locator("#review-list [data-move]").count() == 0
