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
    backend = coedit.presence.backend
    if doc:
        await coedit.store.kind_of(identity.tenant, doc)
        entries = await backend.for_doc(doc)
    elif kind:
        entries = await backend.for_kind(identity.tenant, kind)
    else:
        raise BadRequest("give ?doc=<document id> or ?kind=<kind>")
    return JSONResponse({"presence": [e.public() for e in entries
                                      if e.tenant == identity.tenant]})
