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
from server.http.contract import Answer, Args, Param, Value, operation, ref, text
from server.http.params import cursor, limit, path_id, query
from server.service import Coedit
from server.wire import MAX_INT

__all__ = ["document_history", "list_events", "stream_events"]


_SINCE = Param("since", "query", Value("integer", minimum=0), description="a seq")
# ASCII and bounded so that all five filters at their longest still fit in a request line
# the HTTP parser accepts (about 64 KiB once percent-encoded).
_FILTER = Value("array", items=text(max_length=1300, pattern="^[!-~]*$"), max_items=3,
                description="comma separated values (at most 100 in all); the parameter may "
                            "repeat")
_FILTERS = [query(name, _FILTER, description) for name, description in (
    ("kind", ""), ("type", "exact, or a prefix like lock.*"), ("doc", ""), ("idea", ""),
    ("actor", ""))]


def _events_page(description: str) -> Answer:
    return Answer(200, description, {"type": "object", "required": ["events", "next"],
                                     "properties": {"events": {"type": "array",
                                                               "items": ref("Event")},
                                                    "next": {"type": ["string", "null"]}}})


@operation("GET", "/api/documents/{doc}/history", "The document's audit events in seq order",
           params=[path_id("doc"), _SINCE, limit(1000), cursor()],
           answers=[_events_page("a page")], errors=[403, 404])
async def document_history(request: Request, identity: Identity, ctx: AuditContext,
                           coedit: Coedit, args: Args) -> Response:
    page = await coedit.reads.history(identity, ctx, args["doc"], since=args["since"],
                                      limit=args["limit"], cursor=args["cursor"])
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


@operation("GET", "/api/events", "Audit events of the tenant in seq order",
           params=[*_FILTERS, _SINCE, query("until", text(max_length=64), "an ISO 8601 time"),
                   limit(1000), cursor()],
           answers=[_events_page("a page")], errors=[403])
async def list_events(request: Request, identity: Identity, ctx: AuditContext,
                      coedit: Coedit, args: Args) -> Response:
    page = await coedit.reads.events(
        identity, ctx, flt=_event_filter(request), since=args["since"],
        until=_until(request), limit=args["limit"] or 100, cursor=args["cursor"])
    return JSONResponse(page)


SSE_KEEPALIVE_SECONDS = 15.0


@operation("GET", "/api/events/stream",
           "The same as Server-Sent Events; id is the seq, Last-Event-ID resumes",
           params=[*_FILTERS, _SINCE,
                   Param("Last-Event-ID", "header", text(pattern="^[0-9]{1,18}$"))],
           answers=[Answer(200, "the events as they commit", {"type": "string"},
                           media_type="text/event-stream")], errors=[403])
async def stream_events(request: Request, identity: Identity, ctx: AuditContext,
                        coedit: Coedit, args: Args) -> Response:
    """Server-Sent Events: ``id:`` is the seq, so ``Last-Event-ID`` resumes exactly."""
    flt = _event_filter(request)
    since = args["since"]
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
