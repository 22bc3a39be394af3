"""A bound on the request head (request line and headers) before any of it reaches the app.

uvicorn's default HTTP parser (httptools) keeps no limit: a client could send a header, cookie
or URL of any size and the server would buffer all of it while waiting for the head's end. A
Starlette middleware would see the request only after that, so the bound sits in the protocol
itself: bytes of an unfinished head are counted as they arrive, and past the limit the client
gets ``431`` with a contract error body (``too_large``) and the connection is closed.
"""

from __future__ import annotations

import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["DEFAULT_MAX_HEAD_BYTES", "bounded_http_protocol", "head_too_large_response"]

DEFAULT_MAX_HEAD_BYTES = 32 * 1024
_HEAD_END = b"\r\n\r\n"


def head_too_large_response(limit: int) -> bytes:
    """The whole HTTP answer to an oversized head; the connection closes after it."""
    body = json.dumps({"error": {
        "code": "too_large",
        "message": f"request line and headers exceed {limit} bytes",
    }}).encode()
    return (b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + body)


class _BoundedHead(HttpToolsProtocol):
    """httptools with a limit on each request's head; bodies are the app's business."""

    max_head_bytes = DEFAULT_MAX_HEAD_BYTES
    _in_head = True
    _head_bytes = 0

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            end = data.find(_HEAD_END)
            # A head that ends in this chunk counts up to its end; pipelined requests after
            # it are bounded by the chunk's own size.
            seen = self._head_bytes + (len(data) if end < 0 else end + len(_HEAD_END))
            if seen > self.max_head_bytes:
                self.transport.write(head_too_large_response(self.max_head_bytes))
                self.transport.close()
                return
            self._head_bytes = seen
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head, self._head_bytes = True, 0
        super().on_message_complete()


def bounded_http_protocol(max_head_bytes: int) -> type[HttpToolsProtocol]:
    """The HTTP protocol class for uvicorn's ``http`` setting, bounding heads at this size."""
    return type("BoundedHttpToolsProtocol", (_BoundedHead,), {"max_head_bytes": max_head_bytes})
