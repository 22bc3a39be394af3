"""One WebSocket connection: handshake, the read loop, replies, heartbeats and closing.

The ASGI handler's task only reads. Every frame counts as a sign of life the moment it is
read, whatever the session is still doing: a heartbeat is never stuck behind a write that
waits for a stalled database. What a frame asks is done in arrival order: a frame that needs
no waiting and has nothing ahead of it (a heartbeat, a patch handed to the group commit, a
refusal) is handled by the reader at once; anything else (a subscribe, a lock, any request
while earlier writes are unanswered) goes to a small queue that a worker task drains, and the
frames after it queue behind it, so replies keep the order of the requests. The worker exists
only while that queue holds something: an idle connection costs one task.

Frames leave through the connection's :class:`~channels.outbox.Outbox` (flushed at the end of
each loop turn, with a writer task only while the socket makes it wait), and one node-wide
sweep (``Coedit.sweep_sessions``) closes connections that fell silent or whose token expired.
``close()`` ends the session from anywhere; the cleanup in ``run()`` lets the request in hand
finish (within a grace period), then leaves every subscription, so the hub never fans out to
a dead socket.

What each request does lives in ``server/ws_requests.py``. This module stays one piece
(about 500 lines) because the read loop, the worker, ``close()`` and the teardown in
``run()`` race with one another, and the comments that explain those races need them side by
side.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketState

from channels.frames import Encoded, Frame, WireFormat
from channels.hub import Subscription
from channels.outbox import Outbox
from channels.streams import StreamSubscription
from channels.tasks import cancel_and_wait
from persistence.audit import AuditContext
from persistence.errors import (
    BadRequest,
    CoeditError,
    Forbidden,
    RateLimited,
    Unauthorized,
    Unavailable,
)
from persistence.timeutil import format_ts, utcnow
from persistence.writes import WriteResult
from server.auth import ANON_COOKIE, SESSION_COOKIE, Action, Identity, allowed
from server.ratelimit import TokenBucket
from server.service import Coedit, protocol_error
from server.transport import abort_function, direct_socket
from server.wire import (
    REQUEST_TYPES,
    decode_frame,
    request_id,
    require_doc,
)
from server.ws_requests import HANDLERS

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


CLOSE_GRACE_SECONDS = 5.0

# Patches a connection may have queued and not yet answered; the next one waits for them.
MAX_WRITES_IN_FLIGHT = 64

# How many refused (rate-limited) requests within ABUSE_WINDOW end the connection (1008).
ABUSE_LIMIT = 200
ABUSE_WINDOW = 10.0

# Requests read but not yet handled, at most (frames, and bytes as read). A client that sends
# more while earlier requests wait stops being read until the queue has room; its silence then
# is ours, so the sweep does not count it (see Session.alive).
QUEUE_FRAMES = 128
QUEUE_BYTES = 4 * 1024 * 1024


@dataclass(slots=True)
class _Request:
    """A frame as read: the decoded message and what to do with it, or the error to answer."""

    message: dict[str, Any]
    rid: int | str | None
    kind: str
    size: int
    error: CoeditError | None = None


def _choose_wire(offered: list[str]) -> WireFormat | None:
    for name in offered:
        for wire in WireFormat:
            if wire.value == name.strip():
                return wire
    return None


class Session:
    __slots__ = ("_cancelled", "_done", "_finished", "_held", "_queue", "_queued_bytes",
                 "_settled", "_task", "_worker", "_writes_in_flight", "bucket", "close_code",
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
        # Read, waiting for the worker; made with the worker, so an idle session holds none.
        self._queue: deque[_Request] | None = None
        self._queued_bytes = 0
        self._worker: asyncio.Task[None] | None = None  # runs while the queue holds requests
        self._held = False  # the reader waits for room in the queue
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
            await self._hear_notifications()
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
                await self._stop_worker()
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

    async def _hear_notifications(self) -> None:
        """Join the channels of this user and its roles before reading the first frame, so
        a client that has any reply is sure to hear its notifications. Until then the
        client's silence is ours (see ``_silent``)."""
        self._held = True
        try:
            await self.coedit.notifications.arrive(self.outbox, self.identity)
        finally:
            self._held = False
            self.last_seen = time.monotonic()

    async def _leave_everything(self) -> None:
        """What a closing connection held ends now: subscriptions, presence, locks, the
        channels of its user and roles."""
        hub = self.coedit.hub
        await self.coedit.notifications.depart(self.outbox, self.identity)
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
                await self.coedit.release_locks(self.identity, self.id)
        except Exception:
            # The node's sweepers catch up: presence via reaping, locks via expiry.
            log.warning("could not release presence or locks of session %s", self.id,
                        exc_info=True)

    def alive(self) -> bool:
        return self.close_code is None and not self._silent(time.monotonic())

    def _silent(self, now: float) -> bool:
        """Three intervals without a frame, while we were reading (not holding the client
        back because its earlier requests still wait)."""
        return not self._held and now - self.last_seen > 3 * self.heartbeat

    def check_deadlines(self, now: float, wall_now: float) -> None:
        """Close the session if its token expired or it fell silent (the node's sweep)."""
        if self.close_code is not None:
            return
        exp = self.identity.exp
        if exp is not None and wall_now >= exp:
            self.close(CloseCode.TOKEN_EXPIRED)
        elif self._silent(now):
            self.close(CloseCode.HEARTBEAT_TIMEOUT)

    async def finished(self) -> None:
        if self._finished:
            return
        if self._done is None:
            self._done = asyncio.Event()
        await self._done.wait()

    def close(self, code: int) -> None:
        """End the session from any task; the socket closes with ``code``.

        The reader stops at once (it never holds a request half done); a request the worker
        is handling may finish and be answered, see :meth:`_stop_worker`.
        """
        if self.close_code is None:
            self.close_code = code
            if code != CloseCode.ABNORMAL:
                self.coedit.metrics.closes.labels(str(code)).inc()
        task = self._task
        if task is None or self._cancelled or task is asyncio.current_task():
            return  # not started, ending already, or the read loop sees close_code itself
        self._cancelled = True
        task.cancel()

    async def _stop_worker(self) -> None:
        """Drop what was read and not started; give the request in hand the grace period."""
        if self._queue is not None:
            self._queue.clear()
        self._queued_bytes = 0
        worker = self._worker
        if worker is None:
            return
        done, _ = await asyncio.wait([worker], timeout=CLOSE_GRACE_SECONDS)
        if not done:
            log.info("session %s: a request did not finish within the grace; cancelling it",
                     self.id)
            await cancel_and_wait([worker])

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
            self._take(self._read_request(text, data, size))
            # No local for the queue: held across the next receive(), it would keep the
            # deque of a worker long finished, for as long as the connection stays idle.
            if self._queue is not None and (len(self._queue) >= QUEUE_FRAMES
                                            or self._queued_bytes >= QUEUE_BYTES):
                await self._wait_for_room()

    def _read_request(self, text: str | None, data: bytes | None, size: int) -> _Request:
        """Decode and check a frame as far as that needs no waiting; refusals become errors."""
        message: dict[str, Any] = {}
        rid: int | str | None = None
        kind = ""
        try:
            message = decode_frame(text, data)
            rid = request_id(message)
            raw_kind = message.get("type")
            kind = raw_kind if isinstance(raw_kind, str) else ""
            metrics = self.coedit.metrics
            metrics.count(metrics.frames_in, kind if kind in REQUEST_TYPES else "other")
            if "id" in message and rid is None:
                raise BadRequest("'id' must be an integer or a string of at most 128 characters")
            if kind == "heartbeat":
                return _Request(message, rid, kind, size)
            if kind not in HANDLERS:
                raise BadRequest(f"unknown message type {raw_kind!r}")
            if rid is None:
                raise BadRequest(f"a {kind} request needs an 'id'")
            wait = self.bucket.take()
            if wait:
                self._count_refusal()
                raise RateLimited("too many requests", retry_after_ms=max(1, int(wait * 1000)))
        except CoeditError as exc:
            return _Request(message, rid, kind, size, error=exc)
        return _Request(message, rid, kind, size)

    def _take(self, request: _Request) -> None:
        """Handle ``request`` now if nothing is ahead of it and it needs no waiting, else
        queue it for the worker."""
        if request.kind == "heartbeat" and request.rid is None and request.error is None:
            return  # a sign of life, nothing to answer: counted already, in any order
        queue = self._queue
        if queue is None:
            if self._handle_now(request):
                return
            queue = self._queue = deque()
            self._worker = asyncio.create_task(self._work(queue), name=f"session-{self.id}")
        queue.append(request)
        self._queued_bytes += request.size

    def _handle_now(self, request: _Request) -> bool:
        """Answer what needs no waiting, in the reader's own turn; False when it must queue.

        Only patches may overtake unanswered writes (they join the group commit in order);
        every other reply waits for the writes before it. A patch goes straight to the
        group commit when the caller may write and the session has room for another write;
        a refusal (which is recorded in the audit log) waits its turn.
        """
        if self._writes_in_flight and (request.kind != "patch" or request.error is not None):
            return False  # an answer, even a refusal, waits for the writes before it
        if request.error is not None:
            self.error(request.rid, request.error)
        elif request.kind == "heartbeat":
            self.reply(request.rid, {})  # type: ignore[arg-type]  # rid checked by _take
        elif (request.kind == "patch" and self._writes_in_flight < MAX_WRITES_IN_FLIGHT
              and allowed(self.identity, Action.WRITE)):
            try:
                self.queue_patch(request.message, request.rid)  # type: ignore[arg-type]
            except Exception as exc:
                if self._writes_in_flight:
                    # The refusal must not overtake the answers of earlier writes.
                    request.error = protocol_error(exc)
                    return False
                self.error(request.rid, protocol_error(exc))
        else:
            return False
        return True

    async def _work(self, queue: deque[_Request]) -> None:
        """Handle queued requests in order until none is left; the queue goes with us."""
        try:
            while queue and self.close_code is None:
                request = queue.popleft()
                self._queued_bytes -= request.size
                await self._handle(request)
        finally:
            self._worker = None
            self._queue = None
            self._queued_bytes = 0

    async def _wait_for_room(self) -> None:
        """Stop reading until the worker has handled what is queued (backpressure)."""
        worker = self._worker
        if worker is None:
            return
        self._held = True
        try:
            await asyncio.wait([worker])
        finally:
            self._held = False
            self.last_seen = time.monotonic()  # the silence was ours

    async def _handle(self, request: _Request) -> None:
        rid = request.rid
        try:
            if request.kind != "patch" and self._writes_in_flight:
                await self.settle_writes()
            if request.error is not None:
                raise request.error
            if request.kind == "heartbeat":
                self.reply(rid, {})  # type: ignore[arg-type]  # a heartbeat with an id
                return
            await HANDLERS[request.kind](self, request.message, rid)  # type: ignore[arg-type]
        except Exception as exc:
            if self._writes_in_flight:
                await self.settle_writes()
            self.error(rid, protocol_error(exc))
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                raise  # the session is stopping this worker
            # Something the request awaited was cancelled under it (a broker subscription
            # abandoned mid-reconnect, a driver's own timeout): the request still gets its one
            # reply, and the requests behind it still run.
            log.warning("session %s: a %s request was interrupted", self.id, request.kind)
            self.error(rid, Unavailable("the request was interrupted; retry shortly"))

    def _count_refusal(self) -> None:
        now = time.monotonic()
        self.refusals = [t for t in self.refusals if now - t < ABUSE_WINDOW]
        self.refusals.append(now)
        if len(self.refusals) >= ABUSE_LIMIT:
            self.close(CloseCode.POLICY)

    # -- replies --------------------------------------------------------------------------

    def reply(self, rid: int | str, fields: dict[str, Any],
              tail: tuple[str, Sequence[Encoded]] | None = None) -> None:
        """Queue an ``ok``; ``tail`` is a last field spliced from its items' own encodings."""
        self.outbox.put(Frame({"type": "ok", "re": rid, **fields}, tail))

    def error(self, rid: int | str | None, exc: CoeditError) -> None:
        self.coedit.metrics.errors.labels(exc.code).inc()
        message: dict[str, Any] = {"type": "error"}
        if rid is not None:
            message["re"] = rid
        message.update(exc.body())
        self.outbox.put(Frame(message))

    # -- requests -------------------------------------------------------------------------

    def context(self, message: dict[str, Any]) -> AuditContext:
        correlation = message.get("correlation_id")
        return self.coedit.context(
            self.identity, "ws", correlation if isinstance(correlation, str) else None
        )

    def queue_patch(self, message: dict[str, Any], rid: int | str) -> None:
        """Hand the write to the group commit and go on: consecutive patches share a commit.

        The caller has checked the role. The service answers through ``_write_done``, in
        commit order, even if the connection has gone by then, and then sends the delta.
        Any other request waits until the writes before it are answered
        (``settle_writes``).
        """
        self.coedit.queue_patch(
            self.identity, self.context(message), require_doc(message),
            base=message.get("base"), ops=message.get("ops"), key=message.get("key"),
            session=self.id, answer=functools.partial(self._write_done, rid),
        )
        self._writes_in_flight += 1

    def _write_done(self, rid: int | str, outcome: WriteResult | CoeditError) -> None:
        self._writes_in_flight -= 1
        if isinstance(outcome, CoeditError):
            self.error(rid, outcome)
        else:
            self.reply(rid, outcome.reply)
        waiter = self._settled
        if self._writes_in_flight == 0 and waiter is not None:
            self._settled = None
            if not waiter.done():
                waiter.set_result(None)

    async def wait_for_write_room(self) -> None:
        """Return once this session may queue another write (at most 64 unanswered)."""
        if self._writes_in_flight >= MAX_WRITES_IN_FLIGHT:
            await self.settle_writes()

    async def settle_writes(self) -> None:
        """Return once every write queued so far is answered (the reply order is kept)."""
        while self._writes_in_flight:
            if self._settled is None:
                self._settled = asyncio.get_running_loop().create_future()
            await self._settled

