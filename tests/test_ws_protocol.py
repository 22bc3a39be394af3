"""Frames over real WebSocket connections (docs/protocol.md section 3): the welcome, subprotocols,
malformed input, request/reply pairing, the frame limit, heartbeats, token expiry and rate
limits."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import msgpack
import pytest
import websockets
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from websockets.asyncio.client import ClientConnection

from tests.support import TIMEOUT, RunningServer, WsClient, replace

JSON = "coedit.v1.json"
MSGPACK = "coedit.v1.msgpack"
both_wires = pytest.mark.parametrize("subprotocol", [JSON, MSGPACK])


async def _raw_connect(server: RunningServer, token: str,
                       subprotocols: list[str] | None) -> ClientConnection:
    return await asyncio.wait_for(
        websockets.connect(f"{server.ws_url}?token={token}", subprotocols=subprotocols,
                           max_size=None),
        TIMEOUT,
    )


async def _raw_recv(conn: ClientConnection) -> str | bytes:
    return await asyncio.wait_for(conn.recv(), TIMEOUT)


async def _raw_reply(conn: ClientConnection, rid: int | str,
                     frame_type: type) -> dict[str, Any]:
    """Read frames until the reply to ``rid``; every frame must be of ``frame_type``."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            raw = await conn.recv()
            assert isinstance(raw, frame_type), raw
            message: dict[str, Any] = (
                msgpack.unpackb(raw) if isinstance(raw, bytes) else json.loads(raw))
            if message.get("re") == rid:
                return message


async def _send_raw(client: WsClient, frame: str | bytes) -> None:
    await asyncio.wait_for(client.conn.send(frame), TIMEOUT)


async def _answers(client: WsClient) -> None:
    """The connection is open and serving: a heartbeat request gets its one ``ok``."""
    reply = await client.request("heartbeat")
    assert reply["type"] == "ok", reply


async def _next_reply_then_probe(client: WsClient, frame: str | bytes) -> dict[str, Any]:
    """Send ``frame``; return the one message it caused, and check that the next message is
    the reply to a probe request, i.e. the frame caused exactly one reply."""
    await _send_raw(client, frame)
    reply = await client.recv()
    await _answers(client)
    assert client.pushes == [], f"more than one reply to {frame!r}: {client.pushes}"
    return reply


def _encode(message: Any, *, binary: bool) -> str | bytes:
    return msgpack.packb(message, use_bin_type=True) if binary else json.dumps(message)


# -- welcome and subprotocols ---------------------------------------------------------------


async def test_welcome_is_the_first_message_with_every_field(server: RunningServer) -> None:
    """The first message is a welcome with protocol 1, session, node, the user and the
    heartbeat interval."""
    token = server.token(user="w-1", name="Wanda", roles=["analyst", "reviewer"], tenant="acme")
    conn = await _raw_connect(server, token, None)
    try:
        welcome = json.loads(await _raw_recv(conn))
    finally:
        await asyncio.wait_for(conn.close(), TIMEOUT)
    assert welcome["type"] == "welcome" and welcome["protocol"] == 1
    assert isinstance(welcome["session"], str) and welcome["session"]
    assert welcome["node"] == server.settings.node_id
    assert welcome["user"] == {"id": "w-1", "name": "Wanda", "roles": ["analyst", "reviewer"],
                               "tenant": "acme"}
    assert welcome["heartbeat_ms"] == server.settings.heartbeat_ms
    async with await server.connect(token) as other:
        assert other.welcome["session"] != welcome["session"]


