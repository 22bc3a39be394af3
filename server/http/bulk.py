"""Bulk operations over HTTP (docs/protocol.md section 15)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from persistence.audit import AuditContext
from server.auth import Identity
from server.http.endpoint import endpoint, json_body
from server.service import Coedit

__all__ = ["bulk"]


@endpoint
async def bulk(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    return JSONResponse(await coedit.trail.bulk(identity, ctx, await json_body(request, coedit)))
