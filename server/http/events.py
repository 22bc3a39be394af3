"""Reads of the audit log: one document's history, a page of the tenant's events, and the
live event stream as Server-Sent Events."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from channels.frames import Frame, encode_json
from persistence.audit import AuditContext
from persistence.errors import BadRequest
from persistence.events import EventFilter
from persistence.timeutil import parse_ts
from server.auth import Identity
from server.http.endpoint import endpoint, int_param
from server.service import Coedit

__all__ = ["document_history", "list_events", "stream_events"]


@endpoint
async def document_history(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    page = await coedit.store.history(
        identity.tenant, request.path_params["doc"],
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
                             actors=values("actor"))


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
    page = await coedit.events.page(
        identity.tenant, flt=_event_filter(request), since=int_param(request, "since"),
        until=_until(request), limit=limit, cursor=request.query_params.get("cursor") or None,
    )
    return JSONResponse(page)


class _SseSink:
    """A bounded queue between the stream pump and one SSE response; overflow ends it."""

    def __init__(self, limit: int) -> None:
        self.queue: asyncio.Queue[Frame | None] = asyncio.Queue(maxsize=limit)
        self.overflowed = False

    def put(self, frame: Frame) -> bool:
        if self.overflowed:
            return False
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.overflowed = True
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()  # make room for the end-of-stream marker
            self.queue.put_nowait(None)
            return False
        return True


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
        if not last_id.strip().isdigit():
            raise BadRequest("Last-Event-ID must be the seq of the last event received")
        since = int(last_id)
    sink = _SseSink(coedit.settings.send_queue)
    streams = coedit.streams
    sub = await streams.subscribe(sink, identity.tenant, flt)

    async def body() -> AsyncIterator[str]:
        try:
            yield f": stream {sub.id} from seq {since if since is not None else sub.start}\n\n"
            await streams.activate(sub, since)
            while True:
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for swallows the
                    # cancellation of a disconnect that lands as a frame arrives.
                    async with asyncio.timeout(SSE_KEEPALIVE_SECONDS):
                        frame = await sink.queue.get()
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                if frame is None:
                    return  # too slow: the client reconnects with Last-Event-ID
                event = frame.message["event"]
                yield f"id: {event['seq']}\ndata: {encode_json(event)}\n\n"
        finally:
            await streams.unsubscribe(sub)

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
