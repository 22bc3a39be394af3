"""Search over HTTP (docs/protocol.md section 16): ``GET /api/search``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from persistence.audit import AuditContext
from server.auth import Identity
from server.http.endpoint import endpoint, int_param
from server.service import Coedit

__all__ = ["search"]


@endpoint
async def search(request: Request, identity: Identity, ctx: AuditContext,
                 coedit: Coedit) -> Response:
    params = request.query_params
    page = await coedit.reads.search(
        identity, ctx, q=params.get("q"), kind=params.get("kind") or None,
        idea=params.get("idea") or None, limit=int_param(request, "limit", minimum=1),
        cursor=params.get("cursor") or None)
    return JSONResponse(page)
