"""Who is calling: dev login (only when ``COEDIT_AUTH=dev``) and ``/api/me``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from persistence.audit import AuditContext
from persistence.errors import CoeditError, NotFound
from server.auth import SESSION_COOKIE, Identity
from server.http.endpoint import coedit_of, endpoint, error_response, json_body
from server.service import Coedit

__all__ = ["dev_login", "me"]


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


@endpoint
async def me(request: Request, identity: Identity, ctx: AuditContext, coedit: Coedit) -> Response:
    return JSONResponse({"user": identity.public(), "anonymous": identity.anonymous,
                         "dev_auth": coedit.tokens.dev_auth})
