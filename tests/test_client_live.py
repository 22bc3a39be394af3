"""The Python client's live features against a real server: locks that renew past their ttl
and report a steal, presence kept across reconnects, event streams (WebSocket and
Server-Sent Events) that resume without gaps or repeats, and the 4401 close."""

from __future__ import annotations

import asyncio
from typing import Any

import coedit_client
import pytest
from coedit_client import LockLost, LockStolen, TokenExpired

from tests.client_proxy import proxy_to
from tests.conftest import make_settings
from tests.support import TIMEOUT, RunningServer, WsClient, replace, start_server


async def _live_locks(server: RunningServer, token: str, doc: str) -> list[dict[str, Any]]:
    async with server.http(token) as http:
        response = await http.get("/api/locks", params={"doc": doc})
    assert response.status_code == 200, response.text
    return response.json()["locks"]  # type: ignore[no-any-return]


async def test_a_lock_renews_past_its_ttl_and_is_released(server: RunningServer) -> None:
    """A lock with a one-second ttl held for three and a half seconds stays live with its
    token, renewed by the client; it is released when the block ends."""
    token = server.token()
    doc_id = (await server.create(token, state={"valuation": {"wacc": 0.08}}))["id"]
    async with coedit_client.connect(server.http_url, token=token) as c:
        doc = await c.open(doc_id)
        async with doc.lock("/valuation/wacc", ttl_ms=1000) as lock:
            first = lock.token
            await asyncio.sleep(3.5)
            assert lock.renewals >= 5 and lock.token == first and not lock.is_lost
            live = await _live_locks(server, token, doc_id)
            assert [(x["path"], x["token"]) for x in live] == [("/valuation/wacc", first)]
            await doc.patch(replace("/valuation/wacc", 0.09))
        assert await _live_locks(server, token, doc_id) == []
        assert lock.reason == "released"


async def test_a_stolen_lock_interrupts_the_block_and_raises(server: RunningServer) -> None:
    """An admin forcing the lock cancels the block that held it, which raises LockStolen."""
    token = server.token()
    admin = server.token(roles=["admin"])
    doc_id = (await server.create(token, state={"wacc": 0.08}))["id"]
    async with coedit_client.connect(server.http_url, token=token) as c, \
            await server.connect(admin) as thief:
        doc = await c.open(doc_id)
        reached = asyncio.Event()
        finished = False

        async def hold() -> None:
            nonlocal finished
            async with doc.lock("/wacc", ttl_ms=5000):
                reached.set()
                await asyncio.sleep(TIMEOUT * 2)
                finished = True

        holder = asyncio.create_task(hold())
        await asyncio.wait_for(reached.wait(), TIMEOUT)
        await thief.ok("lock", doc=doc_id, path="/wacc", force=True)
        with pytest.raises(LockStolen) as stolen:
            await asyncio.wait_for(holder, TIMEOUT)
        assert not finished and stolen.value.fields["reason"] == "stolen"


async def test_a_lock_is_lost_with_its_connection(server: RunningServer) -> None:
    """A dropped connection ends the session's locks; the block holding one is interrupted
    with LockLost, the client reconnects, and locking again waits for the server to let go
    of the old session's lock."""
    token = server.token()
    doc_id = (await server.create(token, state={"wacc": 0.08}))["id"]
    async with proxy_to(server.port) as proxy, \
            coedit_client.connect(proxy.http_url, token=token) as c:
        doc = await c.open(doc_id)
        with pytest.raises(LockLost) as lost:
            async with doc.lock("/wacc", ttl_ms=5000):
                proxy.cut()
                await asyncio.sleep(TIMEOUT)
        assert lost.value.fields["reason"] == "disconnected"
        await asyncio.wait_for(c.wait_connected(), TIMEOUT)
        async with doc.lock("/wacc", ttl_ms=5000) as again:
            assert again.token > 0


async def test_presence_is_set_again_after_a_reconnect(server: RunningServer) -> None:
    """Another client sees our presence state, and sees it again, from our new session,
    after our connection was cut."""
    token = server.token()
    doc_id = (await server.create(token))["id"]
    async with proxy_to(server.port) as proxy, \
            coedit_client.connect(proxy.http_url, token=token) as a, \
            coedit_client.connect(server.http_url, token=server.token()) as b:
        doc_a = await a.open(doc_id)
        await doc_a.set_presence({"status": "editing", "focus": "/a"})
        doc_b = await b.open(doc_id)

        async def editing_from(session: str | None) -> None:
            while not any(e["session"] == session and e["state"].get("status") == "editing"
                          for e in doc_b.presence.values()):
                await asyncio.sleep(0.02)

        await asyncio.wait_for(editing_from(a.session), TIMEOUT)
        first_session = a.session
        proxy.cut()
        async with asyncio.timeout(TIMEOUT):
            while a.session == first_session or not a.connected:
                await asyncio.sleep(0.02)
        await asyncio.wait_for(editing_from(a.session), TIMEOUT)


