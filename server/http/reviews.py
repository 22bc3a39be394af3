"""The review workflow over HTTP: comments, the review and its transitions, archiving."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from persistence.audit import AuditContext
from persistence.errors import BadRequest
from server.auth import Identity
from server.http.endpoint import endpoint, json_body
from server.service import Coedit

__all__ = [
    "add_comment",
    "archive_document",
    "assign_review",
    "get_review",
    "list_comments",
    "reopen_document",
    "resolve_comment",
    "transition_review",
]


async def _object_body(request: Request, coedit: Coedit) -> dict[str, Any]:
    body = await json_body(request, coedit)
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


@endpoint
async def add_comment(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    comment = await coedit.add_comment(identity, ctx, request.path_params["doc"],
                                       await _object_body(request, coedit))
    return JSONResponse({"comment": comment}, status_code=201)


@endpoint
async def list_comments(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    return JSONResponse({"comments": await coedit.reads.comments(
        identity, ctx, request.path_params["doc"])})


@endpoint
async def resolve_comment(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    comment = await coedit.resolve_comment(identity, ctx, request.path_params["doc"],
                                           request.path_params["comment"])
    return JSONResponse({"comment": comment})


@endpoint
async def get_review(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    return JSONResponse({"review": await coedit.reads.review(
        identity, ctx, request.path_params["doc"])})


@endpoint
async def assign_review(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    review = await coedit.assign_review(identity, ctx, request.path_params["doc"],
                                        await _object_body(request, coedit))
    return JSONResponse({"review": review})


@endpoint
async def transition_review(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    review = await coedit.transition_review(identity, ctx, request.path_params["doc"],
                                            await _object_body(request, coedit))
    return JSONResponse({"review": review})


@endpoint
async def archive_document(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    document = await coedit.set_archived(identity, ctx, request.path_params["doc"], True)
    return JSONResponse(document)


@endpoint
async def reopen_document(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    document = await coedit.set_archived(identity, ctx, request.path_params["doc"], False)
    return JSONResponse(document)
