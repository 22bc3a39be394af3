"""What operators and tools read: liveness, readiness, Prometheus metrics, the OpenAPI file.

None of these needs a caller's identity, so they do not go through ``endpoint``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from persistence.errors import Unavailable
from server.http.contract import Answer, public, ref
from server.http.endpoint import coedit_of, error_response

__all__ = ["healthz", "metrics", "openapi", "readyz"]


@public("GET", "/healthz", "The process is up",
        answers=[Answer(200, "up", {"type": "object", "required": ["ok"]})])
async def healthz(request: Request) -> Response:
    return JSONResponse({"ok": True, "node": coedit_of(request).settings.node_id})


@public("GET", "/readyz", "Storage and broker answer",
        answers=[Answer(200, "ready", {"type": "object", "required": ["ok", "checks"]}),
                 Answer(503, "not ready", ref("Error"))])
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


@public("GET", "/metrics", "Prometheus metrics",
        answers=[Answer(200, "the text exposition", {"type": "string"}, media_type="text/plain")])
async def metrics(request: Request) -> Response:
    return Response(coedit_of(request).metrics.render(),
                    media_type="text/plain; version=0.0.4; charset=utf-8")


@public("GET", "/openapi.json", "This description",
        answers=[Answer(200, "OpenAPI 3.1", {"type": "object"})])
async def openapi(request: Request) -> Response:
    from server.openapi import description  # it describes this module's operations too

    return JSONResponse(description())