@pytest.mark.parametrize(
    ("offered", "negotiated", "frame_type"),
    [([JSON], JSON, str), ([MSGPACK], MSGPACK, bytes), (None, None, str),
     (["something.else", MSGPACK], MSGPACK, bytes)],
    ids=["json", "msgpack", "none-offered", "msgpack-among-others"],
)
async def test_subprotocol_decides_the_frame_kind(
    server: RunningServer, offered: list[str] | None, negotiated: str | None,
    frame_type: type,
) -> None:
    """coedit.v1.json means text JSON frames, coedit.v1.msgpack binary MessagePack frames,
    and no subprotocol means JSON."""
    token = server.token()
    doc = (await server.create(token, state={"a": 1}))["id"]
    conn = await _raw_connect(server, token, offered)
    try:
        assert conn.subprotocol == negotiated
        decode = msgpack.unpackb if frame_type is bytes else json.loads
        welcome = await _raw_recv(conn)
        assert isinstance(welcome, frame_type)
        assert decode(welcome)["type"] == "welcome"
        request = {"type": "subscribe", "id": 1, "doc": doc}
        await conn.send(_encode(request, binary=frame_type is bytes))
        answer = await _raw_reply(conn, 1, frame_type)
        assert answer["type"] == "ok" and answer["re"] == 1 and answer["doc"] == doc
        assert answer["version"] == 1 and answer["state"] == {"a": 1}
    finally:
        await asyncio.wait_for(conn.close(), TIMEOUT)


@both_wires
async def test_server_accepts_either_frame_kind_and_replies_in_the_negotiated_one(
    server: RunningServer, subprotocol: str,
) -> None:
    """A JSON connection may send a MessagePack binary frame and a MessagePack connection a
    JSON text frame; the reply comes in the negotiated format."""
    token = server.token()
    doc = (await server.create(token, state={"a": 1}))["id"]
    binary = subprotocol == MSGPACK
    conn = await _raw_connect(server, token, [subprotocol])
    try:
        await _raw_recv(conn)  # welcome
        for rid, other_kind in ((7, not binary), ("s-8", binary)):
            await conn.send(_encode({"type": "subscribe", "id": rid, "doc": doc},
                                    binary=other_kind))
            reply = await _raw_reply(conn, rid, bytes if binary else str)
            assert reply["type"] == "ok" and reply["re"] == rid and reply["version"] == 1
    finally:
        await asyncio.wait_for(conn.close(), TIMEOUT)


# -- malformed frames -----------------------------------------------------------------------


@both_wires
async def test_undecodable_and_non_map_frames_get_bad_request(
    server: RunningServer, subprotocol: str,
) -> None:
    """Invalid JSON, invalid MessagePack and frames that are not maps each get one
    bad_request error and the connection stays open."""
    async with await server.connect(server.token(), subprotocol=subprotocol) as client:
        frames: list[str | bytes] = [
            "{not json", "", '{"type": "subscribe", "id": 1,', "\u00ff\u1234",
            b"\xc1", b"\x92\x01", b"\xdb\xff\xff\xff\xff", b"",
            "[1, 2, 3]", "42", '"subscribe"', "null", "true", "3.5",
            msgpack.packb([1, 2]), msgpack.packb(7), msgpack.packb("subscribe"),
            msgpack.packb(None), msgpack.packb(b"raw bytes"),
        ]
        for frame in frames:
            reply = await _next_reply_then_probe(client, frame)
            assert reply["type"] == "error" and reply["code"] == "bad_request", (frame, reply)
            assert isinstance(reply["message"], str) and reply["message"]
            assert "re" not in reply, (frame, reply)


