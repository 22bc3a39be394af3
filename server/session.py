"""One WebSocket connection: handshake, the read loop, replies, heartbeats and closing.

A connection costs one task: the ASGI handler's own, which reads requests one at a time so
a client's writes apply in the order it sent them. Nothing else runs per connection while it
is idle: frames leave through the connection's :class:`~channels.outbox.Outbox` (flushed at
the end of each loop turn, with a writer task only while the socket makes it wait), and one
node-wide sweep (``Coedit.sweep_sessions``) closes connections that fell silent or whose
token expired. ``close()`` ends the read loop from anywhere; the cleanup in ``run()`` leaves
every subscription, so the hub never fans out to a dead socket.
"""

from __future__ import annotations

import asyncio
import functools
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
from persistence.document_writes import KIND_PATTERN
from persistence.errors import BadRequest, CoeditError, RateLimited, Unauthorized, Unavailable
from persistence.events import EventFilter
from persistence.timeutil import format_ts, utcnow
from persistence.writes import WriteResult
from server.auth import ANON_COOKIE, Action, Identity
from server.service import Coedit, protocol_error
from server.transport import abort_function, direct_socket
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
    # Never sent (RFC 6455 reserves it): the socket failed under us, there is nobody to tell.
    ABNORMAL = 1006
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

