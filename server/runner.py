"""Running the app under uvicorn with a graceful stop.

uvicorn's own shutdown closes every WebSocket with 1012 before the app hears of it, so the
app could not release presence and locks first or say "going away" (1001), which is what tells
a client to reconnect to another node and resume with ``since``. On SIGTERM or SIGINT this
server first stops accepting connections, lets every session release what it holds and close
with 1001, and only then lets uvicorn finish.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn
from starlette.applications import Starlette

from server.config import Settings
from server.request_head import bounded_http_protocol
from server.session import CloseCode
from server.ws_protocol import LeanWebSocketProtocol

if TYPE_CHECKING:
    from server.service import Coedit

__all__ = ["GracefulServer", "TokenRedaction", "uvicorn_config"]

log = logging.getLogger(__name__)

# A query parameter that carries a credential: its value never reaches a log line.
_TOKEN_IN_QUERY = re.compile(r"((?:^|[?&])(?:access_)?token=)[^&\s\"]*", re.IGNORECASE)


class TokenRedaction(logging.Filter):
    """Masks ``?token=`` in uvicorn's request lines.

    Browsers cannot set headers on a WebSocket handshake, so clients may pass their token in
    the URL (docs/protocol.md section 2), and uvicorn logs every handshake and request with
    its query string. The token would then sit in every log store the lines reach.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(
                isinstance(arg, str) and "token=" in arg.lower() for arg in record.args):
            record.args = tuple(_TOKEN_IN_QUERY.sub(r"\1[redacted]", arg)
                                if isinstance(arg, str) else arg for arg in record.args)
        return True


def _redact_tokens_in_uvicorn_logs() -> None:
    for name in ("uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, TokenRedaction) for f in logger.filters):
            logger.addFilter(TokenRedaction())


def uvicorn_config(app: Starlette, settings: Settings, *, host: str, port: int,
                   log_level: str = "info") -> uvicorn.Config:
    _redact_tokens_in_uvicorn_logs()
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        # Heads (URL, headers, cookies) are bounded before the app sees them: 431 past it.
        http=bounded_http_protocol(settings.max_head_bytes),
        h11_max_incomplete_event_size=settings.max_head_bytes,
        # uvicorn's sans-I/O websockets protocol, holding less per idle connection.
        ws=LeanWebSocketProtocol,
        # The protocol's frame limit: uvicorn closes with 1009 past it, before buffering it.
        ws_max_size=settings.max_frame_bytes,
        ws_ping_interval=None,  # presence uses data-frame heartbeats, not pings
        # No permessage-deflate: a compressor is per connection, so a delta fanned out to
        # 200 sockets would be compressed 200 times; deltas are small, and uncompressed frames
        # can be built once and written to every socket as they are (server/transport.py).
        ws_per_message_deflate=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
        proxy_headers=True,
    )


class GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining = False

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._draining or not self.started or self._loop is None:
            super().handle_exit(sig, frame)  # a second signal: stop now
            return
        self._draining = True
        self._loop.call_soon_threadsafe(
            lambda: self._loop.create_task(self._drain_then_exit(sig, frame))  # type: ignore[union-attr]
        )

    @property
    def coedit(self) -> Coedit | None:
        """The service the app's lifespan yielded as state; None until start-up completed.

        uvicorn keeps that state on its lifespan object and gives each request a copy of it.
        """
        lifespan = getattr(self, "lifespan", None)  # uvicorn sets it once serving begins
        if lifespan is None:
            return None
        coedit: Coedit | None = lifespan.state.get("coedit")
        return coedit

    async def drain(self) -> None:
        """Stop accepting, then close every session with 1001 after it released its state."""
        for server in self.servers:
            server.close()
        coedit = self.coedit
        if coedit is not None:
            log.info("draining %d sessions before shutdown", len(coedit.sessions))
            await coedit.close_sessions(CloseCode.GOING_AWAY)

    async def _drain_then_exit(self, sig: int, frame: FrameType | None) -> None:
        try:
            await self.drain()
        except Exception:
            log.exception("graceful drain failed; shutting down anyway")
        super().handle_exit(sig, frame)
