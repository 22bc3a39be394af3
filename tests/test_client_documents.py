"""The Python client's document replica against a real server: every delta exactly once,
through dropped connections; writes that apply once even when their reply is lost; the
conflict retry policy; splices that merge with other people's."""

from __future__ import annotations

import asyncio
from typing import Any

import coedit_client
import pytest
from coedit_client import Conflict, Delta, Document

from tests.client_proxy import proxy_to
from tests.support import TIMEOUT, RunningServer, WsClient, replace


async def _server_state(server: RunningServer, token: str, doc: str) -> dict[str, Any]:
    async with server.http(token) as http:
        response = await http.get(f"/api/documents/{doc}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _collect(doc: Document, until: int, into: list[int]) -> None:
    async for change in doc:
        assert isinstance(change, Delta), change
        into.append(change.version)
        if change.version >= until:
            return


async def _write_many(writer: WsClient, doc: str, count: int, *, pause: float = 0.0) -> None:
    version = 1
    for n in range(count):
        reply = await writer.ok("patch", doc=doc, base=version,
                                ops=[{"op": "replace", "path": f"/n{n % 3}", "value": n}])
        version = reply["version"]
        if pause:
            await asyncio.sleep(pause)


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
async def test_replica_sees_every_delta_once_and_equals_the_server(
    server: RunningServer, encoding: str
) -> None:
    """A replica opened over either encoding applies each delta once, in order, and ends
    equal to the server's document, including its own writes."""
    token = server.token()
    created = await server.create(token, state={"n0": 0, "n1": 0, "n2": 0})
    async with coedit_client.connect(server.http_url, token=token, encoding=encoding) as c, \
            await server.connect(token) as writer:
        doc = await c.open(created["id"])
        assert (doc.version, doc.state) == (1, {"n0": 0, "n1": 0, "n2": 0})
        seen: list[int] = []
        reader = asyncio.create_task(_collect(doc, 22, seen))
        await asyncio.sleep(0)
        await asyncio.wait_for(_write_many(writer, created["id"], 20), TIMEOUT)
        add = [{"op": "add", "path": "/mine", "value": "yes"}]
        version = await asyncio.wait_for(doc.patch(add), TIMEOUT)
        assert version == 22 and doc.version == 22
        await asyncio.wait_for(reader, TIMEOUT)
        assert seen == list(range(2, 23))
        assert doc.state == (await _server_state(server, token, created["id"]))["state"]


async def test_replica_stays_equal_through_dropped_connections(server: RunningServer) -> None:
    """While another client writes, the replica's connection is cut again and again; its
    iterator still sees versions 2..N exactly once, and its state equals the server's."""
    token = server.token()
    created = await server.create(token, state={"n0": 0, "n1": 0, "n2": 0})
    doc_id = created["id"]
    async with proxy_to(server.port) as proxy, \
            coedit_client.connect(proxy.http_url, token=token) as c, \
            await server.connect(token) as writer:
        doc = await c.open(doc_id)
        seen: list[int] = []
        reader = asyncio.create_task(_collect(doc, 61, seen))
        writes = asyncio.create_task(_write_many(writer, doc_id, 60, pause=0.01))
        cuts = 0
        while not writes.done():
            await asyncio.sleep(0.1)
            cuts += proxy.cut()
        await asyncio.wait_for(writes, TIMEOUT)
        await asyncio.wait_for(reader, TIMEOUT * 2)
        assert cuts >= 3 and c.connections >= 3
        assert seen == list(range(2, 62))
        assert doc.state == (await _server_state(server, token, doc_id))["state"]


async def test_a_write_whose_reply_was_lost_applies_once(server: RunningServer) -> None:
    """The server commits a patch but the connection dies before its reply: the client sends
    it again on the next connection with the same key, and the document has one write."""
    token = server.token()
    doc_id = (await server.create(token, state={"count": 0}))["id"]
    async with proxy_to(server.port) as proxy, \
            coedit_client.connect(proxy.http_url, token=token) as c:
        doc = await c.open(doc_id)
        proxy.hold_replies()
        write = asyncio.create_task(doc.patch(replace("/count", 1)))
        async with asyncio.timeout(TIMEOUT):
            while (await _server_state(server, token, doc_id))["version"] < 2:
                await asyncio.sleep(0.02)
        assert not write.done()
        proxy.cut()
        assert await asyncio.wait_for(write, TIMEOUT) == 2
        assert c.connections == 2 and doc.state == {"count": 1}
        async with server.http(token) as http:
            history = (await http.get(f"/api/documents/{doc_id}/history")).json()["events"]
        assert [e["type"] for e in history] == ["document.created", "patch.applied"]
        assert (await _server_state(server, token, doc_id))["version"] == 2


async def test_conflict_retry_policy_rederives_the_write(server: RunningServer) -> None:
    """A stale write that conflicts is re-derived from the fresh state by the retry policy;
    without a policy the conflict raises with the contract's fields."""
    token = server.token()
    doc_id = (await server.create(token, state={"price": 10}))["id"]
    async with coedit_client.connect(server.http_url, token=token) as c, \
            await server.connect(token) as other:
        doc = await c.open(doc_id)
        await other.ok("patch", doc=doc_id, base=1, ops=replace("/price", 20))
        with pytest.raises(Conflict) as refused:
            await asyncio.wait_for(doc.patch(replace("/price", 11), base=1), TIMEOUT)
        assert refused.value.current_version == 2 and refused.value.paths == ["/price"]
        assert len(refused.value.deltas) == 1
        await other.ok("patch", doc=doc_id, base=2, ops=replace("/price", 30))
        seen: list[dict[str, Any]] = []

        def bump(state: dict[str, Any]) -> list[dict[str, Any]]:
            seen.append(state)
            return replace("/price", state["price"] + 1)

        version = await asyncio.wait_for(doc.patch(replace("/price", 21), base=2, retry=bump),
                                         TIMEOUT)
        assert version == 4 and doc.state == {"price": 31} and seen == [{"price": 30}]


async def test_splices_of_two_clients_merge(server: RunningServer) -> None:
    """Two clients splice the same text at once, each many times without waiting; both
    replicas and the server end with the same text, holding every insert."""
    token = server.token()
    doc_id = (await server.create(token, state={"memo": "The margin is thin."}))["id"]
    async with coedit_client.connect(server.http_url, token=token) as a, \
            coedit_client.connect(server.http_url, token=token, encoding="msgpack") as b:
        doc_a, doc_b = await a.open(doc_id), await b.open(doc_id)

        async def type_into(doc: Document, word: str, at_end: bool) -> None:
            pending = []
            for char in word:
                text = doc.state["memo"]
                at = len(text) if at_end else 0
                pending.append(asyncio.create_task(doc.splice("/memo", at, 0, char)))
                await asyncio.sleep(0.005)
            await asyncio.gather(*pending)

        await asyncio.wait_for(asyncio.gather(type_into(doc_a, "ALPHA", True),
                                              type_into(doc_b, "omega", False)), TIMEOUT)
        final = await _server_state(server, token, doc_id)
        await asyncio.wait_for(doc_a.wait_version(final["version"]), TIMEOUT)
        await asyncio.wait_for(doc_b.wait_version(final["version"]), TIMEOUT)
        text = final["state"]["memo"]
        assert doc_a.state["memo"] == text and doc_b.state["memo"] == text
        assert text == "agemoThe margin is thin.ALPHA"


async def test_a_replaced_string_refuses_the_splice_made_on_it(server: RunningServer) -> None:
    """A splice made on a text that another write had already replaced is refused with
    conflict, even when its reply is lost and it is sent again; it leaves the replica's view
    and the replica equals the server."""
    token = server.token()
    doc_id = (await server.create(token, state={"s": "abc"}))["id"]
    async with proxy_to(server.port) as proxy, \
            coedit_client.connect(proxy.http_url, token=token) as c, \
            await server.connect(token) as other:
        doc = await c.open(doc_id)
        proxy.hold_replies()  # the replica hears nothing until the cut
        await other.ok("patch", doc=doc_id, base=1, ops=replace("/s", "xyz"))
        splice = asyncio.create_task(doc.splice("/s", 3, 0, "d"))
        await asyncio.sleep(0.2)
        assert doc.state == {"s": "abcd"} and doc.version == 1
        proxy.cut()
        with pytest.raises(Conflict):
            await asyncio.wait_for(splice, TIMEOUT)
        await asyncio.wait_for(doc.wait_version(2), TIMEOUT)
        assert doc.state == {"s": "xyz"}
        assert doc.state == (await _server_state(server, token, doc_id))["state"]


async def test_splices_whose_reply_was_lost_apply_once(server: RunningServer) -> None:
    """Our splice commits but its reply is lost while someone else splices the same text;
    after the reconnect our splice is sent again with its key, answered duplicate, and
    both texts end equal to the server's, holding each insert once."""
    token = server.token()
    doc_id = (await server.create(token, state={"s": "margin"}))["id"]
    async with proxy_to(server.port) as proxy, \
            coedit_client.connect(proxy.http_url, token=token) as c, \
            coedit_client.connect(server.http_url, token=token) as other:
        doc, theirs = await c.open(doc_id), await other.open(doc_id)
        proxy.hold_replies()
        mine = asyncio.create_task(doc.splice("/s", 0, 0, "gross "))
        async with asyncio.timeout(TIMEOUT):
            while theirs.version < 2:
                await asyncio.sleep(0.02)
        await asyncio.wait_for(theirs.splice("/s", len(theirs.state["s"]), 0, " thin"), TIMEOUT)
        later = asyncio.create_task(doc.splice("/s", len(doc.state["s"]), 0, "!"))
        proxy.cut()
        assert await asyncio.wait_for(mine, TIMEOUT) == 2
        await asyncio.wait_for(later, TIMEOUT)
        final = await _server_state(server, token, doc_id)
        await asyncio.wait_for(doc.wait_version(final["version"]), TIMEOUT)
        await asyncio.wait_for(theirs.wait_version(final["version"]), TIMEOUT)
        assert final["state"]["s"] == "gross margin thin!"
        assert doc.state == theirs.state == final["state"] and final["version"] == 4