async def serve_websocket(ws: WebSocket) -> None:
    """The ``/ws`` endpoint: authenticate the handshake, then run a :class:`Session`."""
    coedit: Coedit = ws.state.coedit
    try:
        identity, fresh_cookie = coedit.tokens.identify(
            authorization=ws.headers.get("authorization"),
            cookies=ws.cookies,
            query_token=ws.query_params.get("token"),
        )
    except Unauthorized as exc:
        await _refuse(ws, exc)
        return
    ambient = not ws.headers.get("authorization") and (
        SESSION_COOKIE in ws.cookies or not ws.query_params.get("token"))
    if ambient and not _same_or_allowed_origin(ws, coedit.settings.allowed_origins):
        await _refuse(ws, await _foreign_origin(coedit, identity, ws.headers["origin"]))
        return
    headers: list[tuple[bytes, bytes]] = []
    if fresh_cookie:
        headers.append((b"set-cookie",
                        f"{ANON_COOKIE}={fresh_cookie}; Path=/; HttpOnly; SameSite=Lax".encode()))
    offered = ws.scope.get("subprotocols") or []
    session = Session(ws, coedit, identity, _choose_wire(offered))
    await session.run(headers=headers)


def _same_or_allowed_origin(ws: WebSocket, allowed: frozenset[str]) -> bool:
    """Whether the page that opens this socket may ride the caller's cookies.

    A browser sends cookies with a WebSocket handshake from any page, including one on a
    sibling subdomain (the same *site*, so SameSite does not stop it), and the handshake is
    not subject to CORS: the server must look at ``Origin`` itself. A client without one is
    not a browser page, and nothing rides its cookies but itself.
    """
    origin = ws.headers.get("origin")
    if origin is None:
        return True
    origin = origin.strip().rstrip("/").lower()
    if origin in allowed:
        return True
    scheme = "https" if ws.url.scheme in ("wss", "https") else "http"
    return origin == f"{scheme}://{ws.headers.get('host', '').strip().lower()}"


async def _foreign_origin(coedit: Coedit, identity: Identity, origin: str) -> CoeditError:
    """The refusal of a cookie-authenticated handshake from another origin, recorded."""
    refusal = Forbidden(f"pages of {origin[:200]!r} may not open a WebSocket with your session "
                        "cookie (COEDIT_ALLOWED_ORIGINS lists the origins that may)")
    try:
        return await coedit.refusal(identity, coedit.context(identity, "ws"), refusal,
                                    doc=None, what="open a WebSocket from another origin",
                                    needs="same origin")
    except Exception:
        log.warning("could not record a refused handshake", exc_info=True)
        return refusal


async def _refuse(ws: WebSocket, exc: CoeditError) -> None:
    """Refuse the handshake with a real HTTP status when the server supports it."""
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(
            JSONResponse({"error": exc.body()}, status_code=exc.http_status)
        )
    else:
        await ws.close(code=CloseCode.POLICY)
