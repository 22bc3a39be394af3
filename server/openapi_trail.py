"""The OpenAPI description of the review trail's routes (sections 10-12, 14, 15), merged
into ``server.openapi.OPENAPI``. The constraints written here are the ones the stores
enforce (lengths, enums, required fields), so a request valid by this description is one
the server accepts."""

from __future__ import annotations

from typing import Any

__all__ = ["TRAIL_PATHS", "TRAIL_SCHEMAS"]

_STR = {"type": "string"}
_TIME = {"type": "string", "format": "date-time"}
_NULL_TIME = {"type": ["string", "null"], "format": "date-time"}
_NULL_STR = {"type": ["string", "null"]}
_PERSON = {"$ref": "#/components/schemas/Person"}
_REVIEW_STATES = ["assigned", "in_progress", "changes_requested", "approved", "withdrawn"]
_PERSON_IN = {"type": "object", "required": ["id"], "additionalProperties": False,
              "properties": {"id": {"type": "string", "minLength": 1, "maxLength": 128},
                             "name": {"type": "string", "maxLength": 256}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: list[str], properties: dict[str, Any], *,
         closed: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "required": required, "properties": properties}
    if closed:
        schema["additionalProperties"] = False
    return schema


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _answer(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    names = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
             409: "invalid_transition (body names the current state)", 413: "too_large",
             429: "rate_limited"}
    return {str(code): _answer(_ref("Error"), names[code])
            for code in (400, 401, *codes, 429)}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": _STR}


def _query(name: str, schema: dict[str, Any] | None = None,
           description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema or _STR,
            "description": description}


def _page(item: str) -> dict[str, Any]:
    return _obj(["items", "next"], {"items": {"type": "array", "items": _ref(item)},
                                    "next": _NULL_STR})


_LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": 500})
_CURSOR = _query("cursor", description="the next of the previous page")
_FLAG = {"type": "string", "enum": ["true", "false"]}

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
    "BulkAnswer": _obj(["operation", "total", "succeeded", "failed", "results", "dry_run",
                        "rolled_back", "correlation_id"], {
        "operation": _STR, "total": {"type": "integer"}, "succeeded": {"type": "integer"},
        "failed": {"type": "integer"}, "dry_run": {"type": "boolean"},
        "rolled_back": {"type": "boolean"}, "correlation_id": _STR,
        "results": {"type": "array", "items": _obj(["id", "ok"], {
            "id": _STR, "ok": {"type": "boolean"},
            "error": {"type": "object", "required": ["code", "message"]}})}}),
}

_COMMENT_BODY = {"type": "string", "minLength": 1, "maxLength": 10_000}

