"""The audit log as a query (GET /api/events) and as live streams (WebSocket and SSE)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from sqlalchemy import select, text

from persistence.audit import Actor, AuditContext, EventDraft, append_event
from persistence.database import Database
from persistence.events import EventFilter, EventLog
from persistence.schema import documents
from persistence.timeutil import utcnow
from tests.conftest import PostgresDatabases
from tests.support import TIMEOUT, RunningServer, WsClient, replace


async def _history(server: RunningServer, token: str, doc: str) -> None:
    """Write a small mixed history: two patches, a lock and an unlock."""
    async with await server.connect(token) as client:
        await client.ok("patch", doc=doc, base=1, ops=replace("/n", 1))
        await client.ok("patch", doc=doc, base=2, ops=replace("/n", 2))
        await client.ok("lock", doc=doc, path="/n")
        await client.ok("unlock", doc=doc, path="/n")


async def _all_events(server: RunningServer, token: str, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    async with server.http(token) as http:
        while True:
            query = {**params, **({"cursor": cursor} if cursor else {})}
            page = (await http.get("/api/events", params=query)).json()
            found += page["events"]
            cursor = page["next"]
            if cursor is None:
                return found


async def test_events_filter_by_kind_type_doc_actor_and_time(server: RunningServer) -> None:
    """Each filter of GET /api/events narrows the tenant's events; type accepts ``prefix.*``."""
    ann, bob = server.token(user="ann"), server.token(user="bob")
    memo = await server.create(ann, kind="memo", state={"n": 0})
    valuation = await server.create(bob, kind="valuation", state={"n": 0})
    await _history(server, ann, memo["id"])
    everything = await _all_events(server, ann)
    assert [e["seq"] for e in everything] == sorted(e["seq"] for e in everything)
    assert {e["type"] for e in everything} == {
        "document.created", "patch.applied", "lock.acquired", "lock.released"}
    assert {e["kind"] for e in await _all_events(server, ann, kind="valuation")} == {"valuation"}
    locks = await _all_events(server, ann, type="lock.*")
    assert [e["type"] for e in locks] == ["lock.acquired", "lock.released"]
    exact = await _all_events(server, ann, type="patch.applied")
    assert len(exact) == 2
    assert {e["doc"] for e in await _all_events(server, ann, doc=valuation["id"])} == {
        valuation["id"]}
    assert {e["actor"]["id"] for e in await _all_events(server, ann, actor="bob")} == {"bob"}
    since = everything[2]["seq"]
    assert [e["seq"] for e in await _all_events(server, ann, since=since)] == [
        e["seq"] for e in everything if e["seq"] > since]
    first_ts = everything[0]["ts"]
    assert [e["seq"] for e in await _all_events(server, ann, until=first_ts)] == [
        everything[0]["seq"]]
    other_tenant = server.token(tenant="elsewhere")
    assert await _all_events(server, other_tenant) == []


