"""The search index: which words a document holds, and how the index follows its writes.

Two tables (``persistence/schema.py``): ``search_terms`` lists every distinct word of each
document with where it occurs (title, state, or both), and ``search_words`` maps every word
of four or more characters, and each of its deletion neighbours (the word with one character
left out), to that word. Two words are one edit apart (insert, delete, substitute, or swap of
two neighbours) only if they share such a key, so a query word's keys find every word of
the vocabulary that may be one edit away; :func:`one_edit_apart` then decides exactly.

Every path that changes a document's title or state keeps the index current in its own
transaction: creation inserts the document's terms, the versioned write passes the
:class:`IndexChanges` between the state it read and the state it wrote to its statements
(``persistence/write_sql.py``, ``persistence/write_sql_pg.py``). A write that changes a few
words writes a few rows. ``search_words`` only grows: a word no document holds any more
finds no terms, which costs a lookup and changes no answer.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert

from persistence.schema import search_terms, search_words

__all__ = [
    "FUZZY_MIN",
    "IN_STATE",
    "IN_TITLE",
    "MAX_WORD",
    "WORD",
    "IndexChanges",
    "apply_changes",
        "deletion_keys",
    "document_words",
    "holds_words",
    "insert_ignoring",
    "new_document_changes",
    "one_edit_apart",
    "strings_of",
    "text_words",
    "words_of",
]

# Where a word occurs in a document: a bit each, so one row says "title and state".
IN_TITLE = 1
IN_STATE = 2
# Longer tokens (hashes, URLs run together) are not words anyone searches for.
MAX_WORD = 40
# A query word this long or longer also matches document words one edit away.
FUZZY_MIN = 5

# A word: a run of letters and digits (Unicode), compared case-folded.
WORD = re.compile(r"[^\W_]+")

Term = tuple[str, str, str, int]  # (tenant, word, doc, place)


def words_of(text: str) -> Iterator[tuple[re.Match[str], str]]:
    """Every word of ``text`` (a run of letters and digits) short enough to be indexed, with
    its place in ``text`` and its indexed (case-folded) form."""
    for match in WORD.finditer(text):
        word = match.group().casefold()
        if len(word) <= MAX_WORD:
            yield match, word


def strings_of(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string anywhere in a JSON value, with its JSON pointer."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings_of(item, f"{path}/{_escape(str(key))}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from strings_of(item, f"{path}/{index}")


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


def text_words(text: str) -> frozenset[str]:
    """The distinct indexed words of ``text``: what :func:`words_of` yields, found faster
    (the write path runs this over the whole state before and after every write)."""
    if len(text) <= _CACHED_TEXT:
        return _cached_text_words(text)
    return _text_words(text)


def _text_words(text: str) -> frozenset[str]:
    return frozenset(word for match in WORD.finditer(text)
                     if len(word := match.group().casefold()) <= MAX_WORD)


# A write changes a few strings of a state and leaves the others as they were: the words of
# those are remembered rather than found again (strings up to 16 KiB, so the cache stays
# within a few tens of MiB).
_CACHED_TEXT = 16 * 1024
_cached_text_words = functools.lru_cache(maxsize=2048)(_text_words)


def document_words(title: str, state: Any) -> dict[str, int]:
    """Each distinct word of a document and where it occurs (``IN_TITLE | IN_STATE``)."""
    places = dict.fromkeys(text_words(title), IN_TITLE)
    for _, text in strings_of(state):
        for word in text_words(text):
            places[word] = places.get(word, 0) | IN_STATE
    return places


def holds_words(value: Any) -> bool:
    """Whether any string anywhere in ``value`` holds an indexed word."""
    return any(text_words(text) for _, text in strings_of(value))


def deletion_keys(word: str) -> set[str]:
    """The word and every word made by leaving one of its characters out."""
    keys = {word}
    keys.update(word[:i] + word[i + 1:] for i in range(len(word)))
    return keys


def one_edit_apart(a: str, b: str) -> bool:
    """Whether ``b`` is ``a`` with one character inserted, deleted or substituted, or two
    neighbours swapped (optimal string alignment distance exactly 1)."""
    if a == b:
        return False
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diffs = [i for i in range(la) if a[i] != b[i]]
        if len(diffs) == 1:
            return True
        return (len(diffs) == 2 and diffs[1] == diffs[0] + 1
                and a[diffs[0]] == b[diffs[1]] and a[diffs[1]] == b[diffs[0]])
    short, long_ = (a, b) if la < lb else (b, a)
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    return short[i:] == long_[i + 1:]


def _vocabulary_rows(words: Iterator[str] | list[str]) -> set[tuple[str, str]]:
    rows: set[tuple[str, str]] = set()
    for word in words:
        # A document word one edit from a query word of FUZZY_MIN letters has at least one
        # fewer; shorter words only ever match exactly and need no keys.
        if len(word) >= FUZZY_MIN - 1:
            rows.update((key, word) for key in deletion_keys(word))
    return rows


@dataclass(slots=True)
class IndexChanges:
    """The rows of the index one transaction removes and adds, sorted so that concurrent
    transactions take their row locks in one order."""

    removed: list[Term] = field(default_factory=list)
    added: list[Term] = field(default_factory=list)
    vocabulary: list[tuple[str, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.removed or self.added or self.vocabulary)

    def extend(self, tenant: str, doc: str, before: Mapping[str, int],
               after: Mapping[str, int]) -> None:
        """Add what turns ``before`` (a document's words) into ``after``."""
        self.removed.extend((tenant, w, doc, p) for w, p in before.items()
                            if after.get(w) != p)
        self.added.extend((tenant, w, doc, p) for w, p in after.items() if before.get(w) != p)
        # Words new to this document may be new to the vocabulary (inserting an existing
        # key is a no-op).
        self.vocabulary.extend(_vocabulary_rows([w for w in after if w not in before]))

    def sort(self) -> IndexChanges:
        self.removed.sort()
        self.added.sort()
        self.vocabulary = sorted(set(self.vocabulary))
        return self


def new_document_changes(tenant: str, doc: str, title: str, state: Any) -> IndexChanges:
    """The index rows of a document that is not indexed yet."""
    changes = IndexChanges()
    changes.extend(tenant, doc, {}, document_words(title, state))
    return changes.sort()


def insert_ignoring(table: Table, dialect_name: str) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING`` in the running database's dialect."""
    if dialect_name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


async def apply_changes(conn: AsyncConnection, changes: IndexChanges) -> None:
    """Write ``changes`` with SQLAlchemy Core on the caller's transaction."""
    dialect = conn.dialect.name
    c = search_terms.c
    if changes.removed:
        await conn.execute(
            search_terms.delete().where(
                c.tenant == bindparam("r_tenant"), c.word == bindparam("r_word"),
                c.doc == bindparam("r_doc"), c.place == bindparam("r_place")),
            [{"r_tenant": t, "r_word": w, "r_doc": d, "r_place": p}
             for t, w, d, p in changes.removed])
    if changes.added:
        await conn.execute(insert_ignoring(search_terms, dialect), [
            {"tenant": t, "word": w, "doc": d, "place": p} for t, w, d, p in changes.added])
    if changes.vocabulary:
        await conn.execute(insert_ignoring(search_words, dialect), [
            {"key": k, "word": w} for k, w in changes.vocabulary])
