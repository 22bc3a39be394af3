"""Notifications over HTTP (docs/protocol.md section 14): the caller's own, and its marks."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from persistence.audit import AuditContext
from persistence.errors import BadRequest
from server.auth import Identity
from server.http.endpoint import endpoint, int_param
from server.service import Coedit

__all__ = ["list_notifications", "mark_all_read", "mark_read"]


@endpoint
async def list_notifications(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    unread = request.query_params.get("unread", "")
    if unread not in ("", "true", "false"):
        raise BadRequest("unread must be true or false")
    return JSONResponse(await coedit.reads.notifications(
        identity, ctx, unread=unread == "true", limit=int_param(request, "limit", minimum=1),
        cursor=request.query_params.get("cursor") or None))


@endpoint
async def mark_read(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    return JSONResponse(await coedit.trail.mark_read(identity, request.path_params["note"]))


@endpoint
async def mark_all_read(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    return JSONResponse(await coedit.trail.read_all(identity))
