"""Test helpers: a real server on port 0, small WebSocket and HTTP clients, and the
one-op patch most tests write.

Every wait here is bounded: a test that hangs fails with a timeout that names what it waited
for instead of stalling the suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgpack
import websockets
from websockets.asyncio.client import ClientConnection

from server.app import create_app
from server.auth import TokenIssuer
from server.config import Settings
from server.runner import GracefulServer, uvicorn_config

__all__ = ["RunningServer", "WsClient", "replace", "start_server"]

TIMEOUT = 10.0


def replace(path: str, value: Any) -> list[dict[str, Any]]:
    """A JSON Patch of one op: replace the value at ``path`` with ``value``."""
    return [{"op": "replace", "path": path, "value": value}]


@dataclass
class RunningServer:
    settings: Settings
    port: int
    app: Any
    server: GracefulServer
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def coedit(self) -> Any:
        return self.server.coedit

    def token(self, *, user: str | None = None, name: str | None = None,
              roles: list[str] | None = None, tenant: str = "acme", ttl: int = 3600) -> str:
        user = user or f"user-{next(self._ids)}"
        return TokenIssuer(self.settings.secret, dev_auth=self.settings.dev_auth).mint(
            user=user, name=name or user.title(), roles=roles or ["analyst"], tenant=tenant,
            ttl_seconds=ttl,
        )

    def http(self, token: str | None = None, **headers: str) -> httpx.AsyncClient:
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.AsyncClient(base_url=self.http_url, headers=headers, timeout=TIMEOUT)

    async def connect(self, token: str | None = None, *, subprotocol: str | None = None,
                      **kwargs: Any) -> WsClient:
        url = self.ws_url + (f"?token={token}" if token else "")
        protocols = [subprotocol] if subprotocol else None
        conn = await asyncio.wait_for(
            websockets.connect(url, subprotocols=protocols, max_size=None, **kwargs), TIMEOUT
        )
        client = WsClient(conn)
        client.welcome = await client.recv_type("welcome")
        return client

    async def create(self, token: str, *, kind: str = "memo", title: str = "A memo",
                     state: dict[str, Any] | None = None) -> dict[str, Any]:
        async with self.http(token) as http:
            response = await http.post("/api/documents",
                                       json={"kind": kind, "title": title, "state": state or {}})
        if response.status_code != 201:
            raise AssertionError(f"create failed: {response.status_code} {response.text}")
        return response.json()  # type: ignore[no-any-return]


class WsClient:
    """A protocol client: requests with ids, replies matched by ``re``, pushes kept in order."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.binary = conn.subprotocol == "coedit.v1.msgpack"
        self._ids = itertools.count(1)
        self.pushes: list[dict[str, Any]] = []  # everything that was not a reply
        self.welcome: dict[str, Any] = {}
        self._heartbeat: asyncio.Task[None] | None = None

    def keep_alive(self, every: float) -> None:
        """Send a heartbeat every ``every`` seconds until closed (for short server intervals)."""

        async def beat() -> None:
            with contextlib.suppress(websockets.ConnectionClosed):
                while True:
                    await self.send({"type": "heartbeat"})
                    await asyncio.sleep(every)

        self._heartbeat = asyncio.create_task(beat())

    async def send(self, message: Any) -> None:
        if self.binary:
            await self.conn.send(msgpack.packb(message, use_bin_type=True))
        else:
            await self.conn.send(json.dumps(message))

    async def recv(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        # asyncio.timeout rather than wait_for: on Python 3.11 wait_for swallows a cancel
        # that arrives together with a message, and followers cancel reads on purpose.
        async with asyncio.timeout(timeout):
            raw = await self.conn.recv()
        if isinstance(raw, bytes):
            return msgpack.unpackb(raw, raw=False)  # type: ignore[no-any-return]
        return json.loads(raw)  # type: ignore[no-any-return]

    async def recv_type(self, kind: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        for index, message in enumerate(self.pushes):
            if message.get("type") == kind:
                return self.pushes.pop(index)
        async with asyncio.timeout(timeout):
            while True:
                message = await self.recv()
                if message.get("type") == kind:
                    return message
                self.pushes.append(message)

    async def request(
        self, kind: str, /, timeout: float = TIMEOUT, **fields: Any
    ) -> dict[str, Any]:
        """Send a request and return its reply (``ok`` or ``error``); pushes are kept."""
        rid = next(self._ids)
        await self.send({"type": kind, "id": rid, **fields})
        async with asyncio.timeout(timeout):
            while True:
                message = await self.recv()
                if message.get("re") == rid and message.get("type") in ("ok", "error"):
                    return message
                self.pushes.append(message)

    async def ok(self, kind: str, /, **fields: Any) -> dict[str, Any]:
        reply = await self.request(kind, **fields)
        if reply["type"] != "ok":
            raise AssertionError(f"{kind} failed: {reply}")
        return reply

    async def deltas(self, doc: str, count: int, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
        """The next ``count`` deltas of ``doc`` (pushes of other kinds are kept)."""
        found: list[dict[str, Any]] = []
        keep: list[dict[str, Any]] = []
        for message in self.pushes:
            if message.get("type") == "delta" and message.get("doc") == doc and len(found) < count:
                found.append(message)
            else:
                keep.append(message)
        self.pushes = keep
        async with asyncio.timeout(timeout):
            while len(found) < count:
                message = await self.recv()
                if message.get("type") == "delta" and message.get("doc") == doc:
                    found.append(message)
                else:
                    self.pushes.append(message)
        return found

    async def nothing_more(
        self, wait: float = 0.3, *, ignore: tuple[str, ...] = ("presence",)
    ) -> list[dict[str, Any]]:
        """Whatever arrives within ``wait`` seconds, less the ``ignore``d types (presence diffs
        by default, which come and go with other clients)."""
        extra = list(self.pushes)
        self.pushes.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                while True:
                    extra.append(await self.recv())
        return [m for m in extra if m.get("type") not in ignore]

    async def closed_with(self, timeout: float = TIMEOUT) -> int | None:
        """Read until the server closes; the close code it sent."""
        with contextlib.suppress(websockets.ConnectionClosed):
            async with asyncio.timeout(timeout):
                while True:
                    await self.conn.recv()
        return self.conn.close_code

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()

        async def drain() -> None:
            # Unread pushes would keep the client from reaching the server's close frame.
            with contextlib.suppress(Exception):
                while True:
                    await self.conn.recv()

        drainer = asyncio.create_task(drain())
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.conn.close(), TIMEOUT)
        drainer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await drainer

    async def __aenter__(self) -> WsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


@contextlib.asynccontextmanager
async def start_server(
    settings: Settings, *, ws: str | None = None
) -> AsyncIterator[RunningServer]:
    """Run ``create_app(settings)`` under uvicorn in this event loop, on a free port
    (``ws`` picks another of uvicorn's WebSocket implementations)."""
    app = create_app(settings)
    config = uvicorn_config(app, settings, host="127.0.0.1", port=0, log_level="warning")
    if ws is not None:
        config.ws = ws
    server = GracefulServer(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(TIMEOUT):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("server stopped during start-up")
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield RunningServer(settings=settings, port=port, app=app, server=server)
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, TIMEOUT)