# Patches a connection may have queued and not yet answered; the next one waits for them.
MAX_WRITES_IN_FLIGHT = 64

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
    __slots__ = ("_busy", "_cancelled", "_done", "_finished", "_settled", "_task",
                 "_writes_in_flight", "bucket", "close_code",
                 "coedit", "heartbeat", "holds_locks", "id", "identity", "last_seen", "outbox",
                 "presence_state", "refusals", "since", "stages", "streams", "subprotocol",
                 "subscriptions", "ws")

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
        self.subprotocol = wire
        self.outbox = Outbox(self._send, wire or WireFormat.JSON, limit=settings.send_queue,
                             on_overflow=self._on_overflow, on_failure=self._on_send_failure,
                             flusher=coedit.flusher)
        self._task: asyncio.Task[Any] | None = None
        self._busy = False  # a request is being handled
        self._cancelled = False  # close() cancelled the read loop
        self._finished = False
        self._done: asyncio.Event | None = None  # made only for someone awaiting finished()
        self._writes_in_flight = 0
        self._settled: asyncio.Future[None] | None = None  # made only while someone waits

    # -- lifecycle ------------------------------------------------------------------------

    async def run(self, *, headers: list[tuple[bytes, bytes]]) -> None:
        wire = self.subprotocol
        await self.ws.accept(subprotocol=wire.value if wire else None, headers=headers)
        direct = direct_socket(self.ws.scope)
        if direct is not None:
            self.outbox.attach(direct)
        metrics = self.coedit.metrics
        metrics.connections.inc()
        self.coedit.sessions[self.id] = self
        self._task = asyncio.current_task()
        self.outbox.put_message({
            "type": "welcome", "protocol": 1, "session": self.id,
            "node": self.coedit.settings.node_id, "user": self.identity.public(),
            "heartbeat_ms": self.coedit.settings.heartbeat_ms,
        })
        try:
            await self._read_loop()
        except asyncio.CancelledError:
            # close() cancels a read loop that waits for the next frame; anything else
            # cancelling this task (the server going away) must still see its cancellation.
            task = self._task
            if not self._cancelled or (task is not None and task.uncancel() > 0):
                raise
        finally:
            self._task = None
            try:
                await self._leave_everything()
            finally:
                self.coedit.sessions.pop(self.id, None)
                metrics.connections.dec()
                # Finished means everything the session held is released; the close frame
                # may still be on its way to a peer that reads slowly.
                self._finished = True
                if self._done is not None:
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

    def check_deadlines(self, now: float, wall_now: float) -> None:
        """Close the session if its token expired or it fell silent (the node's sweep)."""
        if self.close_code is not None:
            return
        exp = self.identity.exp
        if exp is not None and wall_now >= exp:
            self.close(CloseCode.TOKEN_EXPIRED)
        elif now - self.last_seen > 3 * self.heartbeat:
            self.close(CloseCode.HEARTBEAT_TIMEOUT)

    async def finished(self) -> None:
        if self._finished:
            return
        if self._done is None:
            self._done = asyncio.Event()
        await self._done.wait()

    def close(self, code: int) -> None:
        """End the session from any task; the socket closes with ``code``."""
        if self.close_code is None:
            self.close_code = code
            if code != CloseCode.ABNORMAL:
                self.coedit.metrics.closes.labels(str(code)).inc()
        task = self._task
        if task is None or self._cancelled or task is asyncio.current_task():
            return  # not started, ending already, or the read loop sees close_code itself
        if self._busy:
            # A request mid-flight (a write mid-transaction) may finish and be answered;
            # the read loop stops after it. One that hangs is cut off after the grace.
            asyncio.get_running_loop().call_later(CLOSE_GRACE_SECONDS, self._cancel_reader)
        else:
            self._cancel_reader()

    def _cancel_reader(self) -> None:
        task = self._task
        if task is not None and not self._cancelled:
            self._cancelled = True
            task.cancel()

    async def _close_socket(self) -> None:
        outbox = self.outbox
        if (self.ws.application_state != WebSocketState.CONNECTED
                or self.ws.client_state == WebSocketState.DISCONNECTED
                or self.close_code == CloseCode.ABNORMAL):
            await outbox.stop()
            return
        # What was queued leaves first, then the close frame, which queues behind whatever
        # the peer has not read yet. A peer that resumes reading within the grace period
        # gets it all; one that does not is dropped.
        try:
            async with asyncio.timeout(CLOSE_GRACE_SECONDS):
                await outbox.finish()
                await self.ws.close(self.close_code or 1000)
        except Exception:
            abort = abort_function(self.ws.scope)
            if abort is not None:
                log.info("session %s: peer never read its close frame; dropping it", self.id)
                abort()
        finally:
            await outbox.stop()

    def _on_overflow(self) -> None:
        self.coedit.metrics.overflows.inc()
        self.close(CloseCode.TRY_AGAIN_LATER)

    def _on_send_failure(self) -> None:
        self.close(CloseCode.ABNORMAL)

    async def _send(self, payload: str | bytes) -> None:
        if isinstance(payload, str):
            await self.ws.send_text(payload)
        else:
            await self.ws.send_bytes(payload)

    # -- reading --------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        limit = self.coedit.settings.max_frame_bytes
        while self.close_code is None:
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
            self._busy = True
            try:
                await self._handle(text, data)
            finally:
                self._busy = False

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
            if kind != "patch" and self._writes_in_flight:
                await self._settle_writes()
            if kind == "heartbeat":
                if rid is not None:
                    self.reply(rid, {})
                return
            handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
            if handler is None:
                raise BadRequest(f"unknown message type {kind!r}")
            if rid is None:
                raise BadRequest(f"a {kind} request needs an 'id'")
            wait = self.bucket.take()
            if wait:
                self._count_refusal()
                raise RateLimited("too many requests", retry_after_ms=max(1, int(wait * 1000)))
            await handler(self, message, rid)
        except Exception as exc:
            if self._writes_in_flight:
                await self._settle_writes()
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
        """Queue the write and go on reading: consecutive patches share a group commit.

        The reply and the delta go out from the future's callback, in commit order, even if
        the connection has gone by then (the delta must reach the other subscribers). Any
        other request waits until the writes before it are answered (``_settle_writes``).
        """
        doc = require_doc(message)
        if self._writes_in_flight >= MAX_WRITES_IN_FLIGHT:
            await self._settle_writes()
        future = await self.coedit.submit_patch(
            self.identity, self._ctx(message), doc,
            base=message.get("base"), ops=message.get("ops"), key=message.get("key"),
            session=self.id,
        )
        self._writes_in_flight += 1
        future.add_done_callback(functools.partial(self._write_done, rid))

    def _write_done(self, rid: int | str, future: asyncio.Future[WriteResult]) -> None:
        self._writes_in_flight -= 1
        if future.cancelled():
            self.error(rid, Unavailable("the server stopped before the write finished"))
        elif (exc := future.exception()) is not None:
            self.error(rid, protocol_error(exc) if isinstance(exc, Exception)
                       else Unavailable("the write was interrupted"))
        else:
            result = future.result()
            self.reply(rid, result.reply)
            self.coedit.publish(result)
        waiter = self._settled
        if self._writes_in_flight == 0 and waiter is not None:
            self._settled = None
            if not waiter.done():
                waiter.set_result(None)

    async def _settle_writes(self) -> None:
        """Return once every write queued so far is answered (the reply order is kept)."""
        while self._writes_in_flight:
            if self._settled is None:
                self._settled = asyncio.get_running_loop().create_future()
            await self._settled

    async def _create(self, message: dict[str, Any], rid: int | str) -> None:
        require_str(message, "kind", maximum=32)
        document = await self.coedit.create_document(self.identity, self._ctx(message), message)
        self.reply(rid, {"document": document})


_HANDLERS: dict[str, Callable[[Session, dict[str, Any], int | str], Awaitable[None]]] = {
    "subscribe": Session._subscribe,
    "unsubscribe": Session._unsubscribe,
    "patch": Session._patch,
    "create": Session._create,
    "presence": Session._presence,
    "lock": Session._lock,
    "unlock": Session._unlock,
}


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
