"""The OpenAPI description served at ``/openapi.json``, written by hand to match the routes."""

from __future__ import annotations

from typing import Any

from server.openapi_trail import TRAIL_PATHS, TRAIL_SCHEMAS
from server.openapi_workflows import WORKFLOW_PATHS, WORKFLOW_SCHEMAS

__all__ = ["OPENAPI"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    str(status): _json(_ref("Error"), text)
    for status, text in (
        (400, "bad_request"), (401, "unauthorized"), (403, "forbidden"), (404, "not_found"),
        (429, "rate_limited: retry_after_ms, and a Retry-After header"),
    )
}
_DOC_ID = {"name": "doc", "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str, schema_type: str = "string", description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": {"type": schema_type},
            "description": description}


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "coedit", "version": "1",
             "description": "Versioned JSON documents with an immutable audit log. The "
                            "WebSocket protocol at /ws is described in docs/protocol.md. "
                            "Every /api/ answer carries X-RateLimit-Limit, "
                            "X-RateLimit-Remaining and X-RateLimit-Reset (seconds) while "
                            "COEDIT_HTTP_RATE_LIMIT is on."},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                       "bearerFormat": "JWT"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {
                "error": {"type": "object", "required": ["code", "message"], "properties": {
                    "code": {"type": "string", "enum": [
                        "bad_request", "unauthorized", "forbidden", "not_found", "conflict",
                        "invalid_transition", "locked", "too_large", "precondition_required",
                        "rate_limited", "unavailable", "internal"]},
                    "message": {"type": "string"}}}}},
            "Document": {"type": "object", "required": [
                "id", "kind", "title", "version", "state", "created_at", "updated_at",
                "updated_by"], "properties": {
                "id": {"type": "string"}, "kind": {"type": "string",
                                                   "pattern": "^[a-z][a-z0-9_]{0,31}$"},
                "title": {"type": "string"}, "version": {"type": "integer", "minimum": 1},
                "state": {"type": "object"}, "created_at": {"type": "string",
                                                            "format": "date-time"},
                "updated_at": {"type": "string", "format": "date-time"},
                "updated_by": {"type": "string"}}},
            "Event": {"type": "object", "properties": {
                "seq": {"type": "integer"}, "id": {"type": "string"},
                "tenant": {"type": "string"}, "type": {"type": "string"},
                "doc": {"type": ["string", "null"]}, "kind": {"type": ["string", "null"]},
                "idea": {"type": ["string", "null"]}, "version": {"type": ["integer", "null"]},
                "actor": {"type": "object"},
                "source": {"type": "string"}, "correlation_id": {"type": "string"},
                "ts": {"type": "string"}, "data": {"type": "object"},
                "prev_hash": {"type": ["string", "null"]}, "hash": {"type": "string"}}},
            "JsonPatch": {"type": "array", "minItems": 1, "maxItems": 1000,
                          "items": {"type": "object", "required": ["op", "path"]}},
            **TRAIL_SCHEMAS,
            **WORKFLOW_SCHEMAS,
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/api/dev/login": {"post": {
            "summary": "Dev mode only: a token for a name, role and tenant",
            "requestBody": {"content": {"application/json": {"schema": {
                "type": "object", "required": ["name"], "properties": {
                    "name": {"type": "string"}, "role": {"type": "string"},
                    "tenant": {"type": "string"}}}}}},
            "responses": {"200": _json({"type": "object"}, "token and user"), **_ERRORS}}},
        "/api/me": {"get": {
            "summary": "Who the caller is: the identity its token or cookie carries",
            "responses": {"200": _json({"type": "object", "required": [
                "user", "anonymous", "dev_auth"]}, "the caller"), **_ERRORS}}},
        "/api/documents": {
            "post": {"summary": "Create a document",
                     "requestBody": {"content": {"application/json": {"schema": {
                         "type": "object", "required": ["kind", "title"]}}}},
                     "responses": {"201": _json(_ref("Document"), "created"), **_ERRORS}},
            "get": {"summary": "List documents, newest first",
                    "parameters": [_query("kind"), _query("q", description="title contains"),
                                   _query("limit", "integer"), _query("cursor")],
                    "responses": {"200": _json({"type": "object", "properties": {
                        "items": {"type": "array", "items": _ref("Document")},
                        "next": {"type": ["string", "null"]}}}, "a page"), **_ERRORS}}},
        "/api/documents/{doc}": {
            "get": {"summary": "A document, now or as it was at a version or time",
                    "parameters": [_DOC_ID, _query("version", "integer"),
                                   _query("at", description="ISO 8601 time")],
                    "responses": {"200": _json(_ref("Document"), "the document (ETag: version)"),
                                  **_ERRORS}},
            "patch": {"summary": "Versioned write (JSON Patch against If-Match version)",
                      "parameters": [_DOC_ID,
                                     {"name": "If-Match", "in": "header", "required": True,
                                      "schema": {"type": "string"}},
                                     {"name": "Idempotency-Key", "in": "header",
                                      "required": False, "schema": {"type": "string"}}],
                      "requestBody": {"content": {"application/json": {
                          "schema": _ref("JsonPatch")}}},
                      "responses": {
                          "200": _json({"type": "object"}, "version (and rebased/duplicate)"),
                          "409": _json(_ref("Error"), "conflict: paths and deltas"),
                          "413": _json(_ref("Error"), "too_large"),
                          "428": _json(_ref("Error"), "If-Match missing"), **_ERRORS}}},
        "/api/documents/{doc}/history": {"get": {
            "summary": "The document's audit events in seq order",
            "parameters": [_DOC_ID, _query("since", "integer"), _query("limit", "integer"),
                           _query("cursor")],
            "responses": {"200": _json({"type": "object", "properties": {
                "events": {"type": "array", "items": _ref("Event")},
                "next": {"type": ["string", "null"]}}}, "a page"), **_ERRORS}}},
        "/api/documents/{doc}/verify": {"get": {
            "summary": "Recompute the document's hash chain",
            "parameters": [_DOC_ID],
            "responses": {"200": _json({"type": "object"}, "ok and events, or the broken seq"),
                          **_ERRORS}}},
        "/api/documents/{doc}/locks": {
            "post": {"summary": "Take or renew an edit lock (HTTP holder; not renewed by "
                                "heartbeats)",
                     "parameters": [_DOC_ID],
                     "requestBody": {"content": {"application/json": {"schema": {
                         "type": "object", "required": ["path"], "properties": {
                             "path": {"type": "string"}, "ttl_ms": {"type": "integer"},
                             "force": {"type": "boolean"}}}}}},
                     "responses": {"201": _json({"type": "object"}, "the lock; Lock-Token"),
                                   "423": _json(_ref("Error"), "locked"), **_ERRORS}},
            "delete": {"summary": "Release a lock", "parameters": [_DOC_ID, _query("path")],
                       "responses": {"200": _json({"type": "object"}, "released"),
                                     **_ERRORS}}},
        "/api/locks": {"get": {"summary": "Live locks of a document, or without doc of the tenant",
                               "parameters": [_query("doc"), _query("limit", "integer")],
                               "responses": {"200": _json({"type": "object"}, "locks"),
                                             **_ERRORS}}},
        "/api/presence": {"get": {"summary": "Presence entries by document or kind",
                                  "parameters": [_query("doc"), _query("kind")],
                                  "responses": {"200": _json({"type": "object"}, "entries"),
                                                **_ERRORS}}},
        "/api/events": {"get": {
            "summary": "Audit events of the tenant in seq order",
            "parameters": [_query("kind"), _query("type", description="exact or prefix.*"),
                           _query("doc"), _query("idea"), _query("actor"),
                           _query("since", "integer"),
                           _query("until", description="ISO 8601 time"),
                           _query("limit", "integer"), _query("cursor")],
            "responses": {"200": _json({"type": "object", "properties": {
                "events": {"type": "array", "items": _ref("Event")},
                "next": {"type": ["string", "null"]}}}, "a page"), **_ERRORS}}},
        "/api/events/stream": {"get": {
            "summary": "The same as Server-Sent Events; id is the seq, Last-Event-ID resumes",
            "parameters": [_query("kind"), _query("type"), _query("doc"), _query("actor"),
                           _query("since", "integer")],
            "responses": {"200": {"description": "text/event-stream"}, **_ERRORS}}},
        "/api/documents/{doc}/archive": {"post": {
            "summary": "Archive a document (admin): it becomes read-only; 409 if it is already",
            "parameters": [_DOC_ID],
            "responses": {"200": _json(_ref("Document"), "archived"), **_ERRORS}}},
        "/api/documents/{doc}/reopen": {"post": {
            "summary": "Reopen an archived document (admin)", "parameters": [_DOC_ID],
            "responses": {"200": _json(_ref("Document"), "reopened"), **_ERRORS}}},
        **TRAIL_PATHS,
        **WORKFLOW_PATHS,
        "/healthz": {"get": {"summary": "Process is up", "security": [],
                             "responses": {"200": {"description": "up"}}}},
        "/readyz": {"get": {"summary": "Storage and broker answer", "security": [],
                            "responses": {"200": {"description": "ready"},
                                          "503": _json(_ref("Error"), "not ready")}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "security": [],
                             "responses": {"200": {"description": "text exposition"}}}},
    },
}
