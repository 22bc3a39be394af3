"""Incoming frames: decoding, the request envelope and field checks.

Every check raises :class:`persistence.errors.BadRequest` with a message a client developer
can act on; the session turns it into an ``error`` reply and keeps the connection open.
"""

from __future__ import annotations

import json
import re
from typing import Any

from channels.frames import decode_msgpack
from persistence.errors import BadRequest

__all__ = [
    "MAX_INT",
    "REQUEST_TYPES",
    "decode_frame",
    "optional_int",
    "request_id",
    "require_doc",
    "require_int",
    "require_str",
    "validate_presence_state",
]

REQUEST_TYPES = frozenset(
    {"heartbeat", "subscribe", "unsubscribe", "patch", "create", "presence", "lock", "unlock"}
)
MAX_ID_LENGTH = 128
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
"""A ``\\uD800``-``\\uDFFF`` escape: JSON text may spell a lone surrogate that way, which
decodes to a string no reply (nor the database) could ever encode as UTF-8."""


def decode_frame(text: str | None, data: bytes | None) -> dict[str, Any]:
    """Text frames carry JSON and binary frames MessagePack, whatever was negotiated."""
    try:
        if text is not None:
            message = json.loads(text)
        elif data is not None:
            message = decode_msgpack(data)
        else:
            raise BadRequest("empty frame")
    except BadRequest:
        raise
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"frame is not valid {'JSON' if text is not None else 'MessagePack'}: "
                         f"{exc}") from None
    except Exception as exc:  # msgpack raises a family of its own
        raise BadRequest(f"frame is not valid MessagePack: {exc}") from None
    if not isinstance(message, dict):
        raise BadRequest("a message must be a map")
    if text is not None and _SURROGATE_ESCAPE.search(text):
        # Paired surrogates decode to one character; only lone ones fail here.
        try:
            json.dumps(message, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest("frame holds a lone UTF-16 surrogate, which is not Unicode text")\
                from None
    return message


def request_id(message: dict[str, Any]) -> int | str | None:
    """The request's ``id`` if it is a usable one (integer or short string), else None."""
    value = message.get("id")
    if isinstance(value, bool):
        return None
    # An id is echoed as `re`: an integer MessagePack cannot carry would break the reply.
    if isinstance(value, int) and -(2**63) <= value < 2**64:
        return value
    if isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH:
        return value
    return None


def require_str(message: dict[str, Any], field: str, *, maximum: int = 256) -> str:
    value = message.get(field)
    if not isinstance(value, str) or not value or len(value) > maximum:
        raise BadRequest(f"{field!r} must be a non-empty string of at most {maximum} characters")
    if "\x00" in value:  # no text column of PostgreSQL can hold it
        raise BadRequest(f"{field!r} must not hold the NUL character")
    return value


def require_doc(message: dict[str, Any]) -> str:
    return require_str(message, "doc", maximum=64)


# Every integer a client sends ends up compared with a 64-bit column (seqs, versions): one
# beyond it is refused here instead of failing inside the database driver.
MAX_INT = 2**63 - 1


def require_int(message: dict[str, Any], field: str, *, minimum: int = 0) -> int:
    value = message.get(field)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_INT:
        raise BadRequest(f"{field!r} must be an integer from {minimum} to {MAX_INT}")
    return value


def optional_int(message: dict[str, Any], field: str, *, minimum: int = 0) -> int | None:
    if message.get(field) is None:
        return None
    return require_int(message, field, minimum=minimum)


PRESENCE_STATUSES = ("viewing", "editing", "idle")
MAX_PRESENCE_BYTES = 1024


def validate_presence_state(state: Any) -> dict[str, Any]:
    """A presence state: a map of at most 1 KiB as JSON; ``status`` and ``focus`` are known."""
    if not isinstance(state, dict):
        raise BadRequest("state must be a map")
    try:
        size = len(json.dumps(state, separators=(",", ":"), allow_nan=False).encode())
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"state is not JSON: {exc}") from None
    if size > MAX_PRESENCE_BYTES:
        raise BadRequest(f"state is {size} bytes as JSON; at most {MAX_PRESENCE_BYTES}")
    status = state.get("status")
    if status is not None and status not in PRESENCE_STATUSES:
        raise BadRequest(f"status must be one of {', '.join(PRESENCE_STATUSES)}")
    focus = state.get("focus")
    if focus is not None and (not isinstance(focus, str) or (focus and focus[0] != "/")):
        raise BadRequest("focus must be a JSON pointer")
    return state
