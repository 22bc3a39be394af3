"""Workflows over HTTP (docs/protocol.md section 13): templates, instances and step verbs."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from persistence.audit import AuditContext
from server.auth import Identity
from server.http.endpoint import endpoint, int_param, json_body
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


async def _optional_body(request: Request, coedit: Coedit) -> Any:
    """A verb's payload: its JSON body, or None when the request has none."""
    if (request.headers.get("content-length") in (None, "0")
            and "transfer-encoding" not in request.headers):
        return None
    return await json_body(request, coedit)


@endpoint
async def create_template(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    template = await coedit.workflows.create_template(identity, ctx,
                                                      await json_body(request, coedit))
    return JSONResponse(template, status_code=201,
                        headers={"Location": f"/api/workflows/templates/{template['id']}"})


@endpoint
async def change_template(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    return JSONResponse(await coedit.workflows.change_template(
        identity, ctx, request.path_params["template"], await json_body(request, coedit)))


@endpoint
async def publish_template(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    return JSONResponse(await coedit.workflows.publish_template(
        identity, ctx, request.path_params["template"]))


@endpoint
async def list_templates(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    params = request.query_params
    return JSONResponse(await coedit.workflows.templates(
        identity, ctx, q=params.get("q") or None, status=params.get("status") or None,
        limit=int_param(request, "limit", minimum=1), cursor=params.get("cursor") or None))


@endpoint
async def get_template(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    return JSONResponse(await coedit.workflows.template(identity, ctx,
                                                        request.path_params["template"]))


@endpoint
async def instantiate(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    instance = await coedit.workflows.instantiate(
        identity, ctx, request.path_params["template"], await json_body(request, coedit))
    return JSONResponse(instance, status_code=201,
                        headers={"Location": f"/api/workflows/instances/{instance['id']}"})


@endpoint
async def list_instances(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    params = request.query_params
    return JSONResponse(await coedit.workflows.instances(
        identity, ctx, idea=params.get("idea") or None, status=params.get("status") or None,
        limit=int_param(request, "limit", minimum=1), cursor=params.get("cursor") or None))


@endpoint
async def get_instance(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    return JSONResponse(await coedit.workflows.instance(identity, ctx,
                                                        request.path_params["instance"]))


@endpoint
async def set_instance_status(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    return JSONResponse(await coedit.workflows.set_status(
        identity, ctx, request.path_params["instance"], await json_body(request, coedit)))


@endpoint
async def move_step(
    request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit
) -> Response:
    return JSONResponse(await coedit.workflows.move_step(
        identity, ctx, request.path_params["step"], request.path_params["verb"],
        await _optional_body(request, coedit)))
