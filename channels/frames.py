"""Outgoing messages, encoded at most once per wire format however many sockets get them."""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

import msgpack

__all__ = ["Frame", "WireFormat", "decode_msgpack", "encode_json", "encode_msgpack"]


class WireFormat(Enum):
    """The two subprotocols of PROTOCOL.md section 3."""

    JSON = "coedit.v1.json"
    MSGPACK = "coedit.v1.msgpack"


def encode_json(message: Any) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode_msgpack(message: Any) -> bytes:
    return msgpack.packb(message, use_bin_type=True)  # type: ignore[no-any-return]


def decode_msgpack(data: bytes) -> Any:
    # strict_map_key=False: the protocol uses string keys, but a peer's bad map must become
    # a bad_request from validation, not an exception from the decoder.
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


class Frame:
    """One message for one or many connections, with its encodings cached.

    A delta fanned out to 200 subscribers is serialized once per wire format in use, not
    200 times; the cache is filled by the first socket that needs each format.
    """

    __slots__ = ("_json", "_msgpack", "message")

    def __init__(self, message: dict[str, Any]) -> None:
        self.message = message
        self._json: str | None = None
        self._msgpack: bytes | None = None

    def encoded(self, wire: WireFormat) -> str | bytes:
        if wire is WireFormat.JSON:
            if self._json is None:
                self._json = encode_json(self.message)
            return self._json
        if self._msgpack is None:
            self._msgpack = encode_msgpack(self.message)
        return self._msgpack

    def __repr__(self) -> str:
        return f"Frame({self.message.get('type')!r})"
