"""Presence (docs/protocol.md section 6) over real WebSocket connections.

Presence diffs arrive as ``presence`` pushes with ``joins``, ``updates`` and ``leaves``; a
client may also see diffs about itself, so every wait below looks for the one diff it expects
(by session) and keeps what it skipped for the assertions that nothing else happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.support import TIMEOUT, RunningServer, WsClient

ENTRY_FIELDS = {"session", "user", "doc", "kind", "node", "state", "since"}
Diff = dict[str, Any]


def _session(client: WsClient) -> str:
    return str(client.welcome["session"])


def _sessions(diff: Diff, group: str) -> list[str]:
    return [entry["session"] for entry in diff[group]]


def _joined(client: WsClient, doc: str | None = None) -> Callable[[Diff], bool]:
    return lambda d: _session(client) in _sessions(d, "joins") and doc in (None, d["doc"])


def _updated(client: WsClient) -> Callable[[Diff], bool]:
    return lambda d: _session(client) in _sessions(d, "updates")


def _left(client: WsClient) -> Callable[[Diff], bool]:
    return lambda d: _session(client) in _sessions(d, "leaves")


async def _diff(client: WsClient, match: Callable[[Diff], bool],
                timeout: float = TIMEOUT) -> tuple[Diff, list[Diff]]:
    """The first ``presence`` push that ``match``es, and the presence pushes before it."""
    skipped: list[Diff] = []
    async with asyncio.timeout(timeout):
        while True:
            message = await client.recv_type("presence", timeout)
            if match(message):
                return message, skipped
            skipped.append(message)


async def _quiet(client: WsClient, wait: float = 0.3) -> list[Diff]:
    """Every presence push that arrives within ``wait`` seconds (other pushes are dropped)."""
    return [m for m in await client.nothing_more(wait, ignore=()) if m.get("type") == "presence"]


def _check_entry(entry: dict[str, Any], client: WsClient, doc: dict[str, Any],
                 state: dict[str, Any]) -> None:
    user = client.welcome["user"]
    assert set(entry) >= ENTRY_FIELDS, entry
    assert entry["session"] == _session(client)
    assert entry["user"] == {"id": user["id"], "name": user["name"]}
    assert entry["doc"] == doc["id"] and entry["kind"] == doc["kind"]
    assert entry["node"] == client.welcome["node"]
    assert entry["state"] == state
    assert isinstance(entry["since"], str) and entry["since"]


async def _presence_over_http(server: RunningServer, token: str, **params: str) -> Any:
    async with server.http(token) as http:
        return await asyncio.wait_for(http.get("/api/presence", params=params), TIMEOUT)


@contextlib.asynccontextmanager
async def _heartbeating(client: WsClient, every: float) -> AsyncIterator[None]:
    """Keep ``client`` alive with ``heartbeat`` frames while the block runs."""

    async def beat() -> None:
        while True:
            await client.send({"type": "heartbeat"})
            await asyncio.sleep(every)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# -- joining ------------------------------------------------------------------------------------


async def test_subscribing_makes_a_session_present_as_viewing(server: RunningServer) -> None:
    """A new subscriber is announced to the others as a join with state viewing, and its own
    subscribe reply lists those already present (not itself)."""
    first_token = server.token(user="alice", name="Alice")
    second_token = server.token(user="bob", name="Bob")
    doc = await server.create(first_token)
    async with await server.connect(first_token) as first, \
            await server.connect(second_token) as second:
        reply = await first.ok("subscribe", doc=doc["id"])
        assert [e["session"] for e in reply["presence"]] == []

        reply = await second.ok("subscribe", doc=doc["id"])
        assert len(reply["presence"]) == 1
        _check_entry(reply["presence"][0], first, doc, {"status": "viewing"})

        diff, _ = await _diff(first, _joined(second))
        assert diff["doc"] == doc["id"]
        assert diff["updates"] == [] and diff["leaves"] == []
        assert len(diff["joins"]) == 1
        _check_entry(diff["joins"][0], second, doc, {"status": "viewing"})
        assert diff["joins"][0]["user"] == {"id": "bob", "name": "Bob"}


async def test_subscribing_again_is_not_a_second_join(server: RunningServer) -> None:
    """A session that subscribes twice to a document is announced once and listed once."""
    token = server.token()
    doc = await server.create(token)
    async with await server.connect(token) as watcher, await server.connect(token) as client:
        await watcher.ok("subscribe", doc=doc["id"])
        await client.ok("subscribe", doc=doc["id"])
        await _diff(watcher, _joined(client))
        await client.ok("subscribe", doc=doc["id"])
        extra = await _quiet(watcher)
        assert [d for d in extra if _session(client) in _sessions(d, "joins")] == []
        entries = (await _presence_over_http(server, token, doc=doc["id"])).json()["presence"]
        assert sorted(e["session"] for e in entries) == sorted(
            [_session(watcher), _session(client)])


# -- setting presence ---------------------------------------------------------------------------


async def test_presence_state_change_is_an_update_not_a_leave_and_join(
    server: RunningServer,
) -> None:
    """Setting presence replies ok and the others receive one update with the new state, and
    no leave or join of that session."""
    token = server.token()
    doc = await server.create(token, state={"a": 1})
    async with await server.connect(token) as watcher, await server.connect(token) as editor:
        await watcher.ok("subscribe", doc=doc["id"])
        await editor.ok("subscribe", doc=doc["id"])
        await _diff(watcher, _joined(editor))
        state = {"status": "editing", "focus": "/a"}
        reply = await editor.request("presence", doc=doc["id"], state=state)
        assert reply["type"] == "ok", reply

        diff, skipped = await _diff(watcher, _updated(editor))
        assert diff["doc"] == doc["id"]
        assert diff["joins"] == [] and diff["leaves"] == []
        assert len(diff["updates"]) == 1
        _check_entry(diff["updates"][0], editor, doc, state)
        others = skipped + await _quiet(watcher)
        assert [d for d in others if _session(editor) in
                _sessions(d, "joins") + _sessions(d, "leaves")] == []

        entries = (await _presence_over_http(server, token, doc=doc["id"])).json()["presence"]
        mine = [e for e in entries if e["session"] == _session(editor)]
        assert len(mine) == 1 and mine[0]["state"] == state


async def test_presence_state_may_carry_other_fields_up_to_one_kibibyte(
    server: RunningServer,
) -> None:
    """A state with extra fields, status idle and an empty focus (the whole document) of just
    under 1 KiB is accepted and passed on as is."""
    token = server.token()
    doc = await server.create(token)
    async with await server.connect(token) as watcher, await server.connect(token) as client:
        await watcher.ok("subscribe", doc=doc["id"])
        await client.ok("subscribe", doc=doc["id"])
        state = {"status": "idle", "focus": "", "cursor": {"line": 3}, "note": "x" * 900}
        await client.ok("presence", doc=doc["id"], state=state)
        diff, _ = await _diff(watcher, _updated(client))
        assert diff["updates"][0]["state"] == state


@pytest.mark.parametrize(
    "state",
    [
        {"status": "editing", "note": "x" * 1100},
        {"status": "typing"},
        {"status": "editing", "focus": "a/b"},
        {"focus": 3},
        ["viewing"],
        "editing",
    ],
    ids=["over-1KiB", "unknown-status", "focus-not-pointer", "focus-not-string", "list",
         "string"],
)
async def test_malformed_presence_states_are_bad_requests(
    server: RunningServer, state: Any,
) -> None:
    """A state over 1 KiB, with an unknown status, a focus that is not a JSON pointer, or that
    is not a map is ``bad_request``; nobody is told anything and the state is unchanged."""
    token = server.token()
    doc = await server.create(token)
    async with await server.connect(token) as watcher, await server.connect(token) as client:
        await watcher.ok("subscribe", doc=doc["id"])
        await client.ok("subscribe", doc=doc["id"])
        await _diff(watcher, _joined(client))
        reply = await client.request("presence", doc=doc["id"], state=state)
        assert reply["type"] == "error" and reply["code"] == "bad_request", reply
        assert [d for d in await _quiet(watcher) if _updated(client)(d)] == []
        entries = (await _presence_over_http(server, token, doc=doc["id"])).json()["presence"]
        mine = [e for e in entries if e["session"] == _session(client)]
        assert [e["state"] for e in mine] == [{"status": "viewing"}]


async def test_presence_on_a_document_not_subscribed_is_a_bad_request(
    server: RunningServer,
) -> None:
    """Setting presence on a document the connection did not subscribe to (or unsubscribed
    from) is ``bad_request`` and makes nobody present."""
    token = server.token()
    doc = await server.create(token)
    async with await server.connect(token) as client:
        reply = await client.request("presence", doc=doc["id"], state={"status": "editing"})
        assert reply["type"] == "error" and reply["code"] == "bad_request", reply
        await client.ok("subscribe", doc=doc["id"])
        await client.ok("unsubscribe", doc=doc["id"])
        reply = await client.request("presence", doc=doc["id"], state={"status": "editing"})
        assert reply["type"] == "error" and reply["code"] == "bad_request", reply
        entries = (await _presence_over_http(server, token, doc=doc["id"])).json()["presence"]
        assert entries == []


# -- leaving ------------------------------------------------------------------------------------


async def test_unsubscribe_and_close_are_leaves(server: RunningServer) -> None:
    """Others receive a leave when a session unsubscribes and when a connection closes."""
    token = server.token()
    doc = await server.create(token)
    async with await server.connect(token) as watcher:
        await watcher.ok("subscribe", doc=doc["id"])
        async with await server.connect(token) as quitter:
            await quitter.ok("subscribe", doc=doc["id"])
            await _diff(watcher, _joined(quitter))
            await quitter.ok("unsubscribe", doc=doc["id"])
            diff, _ = await _diff(watcher, _left(quitter))
            assert diff["doc"] == doc["id"] and diff["joins"] == [] and diff["updates"] == []
            _check_entry(diff["leaves"][0], quitter, doc, {"status": "viewing"})

        closer = await server.connect(token)
        await closer.ok("subscribe", doc=doc["id"])
        await closer.ok("presence", doc=doc["id"], state={"status": "editing"})
        await _diff(watcher, _updated(closer))
        await closer.close()
        diff, _ = await _diff(watcher, _left(closer))
        assert diff["doc"] == doc["id"]
        _check_entry(diff["leaves"][0], closer, doc, {"status": "editing"})
        entries = (await _presence_over_http(server, token, doc=doc["id"])).json()["presence"]
        assert [e["session"] for e in entries] == [_session(watcher)]


class TestSilentConnection:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"heartbeat_ms": 300}

    async def test_silent_connection_is_closed_and_leaves_within_three_intervals(
        self, server: RunningServer,
    ) -> None:
        """A subscriber that sends nothing is closed with 4408 and the others see its leave
        three heartbeat intervals (plus a little) after its last frame, not before."""
        token = server.token()
        doc = await server.create(token)
        interval = server.settings.heartbeat_ms / 1000
        async with await server.connect(token) as watcher, _heartbeating(watcher, interval / 3):
            await watcher.ok("subscribe", doc=doc["id"])
            async with await server.connect(token) as silent:
                last_frame = time.monotonic()
                await silent.ok("subscribe", doc=doc["id"])
                await _diff(watcher, _joined(silent))
                diff, _ = await _diff(watcher, _left(silent), timeout=5)
                elapsed = time.monotonic() - last_frame
                assert await silent.closed_with(5) == 4408
            assert diff["doc"] == doc["id"]
            assert 3 * interval - 0.05 <= elapsed <= 3 * interval + 0.5, elapsed
            entries = (await _presence_over_http(server, token, doc=doc["id"])).json()
            assert [e["session"] for e in entries["presence"]] == [_session(watcher)]

    async def test_heartbeating_connection_stays_present(self, server: RunningServer) -> None:
        """A subscriber sending heartbeats stays present well past three intervals."""
        token = server.token()
        doc = await server.create(token)
        interval = server.settings.heartbeat_ms / 1000
        async with await server.connect(token) as watcher, \
                await server.connect(token) as client, \
                _heartbeating(watcher, interval / 3), _heartbeating(client, interval / 3):
            await watcher.ok("subscribe", doc=doc["id"])
            await client.ok("subscribe", doc=doc["id"])
            await _diff(watcher, _joined(client))
            diffs = await _quiet(watcher, 5 * interval)
            assert [d for d in diffs if _left(client)(d)] == []
            entries = (await _presence_over_http(server, token, doc=doc["id"])).json()
            assert _session(client) in [e["session"] for e in entries["presence"]]


# -- stage subscriptions ------------------------------------------------------------------------


async def test_stage_subscription_sees_every_document_of_its_kind(server: RunningServer) -> None:
    """A stage subscription's reply lists presence on every memo of the tenant, and then it
    receives the diffs of memos only: not of other kinds, not of other tenants."""
    token = server.token(tenant="acme")
    outsider_token = server.token(tenant="globex")
    memo_one = await server.create(token, kind="memo")
    memo_two = await server.create(token, kind="memo")
    valuation = await server.create(token, kind="valuation")
    foreign_memo = await server.create(outsider_token, kind="memo")
    async with await server.connect(token) as a, await server.connect(token) as b, \
            await server.connect(outsider_token) as outsider, \
            await server.connect(token) as stage:
        await a.ok("subscribe", doc=memo_one["id"])
        await b.ok("subscribe", doc=memo_two["id"])
        await b.ok("subscribe", doc=valuation["id"])
        await outsider.ok("subscribe", doc=foreign_memo["id"])

        reply = await stage.ok("subscribe", stage="memo")
        listed = {(e["doc"], e["session"]) for e in reply["presence"]}
        assert listed == {(memo_one["id"], _session(a)), (memo_two["id"], _session(b))}
        for entry in reply["presence"]:
            assert set(entry) >= ENTRY_FIELDS and entry["kind"] == "memo"

        # Diffs of the wrong kind and tenant first, then one that must arrive.
        await a.ok("subscribe", doc=valuation["id"])
        await outsider.ok("presence", doc=foreign_memo["id"], state={"status": "editing"})
        await a.ok("presence", doc=memo_one["id"], state={"status": "editing", "focus": "/x"})
        diff, skipped = await _diff(stage, _updated(a))
        assert diff["doc"] == memo_one["id"]
        assert diff["updates"][0]["state"] == {"status": "editing", "focus": "/x"}

        await b.ok("unsubscribe", doc=memo_two["id"])
        left, more = await _diff(stage, _left(b))
        assert left["doc"] == memo_two["id"]
        seen = skipped + more + await _quiet(stage)
        assert {d["doc"] for d in seen} <= {memo_one["id"], memo_two["id"]}, seen


async def test_stage_subscription_needs_a_kind(server: RunningServer) -> None:
    """A stage that is not a document kind is ``bad_request``."""
    async with await server.connect(server.token()) as client:
        for stage in ("Memo", "", 7, "x" * 40):
            reply = await client.request("subscribe", stage=stage)
            assert reply["type"] == "error" and reply["code"] == "bad_request", (stage, reply)


# -- HTTP and tenants ---------------------------------------------------------------------------


async def test_presence_is_listed_over_http_by_document_and_kind(server: RunningServer) -> None:
    """GET /api/presence?doc= lists a document's entries and ?kind= those of every document of
    the kind in the caller's tenant."""
    token = server.token()
    memo = await server.create(token, kind="memo")
    other_memo = await server.create(token, kind="memo")
    valuation = await server.create(token, kind="valuation")
    async with await server.connect(token) as a, await server.connect(token) as b:
        await a.ok("subscribe", doc=memo["id"])
        await b.ok("subscribe", doc=memo["id"])
        await b.ok("subscribe", doc=other_memo["id"])
        await a.ok("subscribe", doc=valuation["id"])
        await a.ok("presence", doc=memo["id"], state={"status": "editing", "focus": "/t"})

        response = await _presence_over_http(server, token, doc=memo["id"])
        assert response.status_code == 200, response.text
        entries = {e["session"]: e for e in response.json()["presence"]}
        assert set(entries) == {_session(a), _session(b)}
        _check_entry(entries[_session(a)], a, memo, {"status": "editing", "focus": "/t"})
        _check_entry(entries[_session(b)], b, memo, {"status": "viewing"})

        response = await _presence_over_http(server, token, kind="memo")
        assert response.status_code == 200, response.text
        pairs = {(e["doc"], e["session"]) for e in response.json()["presence"]}
        assert pairs == {(memo["id"], _session(a)), (memo["id"], _session(b)),
                         (other_memo["id"], _session(b))}

        response = await _presence_over_http(server, token, kind="valuation")
        assert [e["doc"] for e in response.json()["presence"]] == [valuation["id"]]


