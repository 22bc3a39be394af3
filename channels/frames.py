"""Outgoing messages, encoded at most once per wire format however many sockets get them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import Enum
from typing import Any, Protocol

import msgpack

__all__ = [
    "Encoded",
    "Frame",
    "WireFormat",
    "decode_msgpack",
    "encode_json",
    "encode_msgpack",
    "server_sent_event",
    "websocket_frame",
    "websocket_header",
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
    return websocket_header(len(payload), text=text) + payload


def websocket_header(size: int, *, text: bool) -> bytes:
    """The header of a frame of ``size`` payload bytes (see :func:`websocket_frame`)."""
    first = 0x81 if text else 0x82  # FIN + text or binary opcode
    if size < 126:
        return bytes((first, size))
    if size < 1 << 16:
        return bytes((first, 126)) + size.to_bytes(2, "big")
    return bytes((first, 127)) + size.to_bytes(8, "big")


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


class Encoded(Protocol):
    """A value that keeps its own encodings, to be spliced into many frames as it is."""

    def json_bytes(self) -> bytes: ...

    def msgpack_bytes(self) -> bytes: ...


class Frame:
    """One message for one or many connections, with its encodings cached.

    A delta fanned out to 200 subscribers is serialized once per wire format in use, not
    200 times; the cache is filled by the first socket that needs each format.

    ``tail`` is one more field of the message, a list whose items bring their encodings
    (presence entries, listed again in every subscribe reply): their texts are joined
    into the frame, not encoded again. ``message`` holds the other fields.
    """

    __slots__ = ("_json", "_json_frame", "_msgpack", "_msgpack_frame", "_tail", "message")

    def __init__(self, message: dict[str, Any],
                 tail: tuple[str, Sequence[Encoded]] | None = None) -> None:
        self.message = message
        self._tail = tail
        self._json: str | None = None
        self._msgpack: bytes | None = None
        self._json_frame: bytes | None = None
        self._msgpack_frame: bytes | None = None

    def json_text(self) -> str:
        if self._json is None:
            if self._tail is None:
                self._json = encode_json(self.message)
            else:
                self._json = b"".join(self._json_parts()).decode()
        return self._json

    def _json_parts(self) -> list[bytes]:
        """The JSON of a message with a tail, in pieces to be joined once: a reply listing
        10,000 sessions is 2 MB, and each copy of it costs."""
        assert self._tail is not None
        key, items = self._tail
        head = encode_json(self.message).encode()
        # The message is a JSON object: the field goes in before its closing brace.
        listed = b",".join([item.json_bytes() for item in items])
        return [head[:-1], b"," if len(head) > 2 else b"", encode_json(key).encode(), b":[",
                listed, b"]}"]

    def msgpack_bytes(self) -> bytes:
        if self._msgpack is None:
            if self._tail is None:
                self._msgpack = encode_msgpack(self.message)
            else:
                key, items = self._tail
                packer = msgpack.Packer(use_bin_type=True)
                parts = [packer.pack_map_header(len(self.message) + 1)]
                for name, value in self.message.items():
                    parts += (packer.pack(name), packer.pack(value))
                parts += (packer.pack(key), packer.pack_array_header(len(items)))
                parts += [item.msgpack_bytes() for item in items]
                self._msgpack = b"".join(parts)
        return self._msgpack

    def encoded(self, wire: WireFormat) -> str | bytes:
        """The payload in ``wire``'s format: text for JSON, bytes for MessagePack."""
        return self.json_text() if wire is WireFormat.JSON else self.msgpack_bytes()

    def wire_bytes(self, wire: WireFormat) -> bytes:
        """The whole WebSocket frame for ``wire``: what goes to a transport as it is."""
        if wire is WireFormat.JSON:
            if self._json_frame is None:
                if self._tail is None:
                    self._json_frame = websocket_frame(self.json_text().encode(), text=True)
                else:
                    parts = self._json_parts()
                    size = sum(map(len, parts))
                    self._json_frame = b"".join([websocket_header(size, text=True), *parts])
            return self._json_frame
        if self._msgpack_frame is None:
            self._msgpack_frame = websocket_frame(self.msgpack_bytes(), text=False)
        return self._msgpack_frame

    def __repr__(self) -> str:
        return f"Frame({self.message.get('type')!r})"
