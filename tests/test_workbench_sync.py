"""The page's document sync (web/app/document_sync.js) against a scripted server, in Chromium.

The browser tests drive it through real servers, where the order in which a reply and a delta
arrive is up to the network; here a fake wire hands them over in the awkward orders on purpose.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from tests.chromium import needs_chromium
from tests.support import TIMEOUT, RunningServer
from tests.workbench import browser

__all__ = ["browser"]

pytestmark = [needs_chromium,
              # The module runs in the page alone; one database backend is enough to serve it.
              pytest.mark.parametrize("backend", ["sqlite"], indirect=True)]

# A wire whose requests wait until the test answers them, and a sync on a one-section memo.
HARNESS = """
const { DocumentSync } = await import('/web/app/document_sync.js');
const { Emitter } = await import('/web/app/emitter.js');
class FakeWire extends Emitter {
  constructor() { super(); this.live = true; this.welcome = {session: 'me'}; this.sent = []; }
  request(message) {
    return new Promise((resolve, reject) => this.sent.push({message, resolve, reject}));
  }
  tell(message) {}
}
const wire = new FakeWire();
const sync = new DocumentSync(wire, {id: 'd1', kind: 'memo'});
sync.open();
const tick = () => new Promise((r) => setTimeout(r, 5));
const text = () => sync.local.sections.a.text;
const delta = (version, ops, name = 'Bob') =>
  wire.emit('delta', {doc: 'd1', version, ops, actor: {id: name, name}});
const splice = (at, remove, insert) =>
  ({op: 'splice', path: '/sections/a/text', at, remove, insert});
wire.sent.shift().resolve({version: 1, state: {sections: {a: {text: 'hello'}}}, presence: [],
                          locks: []});
await tick();
"""


async def run(page: Page, body: str) -> Any:
    script = f"async () => {{ {HARNESS} {body} }}"
    return await asyncio.wait_for(page.evaluate(script), TIMEOUT)


@pytest.fixture
async def page(browser: Browser, server: RunningServer) -> Page:
    context = await asyncio.wait_for(browser.new_context(), TIMEOUT)
    context.set_default_timeout(TIMEOUT * 1000)
    opened = await asyncio.wait_for(context.new_page(), TIMEOUT)
    await opened.goto(server.http_url + "/web/splice.js")  # any page of the server's origin
    return opened


async def test_a_delta_that_comes_before_the_reply_waits_and_both_edits_survive(
    page: Page,
) -> None:
    """Bob's delta (v2) arrives before the reply to Ann's patch (v3): the page holds it, then
    carries her in-flight and pending splices past it, and ends on the server's text."""
    result = await run(page, """
      sync.edit([splice(5, 0, ' world')]);           // in flight, made on v1
      await tick();
      const patch = wire.sent.shift();
      sync.edit([splice(11, 0, '!')]);               // pending, made on top of it
      delta(2, [splice(0, 0, 'Oh, ')]);              // Bob's, committed first
      const heldText = text();
      // The server carried Ann's splice past Bob's and answered v3; its delta follows.
      patch.resolve({version: 3, rebased: true});
      await tick();
      delta(3, [splice(9, 0, ' world')], 'Ann');
      await tick();
      const second = wire.sent.shift();
      return {heldText, text: text(), base: second.message.base, ops: second.message.ops,
              version: sync.version, firstBase: patch.message.base};
    """)
    assert result["heldText"] == "hello world!"
    assert result["firstBase"] == 1
    assert result["text"] == "Oh, hello world!"
    assert result["version"] == 3
    assert result["base"] == 3
    assert result["ops"] == [{"op": "splice", "path": "/sections/a/text", "at": 15, "remove": 0,
                              "insert": "!"}]


async def test_a_patch_in_flight_when_the_connection_drops_is_resent_with_its_key(
    page: Page,
) -> None:
    """After a reconnect the unanswered patch goes again with the same base and key, and the
    server's duplicate reply confirms it once."""
    result = await run(page, """
      sync.edit([splice(0, 0, 'Say ')]);
      await tick();
      const first = wire.sent.shift();
      first.reject(Object.assign(new Error('gone'), {code: 'disconnected'}));
      wire.emit('status', 'reconnecting');
      await tick();
      wire.emit('ready', {resumed: true});
      await tick();
      const resubscribe = wire.sent.shift();
      resubscribe.resolve({version: 2, presence: [], locks: []});
      await tick();
      const resend = wire.sent.shift();
      resend.resolve({version: 2, duplicate: true});
      delta(2, [splice(0, 0, 'Say ')], 'Ann');
      await tick();
      return {since: resubscribe.message.since, same: resend.message.key === first.message.key,
              base: resend.message.base, text: text(), unsaved: sync.unsaved,
              left: wire.sent.length};
    """)
    assert result == {"since": 1, "same": True, "base": 1, "text": "Say hello", "unsaved": 0,
                      "left": 0}


async def test_a_pending_replace_overtaken_by_a_delta_becomes_a_conflict(page: Page) -> None:
    """A title the user changed, overtaken by another's change before it was sent, is kept as
    a conflict with the user's value; the page shows the other's value meanwhile."""
    result = await run(page, """
      sync.edit([splice(0, 0, 'x')]);                 // in flight
      await tick();
      const patch = wire.sent.shift();
      sync.edit([{op: 'add', path: '/sections/a/title', value: 'Mine'}]);
      delta(2, [{op: 'add', path: '/sections/a/title', value: 'Theirs'}]);
      patch.resolve({version: 3});
      await tick();
      delta(3, [splice(0, 0, 'x')], 'Ann');
      await tick();
      return {conflicts: sync.conflicts.map((c) => [c.path, c.yours]),
              title: sync.local.sections.a.title, text: text(), sent: wire.sent.length};
    """)
    assert result == {"conflicts": [["/sections/a/title", "Mine"]], "title": "Theirs",
                      "text": "xhello", "sent": 0}