@both_wires
async def test_unknown_type_and_malformed_fields_get_bad_request_with_re(
    server: RunningServer, subprotocol: str,
) -> None:
    """A map with a readable id but an unknown type or malformed fields gets one bad_request
    carrying re, changes nothing, and the connection stays open."""
    token = server.token()
    doc = (await server.create(token, state={"a": 1}))["id"]
    ops = [{"op": "replace", "path": "/a", "value": 2}]
    async with await server.connect(token, subprotocol=subprotocol) as client:
        binary = client.binary
        messages: list[dict[str, Any]] = [
            {"type": "frobnicate"},
            {"type": ""},
            {"type": 5},
            {"type": None},
            {"type": ["subscribe"]},
            {},
            {"type": "welcome"},
            {"type": "ok"},
            {"type": "subscribe"},
            {"type": "subscribe", "doc": 12},
            {"type": "subscribe", "doc": ""},
            {"type": "subscribe", "doc": doc, "since": "1"},
            {"type": "subscribe", "doc": doc, "since": -1},
            {"type": "subscribe", "doc": doc, "since": 1.5},
            {"type": "unsubscribe"},
            {"type": "patch", "doc": doc, "ops": ops},
            {"type": "patch", "doc": doc, "base": "1", "ops": ops},
            {"type": "patch", "doc": doc, "base": True, "ops": ops},
            {"type": "patch", "doc": doc, "base": 1},
            {"type": "patch", "doc": doc, "base": 1, "ops": {"op": "add"}},
            {"type": "patch", "doc": doc, "base": 1, "ops": []},
            {"type": "patch", "doc": doc, "base": 1, "ops": [{"op": "explode", "path": "/a"}]},
            {"type": "patch", "doc": doc, "base": 1, "ops": [{"op": "add", "value": 1}]},
            {"type": "patch", "doc": doc, "base": 1, "ops": ["replace"]},
            {"type": "create"},
            {"type": "create", "kind": "memo"},
            {"type": "create", "kind": "Not A Kind!", "title": "t"},
            {"type": "create", "kind": "memo", "title": "t", "state": [1, 2]},
        ]
        for index, message in enumerate(messages):
            for rid in (1000 + index, f"bad-{index}"):
                reply = await _next_reply_then_probe(
                    client, _encode({**message, "id": rid}, binary=binary))
                assert reply["type"] == "error", (message, reply)
                assert reply["code"] == "bad_request", (message, reply)
                assert reply["re"] == rid, (message, reply)
        # A request type without its id cannot be answered by id, but is still refused.
        reply = await _next_reply_then_probe(
            client, _encode({"type": "subscribe", "doc": doc}, binary=binary))
        assert reply["type"] == "error" and reply["code"] == "bad_request"
        await client.ok("subscribe", doc=doc)
        later = await client.nothing_more(0.2)
        assert [m for m in later if m.get("type") in ("delta", "ok", "error")] == [], later
    async with server.http(token) as http:
        current = (await http.get(f"/api/documents/{doc}")).json()
    assert current["version"] == 1 and current["state"] == {"a": 1}
    async with server.http(token) as http:
        listed = (await http.get("/api/documents")).json()["items"]
    assert [d["id"] for d in listed] == [doc]


@both_wires
async def test_unusable_id_gets_bad_request(server: RunningServer, subprotocol: str) -> None:
    """A request whose id is neither an integer nor a string (a float, a bool, null, a list,
    a map) gets one bad_request and is not carried out."""
    token = server.token()
    doc = (await server.create(token, state={"a": 1}))["id"]
    async with await server.connect(token, subprotocol=subprotocol) as client:
        for bad_id in (1.5, 2.0, True, False, None, [1], {"n": 1}):
            message = {"type": "patch", "id": bad_id, "doc": doc, "base": 1,
                       "ops": [{"op": "replace", "path": "/a", "value": 2}]}
            reply = await _next_reply_then_probe(client, _encode(message, binary=client.binary))
            assert reply["type"] == "error" and reply["code"] == "bad_request", (bad_id, reply)
            if "re" in reply:
                assert reply["re"] == bad_id and type(reply["re"]) is type(bad_id), reply
    async with server.http(token) as http:
        assert (await http.get(f"/api/documents/{doc}")).json()["version"] == 1


@both_wires
async def test_burst_of_random_garbage_leaves_the_connection_serving(
    server: RunningServer, subprotocol: str,
) -> None:
    """Fifty random garbage frames each get one bad_request and the connection still answers
    requests afterwards."""
    rng = random.Random(20240531)
    frames: list[str | bytes] = []
    for index in range(50):
        size = rng.randint(1, 300)
        if index % 2:
            frames.append(rng.randbytes(size))
        else:
            frames.append("".join(chr(rng.randint(1, 0xD7FF)) for _ in range(size)))
    token = server.token()
    doc = (await server.create(token))["id"]
    async with await server.connect(token, subprotocol=subprotocol) as client:
        for frame in frames:
            await _send_raw(client, frame)
        replies = [await client.recv() for _ in frames]
        assert all(r["type"] == "error" and r["code"] == "bad_request" for r in replies), [
            r for r in replies if r.get("code") != "bad_request"]
        reply = await client.ok("subscribe", doc=doc)
        assert reply["version"] == 1
        assert [m for m in client.pushes if m.get("type") in ("ok", "error")] == []


