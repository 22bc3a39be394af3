"""Who is present, on one document or on every document of a kind."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from persistence.audit import AuditContext
from persistence.errors import BadRequest
from server.auth import Identity
from server.http.contract import Answer, Args, operation
from server.http.params import KIND, query
from server.service import Coedit

__all__ = ["list_presence"]


@operation("GET", "/api/presence",
           "Presence entries of a document or of every document of a kind (give one)",
           params=[query("doc"), query("kind", KIND)],
           answers=[Answer(200, "the entries", {"type": "object", "required": ["presence"],
                                                "properties": {"presence": {"type": "array"}}})],
           errors=[403, 404])
async def list_presence(request: Request, identity: Identity, ctx: AuditContext,
                        coedit: Coedit, args: Args) -> Response:
    doc, kind = args["doc"], args["kind"]
    if not doc and not kind:
        raise BadRequest("give ?doc=<document id> or ?kind=<kind>")
    entries = await coedit.reads.presence(identity, ctx, doc=doc, kind=kind)
    return JSONResponse({"presence": [e.public() for e in entries]})
