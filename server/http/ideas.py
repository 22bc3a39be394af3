"""Ideas over HTTP (docs/protocol.md section 10)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from persistence.audit import AuditContext
from server.auth import Identity
from server.http.endpoint import endpoint, int_param, json_body
from server.service import Coedit

__all__ = ["create_idea", "get_idea", "list_ideas"]


@endpoint
async def create_idea(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    idea = await coedit.trail.create_idea(identity, ctx, await json_body(request, coedit))
    return JSONResponse(idea, status_code=201, headers={"Location": f"/api/ideas/{idea['id']}"})


@endpoint
async def list_ideas(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    return JSONResponse(await coedit.reads.ideas(
        identity, ctx, q=request.query_params.get("q") or None,
        limit=int_param(request, "limit", minimum=1),
        cursor=request.query_params.get("cursor") or None))


@endpoint
async def get_idea(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    return JSONResponse(await coedit.reads.idea(identity, ctx, request.path_params["idea"]))
