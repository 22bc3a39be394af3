"""What the workflow operations answer (section 13), as OpenAPI schemas beside the review
trail's (``server/openapi_trail.py``)."""

from __future__ import annotations

from typing import Any

from persistence.workflows.actions import ACTIONS
from server.openapi_trail import _NULL_TIME, _PERSON, _STR, _TIME, _obj, _page, _ref

__all__ = ["WORKFLOW_SCHEMAS"]

_STEP_STATES = ["pending", "ready", "in_progress", "blocked", "completed", "failed", "skipped"]
_INSTANCE_STATUSES = ["active", "paused", "completed", "canceled"]
_ACTIONS = sorted(ACTIONS.names())
_ROLES = ["admin", "analyst", "reviewer", "viewer", "bot"]

WORKFLOW_SCHEMAS: dict[str, Any] = {
    "WorkflowStepDefinition": _obj(
        ["key", "title", "action", "role", "required", "after", "config"], {
            "key": _STR, "title": _STR, "action": {"type": "string", "enum": _ACTIONS},
            "role": {"type": "string", "enum": _ROLES}, "required": {"type": "boolean"},
            "after": {"type": "array", "items": _STR}, "config": {"type": "object"}}),
    "WorkflowTemplate": _obj(["id", "name", "description", "version", "status", "steps",
                              "created_by", "created_at"], {
        "id": _STR, "name": _STR, "description": _STR, "version": {"type": "integer"},
        "status": {"type": "string", "enum": ["draft", "published"]},
        "steps": {"type": "array", "items": _ref("WorkflowStepDefinition")},
        "created_by": _PERSON, "created_at": _TIME, "updated_at": _TIME}),
    "WorkflowStep": {"allOf": [_ref("WorkflowStepDefinition"), _obj(
        ["id", "state", "assignee", "data", "started_at", "completed_at"], {
            "id": _STR, "state": {"type": "string", "enum": _STEP_STATES},
            "assignee": {"oneOf": [_PERSON, {"type": "null"}]}, "data": {"type": "object"},
            "started_at": _NULL_TIME, "completed_at": _NULL_TIME,
            "instance": {"type": "string", "description": "in the answer to a verb"}})]},
    "WorkflowInstance": _obj(["id", "template", "idea", "status", "steps", "created_by",
                              "created_at"], {
        "id": _STR, "template": _obj(["id", "version", "name"], {
            "id": _STR, "version": {"type": "integer"}, "name": _STR}),
        "idea": _STR, "status": {"type": "string", "enum": _INSTANCE_STATUSES},
        "steps": {"type": "array", "items": _ref("WorkflowStep")},
        "created_by": _PERSON, "created_at": _TIME, "updated_at": _TIME,
        "completed_at": _NULL_TIME}),
    "WorkflowTemplatePage": _page("WorkflowTemplate"),
    "WorkflowInstancePage": _page("WorkflowInstance"),
}