# -- request and reply ----------------------------------------------------------------------


@both_wires
async def test_every_request_gets_exactly_one_reply_matching_its_id(
    server: RunningServer, subprotocol: str,
) -> None:
    """Pipelined requests with integer and string ids each get exactly one reply whose re
    equals the id, be it ok or error."""
    token = server.token()
    doc = (await server.create(token, state={"a": 0}))["id"]
    ids: list[int | str] = [0, 1, -5, 2**40, "a", "req-ü-1", "x" * 128, "1"]
    async with await server.connect(token, subprotocol=subprotocol) as client:
        sent: dict[int | str, str] = {}
        for index, rid in enumerate(ids):
            match index % 4:
                case 0:
                    message = {"type": "subscribe", "doc": doc}
                    sent[rid] = "ok"
                case 1:
                    message = {"type": "subscribe", "doc": "no-such-document"}
                    sent[rid] = "error"
                case 2:
                    message = {"type": "patch", "doc": doc, "base": 1, "ops": []}
                    sent[rid] = "error"
                case _:
                    message = {"type": "unsubscribe", "doc": doc}
                    sent[rid] = "ok"
            await client.send({**message, "id": rid})
        replies: list[dict[str, Any]] = []
        async with asyncio.timeout(TIMEOUT):
            while len(replies) < len(ids):
                message = await client.recv()
                if message.get("type") in ("ok", "error"):
                    replies.append(message)
        got = [r["re"] for r in replies]
        assert sorted(map(repr, got)) == sorted(map(repr, ids)), got
        for reply in replies:
            assert reply["type"] == sent[reply["re"]], reply
        extra = [m for m in await client.nothing_more(0.3) if m.get("type") in ("ok", "error")]
        assert extra == []


# -- frame size -----------------------------------------------------------------------------