async def test_event_pages_never_repeat_or_skip(server: RunningServer) -> None:
    """Following ``next`` with a small limit yields every event exactly once, in order."""
    token = server.token()
    doc = await server.create(token, state={"n": 0})
    async with await server.connect(token) as client:
        for version in range(1, 12):
            await client.ok("patch", doc=doc["id"], base=version, ops=replace("/n", version))
    everything = await _all_events(server, token)
    paged = await _all_events(server, token, limit=3)
    assert [e["seq"] for e in paged] == [e["seq"] for e in everything]
    assert len(everything) == 12
    async with server.http(token) as http:
        bad = await http.get("/api/events", params={"cursor": "nonsense"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_request"
        bad_type = await http.get("/api/events", params={"type": "Not A Type"})
        assert bad_type.status_code == 400


async def _stream_events(client: WsClient, stream: str, count: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    async with asyncio.timeout(TIMEOUT):
        while len(found) < count:
            message = await client.recv_type("event")
            assert message["stream"] == stream
            found.append(message["event"])
    return found


async def test_websocket_stream_catches_up_then_follows_live(server: RunningServer) -> None:
    """``subscribe`` with ``stream`` and ``since`` replays matching events, then sends new ones."""
    token = server.token()
    doc = await server.create(token, state={"n": 0})
    await _history(server, token, doc["id"])
    async with await server.connect(token) as reader, await server.connect(token) as writer:
        reply = await reader.ok("subscribe", stream={"types": ["patch.*", "lock.acquired"]},
                                since=0)
        stream = reply["stream"]
        assert isinstance(reply["seq"], int) and reply["seq"] > 0
        caught_up = await _stream_events(reader, stream, 3)
        assert [e["type"] for e in caught_up] == ["patch.applied", "patch.applied",
                                                  "lock.acquired"]
        await writer.ok("patch", doc=doc["id"], base=3, ops=replace("/n", 3))
        (live,) = await _stream_events(reader, stream, 1)
        assert live["type"] == "patch.applied" and live["version"] == 4
        assert live["seq"] > caught_up[-1]["seq"]
        await reader.ok("unsubscribe", stream=stream)
        await writer.ok("patch", doc=doc["id"], base=4, ops=replace("/n", 4))
        assert await reader.nothing_more(0.5) == []


async def test_stream_without_since_starts_at_the_head(server: RunningServer) -> None:
    """Without ``since`` a stream sends only events committed after its reply."""
    token = server.token()
    doc = await server.create(token, state={"n": 0})
    async with await server.connect(token) as reader:
        reply = await reader.ok("subscribe", stream={})
        await reader.ok("patch", doc=doc["id"], base=1, ops=replace("/n", 1))
        (event,) = await _stream_events(reader, reply["stream"], 1)
        assert event["type"] == "patch.applied" and event["seq"] > reply["seq"]


async def test_bad_stream_filters_are_refused(server: RunningServer) -> None:
    """Unknown filter fields or malformed values are bad requests."""
    async with await server.connect(server.token()) as client:
        for stream in ({"colour": ["red"]}, {"types": "patch.applied"}, {"kinds": [1]},
                       "everything"):
            reply = await client.request("subscribe", stream=stream)
            if stream == {"types": "patch.applied"}:
                assert reply["type"] == "ok"  # a single string is accepted as one value
            else:
                assert reply["code"] == "bad_request", stream


async def _sse(http: httpx.AsyncClient, count: int, **headers: str) -> AsyncIterator[Any]:
    """Yield the first ``count`` events of an SSE response as (id, event)."""
    async with http.stream("GET", "/api/events/stream", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event_id: str | None = None
        seen = 0
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("data: "):
                yield event_id, json.loads(line[6:])
                seen += 1
                if seen == count:
                    return


async def test_sse_stream_resumes_with_last_event_id(server: RunningServer) -> None:
    """SSE ids are seqs; reconnecting with Last-Event-ID continues with no gap and no repeat."""
    token = server.token()
    doc = await server.create(token, state={"n": 0})
    async with await server.connect(token) as writer:
        for version in range(1, 6):
            await writer.ok("patch", doc=doc["id"], base=version, ops=replace("/n", version))
    everything = await _all_events(server, token)
    async with server.http(token) as http:
        first: list[Any] = []
        async with asyncio.timeout(TIMEOUT):
            async for item in _sse(http, 3, **{"Last-Event-ID": "0"}):
                first.append(item)
        assert [int(i) for i, _ in first] == [e["seq"] for e in everything[:3]]
        rest: list[Any] = []
        async with asyncio.timeout(TIMEOUT):
            async for item in _sse(http, 4, **{"Last-Event-ID": first[-1][0]}):
                rest.append(item)
                if len(rest) == 3:
                    async with await server.connect(token) as writer:
                        await writer.ok("patch", doc=doc["id"], base=6, ops=replace("/n", 6))
        seqs = [int(i) for i, _ in first + rest]
        assert seqs == sorted(set(seqs)) and len(seqs) == 7
        assert rest[-1][1]["version"] == 7


async def test_stream_never_skips_an_event_that_commits_late(
    postgres: PostgresDatabases,
) -> None:
    """A transaction holding a smaller seq commits after a larger one: readers wait for it."""
    db = Database(await postgres.fresh())
    log = EventLog(db)
    ctx = AuditContext(Actor("u", "U"), "acme")
    try:
        async with db.transaction() as conn:
            now = utcnow()
            await conn.execute(documents.insert().values(
                id="d1", tenant="acme", kind="memo", title="t", version=1, state="{}",
                created_at=now, created_by="u", updated_at=now, updated_by="u"))
        slow_started = asyncio.Event()
        release_slow = asyncio.Event()

        async def slow_writer() -> None:
            async with db.transaction() as conn:
                await conn.execute(select(documents).where(documents.c.id == "d1")
                                   .with_for_update())
                await append_event(conn, ctx, EventDraft("slow.write", "d1", "memo", None, {}),
                                   ts=utcnow())
                slow_started.set()
                await release_slow.wait()

        slow = asyncio.create_task(slow_writer())
        await asyncio.wait_for(slow_started.wait(), TIMEOUT)
        async with db.transaction() as conn:  # a doc-less event: no row lock to wait on
            await append_event(conn, ctx, EventDraft("fast.write", None, None, None, {}),
                               ts=utcnow())
        async with db.reader() as conn:
            visible = (await conn.execute(text("SELECT type FROM events"))).scalars().all()
        assert visible == ["fast.write"]  # the larger seq is committed and visible ...
        reading = asyncio.create_task(log.read("acme", after=0))
        await asyncio.sleep(0.3)
        assert not reading.done()  # ... but the reader waits for the smaller one's fate
        release_slow.set()
        await asyncio.wait_for(slow, TIMEOUT)
        found, position, _ = await asyncio.wait_for(reading, TIMEOUT)
        assert [e["type"] for e in found] == ["slow.write", "fast.write"]
        assert position == found[-1]["seq"]
        assert EventFilter.parse(types=["slow.*"]).matches(found[0])
    finally:
        await db.dispose()
