"""One WebSocket connection: handshake, the read loop, replies, heartbeats and closing.

Three tasks per connection: the reader (this module's loop, one request at a time so a
client's writes apply in the order it sent them), the writer (the connection's
:class:`~channels.outbox.Outbox`, the only code that touches the socket's send side) and a
watchdog (heartbeat timeout and token expiry). Whichever ends first ends the session; the
cleanup in ``run()`` leaves every subscription, so the hub never fans out to a dead socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from enum import IntEnum
from typing import Any

from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketState

from channels.frames import Frame, WireFormat
from channels.hub import Subscription
from channels.outbox import Outbox
from persistence.errors import BadRequest, CoeditError, RateLimited, Unauthorized
from server.auth import ANON_COOKIE, Action, Identity
from server.service import Coedit, protocol_error
from server.wire import (
    REQUEST_TYPES,
    decode_frame,
    optional_int,
    request_id,
    require_doc,
    require_str,
)

__all__ = ["CloseCode", "serve_websocket"]

log = logging.getLogger(__name__)


class CloseCode(IntEnum):
    GOING_AWAY = 1001
    POLICY = 1008
    TOO_BIG = 1009
    TRY_AGAIN_LATER = 1013  # slow consumer: its send queue overflowed
    TOKEN_EXPIRED = 4401
    HEARTBEAT_TIMEOUT = 4408


class TokenBucket:
    """``rate`` requests a second with bursts of twice that; rate 0 means unlimited."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.capacity = 2.0 * rate
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def take(self) -> float:
        """0 when a request may go ahead, else the seconds until one may."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


# How many refused (rate-limited) requests within ABUSE_WINDOW end the connection (1008).
ABUSE_LIMIT = 200
ABUSE_WINDOW = 10.0


def _choose_wire(offered: list[str]) -> WireFormat | None:
    for name in offered:
        for wire in WireFormat:
            if wire.value == name.strip():
                return wire
    return None


class Session:
    def __init__(
        self, ws: WebSocket, coedit: Coedit, identity: Identity, wire: WireFormat | None
    ) -> None:
        self.ws = ws
        self.coedit = coedit
        self.identity = identity
        self.id = str(uuid.uuid4())
        settings = coedit.settings
        self.heartbeat = settings.heartbeat_ms / 1000
        self.last_seen = time.monotonic()
        self.subscriptions: dict[str, Subscription] = {}
        self.bucket = TokenBucket(settings.rate_per_second)
        self.refusals: list[float] = []
        self.close_code: int | None = None
        self._stop = asyncio.Event()
        self.subprotocol = wire
        self.outbox = Outbox(self._send, wire or WireFormat.JSON, limit=settings.send_queue,
                             on_overflow=self._on_overflow)
        self._handlers: dict[str, Callable[[dict[str, Any], int | str], Awaitable[None]]] = {
            "subscribe": self._subscribe,
            "unsubscribe": self._unsubscribe,
            "patch": self._patch,
            "create": self._create,
        }

    # -- lifecycle ------------------------------------------------------------------------

    async def run(self, *, headers: list[tuple[bytes, bytes]]) -> None:
        wire = self.subprotocol
        await self.ws.accept(subprotocol=wire.value if wire else None, headers=headers)
        metrics = self.coedit.metrics
        metrics.connections.inc()
        self.outbox.put_message({
            "type": "welcome", "protocol": 1, "session": self.id,
            "node": self.coedit.settings.node_id, "user": self.identity.public(),
            "heartbeat_ms": self.coedit.settings.heartbeat_ms,
        })
        tasks = {
            asyncio.create_task(self._read_loop(), name=f"ws-read-{self.id}"),
            asyncio.create_task(self.outbox.run(), name=f"ws-write-{self.id}"),
            asyncio.create_task(self._watchdog(), name=f"ws-watch-{self.id}"),
            asyncio.create_task(self._stop.wait(), name=f"ws-stop-{self.id}"),
        }
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for sub in list(self.subscriptions.values()):
                await self.coedit.hub.leave(sub)
            self.subscriptions.clear()
            metrics.connections.dec()
            await self._close_socket()

    def close(self, code: int) -> None:
        """End the session from any task; the socket closes with ``code``."""
        if self.close_code is None:
            self.close_code = code
            self.coedit.metrics.closes.labels(str(code)).inc()
        self._stop.set()

    async def _close_socket(self) -> None:
        if self.ws.application_state != WebSocketState.CONNECTED:
            return
        if self.ws.client_state == WebSocketState.DISCONNECTED:
            return
        # A stalled peer may never read the close frame; do not wait on it forever.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(self.close_code or 1000), timeout=2.0)

    def _on_overflow(self) -> None:
        self.coedit.metrics.overflows.inc()
        self.close(CloseCode.TRY_AGAIN_LATER)

    async def _send(self, payload: str | bytes) -> None:
        if isinstance(payload, str):
            await self.ws.send_text(payload)
        else:
            await self.ws.send_bytes(payload)

    async def _watchdog(self) -> None:
        tick = min(1.0, max(0.02, self.heartbeat / 4))
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            if now - self.last_seen > 3 * self.heartbeat:
                self.close(CloseCode.HEARTBEAT_TIMEOUT)
                return
            if self.identity.exp is not None and time.time() >= self.identity.exp:
                self.close(CloseCode.TOKEN_EXPIRED)
                return

    # -- reading --------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        limit = self.coedit.settings.max_frame_bytes
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            self.last_seen = time.monotonic()
            text: str | None = message.get("text")
            data: bytes | None = message.get("bytes")
            size = len(data) if data is not None else len(text or "")
            if text is not None and size * 4 > limit:
                size = len(text.encode("utf-8"))
            if size > limit:
                self.close(CloseCode.TOO_BIG)
                return
            await self._handle(text, data)

    async def _handle(self, text: str | None, data: bytes | None) -> None:
        rid: int | str | None = None
        try:
            message = decode_frame(text, data)
            rid = request_id(message)
            kind = message.get("type")
            self.coedit.metrics.frames_in.labels(
                kind if isinstance(kind, str) and kind in REQUEST_TYPES else "other").inc()
            if "id" in message and rid is None:
                raise BadRequest("'id' must be an integer or a string of at most 128 characters")
            if kind == "heartbeat":
                if rid is not None:
                    self.reply(rid, {})
                return
            if not isinstance(kind, str) or kind not in self._handlers:
                raise BadRequest(f"unknown message type {kind!r}")
            if rid is None:
                raise BadRequest(f"a {kind} request needs an 'id'")
            wait = self.bucket.take()
            if wait:
                self._count_refusal()
                raise RateLimited("too many requests", retry_after_ms=max(1, int(wait * 1000)))
            await self._handlers[kind](message, rid)
        except Exception as exc:
            self.error(rid, protocol_error(exc))

    def _count_refusal(self) -> None:
        now = time.monotonic()
        self.refusals = [t for t in self.refusals if now - t < ABUSE_WINDOW]
        self.refusals.append(now)
        if len(self.refusals) >= ABUSE_LIMIT:
            self.close(CloseCode.POLICY)

    # -- replies --------------------------------------------------------------------------

    def reply(self, rid: int | str, fields: dict[str, Any]) -> None:
        self.outbox.put(Frame({"type": "ok", "re": rid, **fields}))

    def error(self, rid: int | str | None, exc: CoeditError) -> None:
        self.coedit.metrics.errors.labels(exc.code).inc()
        message: dict[str, Any] = {"type": "error"}
        if rid is not None:
            message["re"] = rid
        message.update(exc.body())
        self.outbox.put(Frame(message))

    # -- requests -------------------------------------------------------------------------

    def _ctx(self, message: dict[str, Any]) -> Any:
        correlation = message.get("correlation_id")
        return self.coedit.context(
            self.identity, "ws", correlation if isinstance(correlation, str) else None
        )

    async def _subscribe(self, message: dict[str, Any], rid: int | str) -> None:
        if "stream" in message or "stage" in message:
            raise BadRequest("stage and stream subscriptions are not available on this server "
                             "version yet")
        doc = require_doc(message)
        since = optional_int(message, "since", minimum=0)
        ctx = self._ctx(message)
        await self.coedit.authorize(self.identity, Action.READ, ctx, doc=doc,
                                    what="read documents")
        previous = self.subscriptions.pop(doc, None)
        if previous is not None:
            await self.coedit.hub.leave(previous)
        sub = await self.coedit.hub.join(self.outbox, self.identity.tenant, doc)
        try:
            document = await self.coedit.store.get(self.identity.tenant, doc)
            version = document["version"]
            if since is not None and since > version:
                raise BadRequest(f"since {since} is ahead of the current version {version}",
                                 current_version=version)
            fields: dict[str, Any] = {"doc": doc, "version": version, "presence": [],
                                      "locks": []}
            if since is None:
                fields["state"] = document["state"]
            self.reply(rid, fields)
            await self.coedit.hub.activate(sub, current=version, since=since)
        except BaseException:
            await self.coedit.hub.leave(sub)
            raise
        self.subscriptions[doc] = sub

    async def _unsubscribe(self, message: dict[str, Any], rid: int | str) -> None:
        doc = require_doc(message)
        sub = self.subscriptions.pop(doc, None)
        if sub is not None:
            await self.coedit.hub.leave(sub)
        self.reply(rid, {"doc": doc})

    async def _patch(self, message: dict[str, Any], rid: int | str) -> None:
        doc = require_doc(message)
        result = await self.coedit.patch(
            self.identity, self._ctx(message), doc,
            base=message.get("base"), ops=message.get("ops"), key=message.get("key"),
        )
        self.reply(rid, result.reply)
        await self.coedit.publish(result)

    async def _create(self, message: dict[str, Any], rid: int | str) -> None:
        require_str(message, "kind", maximum=32)
        document = await self.coedit.create_document(self.identity, self._ctx(message), message)
        self.reply(rid, {"document": document})


async def serve_websocket(ws: WebSocket) -> None:
    """The ``/ws`` endpoint: authenticate the handshake, then run a :class:`Session`."""
    coedit: Coedit = ws.app.state.coedit
    try:
        identity, fresh_cookie = coedit.tokens.identify(
            authorization=ws.headers.get("authorization"),
            cookies=ws.cookies,
            query_token=ws.query_params.get("token"),
        )
    except Unauthorized as exc:
        await _refuse(ws, exc)
        return
    headers: list[tuple[bytes, bytes]] = []
    if fresh_cookie:
        headers.append((b"set-cookie",
                        f"{ANON_COOKIE}={fresh_cookie}; Path=/; HttpOnly; SameSite=Lax".encode()))
    offered = ws.scope.get("subprotocols") or []
    session = Session(ws, coedit, identity, _choose_wire(offered))
    await session.run(headers=headers)


async def _refuse(ws: WebSocket, exc: CoeditError) -> None:
    """Refuse the handshake with a real HTTP status when the server supports it."""
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(
            JSONResponse({"error": exc.body()}, status_code=exc.http_status)
        )
    else:
        await ws.close(code=CloseCode.POLICY)
