"""JSON encoding rules shared by storage, hashing and the wire.

One canonical form (sorted keys, no spaces, UTF-8, no NaN) is used wherever bytes must be
reproducible, because the audit hash chain is computed over it and re-checked years later.
"""

from __future__ import annotations

import json
from typing import Any

from persistence.errors import BadRequest

__all__ = ["canonical_json", "dumps", "loads"]


# Built once: ``json.dumps`` with options builds a new encoder on every call, which costs a
# short value's encoding again, several times on each write.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                              allow_nan=False).encode
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def canonical_json(value: Any) -> str:
    """Serialize so that equal values always give equal text (the hash chain depends on it)."""
    return _CANONICAL(value)


def dumps(value: Any) -> str:
    """Compact JSON; refuses NaN and infinities, which JSON cannot carry."""
    try:
        return _COMPACT(value)
    except ValueError as exc:
        raise BadRequest(f"value is not representable as JSON: {exc}") from exc


def loads(text: str | bytes) -> Any:
    return json.loads(text)
