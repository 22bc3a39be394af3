"""Outgoing messages, encoded at most once per wire format however many sockets get them."""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

import msgpack

__all__ = [
    "Frame",
    "WireFormat",
    "decode_msgpack",
    "encode_json",
    "encode_msgpack",
    "server_sent_event",
    "websocket_frame",
]


class WireFormat(Enum):
    """The two subprotocols of docs/protocol.md section 3."""

    JSON = "coedit.v1.json"
    MSGPACK = "coedit.v1.msgpack"


# Built once: json.dumps with options builds an encoder per call, as costly as a reply.
_ENCODE_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False,
                                allow_nan=False).encode


def encode_json(message: Any) -> str:
    return _ENCODE_JSON(message)


def encode_msgpack(message: Any) -> bytes:
    return msgpack.packb(message, use_bin_type=True)  # type: ignore[no-any-return]


def decode_msgpack(data: bytes) -> Any:
    # strict_map_key=False: the protocol uses string keys, but a peer's bad map must become
    # a bad_request from validation, not an exception from the decoder.
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def websocket_frame(payload: bytes, *, text: bool) -> bytes:
    """One complete, unfragmented, unmasked WebSocket data frame (RFC 6455 section 5.2).

    A server never masks its frames, so the bytes are the same for every recipient and can
    be built once per delta rather than once per socket.
    """
    first = 0x81 if text else 0x82  # FIN + text or binary opcode
    size = len(payload)
    if size < 126:
        header = bytes((first, size))
    elif size < 1 << 16:
        header = bytes((first, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((first, 127)) + size.to_bytes(8, "big")
    return header + payload


def server_sent_event(frame: Frame) -> str:
    """A stream frame as a Server-Sent Event: an audit event with its ``seq`` as ``id`` (so
    ``Last-Event-ID`` resumes exactly), or a ``comment`` (a notice, or a keepalive)."""
    message = frame.message
    if message.get("type") == "comment":
        return f": {message['text']}\n\n"
    if message.get("type") == "reset":
        # A named event: its id moves Last-Event-ID past the purge point, so a reconnect
        # resumes after it instead of being told again.
        return f"event: reset\nid: {message['seq']}\ndata: {encode_json(message)}\n\n"
    event = message["event"]
    return f"id: {event['seq']}\ndata: {encode_json(event)}\n\n"


class Frame:
    """One message for one or many connections, with its encodings cached.

    A delta fanned out to 200 subscribers is serialized once per wire format in use, not
    200 times; the cache is filled by the first socket that needs each format.
    """

    __slots__ = ("_json", "_json_frame", "_msgpack", "_msgpack_frame", "message")

    def __init__(self, message: dict[str, Any]) -> None:
        self.message = message
        self._json: str | None = None
        self._msgpack: bytes | None = None
        self._json_frame: bytes | None = None
        self._msgpack_frame: bytes | None = None

    def json_text(self) -> str:
        if self._json is None:
            self._json = encode_json(self.message)
        return self._json

    def msgpack_bytes(self) -> bytes:
        if self._msgpack is None:
            self._msgpack = encode_msgpack(self.message)
        return self._msgpack

    def encoded(self, wire: WireFormat) -> str | bytes:
        """The payload in ``wire``'s format: text for JSON, bytes for MessagePack."""
        return self.json_text() if wire is WireFormat.JSON else self.msgpack_bytes()

    def wire_bytes(self, wire: WireFormat) -> bytes:
        """The whole WebSocket frame for ``wire``: what goes to a transport as it is."""
        if wire is WireFormat.JSON:
            if self._json_frame is None:
                self._json_frame = websocket_frame(self.json_text().encode(), text=True)
            return self._json_frame
        if self._msgpack_frame is None:
            self._msgpack_frame = websocket_frame(self.msgpack_bytes(), text=False)
        return self._msgpack_frame

    def __repr__(self) -> str:
        return f"Frame({self.message.get('type')!r})"
