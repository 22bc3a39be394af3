"""Ideas over HTTP (docs/protocol.md section 10)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from persistence.audit import AuditContext
from persistence.ideas import MAX_QUERY, MAX_TICKER, MAX_TITLE
from server.auth import Identity
from server.http.contract import NON_BLANK, Answer, Args, Body, Prop, Value, operation, ref, text
from server.http.params import cursor, limit, path_id, query
from server.service import Coedit

__all__ = ["create_idea", "get_idea", "list_ideas"]


@operation("POST", "/api/ideas", "Create an idea (analysts, admins)",
           body=Body((Prop("title", text(1, MAX_TITLE, pattern=NON_BLANK), required=True),
                      Prop("ticker", Value("string", min_length=1, max_length=MAX_TICKER,
                                         pattern=NON_BLANK, nullable=True)))),
           answers=[Answer(201, "created", ref("Idea"), headers=("Location",))], errors=[403])
async def create_idea(request: Request, identity: Identity, ctx: AuditContext,
                      coedit: Coedit, args: Args) -> Response:
    idea = await coedit.trail.create_idea(identity, ctx, args["body"])
    return JSONResponse(idea, status_code=201, headers={"Location": f"/api/ideas/{idea['id']}"})


@operation("GET", "/api/ideas",
           "Ideas, newest first; q matches words of the title or the ticker",
           params=[query("q", text(max_length=MAX_QUERY)), limit(500), cursor()],
           answers=[Answer(200, "a page", ref("IdeaPage"))], errors=[403])
async def list_ideas(request: Request, identity: Identity, ctx: AuditContext,
                     coedit: Coedit, args: Args) -> Response:
    return JSONResponse(await coedit.reads.ideas(identity, ctx, q=args["q"], limit=args["limit"],
                                                 cursor=args["cursor"]))


@operation("GET", "/api/ideas/{idea}",
           "An idea with its documents (without state), reviews and workflows",
           params=[path_id("idea")], answers=[Answer(200, "the idea", ref("IdeaDetail"))],
           errors=[403, 404])
async def get_idea(request: Request, identity: Identity, ctx: AuditContext,
                   coedit: Coedit, args: Args) -> Response:
    return JSONResponse(await coedit.reads.idea(identity, ctx, args["idea"]))
