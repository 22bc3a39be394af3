"""Documents over HTTP: create, list, read (now or in the past), patch, verify the chain.

A document's version is its ETag; a PATCH names the version it was written against in
``If-Match``, and may carry the ``Lock-Token`` of a lock it holds.
"""

from __future__ import annotations

from datetime import datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from persistence.audit import AuditContext
from persistence.document_writes import MAX_KEY_LENGTH, MAX_TITLE_LENGTH
from persistence.errors import BadRequest, PreconditionRequired
from persistence.patching import MAX_OPS
from persistence.timeutil import parse_ts
from server.auth import Identity
from server.http.contract import (
    NON_BLANK,
    Answer,
    Args,
    Body,
    Param,
    Prop,
    Value,
    operation,
    ref,
    text,
)
from server.http.params import KIND, cursor, kind_filter, limit, path_id, query
from server.service import Coedit

__all__ = [
    "create_document",
    "get_document",
    "list_documents",
    "patch_document",
    "verify_document",
]

DOC = path_id("doc", "a document id")
ISO_TIME = "an ISO 8601 time, e.g. 2026-01-31T12:00:00Z"
_ETAG = '^(W/)?"[1-9][0-9]{0,17}"$'


def _lock_token(header: str | None) -> int | None:
    if header is None or not header.strip():
        return None
    if not header.strip().isdigit():
        raise BadRequest("Lock-Token must be the integer token of a lock you hold")
    return int(header.strip())


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


_DOCUMENT = Answer(200, "the document; ETag: its version", ref("Document"), headers=("ETag",))


@operation("POST", "/api/documents", "Create a document (analysts, bots, admins)",
           body=Body((
               Prop("kind", KIND, required=True),
               Prop("title", text(1, MAX_TITLE_LENGTH, pattern=NON_BLANK), required=True),
               Prop("state", Value("object", description="at most 1 MiB as JSON")),
               Prop("idea", Value("string", min_length=1, max_length=128, nullable=True,
                                  description="the idea the document belongs to")),
           ), closed=False, message="body must be an object with kind, title and optional state"),
           answers=[Answer(201, "created", ref("Document"), headers=("ETag", "Location"))],
           errors=[403, 404, 413])
async def create_document(request: Request, identity: Identity, ctx: AuditContext,
                          coedit: Coedit, args: Args) -> Response:
    document = await coedit.create_document(identity, ctx, args["body"])
    return JSONResponse(document, status_code=201, headers={
        "ETag": _etag(document["version"]), "Location": f"/api/documents/{document['id']}"})


@operation("GET", "/api/documents", "List documents, newest first",
           params=[kind_filter(), query("q", description="title contains"), limit(500),
                   cursor()],
           answers=[Answer(200, "a page", {"type": "object", "required": ["items", "next"],
                                            "properties": {
                                                "items": {"type": "array",
                                                          "items": ref("DocumentSummary")},
                                                "next": {"type": ["string", "null"]}}})],
           errors=[403])
async def list_documents(request: Request, identity: Identity, ctx: AuditContext,
                         coedit: Coedit, args: Args) -> Response:
    page = await coedit.reads.documents(identity, ctx, kind=args["kind"], q=args["q"],
                                        limit=args["limit"], cursor=args["cursor"])
    return JSONResponse(page)


@operation("GET", "/api/documents/{doc}",
           "A document, now or as it was at a version or a time (give one of them)",
           params=[DOC, Param("version", "query", Value("integer", minimum=0)),
                   query("at", text(max_length=64), ISO_TIME)],
           answers=[_DOCUMENT, Answer(304, "not modified (If-None-Match)")],
           errors=[403, 404])
async def get_document(request: Request, identity: Identity, ctx: AuditContext,
                       coedit: Coedit, args: Args) -> Response:
    version, at_raw = args["version"], args["at"]
    if version is not None and at_raw:
        raise BadRequest("give version or at, not both")
    at: datetime | None = None
    if at_raw:
        try:
            at = parse_ts(at_raw)
        except ValueError:
            raise BadRequest(f"at must be {ISO_TIME}") from None
    document = await coedit.reads.document(identity, ctx, args["doc"], version=version, at=at)
    etag = _etag(document["version"])
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    return JSONResponse(document, headers={"ETag": etag})


_OP = Value("object", shape=Body((
    Prop("op", Value("string", enum=("add", "remove", "replace", "move", "copy", "test",
                                     "splice")), required=True),
    Prop("path", text(max_length=4096, pattern="^(/[^/\\x00]*)*$"), required=True),
), closed=False))


@operation("PATCH", "/api/documents/{doc}",
           "Versioned write: a JSON Patch (RFC 6902, plus splice) against the If-Match version",
           params=[DOC,
                   Param("If-Match", "header", text(pattern=_ETAG), required=True,
                         description='the base version in quotes, e.g. "3"'),
                   Param("Idempotency-Key", "header", text(1, MAX_KEY_LENGTH)),
                   Param("Lock-Token", "header", text(pattern="^[0-9]{1,18}$"),
                         description="the token of a lock the caller holds")],
           body=Value("array", items=_OP, min_items=1, max_items=MAX_OPS),
           answers=[Answer(200, "version (and rebased or duplicate)", {
               "type": "object", "required": ["version"],
               "properties": {"version": {"type": "integer", "minimum": 1}}},
               headers=("ETag",))],
           errors=[403, 404, 409, 413, 423, 428])
async def patch_document(request: Request, identity: Identity, ctx: AuditContext,
                         coedit: Coedit, args: Args) -> Response:
    doc = args["doc"]
    async with coedit.reads.not_found_first(identity, ctx, doc):
        base = _if_match_version(request.headers.get("if-match"))
        result = await coedit.patch(identity, ctx, doc, base=base, ops=args["body"],
                                    key=request.headers.get("idempotency-key"),
                                    lock_token=_lock_token(request.headers.get("lock-token")))
    return JSONResponse(result.reply, headers={"ETag": _etag(result.reply["version"])})


@operation("GET", "/api/documents/{doc}/verify", "Recompute the document's hash chain",
           params=[DOC],
           answers=[Answer(200, "ok and events, or the first broken seq", {
               "type": "object", "required": ["ok"], "properties": {
                   "ok": {"type": "boolean"}, "events": {"type": "integer"}}})],
           errors=[403, 404])
async def verify_document(request: Request, identity: Identity, ctx: AuditContext,
                          coedit: Coedit, args: Args) -> Response:
    return JSONResponse(await coedit.reads.verify(identity, ctx, args["doc"]))
