"""The OpenAPI description of the workflow routes (section 13), merged into
``server.openapi.OPENAPI`` beside the review trail's. The constraints are the stores'."""

from __future__ import annotations

from typing import Any

from server.openapi_trail import (
    _CURSOR,
    _LIMIT,
    _NULL_TIME,
    _PERSON,
    _STR,
    _TIME,
    _answer,
    _body,
    _errors,
    _obj,
    _page,
    _path,
    _query,
    _ref,
)

__all__ = ["WORKFLOW_PATHS", "WORKFLOW_SCHEMAS"]

_STEP_STATES = ["pending", "ready", "in_progress", "blocked", "completed", "failed", "skipped"]
_INSTANCE_STATUSES = ["active", "paused", "completed", "canceled"]
_ACTIONS = ["approval", "checklist", "document", "review"]
_ROLES = ["admin", "analyst", "reviewer", "viewer", "bot"]
_VERBS = ["claim", "start", "complete", "fail", "block", "unblock", "skip", "retry"]
_KEY = {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,63}$"}
_STEP_IN = _obj(["key", "action"], {
    "key": _KEY, "title": {"type": "string", "minLength": 1, "maxLength": 200},
    "action": {"type": "string", "enum": _ACTIONS},
    "role": {"type": "string", "enum": _ROLES}, "required": {"type": "boolean"},
    "after": {"type": "array", "items": _KEY},
    "config": {"type": "object", "description":
               'checklist {"items":[...]}; approval {}; review and document {"stage":KIND}'}},
    closed=True)
_TEMPLATE_FIELDS = {
    "name": {"type": "string", "minLength": 1, "maxLength": 200},
    "description": {"type": "string", "maxLength": 2000},
    "steps": {"type": "array", "maxItems": 50, "items": _STEP_IN}}

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
}

_TEMPLATE = _ref("WorkflowTemplate")
_INSTANCE = _ref("WorkflowInstance")

WORKFLOW_PATHS: dict[str, Any] = {
    "/api/workflows/templates": {
        "post": {"summary": "Create a template (admin): a draft at version 1",
                 "requestBody": _body(_obj(["name"], _TEMPLATE_FIELDS, closed=True)),
                 "responses": {"201": _answer(_TEMPLATE, "created"), **_errors(403)}},
        "get": {"summary": "Templates, newest first; q matches words of the name",
                "parameters": [_query("q", {"type": "string", "maxLength": 200}),
                               _query("status", {"type": "string",
                                                 "enum": ["draft", "published"]}),
                               _LIMIT, _CURSOR],
                "responses": {"200": _answer(_page("WorkflowTemplate"), "a page"),
                              **_errors(403)}}},
    "/api/workflows/templates/{template}": {
        "get": {"summary": "One template", "parameters": [_path("template")],
                "responses": {"200": _answer(_TEMPLATE, "the template"),
                              **_errors(403, 404)}},
        "patch": {"summary": "Change a template (admin); a published one becomes a draft of "
                             "the next version",
                  "parameters": [_path("template")],
                  "requestBody": _body(_obj([], _TEMPLATE_FIELDS, closed=True)),
                  "responses": {"200": _answer(_TEMPLATE, "changed"), **_errors(403, 404)}}},
    "/api/workflows/templates/{template}/publish": {"post": {
        "summary": "Publish a draft (admin): at least one step, unique keys, after only to "
                   "earlier steps; 400 names the first fault",
        "parameters": [_path("template")],
        "responses": {"200": _answer(_TEMPLATE, "published"), **_errors(403, 404, 409)}}},
    "/api/workflows/templates/{template}/instantiate": {"post": {
        "summary": "Run a published template on an idea (analysts, admins); a draft is 409",
        "parameters": [_path("template")],
        "requestBody": _body(_obj(["idea"], {"idea": {"type": "string", "maxLength": 36}},
                                  closed=True)),
        "responses": {"201": _answer(_INSTANCE, "started"), **_errors(403, 404, 409)}}},
    "/api/workflows/instances": {"get": {
        "summary": "Instances, newest first, each with its steps",
        "parameters": [_query("idea"),
                       _query("status", {"type": "string", "enum": _INSTANCE_STATUSES}),
                       _query("limit", {"type": "integer", "minimum": 1, "maximum": 200}),
                       _CURSOR],
        "responses": {"200": _answer(_page("WorkflowInstance"), "a page"), **_errors(403)}}},
    "/api/workflows/instances/{instance}": {
        "get": {"summary": "One instance with its steps", "parameters": [_path("instance")],
                "responses": {"200": _answer(_INSTANCE, "the instance"),
                              **_errors(403, 404)}},
        "patch": {"summary": "Pause, resume or cancel (its creator or an admin); canceled is "
                             "final",
                  "parameters": [_path("instance")],
                  "requestBody": _body(_obj(["status"], {"status": {
                      "type": "string", "enum": ["paused", "active", "canceled"]}},
                      closed=True)),
                  "responses": {"200": _answer(_INSTANCE, "changed"),
                                **_errors(403, 404, 409)}}},
    "/api/workflows/steps/{step}/{verb}": {"post": {
        "summary": "Move a step: claim, start, complete (payload by action), fail, block "
                   "({reason}), unblock, skip ({reason}, admin), retry (admin)",
        "parameters": [_path("step"), {"name": "verb", "in": "path", "required": True,
                                       "schema": {"type": "string", "enum": _VERBS}}],
        "requestBody": {"required": False, "content": {"application/json": {
            "schema": {"type": "object"}}}},
        "responses": {"200": _answer(_ref("WorkflowStep"), "the step as it is now"),
                      **_errors(403, 404, 409)}}},
}
