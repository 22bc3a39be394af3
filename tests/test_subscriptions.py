"""Single-node subscriptions (docs/protocol.md section 5) over real WebSocket connections."""

from __future__ import annotations

import asyncio
import os
import random
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support import TIMEOUT, RunningServer, WsClient, replace


async def _write(client: WsClient, doc: str, base: int, path: str, value: Any) -> int:
    reply = await client.ok("patch", doc=doc, base=base, ops=replace(path, value))
    return int(reply["version"])


async def test_subscribe_without_since_returns_state_and_then_live_deltas(
    server: RunningServer,
) -> None:
    """The reply carries version and state; later versions arrive as deltas."""
    token = server.token()
    doc = await server.create(token, state={"n": 0})
    async with await server.connect(token) as client:
        reply = await client.ok("subscribe", doc=doc["id"])
        assert reply["doc"] == doc["id"] and reply["version"] == 1
        assert reply["state"] == {"n": 0}
        assert reply["presence"] == [] or isinstance(reply["presence"], list)
        assert isinstance(reply["locks"], list)
        await _write(client, doc["id"], 1, "/n", 1)
        (delta,) = await client.deltas(doc["id"], 1)
        assert delta["version"] == 2
        assert delta["ops"] == replace("/n", 1)
        assert delta["actor"]["id"] == client.welcome["user"]["id"]
        assert isinstance(delta["event"], int) and delta["ts"].endswith("Z")


async def test_subscribe_with_since_replays_the_missed_versions_first(
    server: RunningServer,
) -> None:
    """``since`` gets every version after it from the log, in order, then live ones; no state."""
    token = server.token()
    doc = await server.create(token, state={"n": 0})
    async with await server.connect(token) as writer:
        for version in range(1, 6):
            await _write(writer, doc["id"], version, "/n", version)
        async with await server.connect(token) as late:
            reply = await late.ok("subscribe", doc=doc["id"], since=2)
            assert reply["version"] == 6 and "state" not in reply
            await _write(writer, doc["id"], 6, "/n", 6)
            deltas = await late.deltas(doc["id"], 5)
            assert [d["version"] for d in deltas] == [3, 4, 5, 6, 7]
            assert [d["ops"][0]["value"] for d in deltas] == [2, 3, 4, 5, 6]
            assert await late.nothing_more(0.2) == []


async def test_since_zero_replays_the_creation(server: RunningServer) -> None:
    """``since: 0`` starts with version 1, whose ops rebuild the initial state."""
    token = server.token()
    doc = await server.create(token, state={"a": [1]})
    async with await server.connect(token) as client:
        await client.ok("subscribe", doc=doc["id"], since=0)
        (first,) = await client.deltas(doc["id"], 1)
        assert first["version"] == 1
        assert first["ops"] == [{"op": "replace", "path": "", "value": {"a": [1]}}]


async def test_since_ahead_of_the_document_is_a_bad_request(server: RunningServer) -> None:
    """A ``since`` beyond the current version cannot be served and is refused."""
    token = server.token()
    doc = await server.create(token)
    async with await server.connect(token) as client:
        reply = await client.request("subscribe", doc=doc["id"], since=5)
        assert reply["type"] == "error" and reply["code"] == "bad_request"
        unknown = await client.request("subscribe", doc="no-such-doc")
        assert unknown["code"] == "not_found"


async def test_concurrent_writers_deltas_arrive_exactly_once_in_order(
    server: RunningServer,
) -> None:
    """Several writers on one document: every subscriber sees 2..N once each, in order."""
    token = server.token()
    writers_count, per_writer = 4, 15
    doc = await server.create(token, state={f"w{i}": 0 for i in range(writers_count)})
    watchers = [await server.connect(token) for _ in range(3)]
    writers = [await server.connect(token) for _ in range(writers_count)]
    try:
        for watcher in watchers:
            await watcher.ok("subscribe", doc=doc["id"])

        async def write_all(index: int, client: WsClient) -> None:
            base = 1
            for n in range(per_writer):
                reply = await client.ok("patch", doc=doc["id"], base=base,
                                        ops=replace(f"/w{index}", n + 1))
                base = reply["version"]

        await asyncio.wait_for(
            asyncio.gather(*(write_all(i, c) for i, c in enumerate(writers))), 60
        )
        total = writers_count * per_writer
        for watcher in watchers:
            deltas = await watcher.deltas(doc["id"], total)
            assert [d["version"] for d in deltas] == list(range(2, total + 2))
            assert await watcher.nothing_more(0.2) == []
    finally:
        for client in watchers + writers:
            await client.close()


async def test_http_writes_reach_websocket_subscribers(server: RunningServer) -> None:
    """A PATCH over HTTP is fanned out to WebSocket subscribers like any other write."""
    token = server.token()
    doc = await server.create(token, state={"n": 0})
    async with await server.connect(token) as client:
        await client.ok("subscribe", doc=doc["id"])
        async with server.http(token) as http:
            response = await http.patch(f"/api/documents/{doc['id']}", json=replace("/n", 9),
                                        headers={"If-Match": '"1"'})
            assert response.status_code == 200
        (delta,) = await client.deltas(doc["id"], 1)
        assert delta["version"] == 2 and delta["ops"] == replace("/n", 9)


