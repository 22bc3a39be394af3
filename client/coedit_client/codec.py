"""The two encodings of the WebSocket protocol: JSON in text frames, MessagePack in binary
frames. The server reads either kind whatever was negotiated, so a client only has to write
the one it asked for and read both."""

from __future__ import annotations

import enum
import json
from typing import Any

import msgpack

__all__ = ["Encoding", "decode_frame", "encode_frame"]


class Encoding(enum.Enum):
    JSON = "coedit.v1.json"
    MSGPACK = "coedit.v1.msgpack"

    @classmethod
    def of(cls, value: str | Encoding) -> Encoding:
        if isinstance(value, Encoding):
            return value
        names = {"json": cls.JSON, "msgpack": cls.MSGPACK}
        if value.lower() in names:
            return names[value.lower()]
        return cls(value)


def encode_frame(message: dict[str, Any], encoding: Encoding) -> str | bytes:
    if encoding is Encoding.MSGPACK:
        packed: bytes = msgpack.packb(message, use_bin_type=True)
        return packed
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def decode_frame(frame: str | bytes) -> dict[str, Any]:
    """A frame as a map; ``ValueError`` for anything else (the server never sends it)."""
    value: Any = (msgpack.unpackb(frame, raw=False) if isinstance(frame, bytes)
                  else json.loads(frame))
    if not isinstance(value, dict):
        raise ValueError("frame is not a map")
    return value