async def _write(writer: WsClient, doc: str, count: int) -> None:
    version = 1
    for n in range(count):
        reply = await writer.ok("patch", doc=doc, base=version, ops=replace("/n", n))
        version = reply["version"]
        await asyncio.sleep(0.01)


async def _stored_seqs(server: RunningServer, token: str, doc: str) -> list[int]:
    async with server.http(token) as http:
        response = await http.get("/api/events", params={"doc": doc, "type": "patch.applied",
                                                         "limit": 1000})
    return [e["seq"] for e in response.json()["events"]]


async def test_an_event_stream_resumes_without_gaps_or_repeats(server: RunningServer) -> None:
    """An event iterator whose connection is cut again and again yields every matching
    event once, in seq order: exactly the stored ones."""
    token = server.token()
    doc_id = (await server.create(token, state={"n": -1}))["id"]
    async with proxy_to(server.port) as proxy, \
            coedit_client.connect(proxy.http_url, token=token) as c, \
            await server.connect(token) as writer:
        seen: list[dict[str, Any]] = []
        async with c.events(types=["patch.*"], docs=[doc_id]) as stream:
            await stream.start()
            writes = asyncio.create_task(_write(writer, doc_id, 40))

            async def read() -> None:
                async for event in stream:
                    seen.append(event)
                    if len(seen) == 40:
                        return

            reader = asyncio.create_task(read())
            while not writes.done():
                await asyncio.sleep(0.1)
                proxy.cut()
            await asyncio.wait_for(writes, TIMEOUT)
            await asyncio.wait_for(reader, TIMEOUT * 2)
            assert stream.subscriptions >= 3
        assert [e["seq"] for e in seen] == await _stored_seqs(server, token, doc_id)
        assert [e["data"]["ops"][0]["value"] for e in seen] == list(range(40))


async def test_server_sent_events_resume_with_last_event_id(server: RunningServer) -> None:
    """The SSE stream, cut again and again, resumes with Last-Event-ID and yields every
    stored event once, in order, starting after ``since``."""
    token = server.token()
    doc_id = (await server.create(token, state={"n": -1}))["id"]
    async with proxy_to(server.port) as proxy, await server.connect(token) as writer, \
            coedit_client.Api(proxy.http_url, token=token) as api:
        await writer.ok("patch", doc=doc_id, base=1, ops=replace("/n", -2))
        start = (await _stored_seqs(server, token, doc_id))[0]
        seen: list[dict[str, Any]] = []

        async def read() -> None:
            async for event in api.events.follow(types=["patch.applied"], docs=[doc_id],
                                                 since=start):
                seen.append(event)
                if len(seen) == 30:
                    return

        reader = asyncio.create_task(read())
        version = 2
        for n in range(30):
            version = (await writer.ok("patch", doc=doc_id, base=version,
                                       ops=replace("/n", n)))["version"]
            if n % 7 == 3:
                proxy.cut()
            await asyncio.sleep(0.01)
        await asyncio.wait_for(reader, TIMEOUT * 2)
        assert proxy.connections >= 3
        assert [e["seq"] for e in seen] == (await _stored_seqs(server, token, doc_id))[1:]


async def test_an_expired_token_is_refreshed_or_fails(server: RunningServer) -> None:
    """Closed with 4401, a client with a refresher reconnects with its new token and its
    replica goes on; one without raises TokenExpired."""
    token = server.token(user="ann")
    doc_id = (await server.create(token, state={"n": 0}))["id"]
    refreshed: list[str] = []

    async def refresh() -> str:
        refreshed.append("yes")
        return server.token(user="ann", ttl=3600)

    async with coedit_client.connect(server.http_url, token=server.token(user="ann", ttl=6),
                                     token_refresher=refresh) as c:
        doc = await c.open(doc_id)
        async with asyncio.timeout(TIMEOUT * 2):
            while not refreshed or not c.connected:
                await asyncio.sleep(0.05)
        assert await asyncio.wait_for(doc.patch(replace("/n", 1)), TIMEOUT) == 2
    async with coedit_client.connect(server.http_url,
                                     token=server.token(user="ann", ttl=6)) as c:
        with pytest.raises(TokenExpired):
            async with asyncio.timeout(TIMEOUT * 2):
                while True:
                    await c.wait_connected()
                    await asyncio.sleep(0.05)


async def test_a_stage_feed_sees_joins_and_is_resubscribed(server: RunningServer) -> None:
    """A stage feed yields the join of a session opening a memo, and after its own
    connection was cut it lists that session again from the new subscribe's reply."""
    token = server.token()
    doc_id = (await server.create(token, kind="memo"))["id"]
    async with proxy_to(server.port) as proxy, \
            coedit_client.connect(proxy.http_url, token=token) as a, \
            coedit_client.connect(server.http_url, token=server.token()) as b, \
            a.stage("memo") as feed:
        await b.open(doc_id)
        diff = await asyncio.wait_for(anext(feed), TIMEOUT)
        assert [e["session"] for e in diff["joins"]] == [b.session]
        assert set(feed.entries) == {(b.session, doc_id)}
        first = a.connections
        proxy.cut()
        async with asyncio.timeout(TIMEOUT):
            while a.connections == first or set(feed.entries) != {(b.session, doc_id)}:
                await asyncio.sleep(0.02)


