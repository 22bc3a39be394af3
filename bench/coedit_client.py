"""A small coedit client for the controller: requests with replies, and deltas seen.

Built on :mod:`bench.wsclient` rather than the ``websockets`` client because the writers
pipeline requests (several patches in flight, replies matched by ``re``) and the pacers only
need the version of each delta; both stay cheap next to the server they drive.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

from bench.wsclient import OP_TEXT, FrameCounter, WsClientProtocol, connect

__all__ = ["CoeditClient", "RequestFailed"]


class RequestFailed(RuntimeError):
    """The server answered a request with ``error``."""


class CoeditClient:
    def __init__(self, protocol: WsClientProtocol) -> None:
        self.protocol = protocol
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.on_reply: Any = None  # called with (reply, receive time) for untracked ids
        self.latest: dict[str, int] = {}  # doc -> highest delta version received
        self.progress = asyncio.Event()  # set on every delta, for writers pacing themselves
        self.present: dict[str, set[str]] = {}  # doc -> sessions announced on it, less leaves
        self.announced = asyncio.Event()  # set on every presence diff
        self.welcome: asyncio.Future[dict[str, Any]] = \
            asyncio.get_running_loop().create_future()
        protocol.set_hook(self._on_frame)
        # The server closes a connection silent for three heartbeat intervals (4408); a
        # writer waiting while thousands of subscribers connect must not be one of them.
        self._beating = asyncio.get_running_loop().create_task(self._heartbeats())

    async def _heartbeats(self, interval: float = 10.0) -> None:
        while not self.protocol.closed.done():
            await asyncio.sleep(interval)
            self.protocol.send(b'{"type":"heartbeat"}')

    @classmethod
    async def open(cls, url: str) -> CoeditClient:
        protocol = await connect(url, FrameCounter(), subprotocol="coedit.v1.json")
        client = cls(protocol)
        await asyncio.wait_for(client.welcome, 30)
        return client

    def _on_frame(self, opcode: int, payload: bytes, now: float) -> None:
        if opcode != OP_TEXT:
            return
        message = json.loads(payload)
        kind = message.get("type")
        if kind == "delta":
            doc = message["doc"]
            if message["version"] > self.latest.get(doc, 0):
                self.latest[doc] = message["version"]
                self.progress.set()
        elif kind in ("ok", "error"):
            future = self._waiting.pop(message.get("re"), None)
            if future is not None:
                if not future.done():
                    future.set_result(message)
            elif self.on_reply is not None:
                self.on_reply(message, now)
        elif kind == "presence":
            present = self.present.setdefault(message["doc"], set())
            present.update(entry["session"] for entry in message["joins"])
            present.difference_update(entry["session"] for entry in message["leaves"])
            self.announced.set()
        elif kind == "welcome" and not self.welcome.done():
            self.welcome.set_result(message)

    def send(self, message: dict[str, Any]) -> int:
        """Send without waiting; returns the request id (replies go to ``on_reply``)."""
        rid = next(self._ids)
        self.protocol.send(json.dumps({**message, "id": rid}, separators=(",", ":")).encode())
        return rid

    async def request(self, message: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        rid = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = future
        self.protocol.send(json.dumps({**message, "id": rid}, separators=(",", ":")).encode())
        reply = await asyncio.wait_for(future, timeout)
        if reply["type"] == "error":
            raise RequestFailed(f"{message['type']} refused: {reply}")
        return reply

    async def create(self, state: dict[str, Any], title: str = "Bench memo") -> str:
        reply = await self.request({"type": "create", "kind": "memo", "title": title,
                                    "state": state})
        return str(reply["document"]["id"])

    async def wait_version(self, doc: str, version: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.latest.get(doc, 0) < version:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{doc} never reached v{version}")
            await asyncio.sleep(0.002)

    async def wait_present(self, doc: str, count: int, timeout: float) -> None:
        """Until ``count`` other sessions were announced on ``doc`` since this one joined."""
        async with asyncio.timeout(timeout):
            while len(self.present.get(doc, ())) < count:
                self.announced.clear()
                await self.announced.wait()

    def close(self) -> None:
        self._beating.cancel()
        self.protocol.close()
