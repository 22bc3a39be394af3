"""The OpenAPI description served at ``/openapi.json``, rendered from the operations' own
declarations (``server/http/contract.py``): the parameters and bodies they check and the
answers they give. Only the shapes of answers are written here (and in the two modules
beside this one), as components the operations refer to."""

from __future__ import annotations

import functools
from typing import Any

from server.openapi_trail import TRAIL_SCHEMAS
from server.openapi_workflows import WORKFLOW_SCHEMAS

__all__ = ["SCHEMAS", "description"]  # and OPENAPI, made on first use

_DOCUMENT_FIELDS: dict[str, Any] = {
    "id": {"type": "string"}, "kind": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,31}$"},
    "title": {"type": "string"}, "idea": {"type": ["string", "null"]},
    "version": {"type": "integer", "minimum": 1},
    "created_at": {"type": "string", "format": "date-time"},
    "updated_at": {"type": "string", "format": "date-time"},
    "updated_by": {"type": "string"}}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {
        "error": {"type": "object", "required": ["code", "message"], "properties": {
            "code": {"type": "string", "enum": [
                "bad_request", "unauthorized", "forbidden", "not_found", "conflict",
                "invalid_transition", "locked", "too_large", "precondition_required",
                "rate_limited", "unavailable", "internal"]},
            "message": {"type": "string"}}}}},
    "Document": {"type": "object", "required": [
        "id", "kind", "title", "version", "state", "created_at", "updated_at", "updated_by"],
        "properties": {**_DOCUMENT_FIELDS, "state": {"type": "object"}}},
    "DocumentSummary": {"type": "object", "required": [
        "id", "kind", "title", "version", "created_at", "updated_at"],
        "properties": _DOCUMENT_FIELDS, "description": "a document without its state"},
    "Event": {"type": "object", "properties": {
        "seq": {"type": "integer"}, "id": {"type": "string"},
        "tenant": {"type": "string"}, "type": {"type": "string"},
        "doc": {"type": ["string", "null"]}, "kind": {"type": ["string", "null"]},
        "idea": {"type": ["string", "null"]}, "version": {"type": ["integer", "null"]},
        "actor": {"type": "object"},
        "source": {"type": "string"}, "correlation_id": {"type": "string"},
        "ts": {"type": "string"}, "data": {"type": "object"},
        "prev_hash": {"type": ["string", "null"]}, "hash": {"type": "string"}}},
    **TRAIL_SCHEMAS,
    **WORKFLOW_SCHEMAS,
}


@functools.cache
def description() -> dict[str, Any]:
    """The whole description, made once from ``server.http.OPERATIONS``."""
    from server.http import OPERATIONS  # server.http serves this very description

    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = op.openapi()
    return {
        "openapi": "3.1.0",
        "info": {"title": "coedit", "version": "1",
                 "description": "Versioned JSON documents with an immutable audit log. The "
                                "WebSocket protocol at /ws is described in docs/protocol.md. "
                                "Every /api/ answer carries X-RateLimit-Limit, "
                                "X-RateLimit-Remaining and X-RateLimit-Reset (seconds) while "
                                "COEDIT_HTTP_RATE_LIMIT is on. A method a path does not have "
                                "is 405 with Allow."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "bearerFormat": "JWT"}},
            "schemas": SCHEMAS,
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


def __getattr__(name: str) -> Any:
    """``OPENAPI``, the description, made on first use (it needs every operation imported)."""
    if name == "OPENAPI":
        return description()
    raise AttributeError(name)
