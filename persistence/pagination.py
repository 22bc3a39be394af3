"""Keyset pages: the opaque cursor every paginated read hands out, and the page size.

A cursor is the key of the last item a page showed, as a JSON list in unpadded URL-safe
base64. Clients treat it as opaque; the server reads back only cursors it issued, so
anything else (truncated, edited, of another resource) is a ``bad_request``, never an
internal error.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_
from sqlalchemy.engine import Row

from persistence.errors import BadRequest
from persistence.jsonutil import dumps, loads

__all__ = [
    "FOREIGN_CURSOR",
    "decode_cursor",
    "encode_cursor",
    "newest_first",
    "page_limit",
    "page_of",
]

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


def newest_first(query: Select[Any], created: ColumnElement[Any], ident: ColumnElement[Any],
                 cursor: str | None, limit: int) -> Select[Any]:
    """``query`` ordered newest first on (``created``, ``ident``), resuming after ``cursor``,
    one row more than the page so :func:`page_of` can tell whether another page follows.
    Keyed on both columns, pages never shift when rows are added meanwhile."""
    if cursor:
        created_text, last_id = decode_cursor(cursor, 2)
        try:
            after = datetime.fromisoformat(str(created_text).replace("Z", "+00:00"))
        except ValueError as exc:
            raise BadRequest(FOREIGN_CURSOR) from exc
        query = query.where(or_(created < after, and_(created == after, ident < str(last_id))))
    return query.order_by(created.desc(), ident.desc()).limit(limit + 1)


def page_of(rows: Sequence[Row[Any]], limit: int,
            shape: Callable[[Row[Any]], dict[str, Any]]) -> dict[str, Any]:
    """The ``{"items","next"}`` page of rows read by :func:`newest_first` (rows carry
    ``created_at`` and ``id``)."""
    items = [shape(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor(last.created_at.isoformat(), last.id)
    return {"items": items, "next": next_cursor}
