"""Comment threads over HTTP (docs/protocol.md section 12)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from persistence.audit import AuditContext
from persistence.errors import BadRequest
from server.auth import Identity
from server.http.endpoint import endpoint, json_body
from server.service import Coedit

__all__ = ["add_comment", "edit_comment", "list_comments", "reopen_thread", "resolve_thread"]


@endpoint
async def add_comment(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    comment = await coedit.trail.add_comment(identity, ctx, request.path_params["doc"],
                                             await json_body(request, coedit))
    return JSONResponse(comment, status_code=201)


@endpoint
async def list_comments(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    params = request.query_params
    resolved = params.get("resolved", "")
    if resolved not in ("", "true", "false"):
        raise BadRequest("resolved must be true or false")
    return JSONResponse({"items": await coedit.reads.comments(
        identity, ctx, request.path_params["doc"],
        resolved=None if resolved == "" else resolved == "true",
        path=params.get("path"))})


@endpoint
async def edit_comment(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    return JSONResponse(await coedit.trail.edit_comment(
        identity, ctx, request.path_params["comment"], await json_body(request, coedit)))


@endpoint
async def resolve_thread(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    return JSONResponse(await coedit.trail.set_thread_resolved(
        identity, ctx, request.path_params["comment"], "resolve"))


@endpoint
async def reopen_thread(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    return JSONResponse(await coedit.trail.set_thread_resolved(
        identity, ctx, request.path_params["comment"], "reopen"))
