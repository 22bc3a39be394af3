"""What every HTTP resource shares: the :func:`endpoint` wrapper, error bodies, and the
reading of JSON bodies (what a request may carry is declared per operation, in
``server/http/contract.py``).

Every handler goes through :func:`endpoint`: it resolves the caller (once per request, see
:func:`caller`), maps a
:class:`CoeditError` to its status and ``{"error": {...}}`` body, echoes the correlation id
and sets the anonymous viewer's cookie when one was just issued.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from persistence.audit import AuditContext
from persistence.errors import BadRequest, CoeditError, TooLarge, Unauthorized
from server.auth import ANON_COOKIE, Identity
from server.service import Coedit, protocol_error

__all__ = ["Handler", "caller", "coedit_of", "endpoint", "error_response", "json_body"]


Handler = Callable[[Request, Identity, AuditContext, Coedit], Awaitable[Response]]


def error_response(exc: CoeditError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": exc.body()}, status_code=exc.http_status, headers=headers)


def coedit_of(request: Request) -> Coedit:
    """The service, from the state the app's lifespan yielded (Starlette gives every request
    a copy of it)."""
    coedit: Coedit = request.state.coedit
    return coedit


def caller(request: Request, coedit: Coedit) -> tuple[Identity, str | None]:
    """Who is calling (and a new anonymous cookie, if one was issued); ``unauthorized``
    without a valid token outside dev mode.

    Resolved once per request and kept in the request's state: the rate limit asks first
    (``server/http/limits.py``), the handler then gets the same answer without checking
    the token's signature again, and an anonymous caller the same id and cookie.
    """
    state = request.scope.setdefault("state", {})
    known: tuple[Identity, str | None] | Unauthorized | None = state.get("coedit.caller")
    if known is None:
        try:
            known = coedit.tokens.identify(authorization=request.headers.get("authorization"),
                                           cookies=request.cookies)
        except Unauthorized as exc:
            known = exc
        state["coedit.caller"] = known
    if isinstance(known, Unauthorized):
        raise known
    return known


def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    @functools.wraps(handler)
    async def wrapper(request: Request) -> Response:
        coedit = coedit_of(request)
        correlation = request.headers.get("x-correlation-id")
        fresh_cookie = None
        try:
            identity, fresh_cookie = caller(request, coedit)
            ctx = coedit.context(identity, "http", correlation)
            response = await handler(request, identity, ctx, coedit)
            response.headers["X-Correlation-ID"] = ctx.correlation_id
        except Exception as exc:
            error = protocol_error(exc)
            coedit.metrics.errors.labels(error.code).inc()
            response = error_response(error)
        if fresh_cookie:
            response.set_cookie(ANON_COOKIE, fresh_cookie, httponly=True, samesite="lax",
                                max_age=365 * 24 * 3600)
        return response

    return wrapper


async def json_body(request: Request, coedit: Coedit) -> Any:
    limit = coedit.settings.max_state_bytes + 64 * 1024
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"request body larger than {limit} bytes", limit=limit)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise TooLarge(f"request body larger than {limit} bytes", limit=limit)
    try:
        return json.loads(body)
    except ValueError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
