"""Who is calling: dev login (only when ``COEDIT_AUTH=dev``) and ``/api/me``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from persistence.audit import AuditContext
from persistence.errors import CoeditError, NotFound
from server.auth import SESSION_COOKIE, Identity
from server.http.contract import Answer, Args, Body, Prop, Value, operation, public, text
from server.http.endpoint import coedit_of, error_response, json_body
from server.service import Coedit

__all__ = ["dev_login", "me"]


_USER = {"type": "object", "required": ["id", "name", "roles", "tenant"]}


@public("POST", "/api/dev/login",
        "Dev mode only (COEDIT_AUTH=dev): a token for a name, role and tenant; 404 otherwise",
        body=Body((Prop("name", text(1, 128), required=True),
                   Prop("role", Value("string", enum=("admin", "analyst", "reviewer", "viewer",
                                                      "bot"))),
                   Prop("tenant", text(1, 128)))),
        answers=[Answer(200, "the token and the user", {
            "type": "object", "required": ["token", "user"],
            "properties": {"token": {"type": "string"}, "user": _USER}})],
        errors=[400, 404, 429])
async def dev_login(request: Request) -> Response:
    coedit = coedit_of(request)
    if not coedit.tokens.dev_auth:
        return error_response(NotFound("dev login is off (COEDIT_AUTH is not dev)"))
    try:
        token, identity = coedit.tokens.dev_login(await json_body(request, coedit))
    except CoeditError as exc:
        return error_response(exc)
    response = JSONResponse({"token": token, "user": identity.public()})
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax",
                        max_age=12 * 3600)
    return response


@operation("GET", "/api/me", "Who the caller is: the identity its token or cookie carries",
           answers=[Answer(200, "the caller", {
               "type": "object", "required": ["user", "anonymous", "dev_auth"],
               "properties": {"user": _USER, "anonymous": {"type": "boolean"},
                              "dev_auth": {"type": "boolean"}}})])
async def me(request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit,
             args: Args) -> Response:
    return JSONResponse({"user": identity.public(), "anonymous": identity.anonymous,
                         "dev_auth": coedit.tokens.dev_auth})
