"""Workflows over HTTP (docs/protocol.md section 13): templates, instances and step verbs."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from persistence.audit import AuditContext
from persistence.workflows.actions import ACTIONS
from persistence.workflows.instances import INSTANCE_STATUSES
from persistence.workflows.templates import (
    KEY_PATTERN,
    MAX_DESCRIPTION,
    MAX_NAME,
    MAX_QUERY,
    MAX_STEPS,
    STEP_ROLES,
    TEMPLATE_STATUSES,
)
from server.auth import Identity
from server.http.contract import (
    NON_BLANK,
    Answer,
    Args,
    Body,
    Param,
    Prop,
    Value,
    operation,
    ref,
    text,
)
from server.http.params import cursor, limit, path_id, query
from server.service import Coedit

__all__ = [
    "change_template",
    "create_template",
    "get_instance",
    "get_template",
    "instantiate",
    "list_instances",
    "list_templates",
    "move_step",
    "publish_template",
    "set_instance_status",
]

VERBS = ("claim", "start", "complete", "fail", "block", "unblock", "skip", "retry")
_KEY = text(pattern=f"^{KEY_PATTERN.pattern}$")
_STEP = Value("object", shape=Body((
    Prop("key", _KEY, required=True), Prop("title", text(1, MAX_NAME)),
    Prop("action", Value("string", enum=tuple(sorted(ACTIONS.names()))), required=True),
    Prop("role", Value("string", enum=STEP_ROLES)), Prop("required", Value("boolean")),
    Prop("after", Value("array", items=_KEY)),
    Prop("config", Value("object", description='checklist {"items":[...]}; approval {}; '
                                               'review and document {"stage":KIND}')))))
_NAME = text(1, MAX_NAME, pattern=NON_BLANK)
_DESCRIPTION = text(max_length=MAX_DESCRIPTION)
_STEPS = Value("array", items=_STEP, max_items=MAX_STEPS)
_TEMPLATE = ref("WorkflowTemplate")
_INSTANCE = ref("WorkflowInstance")


@operation("POST", "/api/workflows/templates", "Create a template (admin): a draft at version 1",
           body=Body((Prop("name", _NAME, required=True), Prop("description", _DESCRIPTION),
                      Prop("steps", _STEPS)),
                     message='the body is {"name", "description"?, "steps"?}'),
           answers=[Answer(201, "created", _TEMPLATE, headers=("Location",))], errors=[403])
async def create_template(request: Request, identity: Identity, ctx: AuditContext,
                          coedit: Coedit, args: Args) -> Response:
    template = await coedit.workflows.create_template(identity, ctx, args["body"])
    return JSONResponse(template, status_code=201,
                        headers={"Location": f"/api/workflows/templates/{template['id']}"})


@operation("PATCH", "/api/workflows/templates/{template}",
           "Change a template (admin); a published one becomes a draft of the next version",
           params=[path_id("template")],
           body=Body((Prop("name", _NAME), Prop("description", _DESCRIPTION),
                      Prop("steps", _STEPS)), min_properties=1,
                     message='the body changes one or more of "name", "description", "steps"'),
           answers=[Answer(200, "changed", _TEMPLATE)], errors=[403, 404])
async def change_template(request: Request, identity: Identity, ctx: AuditContext,
                          coedit: Coedit, args: Args) -> Response:
    return JSONResponse(await coedit.workflows.change_template(identity, ctx, args["template"],
                                                               args["body"]))


@operation("POST", "/api/workflows/templates/{template}/publish",
           "Publish a draft (admin): at least one step, unique keys, after only to earlier "
           "steps, each action's config; 400 names the first fault",
           params=[path_id("template")], answers=[Answer(200, "published", _TEMPLATE)],
           errors=[403, 404, 409])
async def publish_template(request: Request, identity: Identity, ctx: AuditContext,
                           coedit: Coedit, args: Args) -> Response:
    return JSONResponse(await coedit.workflows.publish_template(identity, ctx,
                                                                args["template"]))


@operation("GET", "/api/workflows/templates", "Templates, newest first; q matches words of "
           "the name",
           params=[query("q", text(max_length=MAX_QUERY)),
                   query("status", Value("string", enum=TEMPLATE_STATUSES)), limit(500),
                   cursor()],
           answers=[Answer(200, "a page", ref("WorkflowTemplatePage"))], errors=[403])
async def list_templates(request: Request, identity: Identity, ctx: AuditContext,
                         coedit: Coedit, args: Args) -> Response:
    return JSONResponse(await coedit.workflows.templates(
        identity, ctx, q=args["q"], status=args["status"], limit=args["limit"],
        cursor=args["cursor"]))


@operation("GET", "/api/workflows/templates/{template}", "One template",
           params=[path_id("template")], answers=[Answer(200, "the template", _TEMPLATE)],
           errors=[403, 404])
async def get_template(request: Request, identity: Identity, ctx: AuditContext,
                       coedit: Coedit, args: Args) -> Response:
    return JSONResponse(await coedit.workflows.template(identity, ctx, args["template"]))


@operation("POST", "/api/workflows/templates/{template}/instantiate",
           "Run a published template on an idea (analysts, admins); a draft is 409",
           params=[path_id("template")],
           body=Body((Prop("idea", text(1, 36), required=True),),
                     message='the body is {"idea": ID}'),
           answers=[Answer(201, "started", _INSTANCE, headers=("Location",))],
           errors=[403, 404, 409])
async def instantiate(request: Request, identity: Identity, ctx: AuditContext,
                      coedit: Coedit, args: Args) -> Response:
    instance = await coedit.workflows.instantiate(identity, ctx, args["template"], args["body"])
    return JSONResponse(instance, status_code=201,
                        headers={"Location": f"/api/workflows/instances/{instance['id']}"})


@operation("GET", "/api/workflows/instances", "Instances, newest first, each with its steps",
           params=[query("idea"), query("status", Value("string", enum=INSTANCE_STATUSES)),
                   limit(200), cursor()],
           answers=[Answer(200, "a page", ref("WorkflowInstancePage"))], errors=[403])
async def list_instances(request: Request, identity: Identity, ctx: AuditContext,
                         coedit: Coedit, args: Args) -> Response:
    return JSONResponse(await coedit.workflows.instances(
        identity, ctx, idea=args["idea"], status=args["status"], limit=args["limit"],
        cursor=args["cursor"]))


@operation("GET", "/api/workflows/instances/{instance}", "One instance with its steps",
           params=[path_id("instance")], answers=[Answer(200, "the instance", _INSTANCE)],
           errors=[403, 404])
async def get_instance(request: Request, identity: Identity, ctx: AuditContext,
                       coedit: Coedit, args: Args) -> Response:
    return JSONResponse(await coedit.workflows.instance(identity, ctx, args["instance"]))


@operation("PATCH", "/api/workflows/instances/{instance}",
           "Pause, resume or cancel (its creator or an admin); canceled is final",
           params=[path_id("instance")],
           body=Body((Prop("status", Value("string", enum=("paused", "active", "canceled")),
                           required=True),),
                     message='the body is {"status": "paused" | "active" | "canceled"}'),
           answers=[Answer(200, "changed", _INSTANCE)], errors=[403, 404, 409])
async def set_instance_status(request: Request, identity: Identity, ctx: AuditContext,
                              coedit: Coedit, args: Args) -> Response:
    return JSONResponse(await coedit.workflows.set_status(identity, ctx, args["instance"],
                                                          args["body"]))


@operation("POST", "/api/workflows/steps/{step}/{verb}",
           "Move a step: claim, start, complete (payload by action), fail, block ({reason}), "
           "unblock, skip ({reason}, admin), retry (admin)",
           params=[path_id("step"), Param("verb", "path", Value("string", enum=VERBS))],
           body=Body((), closed=False, required=False,
                     message="the payload must be a JSON object"),
           answers=[Answer(200, "the step as it is now", ref("WorkflowStep"))],
           errors=[403, 404, 409])
async def move_step(request: Request, identity: Identity, ctx: AuditContext,
                    coedit: Coedit, args: Args) -> Response:
    return JSONResponse(await coedit.workflows.move_step(identity, ctx, args["step"],
                                                         args["verb"], args["body"]))
