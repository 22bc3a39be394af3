"""The HTTP resources of PROTOCOL.md section 9, plus dev login, health and metrics.

Every handler goes through :func:`endpoint`: it resolves the caller, maps a
:class:`CoeditError` to its status and ``{"error": {...}}`` body, echoes the correlation id
and sets the anonymous viewer's cookie when one was just issued.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from channels.frames import Frame, encode_json
from persistence.audit import AuditContext
from persistence.errors import (
    BadRequest,
    CoeditError,
    NotFound,
    PreconditionRequired,
    TooLarge,
    Unavailable,
)
from persistence.events import EventFilter
from persistence.timeutil import parse_ts
from server.auth import ANON_COOKIE, SESSION_COOKIE, Action, Identity
from server.openapi import OPENAPI
from server.service import Coedit, protocol_error

__all__ = ["error_response", "routes"]

log = logging.getLogger(__name__)

Handler = Callable[[Request, Identity, AuditContext, Coedit], Awaitable[Response]]


def error_response(exc: CoeditError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": exc.body()}, status_code=exc.http_status, headers=headers)


def _coedit(request: Request) -> Coedit:
    return request.app.state.coedit  # type: ignore[no-any-return]


def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    @functools.wraps(handler)
    async def wrapper(request: Request) -> Response:
        coedit = _coedit(request)
        correlation = request.headers.get("x-correlation-id")
        fresh_cookie = None
        try:
            identity, fresh_cookie = coedit.tokens.identify(
                authorization=request.headers.get("authorization"),
                cookies=request.cookies,
            )
            ctx = coedit.context(identity, "http", correlation)
            response = await handler(request, identity, ctx, coedit)
            response.headers["X-Correlation-ID"] = ctx.correlation_id
        except Exception as exc:
            error = protocol_error(exc)
            coedit.metrics.errors.labels(error.code).inc()
            response = error_response(error)
        if fresh_cookie:
            response.set_cookie(ANON_COOKIE, fresh_cookie, httponly=True, samesite="lax",
                                max_age=365 * 24 * 3600)
        return response

    return wrapper


async def _json_body(request: Request, coedit: Coedit) -> Any:
    limit = coedit.settings.max_state_bytes + 64 * 1024
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"request body larger than {limit} bytes", limit=limit)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise TooLarge(f"request body larger than {limit} bytes", limit=limit)
    try:
        return json.loads(body)
    except ValueError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None


def _int_param(request: Request, name: str, *, minimum: int = 0) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"query parameter {name!r} must be an integer") from None
    if value < minimum:
        raise BadRequest(f"query parameter {name!r} must be at least {minimum}")
    return value


def _lock_token(header: str | None) -> int | None:
    if header is None or not header.strip():
        return None
    if not header.strip().isdigit():
        raise BadRequest("Lock-Token must be the integer token of a lock you hold")
    return int(header.strip())


def _http_holder(identity: Identity) -> str:
    """HTTP clients have no connection to hold a lock: the user holds it for its ttl."""
    return f"http:{identity.id}"


def _etag(version: int) -> str:
    return f'"{version}"'


def _if_match_version(header: str | None) -> int:
    if header is None or not header.strip():
        raise PreconditionRequired('PATCH needs If-Match: "<base version>"')
    value = header.strip()
    if value.startswith("W/"):
        value = value[2:]
    value = value.strip('"')
    if not value.isdigit() or int(value) < 1:
        raise BadRequest('If-Match must be a version in quotes, e.g. "3"')
    return int(value)


# -- identity ---------------------------------------------------------------------------------


async def dev_login(request: Request) -> Response:
    coedit = _coedit(request)
    if not coedit.tokens.dev_auth:
        return error_response(NotFound("dev login is off (COEDIT_AUTH is not dev)"))
    try:
        token, identity = coedit.tokens.dev_login(await _json_body(request, coedit))
    except CoeditError as exc:
        return error_response(exc)
    response = JSONResponse({"token": token, "user": identity.public()})
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax",
                        max_age=12 * 3600)
    return response


@endpoint
async def me(request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit) -> Response:
    return JSONResponse({"user": identity.public(), "anonymous": identity.anonymous,
                         "dev_auth": coedit.tokens.dev_auth})


# -- documents --------------------------------------------------------------------------------


@endpoint
async def create_document(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    body = await _json_body(request, coedit)
    if not isinstance(body, dict):
        raise BadRequest("body must be an object with kind, title and optional state")
    document = await coedit.create_document(identity, ctx, body)
    return JSONResponse(document, status_code=201, headers={
        "ETag": _etag(document["version"]), "Location": f"/api/documents/{document['id']}"})


@endpoint
async def list_documents(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    params = request.query_params
    page = await coedit.store.list_documents(
        identity.tenant, kind=params.get("kind") or None, q=params.get("q") or None,
        limit=_int_param(request, "limit", minimum=1), cursor=params.get("cursor") or None,
    )
    return JSONResponse(page)


@endpoint
async def get_document(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    doc = request.path_params["doc"]
    version = _int_param(request, "version", minimum=0)
    at_raw = request.query_params.get("at")
    if version is not None and at_raw:
        raise BadRequest("give version or at, not both")
    at: datetime | None = None
    if at_raw:
        try:
            at = parse_ts(at_raw)
        except ValueError:
            raise BadRequest("at must be an ISO 8601 time, e.g. 2026-01-31T12:00:00Z") from None
    if version is None and at is None:
        document = await coedit.store.get(identity.tenant, doc)
    else:
        document = await coedit.store.state_at(identity.tenant, doc, version=version, at=at)
    etag = _etag(document["version"])
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    return JSONResponse(document, headers={"ETag": etag})


@endpoint
async def patch_document(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    doc = request.path_params["doc"]
    await coedit.store.kind_of(identity.tenant, doc)  # not_found before anything else
    base = _if_match_version(request.headers.get("if-match"))
    ops = await _json_body(request, coedit)
    key = request.headers.get("idempotency-key")
    result = await coedit.patch(identity, ctx, doc, base=base, ops=ops, key=key,
                                lock_token=_lock_token(request.headers.get("lock-token")))
    coedit.publish(result)
    return JSONResponse(result.reply, headers={"ETag": _etag(result.reply["version"])})


@endpoint
async def document_history(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    page = await coedit.store.history(
        identity.tenant, request.path_params["doc"],
        since=_int_param(request, "since"), limit=_int_param(request, "limit", minimum=1),
        cursor=request.query_params.get("cursor") or None,
    )
    return JSONResponse(page)


@endpoint
async def verify_document(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    await coedit.authorize(identity, Action.READ, ctx, what="verify documents")
    return JSONResponse(await coedit.store.verify(identity.tenant, request.path_params["doc"]))


# -- review workflow ------------------------------------------------------------------------


async def _object_body(request: Request, coedit: Coedit) -> dict[str, Any]:
    body = await _json_body(request, coedit)
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


@endpoint
async def add_comment(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    comment = await coedit.add_comment(identity, ctx, request.path_params["doc"],
                                       await _object_body(request, coedit))
    return JSONResponse({"comment": comment}, status_code=201)


@endpoint
async def list_comments(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    doc = request.path_params["doc"]
    await coedit.store.kind_of(identity.tenant, doc)
    return JSONResponse({"comments": await coedit.reviews.comments(identity.tenant, doc)})


@endpoint
async def resolve_comment(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    comment = await coedit.resolve_comment(identity, ctx, request.path_params["doc"],
                                           request.path_params["comment"])
    return JSONResponse({"comment": comment})


@endpoint
async def get_review(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    doc = request.path_params["doc"]
    await coedit.store.kind_of(identity.tenant, doc)
    return JSONResponse({"review": await coedit.reviews.review(identity.tenant, doc)})


@endpoint
async def assign_review(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    review = await coedit.assign_review(identity, ctx, request.path_params["doc"],
                                        await _object_body(request, coedit))
    return JSONResponse({"review": review})


@endpoint
async def transition_review(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    review = await coedit.transition_review(identity, ctx, request.path_params["doc"],
                                            await _object_body(request, coedit))
    return JSONResponse({"review": review})


@endpoint
async def archive_document(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    document = await coedit.set_archived(identity, ctx, request.path_params["doc"], True)
    return JSONResponse(document)


@endpoint
async def reopen_document(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    document = await coedit.set_archived(identity, ctx, request.path_params["doc"], False)
    return JSONResponse(document)


# -- locks and presence -----------------------------------------------------------------------


@endpoint
async def take_lock(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    doc = request.path_params["doc"]
    await coedit.store.kind_of(identity.tenant, doc)
    body = await _json_body(request, coedit)
    if not isinstance(body, dict):
        raise BadRequest('body must be {"path": ..., "ttl_ms": ...}')
    lock = await coedit.lock(identity, ctx, _http_holder(identity), doc, path=body.get("path"),
                             ttl_ms=body.get("ttl_ms"), force=body.get("force", False))
    return JSONResponse({"lock": lock}, status_code=201,
                        headers={"Lock-Token": str(lock["token"])})


@endpoint
async def release_lock(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    doc = request.path_params["doc"]
    path = request.query_params.get("path")
    if path is None:
        raise BadRequest("give the locked path as ?path= ('' for the whole document)")
    lock = await coedit.unlock(identity, ctx, _http_holder(identity), doc, path=path)
    return JSONResponse({"lock": lock})


@endpoint
async def list_locks(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    doc = request.query_params.get("doc")
    if not doc:
        raise BadRequest("give ?doc=<document id>")
    await coedit.store.kind_of(identity.tenant, doc)
    return JSONResponse({"locks": await coedit.locks.live(identity.tenant, doc)})


@endpoint
async def list_presence(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    doc = request.query_params.get("doc")
    kind = request.query_params.get("kind")
    backend = coedit.presence.backend
    if doc:
        await coedit.store.kind_of(identity.tenant, doc)
        entries = await backend.for_doc(doc)
    elif kind:
        entries = await backend.for_kind(identity.tenant, kind)
    else:
        raise BadRequest("give ?doc=<document id> or ?kind=<kind>")
    return JSONResponse({"presence": [e.public() for e in entries
                                      if e.tenant == identity.tenant]})


# -- events ---------------------------------------------------------------------------------


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
    limit = _int_param(request, "limit", minimum=1) or 100
    if limit > 1000:
        raise BadRequest("limit must be between 1 and 1000")
    page = await coedit.events.page(
        identity.tenant, flt=_event_filter(request), since=_int_param(request, "since"),
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
    since = _int_param(request, "since")
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


# -- operations -------------------------------------------------------------------------------


async def healthz(request: Request) -> Response:
    return JSONResponse({"ok": True, "node": _coedit(request).settings.node_id})


async def readyz(request: Request) -> Response:
    coedit = _coedit(request)
    checks: dict[str, str] = {}
    for name, probe in (("storage", coedit.db.ping), ("broker", coedit.hub.broker.ping)):
        try:
            await probe()
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"{type(exc).__name__}: {exc}"[:200]
    if all(value == "ok" for value in checks.values()):
        return JSONResponse({"ok": True, "checks": checks})
    failed = ", ".join(k for k, v in checks.items() if v != "ok")
    return error_response(Unavailable(f"not ready: {failed}", checks=checks))


async def metrics(request: Request) -> Response:
    return Response(_coedit(request).metrics.render(),
                    media_type="text/plain; version=0.0.4; charset=utf-8")


async def openapi(request: Request) -> Response:
    return JSONResponse(OPENAPI)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
    Route("/api/dev/login", dev_login, methods=["POST"]),
    Route("/api/me", me, methods=["GET"]),
    Route("/api/documents", create_document, methods=["POST"]),
    Route("/api/documents", list_documents, methods=["GET"]),
    Route("/api/documents/{doc}", get_document, methods=["GET"]),
    Route("/api/documents/{doc}", patch_document, methods=["PATCH"]),
    Route("/api/documents/{doc}/history", document_history, methods=["GET"]),
    Route("/api/documents/{doc}/verify", verify_document, methods=["GET"]),
    Route("/api/documents/{doc}/locks", take_lock, methods=["POST"]),
    Route("/api/documents/{doc}/locks", release_lock, methods=["DELETE"]),
    Route("/api/documents/{doc}/comments", add_comment, methods=["POST"]),
    Route("/api/documents/{doc}/comments", list_comments, methods=["GET"]),
    Route("/api/documents/{doc}/comments/{comment}/resolve", resolve_comment,
          methods=["POST"]),
    Route("/api/documents/{doc}/review", get_review, methods=["GET"]),
    Route("/api/documents/{doc}/review", assign_review, methods=["PUT"]),
    Route("/api/documents/{doc}/review/transition", transition_review, methods=["POST"]),
    Route("/api/documents/{doc}/archive", archive_document, methods=["POST"]),
    Route("/api/documents/{doc}/reopen", reopen_document, methods=["POST"]),
    Route("/api/locks", list_locks, methods=["GET"]),
    Route("/api/presence", list_presence, methods=["GET"]),
    Route("/api/events", list_events, methods=["GET"]),
    Route("/api/events/stream", stream_events, methods=["GET"]),
]
