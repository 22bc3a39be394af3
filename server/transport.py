"""What the session may do with uvicorn's socket beyond the ASGI interface, and when.

Two things ASGI cannot express: dropping a peer that never reads its close frame, and
writing prebuilt frames straight to the transport so a delta fanned out to 200 sockets is not
pushed through Starlette, uvicorn's ``send`` and the frame serializer 200 times. Both need
uvicorn's protocol object, which :class:`TransportHandle` finds outside Starlette's own
wrappers. Under any other server both features switch off and the session uses plain ASGI.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket
from websockets.protocol import State

from channels.outbox import DirectSocket

__all__ = ["TransportHandle", "abort_function", "direct_socket"]

_PROTOCOL_KEY = "coedit.protocol"


class TransportHandle:
    """Remember uvicorn's WebSocket protocol object in the connection's scope, and run the
    WebSocket endpoints straight from here.

    A WebSocket connection keeps every ASGI layer it passed through suspended for its whole
    life: each middleware, the router, the route and Starlette's exception wrappers hold a
    coroutine frame (and some a closure) per connection, about 3 KB in all. None of them does
    anything for a WebSocket that the endpoint does not do itself (it authenticates, refuses
    and closes on its own), so ``websockets`` maps paths to endpoints that are called from
    this layer, outside the others.
    """

    def __init__(self, app: ASGIApp, *,
                 websockets: dict[str, Callable[[WebSocket], Awaitable[None]]] | None = None,
                 ) -> None:
        self.app = app
        self.websockets = websockets or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            protocol = getattr(send, "__self__", None)
            if protocol is not None and hasattr(protocol, "transport"):
                scope[_PROTOCOL_KEY] = protocol
            endpoint = self.websockets.get(_route_path(scope))
            if endpoint is not None:
                await endpoint(WebSocket(scope, receive, send))
                return
        await self.app(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path below the app's mount point, as Starlette's router matches it."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


def abort_function(scope: Scope) -> Callable[[], None] | None:
    """``transport.abort`` of the connection, to drop a peer that stopped reading."""
    abort = getattr(getattr(scope.get(_PROTOCOL_KEY), "transport", None), "abort", None)
    return abort if callable(abort) else None


def direct_socket(scope: Scope) -> DirectSocket | None:
    """The connection's transport for prebuilt frames, or None where that is not safe.

    Safe only with uvicorn's sans-I/O ``websockets`` protocol (it tracks writability in a
    ``writable`` event and the connection state in ``conn``) and with no extension
    negotiated: a compressing extension keeps per-connection state that frames written
    behind its back would not pass through. Call it after the handshake.
    """
    protocol: Any = scope.get(_PROTOCOL_KEY)
    transport: Any = getattr(protocol, "transport", None)
    writable = getattr(protocol, "writable", None)
    conn: Any = getattr(protocol, "conn", None)
    if not callable(getattr(transport, "write", None)):
        return None
    if not isinstance(writable, asyncio.Event) or conn is None:
        return None
    if getattr(conn, "extensions", None) or getattr(conn, "state", None) is not State.OPEN:
        return None

    def is_open() -> bool:
        return bool(conn.state is State.OPEN)

    return DirectSocket(transport, writable, is_open)
