"""Edit locks over HTTP: take, release, list the live ones of a document or of the tenant."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from persistence.audit import AuditContext
from persistence.locks import MAX_TTL_MS, MIN_TTL_MS
from server.auth import Identity
from server.http.contract import Answer, Args, Body, Param, Prop, Value, operation
from server.http.params import POINTER, limit, path_id
from server.service import Coedit

__all__ = ["list_locks", "release_lock", "take_lock"]

_LOCK = {"type": "object", "required": ["lock"], "properties": {"lock": {
    "type": "object", "required": ["doc", "path", "holder", "token", "expires_at"]}}}


def _http_holder(identity: Identity) -> str:
    """HTTP clients have no connection to hold a lock: the user holds it for its ttl."""
    return f"http:{identity.id}"


@operation("POST", "/api/documents/{doc}/locks",
           "Take or renew an edit lock (held by the user for its ttl; heartbeats do not renew "
           "it); force is for admins", params=[path_id("doc")],
           body=Body((Prop("path", POINTER, required=True),
                      Prop("ttl_ms", Value("integer", minimum=MIN_TTL_MS, maximum=MAX_TTL_MS)),
                      Prop("force", Value("boolean"))), closed=False,
                     message='body must be {"path": ..., "ttl_ms": ...}'),
           answers=[Answer(201, "the lock; its token also in Lock-Token", _LOCK,
                           headers=("Lock-Token",))],
           errors=[403, 404, 409, 423])
async def take_lock(request: Request, identity: Identity, ctx: AuditContext,
                    coedit: Coedit, args: Args) -> Response:
    doc, body = args["doc"], args["body"]
    async with coedit.reads.not_found_first(identity, ctx, doc):
        lock = await coedit.lock(identity, ctx, _http_holder(identity), doc,
                                 path=body.get("path"), ttl_ms=body.get("ttl_ms"),
                                 force=body.get("force", False))
    return JSONResponse({"lock": lock}, status_code=201,
                        headers={"Lock-Token": str(lock["token"])})


@operation("DELETE", "/api/documents/{doc}/locks", "Release a lock the caller holds",
           params=[path_id("doc"),
                   Param("path", "query", Value("string", max_length=1024,
                                                pattern=POINTER.pattern), required=True,
                         description="the locked path ('' for the whole document)")],
           answers=[Answer(200, "released", _LOCK)], errors=[403, 404, 409])
async def release_lock(request: Request, identity: Identity, ctx: AuditContext,
                       coedit: Coedit, args: Args) -> Response:
    lock = await coedit.unlock(identity, ctx, _http_holder(identity), args["doc"],
                               path=request.query_params["path"])
    return JSONResponse({"lock": lock})


@operation("GET", "/api/locks",
           "Live locks of a document (?doc=), or without it every live lock of the tenant",
           params=[Param("doc", "query", Value("string", min_length=1, max_length=128),
                         description="a document id; without it, the whole tenant"),
                   limit(1000)],
           answers=[Answer(200, "the live locks (``more``: the tenant has more than the page)",
                           {"type": "object", "required": ["locks"],
                            "properties": {"locks": {"type": "array"},
                                           "more": {"type": "boolean"}}})],
           errors=[403, 404])
async def list_locks(request: Request, identity: Identity, ctx: AuditContext,
                     coedit: Coedit, args: Args) -> Response:
    if args.get("doc") is None:
        return JSONResponse(await coedit.reads.tenant_locks(identity, ctx,
                                                            limit=args.get("limit")))
    return JSONResponse({"locks": await coedit.reads.locks(identity, ctx, args["doc"])})
