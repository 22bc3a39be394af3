"""Matching the words of a short query against a name: what listings of ideas and workflow
templates filter by (``q``). Each word must begin a word of the name; ``%``, ``_`` and ``\\``
in a query are literal characters, escaped by SQLAlchemy rather than by hand."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func

from persistence.errors import BadRequest

__all__ = ["query_words", "starts_a_word"]

MAX_WORDS = 10


def query_words(q: str, max_chars: int) -> list[str]:
    """The lower-cased words of ``q`` (at most ten); ``bad_request`` for none or too long."""
    words = q.lower().split()
    if not words or len(q) > max_chars:
        raise BadRequest(f"q must hold words, at most {max_chars} characters")
    return words[:MAX_WORDS]


def starts_a_word(text: ColumnElement[Any], word: str) -> ColumnElement[bool]:
    """Whether ``word`` (lower case) begins a word of ``text``, case-insensitively."""
    return func.lower(" " + text).contains(" " + word, autoescape=True)
