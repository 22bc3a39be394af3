"""Bulk operations over HTTP (docs/protocol.md section 15)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from persistence.audit import AuditContext
from persistence.bulk import MAX_ITEMS
from server.auth import Identity
from server.http.contract import Answer, Args, Body, Prop, Value, operation, ref, text
from server.service import Coedit

__all__ = ["BULK_OPERATIONS", "bulk"]

BULK_OPERATIONS = ("review.assign", "review.transition", "workflow.step", "document.archive")


@operation("POST", "/api/bulk",
           "One operation on up to 1,000 items, each checked as its single call; params by "
           'operation: review.assign {"reviewer","due"?}, review.transition {"to","note"?}, '
           'workflow.step {"verb","payload"?}, document.archive none',
           body=Body((
               Prop("operation", Value("string", enum=BULK_OPERATIONS), required=True),
               # No maxItems here: more than MAX_ITEMS is too_large (413), not bad_request.
               Prop("ids", Value("array", items=text(1, 64), min_items=1,
                                 description=f"at most {MAX_ITEMS:,}; more is 413"),
                    required=True),
               Prop("params", Value("object")), Prop("dry_run", Value("boolean")),
               Prop("all_or_nothing", Value("boolean"))), message="the body must be a JSON object"),
           answers=[Answer(200, "per-item results", ref("BulkAnswer"))], errors=[403, 413])
async def bulk(request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit,
               args: Args) -> Response:
    return JSONResponse(await coedit.trail.bulk(identity, ctx, args["body"]))