async def test_unsubscribe_stops_the_deltas(server: RunningServer) -> None:
    """After the unsubscribe reply no message about the document arrives."""
    token = server.token()
    doc = await server.create(token, state={"n": 0})
    async with await server.connect(token) as writer, await server.connect(token) as reader:
        await reader.ok("subscribe", doc=doc["id"])
        await reader.ok("unsubscribe", doc=doc["id"])
        await _write(writer, doc["id"], 1, "/n", 1)
        assert await reader.nothing_more(0.3) == []
        assert server.coedit.hub.subscriber_count(doc["id"]) == 0


async def test_subscribing_twice_does_not_duplicate_deltas(server: RunningServer) -> None:
    """A second subscribe to the same document replaces the first, it does not add to it."""
    token = server.token()
    doc = await server.create(token, state={"n": 0})
    async with await server.connect(token) as client:
        await client.ok("subscribe", doc=doc["id"])
        await client.ok("subscribe", doc=doc["id"])
        await _write(client, doc["id"], 1, "/n", 1)
        (delta,) = await client.deltas(doc["id"], 1)
        assert delta["version"] == 2
        assert await client.nothing_more(0.3) == []


async def test_closed_connections_leave_the_hub(server: RunningServer) -> None:
    """When a subscriber disconnects its subscription is dropped from the hub."""
    token = server.token()
    doc = await server.create(token)
    client = await server.connect(token)
    await client.ok("subscribe", doc=doc["id"])
    assert server.coedit.hub.subscriber_count(doc["id"]) == 1
    await client.close()
    async with asyncio.timeout(5):
        while server.coedit.hub.subscriber_count(doc["id"]):
            await asyncio.sleep(0.02)


async def test_reset_when_the_log_cannot_serve_since(server: RunningServer) -> None:
    """If revisions after ``since`` are gone, the server sends ``reset`` with the current state."""
    token = server.token()
    doc = await server.create(token, state={"n": 0})
    async with await server.connect(token) as client:
        for version in range(1, 4):
            await _write(client, doc["id"], version, "/n", version)
    # Simulate a log that no longer holds version 2 (the append-only guard must go first).
    engine = create_async_engine(server.settings.database_url)
    try:
        async with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text("ALTER TABLE revisions DISABLE TRIGGER USER"))
            else:
                await conn.execute(text("DROP TRIGGER revisions_no_delete"))
            await conn.execute(text("DELETE FROM revisions WHERE doc = :d AND version = 2"),
                               {"d": doc["id"]})
    finally:
        await engine.dispose()
    async with await server.connect(token) as client:
        reply = await client.ok("subscribe", doc=doc["id"], since=1)
        assert reply["version"] == 4
        reset = await client.recv_type("reset")
        assert reset == {"type": "reset", "doc": doc["id"], "version": 4, "state": {"n": 3}}
        await _write(client, doc["id"], 4, "/n", 4)
        (delta,) = await client.deltas(doc["id"], 1)
        assert delta["version"] == 5


# Rounds of the concurrent-subscribe test; raise it to hunt for rare interleavings (the old
# race of issue 17 showed in about 1 of 700 subscriptions).
SUBSCRIBE_ROUNDS = int(os.environ.get("COEDIT_TEST_SUBSCRIBE_ROUNDS", "20"))


async def test_sessions_subscribing_together_under_writes_miss_no_version(
    server: RunningServer,
) -> None:
    """Ten sessions subscribe at once (with ``since``) to a document nobody on the node follows,
    while a writer commits about 200 writes a second; each unsubscribes after a moment, in
    rounds. Every subscription receives every version after its ``since``, once, in order,
    up to at least the last write acknowledged before it unsubscribed."""
    rng = random.Random(9)
    token = server.token()
    doc = (await server.create(token, state={"n": 0}))["id"]
    acked = 1
    stop = asyncio.Event()

    async def write(writer: WsClient) -> None:
        nonlocal acked
        while not stop.is_set():
            acked = await _write(writer, doc, acked, "/n", acked)
            await asyncio.sleep(0.005)

    async def follow(client: WsClient) -> tuple[int, int, list[int]]:
        since = max(1, acked - rng.randint(0, 3))
        await client.ok("subscribe", doc=doc, since=since)
        await asyncio.sleep(rng.uniform(0.05, 0.15))
        floor = acked  # acknowledged before the unsubscribe: its delta precedes the reply
        await client.ok("unsubscribe", doc=doc)
        versions = [m["version"] for m in client.pushes
                    if m.get("type") == "delta" and m.get("doc") == doc]
        client.pushes.clear()
        return since, floor, versions

    clients = [await server.connect(token) for _ in range(10)]
    async with await server.connect(token) as writer:
        writing = asyncio.create_task(write(writer))
        try:
            async with asyncio.timeout(120):
                for _round in range(SUBSCRIBE_ROUNDS):
                    for since, floor, versions in await asyncio.gather(
                            *(follow(c) for c in clients)):
                        assert versions == list(range(since + 1, since + 1 + len(versions)))
                        assert (versions[-1] if versions else since) >= floor
        finally:
            stop.set()
            await asyncio.wait_for(writing, TIMEOUT)
            for client in clients:
                await client.close()