class TestSmallFrameLimit:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"max_frame_bytes": 64 * 1024}

    @both_wires
    async def test_frame_over_the_limit_closes_with_1009(
        self, server: RunningServer, subprotocol: str,
    ) -> None:
        """A frame within max_frame_bytes is served; one byte-heavy frame past it closes the
        connection with 1009."""
        limit = server.settings.max_frame_bytes
        async with await server.connect(server.token(), subprotocol=subprotocol) as client:
            reply = await client.request("heartbeat", padding="x" * (limit - 1024))
            assert reply["type"] == "ok"
            await client.send({"type": "heartbeat", "id": 99, "padding": "x" * (limit + 1)})
            assert await client.closed_with() == 1009

    async def test_multibyte_text_over_the_limit_closes_with_1009(
        self, server: RunningServer,
    ) -> None:
        """The limit counts bytes, not characters: a text frame of fewer characters than the
        limit but more UTF-8 bytes closes with 1009."""
        limit = server.settings.max_frame_bytes
        async with await server.connect(server.token()) as client:
            text = json.dumps({"type": "heartbeat", "id": 1, "padding": "€" * (limit // 2)},
                              ensure_ascii=False)
            assert len(text) < limit < len(text.encode())
            await _send_raw(client, text)
            assert await client.closed_with() == 1009


async def test_default_frame_limit_is_one_mebibyte(server: RunningServer) -> None:
    """With the default settings a frame just under 1 MiB is served and one over 1 MiB closes
    the connection with 1009."""
    assert server.settings.max_frame_bytes == 1024 * 1024
    async with await server.connect(server.token()) as client:
        reply = await client.request("heartbeat", padding="x" * (1024 * 1024 - 1024))
        assert reply["type"] == "ok"
        await client.send({"type": "heartbeat", "id": 2, "padding": "x" * (1024 * 1024)})
        assert await client.closed_with() == 1009


# -- heartbeats -----------------------------------------------------------------------------


class TestHeartbeat:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"heartbeat_ms": 200}

    async def test_silent_client_is_closed_with_4408(self, server: RunningServer) -> None:
        """A client that sends nothing is closed with 4408 about three heartbeat intervals
        after its last frame."""
        started = time.monotonic()  # before the handshake, so before the server's clock
        async with await server.connect(server.token()) as client:
            assert client.welcome["heartbeat_ms"] == 200
            assert await client.closed_with(5) == 4408
            elapsed = time.monotonic() - started
        assert 0.6 <= elapsed <= 2.5, elapsed

    async def test_ping_frames_do_not_count_as_heartbeats(self, server: RunningServer) -> None:
        """WebSocket pings are not heartbeats: a client that only pings is still closed with
        4408."""
        started = time.monotonic()
        async with await server.connect(server.token()) as client:

            async def keep_pinging() -> None:
                while True:
                    await client.conn.ping()
                    await asyncio.sleep(0.05)

            pinger = asyncio.create_task(keep_pinging())
            try:
                assert await client.closed_with(5) == 4408
            finally:
                pinger.cancel()
                await asyncio.gather(pinger, return_exceptions=True)
            assert 0.6 <= time.monotonic() - started <= 2.5

    async def test_heartbeating_client_stays_open(self, server: RunningServer) -> None:
        """A client sending {"type":"heartbeat"} every half interval stays open well past
        three intervals, and is closed with 4408 once it stops."""
        async with await server.connect(server.token()) as client:
            until = time.monotonic() + 1.2  # six intervals, twice the timeout
            while time.monotonic() < until:
                await client.send({"type": "heartbeat"})
                await asyncio.sleep(0.1)
            await _answers(client)
            assert [m for m in await client.nothing_more(0) if m.get("type") != "ok"] == []
            assert await client.closed_with(5) == 4408

    async def test_any_data_frame_counts_as_a_heartbeat(self, server: RunningServer) -> None:
        """Requests and even malformed frames keep a connection alive like heartbeats do."""
        token = server.token()
        doc = (await server.create(token))["id"]
        async with await server.connect(token) as client:
            frames: list[Any] = [{"type": "subscribe", "id": 1, "doc": doc},
                                 {"type": "unsubscribe", "id": 2, "doc": doc},
                                 "not json at all", {"type": "no-such-type"}]
            until = time.monotonic() + 1.2
            index = 0
            while time.monotonic() < until:
                frame = frames[index % len(frames)]
                if isinstance(frame, str):
                    await _send_raw(client, frame)
                else:
                    await client.send(frame)
                index += 1
                await asyncio.sleep(0.1)
            await _answers(client)
            assert await client.closed_with(5) == 4408


@contextlib.asynccontextmanager
async def stalled_writes(database_url: str, doc: str) -> AsyncIterator[None]:
    """Hold the database so that a write to ``doc`` waits until the block ends: a row lock
    on PostgreSQL, SQLite's one write lock on SQLite (as a stuck transaction would)."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                raw = await conn.get_raw_connection()
                raw.driver_connection.isolation_level = None  # type: ignore[union-attr]
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                await conn.begin()
                await conn.execute(text("SELECT 1 FROM documents WHERE id = :doc FOR UPDATE"),
                                   {"doc": doc})
            try:
                yield
            finally:
                await conn.exec_driver_sql("ROLLBACK")
    finally:
        await engine.dispose()


class TestHeartbeatWhileWaiting:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"heartbeat_ms": 300}

    async def test_heartbeats_count_while_a_write_waits_for_a_stalled_database(
        self, server: RunningServer,
    ) -> None:
        """A client heartbeating every 0.1 s, with a patch stuck on a database stalled for ten
        heartbeat intervals and a subscribe queued behind it, stays connected; the answers
        come once the database moves, in the order of the requests."""
        token = server.token()
        doc = (await server.create(token, state={"n": 0}))["id"]
        async with await server.connect(token) as client:
            async with stalled_writes(server.settings.database_url, doc):
                await client.send({"type": "patch", "id": "w", "doc": doc, "base": 1,
                                   "ops": replace("/n", 1)})
                await client.send({"type": "subscribe", "id": "s", "doc": doc})
                until = time.monotonic() + 3.0
                while time.monotonic() < until:
                    await client.send({"type": "heartbeat"})
                    await asyncio.sleep(0.1)
                assert await client.nothing_more(0) == []  # nothing answered yet
            replies = [await client.recv() for _ in range(2)]
            assert [(r["type"], r["re"]) for r in replies] == [("ok", "w"), ("ok", "s")]
            assert replies[1]["version"] == 2
            assert (await client.request("heartbeat"))["type"] == "ok"
            assert client.conn.close_code is None

    async def test_a_refused_patch_is_answered_after_the_writes_before_it(
        self, server: RunningServer,
    ) -> None:
        """A patch refused on arrival (here: an id that is not an id) while an earlier write
        waits for the database is answered after that write, not before it."""
        token = server.token()
        doc = (await server.create(token, state={"n": 0}))["id"]
        async with await server.connect(token) as client:
            async with stalled_writes(server.settings.database_url, doc):
                await client.send({"type": "patch", "id": "w", "doc": doc, "base": 1,
                                   "ops": replace("/n", 1)})
                await client.send({"type": "patch", "id": [1], "doc": doc, "base": 1,
                                   "ops": replace("/n", 2)})
                await asyncio.sleep(0.3)
                assert await client.nothing_more(0) == []
            first, second = [await client.recv() for _ in range(2)]
            assert (first["type"], first["re"]) == ("ok", "w")
            assert (second["type"], second["code"]) == ("error", "bad_request")


# -- token expiry ---------------------------------------------------------------------------


async def test_connection_closes_with_4401_when_the_token_expires(
    server: RunningServer,
) -> None:
    """A connection whose token expires is closed with 4401, not before exp and within 5 s
    after it."""
    token = server.token(ttl=2)
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    async with await server.connect(token) as client:
        await _answers(client)
        assert await client.closed_with(exp - time.time() + 8) == 4401
        closed_at = time.time()
    assert exp - 0.1 <= closed_at <= exp + 5, (exp, closed_at)


# -- rate limits ----------------------------------------------------------------------------


class TestRateLimit:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"rate_per_second": 5}

    @both_wires
    async def test_burst_beyond_the_rate_gets_rate_limited_with_retry_after(
        self, server: RunningServer, subprotocol: str,
    ) -> None:
        """A burst of requests beyond the rate gets rate_limited errors carrying
        retry_after_ms, one reply per request, and requests succeed again after waiting."""
        token = server.token()
        doc = (await server.create(token))["id"]
        async with await server.connect(token, subprotocol=subprotocol) as client:
            for rid in range(40):
                await client.send({"type": "unsubscribe", "id": rid, "doc": doc})
            replies: dict[int, dict[str, Any]] = {}
            async with asyncio.timeout(TIMEOUT):
                while len(replies) < 40:
                    message = await client.recv()
                    assert message["re"] not in replies, message
                    replies[message["re"]] = message
            limited = [r for r in replies.values() if r["type"] == "error"]
            assert any(r["type"] == "ok" for r in replies.values())
            assert len(limited) >= 20, limited
            wait_ms = 0
            for reply in limited:
                assert reply["code"] == "rate_limited", reply
                assert isinstance(reply["retry_after_ms"], int) and reply["retry_after_ms"] > 0
                wait_ms = max(wait_ms, reply["retry_after_ms"])
            assert wait_ms <= 5000
            await asyncio.sleep(wait_ms / 1000 + 0.05)
            reply = await client.request("subscribe", doc=doc)
            assert reply["type"] == "ok", reply
