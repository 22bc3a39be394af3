"""HTTP rate limits (docs/protocol.md section 9): so many ``/api/`` requests a minute per
caller, counted across every node of a cluster.

A middleware rather than a step of ``endpoint``: it covers every ``/api/`` route alike, dev
login and unknown paths included, and it answers before the app reads a request body or
touches storage, so a refused request changes nothing and costs little. The caller is the
user of a valid token (the tenant with the ``sub``: ids need not be unique across tenants);
without one (no token, an invalid or expired one, the anonymous viewer, dev login) it is the
client's address, as uvicorn reports it (``X-Forwarded-For`` only from trusted proxies).
The caller is resolved once per request and ``endpoint`` reuses it (``caller``).

A refusal is not an ``access.denied`` event: writing to the audit log for every request of
a flood would turn the flood into writes. It is counted in
``coedit_http_rate_limited_total``. WebSocket traffic never comes here; sessions have their
own per-connection limit (``server/ratelimit.py``).
"""

from __future__ import annotations

import hashlib
import math

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from persistence.errors import RateLimited, Unauthorized
from server.auth import Identity
from server.http.endpoint import caller, error_response
from server.service import Coedit

__all__ = ["WINDOW_MS", "HttpRateLimits", "caller_key"]

WINDOW_MS = 60_000


def caller_key(coedit: Coedit, request: Request) -> str:
    """Whose allowance a request spends: its token's user, else its client address."""
    try:
        identity: Identity | None = caller(request, coedit)[0]
    except Unauthorized:
        identity = None
    if identity is None or identity.anonymous:
        host = request.client.host if request.client is not None else "unknown"
        return f"http:addr:{host}"
    # A digest: one short key for ids of any length, and no id spelled out in Redis.
    digest = hashlib.blake2b(f"{identity.tenant}\0{identity.id}".encode(), digest_size=16)
    return f"http:user:{digest.hexdigest()}"


class HttpRateLimits:
    """Count each ``/api/`` request; past the caller's limit answer 429 and run nothing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        coedit: Coedit | None = scope.get("state", {}).get("coedit")
        limit = coedit.settings.http_rate_limit if coedit is not None else 0
        if coedit is None or not limit:
            await self.app(scope, receive, send)
            return
        verdict = await coedit.limits.hit(caller_key(coedit, Request(scope)), limit=limit,
                                          window_ms=WINDOW_MS)
        reset = math.ceil(verdict.reset_ms / 1000)
        headers = {"X-RateLimit-Limit": str(limit),
                   "X-RateLimit-Remaining": str(verdict.remaining),
                   "X-RateLimit-Reset": str(reset)}
        if not verdict.allowed:
            coedit.metrics.rate_limited.inc()
            coedit.metrics.errors.labels(RateLimited.code).inc()
            refusal = RateLimited(f"more than {limit} requests a minute; retry in {reset} s",
                                  retry_after_ms=verdict.reset_ms)
            response = error_response(refusal, headers={**headers, "Retry-After": str(reset)})
            await response(scope, receive, send)
            return
        extra = [(name.lower().encode(), value.encode()) for name, value in headers.items()]

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_limits)
