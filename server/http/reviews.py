"""Reviews over HTTP (docs/protocol.md section 11), and archiving a document."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from persistence.audit import AuditContext
from persistence.errors import BadRequest
from server.auth import Identity
from server.http.endpoint import endpoint, int_param, json_body
from server.service import Coedit

__all__ = [
    "archive_document",
    "assign_review",
    "get_review",
    "list_reviews",
    "reopen_document",
    "transition_review",
]


@endpoint
async def assign_review(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    review = await coedit.trail.assign_review(identity, ctx, request.path_params["doc"],
                                              await json_body(request, coedit))
    return JSONResponse(review, status_code=201,
                        headers={"Location": f"/api/reviews/{review['id']}"})


@endpoint
async def transition_review(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    return JSONResponse(await coedit.trail.transition_review(
        identity, ctx, request.path_params["review"], await json_body(request, coedit)))


@endpoint
async def get_review(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    return JSONResponse(await coedit.reads.review(identity, ctx, request.path_params["review"]))


@endpoint
async def list_reviews(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    params = request.query_params
    overdue = params.get("overdue", "")
    if overdue not in ("", "true", "false"):
        raise BadRequest("overdue must be true or false")
    return JSONResponse(await coedit.reads.reviews(
        identity, ctx, reviewer=params.get("reviewer") or None,
        status=params.get("status") or None, doc=params.get("doc") or None,
        idea=params.get("idea") or None, overdue=overdue == "true",
        limit=int_param(request, "limit", minimum=1), cursor=params.get("cursor") or None))


@endpoint
async def archive_document(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    return JSONResponse(await coedit.trail.set_archived(
        identity, ctx, request.path_params["doc"], True))


@endpoint
async def reopen_document(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    return JSONResponse(await coedit.trail.set_archived(
        identity, ctx, request.path_params["doc"], False))
