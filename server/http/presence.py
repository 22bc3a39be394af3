"""Who is present, on one document or on every document of a kind."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from persistence.audit import AuditContext
from persistence.errors import BadRequest
from server.auth import Identity
from server.http.endpoint import endpoint
from server.service import Coedit

__all__ = ["list_presence"]


@endpoint
async def list_presence(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    doc = request.query_params.get("doc")
    kind = request.query_params.get("kind")
    if not doc and not kind:
        raise BadRequest("give ?doc=<document id> or ?kind=<kind>")
    entries = await coedit.reads.presence(identity, ctx, doc=doc or None, kind=kind or None)
    return JSONResponse({"presence": [e.public() for e in entries]})
