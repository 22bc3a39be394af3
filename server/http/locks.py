"""Edit locks over HTTP: take, release, list the live ones of a document or of the tenant."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from persistence.audit import AuditContext
from persistence.errors import BadRequest
from server.auth import Identity
from server.http.endpoint import endpoint, int_param, json_body
from server.service import Coedit

__all__ = ["list_locks", "release_lock", "take_lock"]


def _http_holder(identity: Identity) -> str:
    """HTTP clients have no connection to hold a lock: the user holds it for its ttl."""
    return f"http:{identity.id}"


@endpoint
async def take_lock(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    doc = request.path_params["doc"]
    async with coedit.reads.not_found_first(identity, ctx, doc):
        body = await json_body(request, coedit)
        if not isinstance(body, dict):
            raise BadRequest('body must be {"path": ..., "ttl_ms": ...}')
        lock = await coedit.lock(identity, ctx, _http_holder(identity), doc,
                                 path=body.get("path"), ttl_ms=body.get("ttl_ms"),
                                 force=body.get("force", False))
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
    """One document's live locks (``?doc=``), or without it every live lock of the tenant."""
    if "doc" not in request.query_params:
        return JSONResponse(await coedit.reads.tenant_locks(
            identity, ctx, limit=int_param(request, "limit", minimum=1)))
    doc = request.query_params["doc"]
    if not doc:
        raise BadRequest("give ?doc=<document id>, or no doc for every lock of the tenant")
    return JSONResponse({"locks": await coedit.reads.locks(identity, ctx, doc)})
