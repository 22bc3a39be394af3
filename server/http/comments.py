"""Comment threads over HTTP (docs/protocol.md section 12)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from persistence.audit import AuditContext
from persistence.comments import MAX_BODY, MAX_PATH
from server.auth import Identity
from server.http.contract import (
    FLAG,
    NON_BLANK,
    Answer,
    Args,
    Body,
    Prop,
    Value,
    operation,
    ref,
    text,
)
from server.http.params import POINTER, path_id, query
from server.service import Coedit

__all__ = ["add_comment", "edit_comment", "list_comments", "reopen_thread", "resolve_thread"]


_TEXT = text(1, MAX_BODY, pattern=NON_BLANK)
_POINTER = Value("string", max_length=MAX_PATH, pattern=POINTER.pattern,
                 description=POINTER.description)
_COMMENT = ref("Comment")


@operation("POST", "/api/documents/{doc}/comments",
           "Start a thread, or reply in one with parent (every role but viewer)",
           params=[path_id("doc")],
           body=Body((Prop("body", _TEXT, required=True), Prop("path", _POINTER),
                      Prop("parent", text(1, 64))),
                     message='the body is {"body": TEXT, "path"?: POINTER, "parent"?: ID}'),
           answers=[Answer(201, "added", _COMMENT)], errors=[403, 404])
async def add_comment(request: Request, identity: Identity, ctx: AuditContext,
                      coedit: Coedit, args: Args) -> Response:
    comment = await coedit.trail.add_comment(identity, ctx, args["doc"], args["body"])
    return JSONResponse(comment, status_code=201)


@operation("GET", "/api/documents/{doc}/comments", "The document's comments in creation order",
           params=[path_id("doc"), query("resolved", FLAG), query("path", _POINTER)],
           answers=[Answer(200, "comments", {"type": "object", "required": ["items"],
                                             "properties": {"items": {"type": "array",
                                                                      "items": _COMMENT}}})],
           errors=[403, 404])
async def list_comments(request: Request, identity: Identity, ctx: AuditContext,
                        coedit: Coedit, args: Args) -> Response:
    resolved = args["resolved"]
    return JSONResponse({"items": await coedit.reads.comments(
        identity, ctx, args["doc"], resolved=None if resolved is None else resolved == "true",
        path=request.query_params.get("path"))})


@operation("PATCH", "/api/comments/{comment}", "Edit a comment (its author)",
           params=[path_id("comment")],
           body=Body((Prop("body", _TEXT, required=True),), message='the body is {"body": TEXT}'),
           answers=[Answer(200, "edited", _COMMENT)], errors=[403, 404])
async def edit_comment(request: Request, identity: Identity, ctx: AuditContext,
                       coedit: Coedit, args: Args) -> Response:
    return JSONResponse(await coedit.trail.edit_comment(identity, ctx, args["comment"],
                                                        args["body"]))


@operation("POST", "/api/comments/{comment}/resolve",
           "Resolve the comment's whole thread (its author, reviewers, admins)",
           params=[path_id("comment")],
           answers=[Answer(200, "the thread's first comment", _COMMENT)], errors=[403, 404, 409])
async def resolve_thread(request: Request, identity: Identity, ctx: AuditContext,
                         coedit: Coedit, args: Args) -> Response:
    return JSONResponse(await coedit.trail.set_thread_resolved(identity, ctx, args["comment"],
                                                               "resolve"))


@operation("POST", "/api/comments/{comment}/reopen",
           "Reopen the comment's whole thread (its author, reviewers, admins)",
           params=[path_id("comment")],
           answers=[Answer(200, "the thread's first comment", _COMMENT)], errors=[403, 404, 409])
async def reopen_thread(request: Request, identity: Identity, ctx: AuditContext,
                        coedit: Coedit, args: Args) -> Response:
    return JSONResponse(await coedit.trail.set_thread_resolved(identity, ctx, args["comment"],
                                                               "reopen"))
