"""Reads of the audit log: one document's history, a page of the tenant's events, and the
live event stream as Server-Sent Events."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from channels.frames import Frame, WireFormat, server_sent_event
from channels.outbox import Outbox
from channels.tasks import cancel_and_wait
from persistence.audit import AuditContext
from persistence.errors import BadRequest
from persistence.events import EventFilter
from persistence.timeutil import parse_ts
from server.auth import Identity
from server.http.endpoint import endpoint, int_param
from server.service import Coedit
from server.wire import MAX_INT

__all__ = ["document_history", "list_events", "stream_events"]


@endpoint
async def document_history(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    page = await coedit.reads.history(
        identity, ctx, request.path_params["doc"],
        since=int_param(request, "since"), limit=int_param(request, "limit", minimum=1),
        cursor=request.query_params.get("cursor") or None,
    )
    return JSONResponse(page)


def _event_filter(request: Request) -> EventFilter:
    params = request.query_params

    def values(name: str) -> list[str] | None:
        found = [v for raw in params.getlist(name) for v in raw.split(",") if v]
        return found or None

    return EventFilter.parse(kinds=values("kind"), types=values("type"), docs=values("doc"),
                             actors=values("actor"), ideas=values("idea"))


def _until(request: Request) -> datetime | None:
    raw = request.query_params.get("until")
    if not raw:
        return None
    try:
        return parse_ts(raw)
    except ValueError:
        raise BadRequest("until must be an ISO 8601 time, e.g. 2026-01-31T12:00:00Z") from None


@endpoint
async def list_events(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    limit = int_param(request, "limit", minimum=1) or 100
    if limit > 1000:
        raise BadRequest("limit must be between 1 and 1000")
    page = await coedit.reads.events(
        identity, ctx, flt=_event_filter(request), since=int_param(request, "since"),
        until=_until(request), limit=limit, cursor=request.query_params.get("cursor") or None,
    )
    return JSONResponse(page)


SSE_KEEPALIVE_SECONDS = 15.0


@endpoint
async def stream_events(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    """Server-Sent Events: ``id:`` is the seq, so ``Last-Event-ID`` resumes exactly."""
    flt = _event_filter(request)
    since = int_param(request, "since")
    last_id = request.headers.get("last-event-id")
    if last_id:
        if not last_id.strip().isdigit() or int(last_id) > MAX_INT:
            raise BadRequest("Last-Event-ID must be the seq of the last event received")
        since = int(last_id)
    return EventStreamResponse(coedit, identity, ctx, flt, since)


class EventStreamResponse(Response):
    """The tenant's events after ``since`` as they commit, until the client goes.

    The stream is followed exactly as a WebSocket session follows one: a reader registered
    with the node's event pump (``Reads.follow_events``) whose frames queue in an
    :class:`~channels.outbox.Outbox`, here framed as Server-Sent Events. A client that reads
    too slowly overflows the queue and the response ends; it resumes with ``Last-Event-ID``.
    """

    def __init__(self, coedit: Coedit, identity: Identity, ctx: AuditContext,
                 flt: EventFilter, since: int | None) -> None:
        # No Response.__init__: it would declare a Content-Length for an empty body.
        self.status_code = 200
        self.background = None
        self.raw_headers = [(b"content-type", b"text/event-stream; charset=utf-8"),
                            (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
        self.coedit, self.identity, self.ctx = coedit, identity, ctx
        self.flt, self.since = flt, since

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        coedit = self.coedit
        ended = asyncio.Event()

        async def send_text(text: str | bytes) -> None:
            body = text.encode() if isinstance(text, str) else text
            await send({"type": "http.response.body", "body": body, "more_body": True})

        outbox = Outbox(send_text, WireFormat.JSON, limit=coedit.settings.send_queue,
                        on_overflow=ended.set, on_failure=ended.set, flusher=coedit.flusher,
                        encode=server_sent_event)
        sub = await coedit.reads.follow_events(self.identity, self.ctx, outbox, self.flt)
        disconnected = asyncio.create_task(_disconnect(receive), name="sse-disconnect")
        try:
            await send({"type": "http.response.start", "status": self.status_code,
                        "headers": self.raw_headers})
            start = self.since if self.since is not None else sub.start
            outbox.put(Frame({"type": "comment", "text": f"stream {sub.id} from seq {start}"}))
            await coedit.streams.activate(sub, self.since)
            while not ended.is_set() and not disconnected.done():
                overflow = asyncio.ensure_future(ended.wait())
                done, _ = await asyncio.wait([overflow, disconnected],
                                             timeout=SSE_KEEPALIVE_SECONDS,
                                             return_when=asyncio.FIRST_COMPLETED)
                await cancel_and_wait([overflow])
                if not done:
                    outbox.put(Frame({"type": "comment", "text": "keepalive"}))
            if not disconnected.done():
                with contextlib.suppress(OSError):
                    async with asyncio.timeout(5.0):
                        await outbox.finish()
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await coedit.streams.unsubscribe(sub)
            await outbox.stop()
            await cancel_and_wait([disconnected])


async def _disconnect(receive: Receive) -> None:
    """Return when the client has gone (the request body, if any, is read and dropped)."""
    while (await receive())["type"] != "http.disconnect":
        pass
