"""The fast paths of one write: pipelined patches, prebuilt frames written to the socket.

A connection may send patches without waiting for each ``ok``: they share group commits, and
the replies still come back one per request, in the order sent, before any later request's
reply. Deltas leave as frames built once and written straight to uvicorn's transport; a real
``websockets`` client parsing them proves the framing at every length encoding.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode
from websockets.streams import StreamReader

from channels.frames import Frame, WireFormat, decode_msgpack, websocket_frame
from channels.presence_backend import PresenceEntry
from tests.support import RunningServer, WsClient

TIMEOUT = 10.0
MSGPACK = "coedit.v1.msgpack"


def _parse(data: bytes) -> WsFrame:
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = WsFrame.parse(reader.read_exact, mask=False, max_size=None)
    try:
        next(parser)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    raise AssertionError("the frame was incomplete")


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65_535, 65_536, 200_000])
def test_prebuilt_frame_parses_as_one_unmasked_final_frame(size: int) -> None:
    """A prebuilt frame is exactly one final, unmasked frame carrying the payload, for the
    7-bit, 16-bit and 64-bit length encodings and their boundaries."""
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    for text in (True, False):
        frame = _parse(websocket_frame(payload, text=text))
        assert frame.fin
        assert frame.opcode is (Opcode.TEXT if text else Opcode.BINARY)
        assert frame.data == payload


def test_frame_caches_one_encoding_per_wire_format() -> None:
    """A frame encodes its message once per format, and its frame bytes carry that encoding."""
    frame = Frame({"type": "delta", "doc": "d", "version": 3, "ops": [], "text": "é"})
    json_bytes = frame.wire_bytes(WireFormat.JSON)
    assert frame.wire_bytes(WireFormat.JSON) is json_bytes
    assert _parse(json_bytes).data == frame.json_text().encode()
    assert _parse(frame.wire_bytes(WireFormat.MSGPACK)).data == frame.msgpack_bytes()


@pytest.mark.parametrize("count", [0, 1, 3, 400])
def test_a_spliced_list_reads_as_part_of_the_message(count: int) -> None:
    """A frame whose last field is spliced from its items' own encodings decodes, in both
    formats, to the message with that field in it."""
    entries = [PresenceEntry(session=f"s{i}", user={"id": f"u{i}", "name": "Zoë ✓"}, doc="d",
                             kind="memo", node="n", state={"status": "viewing"},
                             since="2026-01-01T00:00:00Z") for i in range(count)]
    fields = {"type": "ok", "re": 7, "doc": "d", "version": 2, "locks": []}
    frame = Frame(dict(fields), ("presence", entries))
    whole = {**fields, "presence": [e.public() for e in entries]}
    assert json.loads(frame.json_text()) == whole
    assert decode_msgpack(frame.msgpack_bytes()) == whole
    assert _parse(frame.wire_bytes(WireFormat.JSON)).data == frame.json_text().encode()
    assert Frame({}, ("presence", entries)).json_text() == json.dumps(
        {"presence": [e.public() for e in entries]}, separators=(",", ":"), ensure_ascii=False)


async def _pipeline(client: WsClient, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Send every message at once, then collect one reply per id, in arrival order."""
    for message in messages:
        await client.send(message)
    ids = {m["id"] for m in messages}
    replies: list[dict[str, Any]] = []
    async with asyncio.timeout(TIMEOUT):
        while len(replies) < len(ids):
            message = await client.recv()
            if message.get("re") in ids and message.get("type") in ("ok", "error"):
                replies.append(message)
            else:
                client.pushes.append(message)
    return replies


async def test_pipelined_patches_are_answered_in_order(server: RunningServer) -> None:
    """Twenty patches sent without waiting all commit, in order, each answered once, and a
    subscribe sent after them is answered after all of them."""
    token = server.token()
    doc = (await server.create(token))["id"]
    async with await server.connect(token) as writer, await server.connect(token) as reader:
        await reader.ok("subscribe", doc=doc)
        patches = [
            {"type": "patch", "id": n, "doc": doc, "base": n,
             "ops": [{"op": "add", "path": f"/n{n}", "value": n}]}
            for n in range(1, 21)
        ]
        replies = await _pipeline(writer, [*patches, {"type": "subscribe", "id": 99, "doc": doc}])
        assert [r["re"] for r in replies] == [*range(1, 21), 99]
        assert [r["version"] for r in replies[:-1]] == list(range(2, 22))
        assert replies[-1]["version"] == 21
        assert replies[-1]["state"] == {f"n{n}": n for n in range(1, 21)}
        deltas = await reader.deltas(doc, 20)
        assert [d["version"] for d in deltas] == list(range(2, 22))