async def test_presence_of_another_tenant_is_invisible(server: RunningServer) -> None:
    """Another tenant's user sees no presence of this tenant: not by document, not by kind,
    not as diffs, and cannot subscribe to the document."""
    token = server.token(tenant="acme")
    outsider_token = server.token(tenant="globex")
    doc = await server.create(token, kind="memo")
    async with await server.connect(token) as client, \
            await server.connect(outsider_token) as outsider:
        await outsider.ok("subscribe", stage="memo")
        await client.ok("subscribe", doc=doc["id"])
        await client.ok("presence", doc=doc["id"], state={"status": "editing"})

        by_doc = await _presence_over_http(server, outsider_token, doc=doc["id"])
        assert by_doc.status_code == 404 or by_doc.json()["presence"] == [], by_doc.text
        by_kind = await _presence_over_http(server, outsider_token, kind="memo")
        assert by_kind.status_code == 200 and by_kind.json()["presence"] == []
        refused = await outsider.request("subscribe", doc=doc["id"])
        assert refused["type"] == "error" and refused["code"] == "not_found"
        assert await _quiet(outsider) == []

        mine = await _presence_over_http(server, token, kind="memo")
        assert [e["session"] for e in mine.json()["presence"]] == [_session(client)]


# -- graceful shutdown --------------------------------------------------------------------------


async def test_graceful_drain_removes_every_presence_entry(server: RunningServer) -> None:
    """Draining the server closes every connection with 1001 and leaves no presence entry."""
    token = server.token()
    doc = await server.create(token)
    clients = [await server.connect(token) for _ in range(3)]
    try:
        for client in clients:
            await client.ok("subscribe", doc=doc["id"])
        backend = server.coedit.presence.backend
        # Joins in a burst are written a tenth of a second apart: wait for all three.
        async with asyncio.timeout(TIMEOUT):
            while len(await backend.for_doc(doc["id"])) < 3:
                await asyncio.sleep(0.02)
        await asyncio.wait_for(server.server.drain(), 15)
        for client in clients:
            assert await client.closed_with() == 1001
        assert await asyncio.wait_for(backend.for_doc(doc["id"]), TIMEOUT) == []
        assert await asyncio.wait_for(backend.for_kind("acme", "memo"), TIMEOUT) == []
    finally:
        for client in clients:
            await client.close()
