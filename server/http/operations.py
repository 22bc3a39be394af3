"""What operators and tools read: liveness, readiness, Prometheus metrics, the OpenAPI file.

None of these needs a caller's identity, so they do not go through ``endpoint``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from persistence.errors import Unavailable
from server.http.endpoint import coedit_of, error_response
from server.openapi import OPENAPI

__all__ = ["healthz", "metrics", "openapi", "readyz"]


async def healthz(request: Request) -> Response:
    return JSONResponse({"ok": True, "node": coedit_of(request).settings.node_id})


async def readyz(request: Request) -> Response:
    coedit = coedit_of(request)
    checks: dict[str, str] = {}
    for name, probe in (("storage", coedit.db.ping), ("broker", coedit.hub.broker.ping)):
        try:
            await probe()
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"{type(exc).__name__}: {exc}"[:200]
    if all(value == "ok" for value in checks.values()):
        return JSONResponse({"ok": True, "checks": checks})
    failed = ", ".join(k for k, v in checks.items() if v != "ok")
    return error_response(Unavailable(f"not ready: {failed}", checks=checks))


async def metrics(request: Request) -> Response:
    return Response(coedit_of(request).metrics.render(),
                    media_type="text/plain; version=0.0.4; charset=utf-8")


async def openapi(request: Request) -> Response:
    return JSONResponse(OPENAPI)
