"""Keyset pages: the opaque cursor every paginated read hands out, and the page size.

A cursor is the key of the last item a page showed, as a JSON list in unpadded URL-safe
base64. Clients treat it as opaque; the server reads back only cursors it issued, so
anything else (truncated, edited, of another resource) is a ``bad_request``, never an
internal error.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from persistence.errors import BadRequest
from persistence.jsonutil import dumps, loads

__all__ = ["FOREIGN_CURSOR", "decode_cursor", "encode_cursor", "page_limit"]

# The one answer to any cursor this server did not issue, whatever is wrong with it.
FOREIGN_CURSOR = "cursor is not one this server issued"


def encode_cursor(*parts: Any) -> str:
    """The cursor that resumes after the item whose key is ``parts`` (JSON values)."""
    return base64.urlsafe_b64encode(dumps(list(parts)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    """The ``arity`` key parts of a cursor :func:`encode_cursor` made; ``bad_request``
    otherwise. The caller checks the parts' types (raising ``BadRequest(FOREIGN_CURSOR)``)."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error) as exc:
        raise BadRequest(FOREIGN_CURSOR) from exc
    if not isinstance(parts, list) or len(parts) != arity:
        raise BadRequest(FOREIGN_CURSOR)
    return parts


def page_limit(limit: int | None, *, default: int = 100, maximum: int = 1000) -> int:
    """The page size a reader asked for, ``default`` when it did not say."""
    if limit is None:
        return default
    if limit < 1 or limit > maximum:
        raise BadRequest(f"limit must be between 1 and {maximum}")
    return limit