async def test_an_idle_client_heartbeats_and_a_1013_close_resumes(
    database_url: str
) -> None:
    """With a 300 ms heartbeat an idle client stays on its first connection for many
    intervals; closed with 1013 (slow consumer) it reconnects and its replica goes on."""
    settings = make_settings(database_url, heartbeat_ms=300)
    async with start_server(settings) as running:
        token = running.token()
        doc_id = (await running.create(token, state={"n": 0}))["id"]
        async with coedit_client.connect(running.http_url, token=token) as c, \
                await running.connect(token) as writer:
            writer.keep_alive(0.1)
            doc = await c.open(doc_id)
            await asyncio.sleep(2.0)
            assert c.connections == 1 and c.connected
            running.coedit.sessions[c.session].close(1013)
            async with asyncio.timeout(TIMEOUT):
                while c.connections < 2 or not c.connected:
                    await asyncio.sleep(0.02)
            await writer.ok("patch", doc=doc_id, base=1, ops=replace("/n", 1))
            await asyncio.wait_for(doc.wait_version(2), TIMEOUT)
            assert doc.state == {"n": 1}


async def test_closing_the_client_ends_iterators_and_fails_waiters(server: RunningServer) -> None:
    """When the client closes, a document iterator and an event stream end, and a write
    waiting for a connection fails with ClientClosed instead of hanging."""
    token = server.token()
    doc_id = (await server.create(token, state={"n": 0}))["id"]
    async with proxy_to(server.port) as proxy:
        client = coedit_client.Client(proxy.http_url, token=token)
        await client.start()
        doc = await client.open(doc_id)
        stream = await client.events(docs=[doc_id]).start()

        async def drain(items: Any) -> int:
            return len([x async for x in items])

        readers = [asyncio.create_task(drain(doc)), asyncio.create_task(drain(stream))]
        proxy.refuse()
        proxy.cut()
        write = asyncio.create_task(doc.patch(replace("/n", 1)))
        await asyncio.sleep(0.3)
        await asyncio.wait_for(client.close(), TIMEOUT)
        assert await asyncio.wait_for(asyncio.gather(*readers), TIMEOUT) == [0, 0]
        with pytest.raises(coedit_client.ClientClosed):
            await asyncio.wait_for(write, TIMEOUT)


async def test_a_refused_token_fails_the_connect(server: RunningServer) -> None:
    """A handshake refused with 401 and no refresher raises Unauthorized from connect."""
    with pytest.raises(coedit_client.Unauthorized):
        async with coedit_client.connect(server.http_url, token="not-a-token",
                                         open_timeout=TIMEOUT):
            pass


async def test_a_silent_node_is_left_for_a_new_connection(database_url: str) -> None:
    """When the server's answers stop arriving (a dead link that keeps the socket open), the
    client notices its heartbeats go unanswered within three intervals, reconnects, and its
    replica catches up."""
    settings = make_settings(database_url, heartbeat_ms=300)
    async with start_server(settings) as running, proxy_to(running.port) as proxy:
        token = running.token()
        doc_id = (await running.create(token, state={"n": 0}))["id"]
        async with coedit_client.connect(proxy.http_url, token=token) as c, \
                await running.connect(token) as writer:
            writer.keep_alive(0.1)
            doc = await c.open(doc_id)
            proxy.hold_replies()
            await writer.ok("patch", doc=doc_id, base=1, ops=replace("/n", 1))
            async with asyncio.timeout(TIMEOUT):
                while c.connections < 2:
                    await asyncio.sleep(0.02)
            await asyncio.wait_for(doc.wait_version(2), TIMEOUT)
            assert doc.state == {"n": 1}


async def test_an_idea_feed_follows_every_document_of_the_idea(server: RunningServer) -> None:
    """``client.idea(id)``: the presence of every document of one idea, and nothing else."""
    token = server.token(user="ann")
    async with coedit_client.Api(server.http_url, token=token) as api:
        idea = await api.ideas.create("Acme long")
        memo = (await api.documents.create("memo", "m", idea=idea["id"]))["id"]
        valuation = (await api.documents.create("valuation", "v", idea=idea["id"]))["id"]
        elsewhere = (await api.documents.create("memo", "other"))["id"]
    async with coedit_client.connect(server.http_url, token=token) as a, \
            coedit_client.connect(server.http_url, token=server.token()) as b, \
            a.idea(idea["id"]) as feed:
        await b.open(elsewhere)
        await b.open(valuation)
        diff = await asyncio.wait_for(anext(feed), TIMEOUT)
        assert diff["doc"] == valuation and [e["session"] for e in diff["joins"]] == [b.session]
        await b.open(memo)
        diff = await asyncio.wait_for(anext(feed), TIMEOUT)
        assert diff["doc"] == memo
        assert set(feed.entries) == {(b.session, memo), (b.session, valuation)}
