"""What the review trail's operations answer (sections 10-12, 14-16), as OpenAPI schemas:
the components ``server.openapi`` puts beside the operations. What they accept is declared
with each operation (``server/http/``)."""

from __future__ import annotations

from typing import Any

__all__ = ["TRAIL_SCHEMAS"]

_STR = {"type": "string"}
_TIME = {"type": "string", "format": "date-time"}
_NULL_TIME = {"type": ["string", "null"], "format": "date-time"}
_NULL_STR = {"type": ["string", "null"]}
_PERSON = {"$ref": "#/components/schemas/Person"}
_REVIEW_STATES = ["assigned", "in_progress", "changes_requested", "approved", "withdrawn"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: list[str], properties: dict[str, Any], *,
         closed: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "required": required, "properties": properties}
    if closed:
        schema["additionalProperties"] = False
    return schema


def _page(item: str) -> dict[str, Any]:
    return _obj(["items", "next"], {"items": {"type": "array", "items": _ref(item)},
                                    "next": _NULL_STR})


TRAIL_SCHEMAS: dict[str, Any] = {
    "Person": _obj(["id", "name"], {"id": _STR, "name": _STR}),
    "Idea": _obj(["id", "title", "ticker", "created_by", "created_at"], {
        "id": _STR, "title": _STR, "ticker": _NULL_STR, "created_by": _PERSON,
        "created_at": _TIME}),
    "IdeaDetail": {"allOf": [_ref("Idea"), _obj(["documents", "reviews", "workflows"], {
        "documents": {"type": "array", "items": {"type": "object"}},
        "reviews": {"type": "array", "items": _ref("Review")},
        "workflows": {"type": "array", "items": {"type": "object"}}})]},
    "Review": _obj(["id", "doc", "idea", "stage", "reviewer", "assigned_by", "status", "due",
                    "note", "created_at", "updated_at"], {
        "id": _STR, "doc": _STR, "idea": _NULL_STR, "stage": _STR, "reviewer": _PERSON,
        "assigned_by": _PERSON, "status": {"type": "string", "enum": _REVIEW_STATES},
        "due": _NULL_TIME, "note": _NULL_STR, "created_at": _TIME, "updated_at": _TIME}),
    "Comment": _obj(["id", "doc", "thread", "parent", "path", "author", "body", "created_at",
                     "edited_at", "resolved", "resolved_by", "resolved_at"], {
        "id": _STR, "doc": _STR, "thread": _STR, "parent": _NULL_STR, "path": _STR,
        "author": _PERSON, "body": _STR, "created_at": _TIME, "edited_at": _NULL_TIME,
        "resolved": {"type": "boolean"},
        "resolved_by": {"oneOf": [_PERSON, {"type": "null"}]}, "resolved_at": _NULL_TIME}),
    "Notification": _obj(["id", "type", "title", "body", "doc", "idea", "created_at", "read"], {
        "id": _STR, "type": {"type": "string", "enum": [
            "review.assigned", "review.decided", "comment.reply", "step.ready"]},
        "title": _STR, "body": _STR, "doc": _NULL_STR, "idea": _NULL_STR,
        "created_at": _TIME, "read": {"type": "boolean"}}),
    "ReviewPage": _page("Review"),
    "IdeaPage": _page("Idea"),
    "NotificationPage": _page("Notification"),
    "SearchPage": _obj(["items", "next"], {
        "items": {"type": "array", "items": _obj(["document", "score", "matches"], {
            "document": _ref("DocumentSummary"),
            "score": {"type": "number", "minimum": 0},
            "matches": {"type": "array", "items": _obj(["path", "snippet"], {
                "path": _STR, "snippet": _STR})}})},
        "next": _NULL_STR}),
    "BulkAnswer": _obj(["operation", "total", "succeeded", "failed", "results", "dry_run",
                        "rolled_back", "correlation_id"], {
        "operation": _STR, "total": {"type": "integer"}, "succeeded": {"type": "integer"},
        "failed": {"type": "integer"}, "dry_run": {"type": "boolean"},
        "rolled_back": {"type": "boolean"}, "correlation_id": _STR,
        "results": {"type": "array", "items": _obj(["id", "ok"], {
            "id": _STR, "ok": {"type": "boolean"},
            "error": {"type": "object", "required": ["code", "message"]}})}}),
}

