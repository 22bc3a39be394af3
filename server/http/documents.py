"""Documents over HTTP: create, list, read (now or in the past), patch, verify the chain.

A document's version is its ETag; a PATCH names the version it was written against in
``If-Match``, and may carry the ``Lock-Token`` of a lock it holds.
"""

from __future__ import annotations

from datetime import datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from persistence.audit import AuditContext
from persistence.errors import BadRequest, PreconditionRequired
from persistence.timeutil import parse_ts
from server.auth import Identity
from server.http.endpoint import endpoint, int_param, json_body
from server.service import Coedit

__all__ = [
    "create_document",
    "get_document",
    "list_documents",
    "patch_document",
    "verify_document",
]


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


@endpoint
async def create_document(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    body = await json_body(request, coedit)
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
    page = await coedit.reads.documents(
        identity, ctx, kind=params.get("kind") or None, q=params.get("q") or None,
        limit=int_param(request, "limit", minimum=1), cursor=params.get("cursor") or None,
    )
    return JSONResponse(page)


@endpoint
async def get_document(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    doc = request.path_params["doc"]
    version = int_param(request, "version", minimum=0)
    at_raw = request.query_params.get("at")
    if version is not None and at_raw:
        raise BadRequest("give version or at, not both")
    at: datetime | None = None
    if at_raw:
        try:
            at = parse_ts(at_raw)
        except ValueError:
            raise BadRequest("at must be an ISO 8601 time, e.g. 2026-01-31T12:00:00Z") from None
    document = await coedit.reads.document(identity, ctx, doc, version=version, at=at)
    etag = _etag(document["version"])
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    return JSONResponse(document, headers={"ETag": etag})


@endpoint
async def patch_document(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    doc = request.path_params["doc"]
    async with coedit.reads.not_found_first(identity, ctx, doc):
        base = _if_match_version(request.headers.get("if-match"))
        ops = await json_body(request, coedit)
        result = await coedit.patch(identity, ctx, doc, base=base, ops=ops,
                                    key=request.headers.get("idempotency-key"),
                                    lock_token=_lock_token(request.headers.get("lock-token")))
    return JSONResponse(result.reply, headers={"ETag": _etag(result.reply["version"])})


@endpoint
async def verify_document(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    return JSONResponse(await coedit.reads.verify(identity, ctx, request.path_params["doc"]))