TRAIL_PATHS: dict[str, Any] = {
    "/api/ideas": {
        "post": {"summary": "Create an idea (analysts, admins)",
                 "requestBody": _body(_obj(["title"], {
                     "title": {"type": "string", "minLength": 1, "maxLength": 200},
                     "ticker": {"type": "string", "minLength": 1, "maxLength": 32}},
                     closed=True)),
                 "responses": {"201": _answer(_ref("Idea"), "created"), **_errors(403)}},
        "get": {"summary": "Ideas, newest first; q matches words of the title or the ticker",
                "parameters": [_query("q", {"type": "string", "maxLength": 200}), _LIMIT,
                               _CURSOR],
                "responses": {"200": _answer(_page("Idea"), "a page"), **_errors(403)}}},
    "/api/ideas/{idea}": {"get": {
        "summary": "An idea with its documents (without state), reviews and workflows",
        "parameters": [_path("idea")],
        "responses": {"200": _answer(_ref("IdeaDetail"), "the idea"), **_errors(403, 404)}}},
    "/api/documents/{doc}/reviews": {"post": {
        "summary": "Ask a reviewer to review the document (analysts, admins); one open "
                   "review per reviewer",
        "parameters": [_path("doc")],
        "requestBody": _body(_obj(["reviewer"], {"reviewer": _PERSON_IN, "due": _NULL_TIME},
                                  closed=True)),
        "responses": {"201": _answer(_ref("Review"), "assigned"), **_errors(403, 404, 409)}}},
    "/api/reviews": {"get": {
        "summary": "Reviews of the tenant, newest first",
        "parameters": [_query("reviewer", description="me or a user id"),
                       _query("status", {"type": "string", "enum": _REVIEW_STATES}),
                       _query("doc"), _query("idea"),
                       _query("overdue", _FLAG, "due passed and not final"), _LIMIT, _CURSOR],
        "responses": {"200": _answer(_page("Review"), "a page"), **_errors(403)}}},
    "/api/reviews/{review}": {"get": {
        "summary": "One review", "parameters": [_path("review")],
        "responses": {"200": _answer(_ref("Review"), "the review"), **_errors(403, 404)}}},
    "/api/reviews/{review}/transition": {"post": {
        "summary": "Move a review; changes_requested needs a note, approved needs no open "
                   "threads",
        "parameters": [_path("review")],
        "requestBody": _body(_obj(["to"], {
            "to": {"type": "string", "enum": _REVIEW_STATES[1:]},
            "note": {"type": "string", "maxLength": 10_000}}, closed=True)),
        "responses": {"200": _answer(_ref("Review"), "moved"), **_errors(403, 404, 409)}}},
    "/api/documents/{doc}/comments": {
        "post": {"summary": "Start a thread, or reply in one with parent (every role but "
                            "viewer)",
                 "parameters": [_path("doc")],
                 "requestBody": _body(_obj(["body"], {
                     "body": _COMMENT_BODY, "path": {"type": "string", "maxLength": 1024},
                     "parent": {"type": "string", "maxLength": 64}}, closed=True)),
                 "responses": {"201": _answer(_ref("Comment"), "added"),
                               **_errors(403, 404)}},
        "get": {"summary": "The document's comments in creation order",
                "parameters": [_path("doc"), _query("resolved", _FLAG),
                               _query("path", {"type": "string", "maxLength": 1024})],
                "responses": {"200": _answer(_obj(["items"], {"items": {
                    "type": "array", "items": _ref("Comment")}}), "comments"),
                    **_errors(403, 404)}}},
    "/api/comments/{comment}": {"patch": {
        "summary": "Edit a comment (its author)", "parameters": [_path("comment")],
        "requestBody": _body(_obj(["body"], {"body": _COMMENT_BODY}, closed=True)),
        "responses": {"200": _answer(_ref("Comment"), "edited"), **_errors(403, 404)}}},
    **{f"/api/comments/{{comment}}/{verb}": {"post": {
        "summary": f"{verb.title()} the comment's whole thread (its author, reviewers, admins)",
        "parameters": [_path("comment")],
        "responses": {"200": _answer(_ref("Comment"), "the thread's first comment"),
                      **_errors(403, 404, 409)}}} for verb in ("resolve", "reopen")},
    "/api/notifications": {"get": {
        "summary": "Notifications addressed to the caller or its roles, newest first",
        "parameters": [_query("unread", _FLAG), _LIMIT, _CURSOR],
        "responses": {"200": _answer(_page("Notification"), "a page"), **_errors()}}},
    "/api/notifications/{note}/read": {"post": {
        "summary": "Mark one read, for the caller alone", "parameters": [_path("note")],
        "responses": {"200": _answer(_ref("Notification"), "marked"), **_errors(404)}}},
    "/api/notifications/read-all": {"post": {
        "summary": "Mark every notification so far read, for the caller alone",
        "responses": {"200": _answer(_obj(["read_through"], {
            "read_through": {"type": ["integer", "null"]}}), "marked"), **_errors()}}},
    "/api/search": {"get": {
        "summary": "Documents whose title or strings hold every word of q (one edit allowed "
                   "for words of five or more letters), best first",
        "parameters": [
            {"name": "q", "in": "query", "required": True,
             "schema": {"type": "string", "minLength": 1, "maxLength": 200},
             "description": "at most 8 words of at most 40 characters"},
            _query("kind", {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,31}$"}),
            _query("idea", {"type": "string", "maxLength": 36}),
            _query("limit", {"type": "integer", "minimum": 1, "maximum": 100}), _CURSOR],
        "responses": {"200": _answer(_obj(["items", "next"], {
            "items": {"type": "array", "items": _obj(["document", "score", "matches"], {
                "document": {"type": "object", "description": "the document without state"},
                "score": {"type": "number", "minimum": 0, "maximum": 1},
                "matches": {"type": "array", "items": _obj(["path", "snippet"], {
                    "path": _STR, "snippet": _STR})}})},
            "next": _NULL_STR}), "a page"), **_errors(403)}}},
    "/api/bulk": {"post": {
        "summary": "One operation on up to 1,000 items, each checked as its single call",
        "requestBody": _body(_obj(["operation", "ids"], {
            "operation": {"type": "string", "enum": [
                "review.assign", "review.transition", "workflow.step", "document.archive"]},
            "ids": {"type": "array", "minItems": 1, "maxItems": 1000,
                    "items": {"type": "string", "minLength": 1, "maxLength": 64}},
            "params": {"type": "object"}, "dry_run": {"type": "boolean"},
            "all_or_nothing": {"type": "boolean"}}, closed=True)),
        "responses": {"200": _answer(_ref("BulkAnswer"), "per-item results"),
                      **_errors(403, 413)}}},
}
