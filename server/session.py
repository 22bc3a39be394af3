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
from channels.presence import PresenceEntry, stage_topic
from channels.streams import StreamSubscription
from persistence.documents import KIND_PATTERN
from persistence.errors import BadRequest, CoeditError, RateLimited, Unauthorized
from persistence.events import EventFilter
from persistence.timeutil import format_ts, utcnow
from server.auth import ANON_COOKIE, Action, Identity
from server.service import Coedit, protocol_error
from server.wire import (
    REQUEST_TYPES,
    decode_frame,
    optional_int,
    request_id,
    require_doc,
    require_str,
    validate_presence_state,
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


CLOSE_GRACE_SECONDS = 5.0

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
        self.since = format_ts(utcnow())
        settings = coedit.settings
        self.heartbeat = settings.heartbeat_ms / 1000
        self.last_seen = time.monotonic()
        self.subscriptions: dict[str, Subscription] = {}
        self.bucket = TokenBucket(settings.rate_per_second)
        self.refusals: list[float] = []
        self.close_code: int | None = None
        self.holds_locks = False
        self.stages: set[str] = set()
        self.streams: dict[str, StreamSubscription] = {}
        self.presence_state: dict[str, dict[str, Any]] = {}  # doc -> this session's state
        self._stop = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._done = asyncio.Event()
        self.subprotocol = wire
        self.outbox = Outbox(self._send, wire or WireFormat.JSON, limit=settings.send_queue,
                             on_overflow=self._on_overflow)
        self._handlers: dict[str, Callable[[dict[str, Any], int | str], Awaitable[None]]] = {
            "subscribe": self._subscribe,
            "unsubscribe": self._unsubscribe,
            "patch": self._patch,
            "create": self._create,
            "presence": self._presence,
            "lock": self._lock,
            "unlock": self._unlock,
        }

    # -- lifecycle ------------------------------------------------------------------------

    async def run(self, *, headers: list[tuple[bytes, bytes]]) -> None:
        wire = self.subprotocol
        await self.ws.accept(subprotocol=wire.value if wire else None, headers=headers)
        metrics = self.coedit.metrics
        metrics.connections.inc()
        self.coedit.sessions[self.id] = self
        self.outbox.put_message({
            "type": "welcome", "protocol": 1, "session": self.id,
            "node": self.coedit.settings.node_id, "user": self.identity.public(),
            "heartbeat_ms": self.coedit.settings.heartbeat_ms,
        })
        reader = asyncio.create_task(self._read_loop(), name=f"ws-read-{self.id}")
        tasks = {
            reader,
            asyncio.create_task(self.outbox.run(), name=f"ws-write-{self.id}"),
            asyncio.create_task(self._watchdog(), name=f"ws-watch-{self.id}"),
            asyncio.create_task(self._stop.wait(), name=f"ws-stop-{self.id}"),
        }
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            # A request being handled (a write mid-transaction) may finish; then stop reading.
            if not reader.done() and not self._idle.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._idle.wait(), 5.0)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            try:
                await self._leave_everything()
            finally:
                self.coedit.sessions.pop(self.id, None)
                metrics.connections.dec()
                # Finished means everything the session held is released; the close frame
                # may still be on its way to a peer that reads slowly.
                self._done.set()
                await self._close_socket()

    async def _leave_everything(self) -> None:
        """What a closing connection held ends now: subscriptions, presence, locks."""
        hub = self.coedit.hub
        for sub in list(self.subscriptions.values()):
            await hub.leave(sub)
        for stage in list(self.stages):
            await hub.leave_topic(self.outbox, stage)
        self.stages.clear()
        for stream in list(self.streams.values()):
            await self.coedit.streams.unsubscribe(stream)
        self.streams.clear()
        docs = list(self.subscriptions)
        self.subscriptions.clear()
        self.presence_state.clear()
        try:
            for doc in docs:
                await self.coedit.presence.leave(doc, self.id)
            if self.holds_locks:
                ctx = self.coedit.context(self.identity, "ws")
                await self.coedit.broadcast_locks(
                    await self.coedit.locks.release_session(ctx, self.id))
        except Exception:
            # The node's sweepers catch up: presence via reaping, locks via expiry.
            log.warning("could not release presence or locks of session %s", self.id,
                        exc_info=True)

    def alive(self) -> bool:
        return self.close_code is None and (
            time.monotonic() - self.last_seen <= 3 * self.heartbeat)

    async def finished(self) -> None:
        await self._done.wait()

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
        # The close frame queues behind whatever the peer has not read yet. A peer that
        # resumes reading within the grace period gets it; one that does not is dropped.
        try:
            await asyncio.wait_for(self.ws.close(self.close_code or 1000), CLOSE_GRACE_SECONDS)
        except Exception:
            abort = self.ws.scope.get("coedit.abort")
            if abort is not None:
                log.info("session %s: peer never read its close frame; dropping it", self.id)
                abort()

    def _on_overflow(self) -> None:
        self.coedit.metrics.overflows.inc()
        self.close(CloseCode.TRY_AGAIN_LATER)

    async def _send(self, payload: str | bytes) -> None:
        if isinstance(payload, str):
            await self.ws.send_text(payload)
        else:
            await self.ws.send_bytes(payload)

    async def _watchdog(self) -> None:
        """Sleep exactly until the next deadline (silence or token expiry), then check it."""
        while True:
            silence_ends = self.last_seen + 3 * self.heartbeat
            wait = silence_ends - time.monotonic()
            if self.identity.exp is not None:
                wait = min(wait, self.identity.exp - time.time())
            if wait > 0:
                await asyncio.sleep(wait + 0.001)
                continue
            if self.identity.exp is not None and time.time() >= self.identity.exp:
                self.close(CloseCode.TOKEN_EXPIRED)
            else:
                self.close(CloseCode.HEARTBEAT_TIMEOUT)
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
            self._idle.clear()
            try:
                await self._handle(text, data)
            finally:
                self._idle.set()

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
        if "stream" in message:
            await self._subscribe_stream(message, rid)
            return
        if "stage" in message:
            await self._subscribe_stage(message, rid)
            return
        doc = require_doc(message)
        since = optional_int(message, "since", minimum=0)
        ctx = self._ctx(message)
        await self.coedit.authorize(self.identity, Action.READ, ctx, doc=doc,
                                    what="read documents")
        previous = self.subscriptions.pop(doc, None)
        if previous is not None:
            await self.coedit.hub.leave(previous)
        hub = self.coedit.hub
        sub = await hub.join(self.outbox, self.identity.tenant, doc)
        try:
            document = await self.coedit.store.get(self.identity.tenant, doc)
            version = document["version"]
            if since is not None and since > version:
                raise BadRequest(f"since {since} is ahead of the current version {version}",
                                 current_version=version)
            present = await self.coedit.presence.backend.for_doc(doc)
            fields: dict[str, Any] = {
                "doc": doc, "version": version,
                "presence": [e.public() for e in present if e.session != self.id],
                "locks": await self.coedit.locks.live(self.identity.tenant, doc),
            }
            if since is None:
                fields["state"] = document["state"]
            self.reply(rid, fields)
            await hub.activate(sub, current=version, since=since)
        except BaseException:
            await hub.leave(sub)
            raise
        self.subscriptions[doc] = sub
        if previous is None:
            state = {"status": "viewing"}
            self.presence_state[doc] = state
            # The reply is out already: a presence hiccup must not become a second reply.
            await self._presence_quietly(
                self.coedit.presence.join(self._entry(doc, document["kind"], state)))

    async def _presence_quietly(self, change: Awaitable[None]) -> None:
        try:
            await change
        except Exception:
            log.warning("presence change of session %s failed", self.id, exc_info=True)

    def _entry(self, doc: str, kind: str, state: dict[str, Any]) -> PresenceEntry:
        return PresenceEntry(
            session=self.id, user={"id": self.identity.id, "name": self.identity.name},
            doc=doc, kind=kind, node=self.coedit.settings.node_id, state=state,
            since=self.since, tenant=self.identity.tenant,
        )

    async def _subscribe_stage(self, message: dict[str, Any], rid: int | str) -> None:
        kind = require_str(message, "stage", maximum=32)
        if not KIND_PATTERN.fullmatch(kind):
            raise BadRequest("stage must be a document kind: [a-z][a-z0-9_]{0,31}")
        topic = stage_topic(self.identity.tenant, kind)
        if topic not in self.stages:
            await self.coedit.hub.join_topic(self.outbox, topic)
            self.stages.add(topic)
        present = await self.coedit.presence.backend.for_kind(self.identity.tenant, kind)
        self.reply(rid, {"stage": kind, "presence": [e.public() for e in present]})

    async def _subscribe_stream(self, message: dict[str, Any], rid: int | str) -> None:
        spec = message.get("stream")
        if not isinstance(spec, dict):
            raise BadRequest("stream must be a map of kinds, types, docs and actors")
        unknown = set(spec) - {"kinds", "types", "docs", "actors"}
        if unknown:
            raise BadRequest(f"unknown stream filter fields: {', '.join(sorted(unknown))}")
        flt = EventFilter.parse(**spec)
        since = optional_int(message, "since", minimum=0)
        streams = self.coedit.streams
        sub = await streams.subscribe(self.outbox, self.identity.tenant, flt)
        self.streams[sub.id] = sub
        try:
            self.reply(rid, {"stream": sub.id, "seq": sub.start})
            await streams.activate(sub, since)
        except BaseException:
            self.streams.pop(sub.id, None)
            await streams.unsubscribe(sub)
            raise

    async def _unsubscribe(self, message: dict[str, Any], rid: int | str) -> None:
        if "stream" in message:
            stream_id = require_str(message, "stream", maximum=64)
            stream = self.streams.pop(stream_id, None)
            if stream is not None:
                await self.coedit.streams.unsubscribe(stream)
            self.reply(rid, {"stream": stream_id})
            return
        if "stage" in message:
            kind = require_str(message, "stage", maximum=32)
            topic = stage_topic(self.identity.tenant, kind)
            if topic in self.stages:
                self.stages.discard(topic)
                await self.coedit.hub.leave_topic(self.outbox, topic)
            self.reply(rid, {"stage": kind})
            return
        doc = require_doc(message)
        sub = self.subscriptions.pop(doc, None)
        if sub is not None:
            await self.coedit.hub.leave(sub)
            self.presence_state.pop(doc, None)
            await self._presence_quietly(self.coedit.presence.leave(doc, self.id))
        self.reply(rid, {"doc": doc})

    async def _presence(self, message: dict[str, Any], rid: int | str) -> None:
        doc = require_doc(message)
        if doc not in self.subscriptions:
            raise BadRequest("subscribe to the document before setting presence on it")
        state = validate_presence_state(message.get("state"))
        kind = await self.coedit.store.kind_of(self.identity.tenant, doc)
        self.presence_state[doc] = state
        await self.coedit.presence.update(self._entry(doc, kind, state))
        self.reply(rid, {"doc": doc})

    async def _lock(self, message: dict[str, Any], rid: int | str) -> None:
        doc = require_doc(message)
        lock = await self.coedit.lock(
            self.identity, self._ctx(message), self.id, doc, path=message.get("path"),
            ttl_ms=message.get("ttl_ms"), force=message.get("force", False),
        )
        self.holds_locks = True
        self.reply(rid, {"lock": lock})

    async def _unlock(self, message: dict[str, Any], rid: int | str) -> None:
        doc = require_doc(message)
        lock = await self.coedit.unlock(self.identity, self._ctx(message), self.id, doc,
                                        path=message.get("path"))
        self.reply(rid, {"lock": lock})

    async def _patch(self, message: dict[str, Any], rid: int | str) -> None:
        doc = require_doc(message)
        result = await self.coedit.patch(
            self.identity, self._ctx(message), doc,
            base=message.get("base"), ops=message.get("ops"), key=message.get("key"),
            session=self.id,
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
