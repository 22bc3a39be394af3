"""Search over HTTP (docs/protocol.md section 16): ``GET /api/search``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from persistence.audit import AuditContext
from persistence.search import MAX_QUERY_CHARS
from server.auth import Identity
from server.http.contract import Answer, Args, Param, operation, ref, text
from server.http.params import KIND, cursor, limit, query
from server.service import Coedit

__all__ = ["search"]


@operation("GET", "/api/search",
           "Documents whose title or strings hold every word of q (one edit allowed for words "
           "of five or more letters), best first",
           params=[Param("q", "query", text(1, MAX_QUERY_CHARS), required=True,
                         description="at most 8 words of at most 40 characters"),
                   query("kind", KIND), query("idea", text(max_length=36)), limit(100),
                   cursor()],
           answers=[Answer(200, "a page", ref("SearchPage"))], errors=[403])
async def search(request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit,
                 args: Args) -> Response:
    page = await coedit.reads.search(identity, ctx, q=args["q"], kind=args["kind"],
                                     idea=args["idea"], limit=args["limit"],
                                     cursor=args["cursor"])
    return JSONResponse(page)
