"""Backpressure: one stalled socket is cut off (1013) and never delays anyone else.

DESIGN.md, "one write, end to end", step 5: each connection has a bounded send queue drained
by its own writer; overflow closes that connection with 1013. The stalled client here is a raw
TCP socket with a tiny receive buffer that performs the WebSocket handshake, subscribes and
then never reads again, so the server's socket buffers fill and its send queue backs up for
real. The values written are large and random (incompressible), so that happens quickly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import time
from typing import Any

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from tests.support import RunningServer, WsClient

TIMEOUT = 10.0
SEND_QUEUE = 64
VALUE_BYTES = 20_000
MAX_WRITES = 2_000  # far beyond what the socket buffers and a 64-frame queue can hold


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"send_queue": SEND_QUEUE}


class StalledClient:
    """A WebSocket client on a raw socket: it subscribes, then reads nothing until told to."""

    def __init__(self, sock: socket.socket, protocol: ClientProtocol) -> None:
        self.sock = sock
        self.protocol = protocol
        self.session = ""
        self._messages: list[dict[str, Any]] = []

    @classmethod
    async def subscribed(cls, server: RunningServer, token: str, doc: str) -> StalledClient:
        """Connect, read the welcome and the subscribe reply, and stop reading from then on."""
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Before connecting, so the advertised window is small from the first segment.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", server.port)), TIMEOUT)
        protocol = ClientProtocol(parse_uri(f"{server.ws_url}?token={token}"), max_size=None)
        client = cls(sock, protocol)
        protocol.send_request(protocol.connect())
        await client._flush()
        welcome = await client._next("welcome")
        client.session = welcome["session"]
        protocol.send_text(json.dumps({"type": "subscribe", "id": 1, "doc": doc}).encode())
        await client._flush()
        reply = await client._next("ok")
        if reply.get("re") != 1:
            raise AssertionError(f"subscribe failed: {reply}")
        return client

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        for chunk in self.protocol.data_to_send():
            if chunk:
                await asyncio.wait_for(loop.sock_sendall(self.sock, chunk), TIMEOUT)

    async def _next(self, kind: str) -> dict[str, Any]:
        """Read until a message of type ``kind`` (during set-up only)."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(TIMEOUT):
            while True:
                for event in self.protocol.events_received():
                    if isinstance(event, Response):
                        if event.status_code != 101:
                            raise AssertionError(f"handshake refused: {event.status_code}")
                    elif isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                        self._messages.append(json.loads(event.data))
                for index, message in enumerate(self._messages):
                    if message.get("type") in (kind, "error"):
                        return self._messages.pop(index)
                data = await loop.sock_recv(self.sock, 4096)
                if not data:
                    raise AssertionError(f"connection closed before a {kind!r} message")
                self.protocol.receive_data(data)

    async def close_code(self, timeout: float = TIMEOUT) -> int | None:
        """Start reading again: drain what the server sent; the code of its close frame, or
        None if the connection ended without one."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            while True:
                for event in self.protocol.events_received():
                    if isinstance(event, Frame) and event.opcode is Opcode.CLOSE:
                        return Close.parse(event.data).code
                try:
                    data = await loop.sock_recv(self.sock, 1 << 18)
                except ConnectionError:
                    return None
                if not data:
                    return None
                self.protocol.receive_data(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


async def _follow(client: WsClient, doc: str, arrivals: dict[int, float],
                  order: list[int]) -> None:
    """Read ``client``'s deltas of ``doc`` as they come, noting when each version arrived."""
    while True:
        message = await client.recv(timeout=60)
        if message.get("type") == "delta" and message.get("doc") == doc:
            order.append(message["version"])
            arrivals.setdefault(message["version"], time.monotonic())


async def _write_until_cut_off(
    server: RunningServer, writer: WsClient, doc: str, stalled: StalledClient,
    acked: dict[int, float],
) -> int:
    """Write large values until the stalled session is gone, then a few more; the last version."""
    version = 1
    after = 0
    while after < 5:
        if version > MAX_WRITES:
            raise AssertionError(f"the stalled session was not cut off after {MAX_WRITES} writes")
        if stalled.session not in server.coedit.sessions:
            after += 1
        value = os.urandom(VALUE_BYTES // 2).hex()  # incompressible
        reply = await writer.ok("patch", doc=doc, base=version,
                                ops=[{"op": "add", "path": "/blob", "value": value}])
        version = reply["version"]
        acked[version] = time.monotonic()
        writer.pushes.clear()  # its own deltas; not what this test measures
    return version


async def _metric(server: RunningServer, line: str) -> float:
    async with server.http() as http:
        response = await asyncio.wait_for(http.get("/metrics"), TIMEOUT)
    match = re.search(rf"^{re.escape(line)} (\S+)$", response.text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_a_stalled_subscriber_never_delays_the_others(server: RunningServer) -> None:
    """While one subscriber stops reading until its queue overflows, every other subscriber
    gets every delta in order, each within a second of its write being acknowledged."""
    token = server.token()
    doc = (await server.create(token))["id"]
    writer = await server.connect(token)
    readers = [await server.connect(server.token(roles=["viewer"])) for _ in range(3)]
    for client in (writer, *readers):
        await client.ok("subscribe", doc=doc)
    stalled = await StalledClient.subscribed(server, server.token(roles=["viewer"]), doc)
    assert stalled.session in server.coedit.sessions

    arrivals: list[dict[int, float]] = [{} for _ in readers]
    orders: list[list[int]] = [[] for _ in readers]
    follows = [asyncio.create_task(_follow(r, doc, a, o))
               for r, a, o in zip(readers, arrivals, orders, strict=True)]
    acked: dict[int, float] = {}
    try:
        async with asyncio.timeout(90):
            last = await _write_until_cut_off(server, writer, doc, stalled, acked)
        async with asyncio.timeout(TIMEOUT):
            while any(last not in a for a in arrivals):
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
    finally:
        for task in follows:
            task.cancel()
        await asyncio.gather(*follows, return_exceptions=True)
        stalled.close()

    expected = list(range(2, last + 1))
    for order in orders:
        assert order == expected
    lag = max(max(0.0, a[v] - acked[v]) for a in arrivals for v in expected)
    assert lag < 1.0, f"a normal subscriber got a delta {lag:.2f}s after its write"
    assert stalled.session not in server.coedit.sessions
    assert all(r.welcome["session"] in server.coedit.sessions for r in readers)
    assert await _metric(server, "coedit_send_queue_overflows_total") == 1.0
    assert await _metric(server, 'coedit_ws_closes_total{code="1013"}') == 1.0
    for client in (writer, *readers):
        await client.close()


async def test_a_stalled_subscriber_is_closed_with_1013(server: RunningServer) -> None:
    """A subscriber whose send queue overflowed finds a 1013 close frame once it reads again."""
    token = server.token()
    doc = (await server.create(token))["id"]
    writer = await server.connect(token)
    stalled = await StalledClient.subscribed(server, server.token(roles=["viewer"]), doc)
    session = server.coedit.sessions[stalled.session]
    try:
        async with asyncio.timeout(90):
            await _write_until_cut_off(server, writer, doc, stalled, {})
        # The server is done with the connection before the client looks: a client that
        # resumes reading late must still learn why it was cut off.
        await asyncio.wait_for(session.finished(), TIMEOUT)
        assert await stalled.close_code() == 1013
    finally:
        stalled.close()
        await writer.close()