async def test_a_refused_patch_in_a_pipeline_fails_alone(server: RunningServer) -> None:
    """In a burst of patches, one with a bad op and one with a stale overlapping base get
    their errors in their place; the patches around them commit."""
    token = server.token()
    doc = (await server.create(token))["id"]
    async with await server.connect(token) as writer:
        messages = [
            {"type": "patch", "id": 1, "doc": doc, "base": 1,
             "ops": [{"op": "add", "path": "/a", "value": 1}]},
            {"type": "patch", "id": 2, "doc": doc, "base": 2,
             "ops": [{"op": "explode", "path": "/a"}]},
            {"type": "patch", "id": 3, "doc": doc, "base": 1,
             "ops": [{"op": "replace", "path": "/a", "value": 2}]},
            {"type": "patch", "id": 4, "doc": doc, "base": 2,
             "ops": [{"op": "add", "path": "/b", "value": 3}]},
        ]
        replies = await _pipeline(writer, messages)
        assert [(r["re"], r["type"]) for r in replies] == [
            (1, "ok"), (2, "error"), (3, "error"), (4, "ok")]
        assert replies[1]["code"] == "bad_request"
        assert replies[2]["code"] == "conflict"
        assert replies[3]["version"] == 3
        state = await writer.ok("subscribe", doc=doc)
        assert state["state"] == {"a": 1, "b": 3}


@pytest.mark.parametrize("subprotocol", [None, MSGPACK], ids=["json", "msgpack"])
@pytest.mark.parametrize("value_bytes", [10, 300, 70_000], ids=["7bit", "16bit", "64bit"])
async def test_deltas_of_every_length_encoding_arrive_intact(
    server: RunningServer, subprotocol: str | None, value_bytes: int,
) -> None:
    """Deltas whose frames need each of the three length encodings reach JSON and
    MessagePack subscribers whole."""
    token = server.token()
    doc = (await server.create(token))["id"]
    value = "x" * value_bytes
    async with await server.connect(token) as writer, \
            await server.connect(token, subprotocol=subprotocol) as reader:
        await reader.ok("subscribe", doc=doc)
        await writer.ok("patch", doc=doc, base=1, ops=[{"op": "add", "path": "/v", "value": value}])
        (delta,) = await reader.deltas(doc, 1)
        assert delta["ops"] == [{"op": "add", "path": "/v", "value": value}]
        assert delta["version"] == 2


def _only_session(server: RunningServer) -> Any:
    (session,) = server.coedit.sessions.values()
    return session


async def test_frames_go_straight_to_the_transport_under_uvicorn(server: RunningServer) -> None:
    """Under the implementation coedit configures, a connection's outbox writes to the
    transport directly, and an idle connection has no writer task."""
    async with await server.connect(server.token()) as client:
        await client.ok("heartbeat")
        outbox = _only_session(server).outbox
        assert outbox._direct is not None
        assert outbox._writer is None


class TestThroughAsgiSend:
    """Under another uvicorn WebSocket implementation the same behaviour holds through
    ASGI ``send``, with a writer task only while frames wait."""

    @pytest.fixture
    def uvicorn_ws(self) -> str | None:
        return "wsproto"

    async def test_fast_path_is_off(self, server: RunningServer) -> None:
        """Without uvicorn's sans-I/O protocol there is no direct socket to write to."""
        async with await server.connect(server.token()) as client:
            await client.ok("heartbeat")
            assert _only_session(server).outbox._direct is None

    async def test_pipelined_patches_are_answered_in_order(self, server: RunningServer) -> None:
        """Pipelined patches commit in order and are answered in order through ``send``."""
        await test_pipelined_patches_are_answered_in_order(server)

    @pytest.mark.parametrize("subprotocol", [None, MSGPACK], ids=["json", "msgpack"])
    async def test_deltas_arrive_intact(
        self, server: RunningServer, subprotocol: str | None,
    ) -> None:
        """Small and large deltas reach JSON and MessagePack subscribers through ``send``."""
        for value_bytes in (10, 70_000):
            await test_deltas_of_every_length_encoding_arrive_intact(
                server, subprotocol, value_bytes)


class TestWithoutGroupCommit:
    """With COEDIT_WRITE_BATCH=1 every write has a transaction of its own, and pipelining
    still keeps order and answers."""

    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"write_batch": 1}

    async def test_pipelined_patches_are_answered_in_order(self, server: RunningServer) -> None:
        """Pipelined patches commit one per transaction, in order, each answered once."""
        assert server.coedit.store.max_batch == 1
        await test_pipelined_patches_are_answered_in_order(server)
