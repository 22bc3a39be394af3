"""Reviews over HTTP (docs/protocol.md section 11), and archiving a document."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from persistence.audit import AuditContext
from persistence.reviews import MAX_ID, MAX_NAME, MAX_NOTE
from server.auth import Identity
from server.http.contract import FLAG, Answer, Args, Body, Prop, Value, operation, ref, text
from server.http.params import cursor, limit, path_id, query
from server.service import Coedit

__all__ = [
    "archive_document",
    "assign_review",
    "get_review",
    "list_reviews",
    "reopen_document",
    "transition_review",
]

REVIEW_STATES = ("assigned", "in_progress", "changes_requested", "approved", "withdrawn")
_PERSON = Value("object", shape=Body((Prop("id", text(1, MAX_ID), required=True),
                                      Prop("name", text(max_length=MAX_NAME)))))
_REVIEW = ref("Review")


@operation("POST", "/api/documents/{doc}/reviews",
           "Ask a reviewer to review the document (analysts, admins); one open review per "
           "reviewer", params=[path_id("doc")],
           body=Body((Prop("reviewer", _PERSON, required=True),
                      Prop("due", Value("string", max_length=64, format="date-time",
                                        nullable=True))),
                     message='the body is {"reviewer": {"id","name"}, "due"?}'),
           answers=[Answer(201, "assigned", _REVIEW, headers=("Location",))],
           errors=[403, 404, 409])
async def assign_review(request: Request, identity: Identity, ctx: AuditContext,
                        coedit: Coedit, args: Args) -> Response:
    review = await coedit.trail.assign_review(identity, ctx, args["doc"], args["body"])
    return JSONResponse(review, status_code=201,
                        headers={"Location": f"/api/reviews/{review['id']}"})


@operation("POST", "/api/reviews/{review}/transition",
           "Move a review; changes_requested needs a note, approved needs no open threads",
           params=[path_id("review")],
           body=Body((Prop("to", Value("string", enum=REVIEW_STATES[1:]), required=True),
                      Prop("note", text(max_length=MAX_NOTE))),
                     message='the body is {"to": STATE, "note"?: TEXT}'),
           answers=[Answer(200, "moved", _REVIEW)], errors=[403, 404, 409])
async def transition_review(request: Request, identity: Identity, ctx: AuditContext,
                            coedit: Coedit, args: Args) -> Response:
    return JSONResponse(await coedit.trail.transition_review(identity, ctx, args["review"],
                                                             args["body"]))


@operation("GET", "/api/reviews/{review}", "One review", params=[path_id("review")],
           answers=[Answer(200, "the review", _REVIEW)], errors=[403, 404])
async def get_review(request: Request, identity: Identity, ctx: AuditContext,
                     coedit: Coedit, args: Args) -> Response:
    return JSONResponse(await coedit.reads.review(identity, ctx, args["review"]))


@operation("GET", "/api/reviews", "Reviews of the tenant, newest first",
           params=[query("reviewer", text(max_length=MAX_ID), "me or a user id"),
                   query("status", Value("string", enum=REVIEW_STATES)), query("doc"),
                   query("idea"), query("overdue", FLAG, "due passed and not final"),
                   limit(500), cursor()],
           answers=[Answer(200, "a page", ref("ReviewPage"))], errors=[403])
async def list_reviews(request: Request, identity: Identity, ctx: AuditContext,
                       coedit: Coedit, args: Args) -> Response:
    return JSONResponse(await coedit.reads.reviews(
        identity, ctx, reviewer=args["reviewer"], status=args["status"], doc=args["doc"],
        idea=args["idea"], overdue=args["overdue"] == "true", limit=args["limit"],
        cursor=args["cursor"]))


@operation("POST", "/api/documents/{doc}/archive",
           "Archive a document (admin): it becomes read-only; 409 if it is already",
           params=[path_id("doc")], answers=[Answer(200, "archived", ref("Document"))],
           errors=[403, 404, 409])
async def archive_document(request: Request, identity: Identity, ctx: AuditContext,
                           coedit: Coedit, args: Args) -> Response:
    return JSONResponse(await coedit.trail.set_archived(identity, ctx, args["doc"], True))


@operation("POST", "/api/documents/{doc}/reopen",
           "Reopen an archived document (admin); 409 if it is open", params=[path_id("doc")],
           answers=[Answer(200, "reopened", ref("Document"))], errors=[403, 404, 409])
async def reopen_document(request: Request, identity: Identity, ctx: AuditContext,
                          coedit: Coedit, args: Args) -> Response:
    return JSONResponse(await coedit.trail.set_archived(identity, ctx, args["doc"], False))
