"""Parameters and values several operations share, with the stores' own bounds."""

from __future__ import annotations

from persistence.document_writes import KIND_PATTERN
from server.http.contract import Param, Value, text

__all__ = ["CURSOR", "KIND", "POINTER", "cursor", "kind_filter", "limit", "path_id", "query"]

KIND = text(pattern=f"^{KIND_PATTERN.pattern}$", description="a document kind")
POINTER = text(max_length=1024, pattern="^(/[^/\\x00]*)*$",
               description="a JSON pointer: empty (the whole document) or /a/b")
CURSOR = text(max_length=1024, pattern="^[A-Za-z0-9_-]+$",
              description="the next of the previous page, as it was")


def path_id(name: str, description: str = "") -> Param:
    return Param(name, "path", text(1, 128), description=description)


def query(name: str, value: Value | None = None, description: str = "", *,
          required: bool = False) -> Param:
    return Param(name, "query", value or text(max_length=200), required=required,
                 description=description)


def limit(maximum: int) -> Param:
    return Param("limit", "query", Value("integer", minimum=1, maximum=maximum),
                 description=f"at most {maximum} per page")


def cursor() -> Param:
    return Param("cursor", "query", CURSOR, description="the next of the previous page")


def kind_filter() -> Param:
    return Param("kind", "query", KIND)
