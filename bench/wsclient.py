"""A minimal WebSocket client protocol for load generation: handshake, frame parser, counters.

The ``websockets`` client decodes every frame into a Python object and wakes a coroutine per
message; at 100,000+ frames a second that costs more CPU than the server under test spends,
and the generator would become the bottleneck. This protocol parses only frame headers,
counts data frames per ``data_received`` chunk and hands a payload to Python code only when a
caller asked for it (setup replies, latency stamps). Client frames are masked with the zero
key, which RFC 6455 allows and which makes masking a no-op.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import time
from collections.abc import Callable
from urllib.parse import urlsplit

__all__ = ["FrameCounter", "PayloadHook", "WsClientProtocol", "connect", "encode_frame"]

OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

_ZERO_MASK = b"\x00\x00\x00\x00"


def encode_frame(payload: bytes, opcode: int) -> bytes:
    """One final client frame, masked with the zero key (the payload goes out unchanged)."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    return header + _ZERO_MASK + payload


class FrameCounter:
    """Counts data frames that arrive inside ``[start, end)`` (monotonic seconds).

    Shared by every connection of one load process; the window is checked once per
    received chunk, not per frame.
    """

    __slots__ = ("bytes", "end", "frames", "start")

    def __init__(self) -> None:
        self.start = float("inf")
        self.end = float("inf")
        self.frames = 0
        self.bytes = 0


PayloadHook = Callable[[int, bytes, float], None]


class WsClientProtocol(asyncio.Protocol):
    """One client connection. ``on_payload`` (if set) sees every data frame's payload."""

    def __init__(self, counter: FrameCounter) -> None:
        self.counter = counter
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.handshake: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.on_payload: PayloadHook | None = None
        # Frames that arrive with the 101 response, before the caller could install a hook.
        self.early: list[tuple[int, bytes]] | None = []
        self.closed: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(exc or ConnectionError("closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(self.close_code)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end])
            del buffer[: end + 4]
            self.upgraded = True
            if not head.startswith(b"HTTP/1.1 101"):
                self.handshake.set_exception(ConnectionError(head.split(b"\r\n", 1)[0].decode()))
                if self.transport is not None:
                    self.transport.close()
                return
            self.handshake.set_result(head)
        self._parse(time.monotonic())

    # -- frames ---------------------------------------------------------------------------

    def _parse(self, now: float) -> None:
        buffer = self.buffer
        size = len(buffer)
        pos = 0
        frames = 0
        hook = self.on_payload
        while size - pos >= 2:
            b0 = buffer[pos]
            length = buffer[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = (buffer[pos + 2] << 8) | buffer[pos + 3]
                head = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buffer[pos + 2: pos + 10], "big")
                head = 10
            end = pos + head + length
            if end > size:
                break
            opcode = b0 & 0x0F
            if opcode in (OP_TEXT, OP_BINARY, 0):  # 0: a continuation frame
                frames += 1
                if hook is not None:
                    hook(opcode, bytes(buffer[pos + head: end]), now)
                elif self.early is not None:
                    self.early.append((opcode, bytes(buffer[pos + head: end])))
            else:
                self._control(opcode, bytes(buffer[pos + head: end]))
            pos = end
        if pos:
            del buffer[:pos]
        counter = self.counter
        if frames and counter.start <= now < counter.end:
            counter.frames += frames
            counter.bytes += pos

    def _control(self, opcode: int, payload: bytes) -> None:
        if opcode == OP_PING:
            self.send(payload, OP_PONG)
        elif opcode == OP_CLOSE:
            self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
            if not self.closed.done():
                self.closed.set_result(self.close_code)
            self.send(payload[:2], OP_CLOSE)
            if self.transport is not None:
                self.transport.close()

    def set_hook(self, hook: PayloadHook | None) -> None:
        """Route data frames to ``hook`` from now on, first those that came early."""
        early, self.early = self.early, None
        self.on_payload = hook
        if hook is not None and early:
            now = time.monotonic()
            for opcode, payload in early:
                hook(opcode, payload, now)

    def send(self, payload: bytes, opcode: int = OP_TEXT) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode_frame(payload, opcode))

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode_frame(struct.pack("!H", 1000), OP_CLOSE))
            self.transport.close()


async def connect(
    url: str, counter: FrameCounter, *, subprotocol: str | None = None, timeout: float = 30.0
) -> WsClientProtocol:
    """Open a TCP connection to a ``ws://`` URL and finish the upgrade handshake."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    loop = asyncio.get_running_loop()
    _, protocol = await asyncio.wait_for(
        loop.create_connection(lambda: WsClientProtocol(counter), host, port), timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket",
        "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
    ]
    if subprotocol:
        lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    if protocol.transport is None:
        raise ConnectionError("no transport")
    protocol.transport.write(request)
    await asyncio.wait_for(protocol.handshake, timeout)
    return protocol
