"""Searching a tenant's documents (docs/protocol.md section 16).

A query is split into words the way documents are (``persistence/search_index.py``). Each
query word is widened into the document words it matches: itself (exact) and, when it has
:data:`FUZZY_MIN` or more characters, every vocabulary word one edit away, found through
the shared deletion keys and confirmed by :func:`one_edit_apart`. The database then finds
the tenant's documents holding, for every query word, at least one of its words, and ranks
them; the decision of what matches is made here in Python, so both databases answer alike.

Score: per query word, 1 for matching, plus 16 when it matches in the title, plus 1 when
that best match is exact; a document's score is the sum, so any title match ranks above
state-only matches and, at equal title matches, more exact words rank higher. The API shows
it divided by its maximum (``18 * words``), so 1.0 is every word exactly in the title. Ties
go by id, and the cursor is the last item's (score, id).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, String, case, exists, func, literal, or_, select, union_all
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.database import Database
from persistence.document_reads import document_from_row
from persistence.document_writes import KIND_PATTERN
from persistence.errors import BadRequest
from persistence.jsonutil import loads
from persistence.pagination import FOREIGN_CURSOR, decode_cursor, encode_cursor, page_limit
from persistence.schema import documents, search_terms, search_words
from persistence.search_index import (
    FUZZY_MIN,
    IN_STATE,
    IN_TITLE,
    MAX_WORD,
    WORD,
    deletion_keys,
    one_edit_apart,
    strings_of,
    words_of,
)

__all__ = ["MAX_QUERY_CHARS", "MAX_QUERY_WORDS", "DocumentSearch", "SearchQuery"]

MAX_QUERY_CHARS = 200
MAX_QUERY_WORDS = 8
MAX_MATCHES = 10  # matching strings shown per document
SNIPPET_CONTEXT = 40  # characters shown on each side of the first matching word
TITLE_POINTS = 16  # more than MAX_QUERY_WORDS exact points, so titles always rank first
# A query word held by at most this many documents drives the search: only its documents
# are scored. Above it, the tiers of :func:`_page` fill the page from the top down.
RARE_POSTINGS = 1000
# Queries of up to this many words read a crowded title tier level by level
# (:func:`_title_levels`: 4**n - 2**n patterns); longer ones, whose every word must match,
# score it in full.
PATTERN_WORDS = 3

_LISTED = [c for c in documents.c if c.name != "state"]


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A checked query: its distinct words, in the order given."""

    words: tuple[str, ...]
    kind: str | None
    idea: str | None

    @classmethod
    def parse(cls, q: Any, kind: Any = None, idea: Any = None) -> SearchQuery:
        if not isinstance(q, str) or not q.strip():
            raise BadRequest("q must name at least one word")
        if len(q) > MAX_QUERY_CHARS:
            raise BadRequest(f"q must be at most {MAX_QUERY_CHARS} characters")
        words: list[str] = []
        for match in words_of_query(q):
            if match not in words:
                words.append(match)
        if not words:
            raise BadRequest("q must contain at least one word (letters or digits)")
        if len(words) > MAX_QUERY_WORDS:
            raise BadRequest(f"q may have at most {MAX_QUERY_WORDS} words")
        if kind is not None and (not isinstance(kind, str) or not KIND_PATTERN.fullmatch(kind)):
            raise BadRequest("kind must match [a-z][a-z0-9_]{0,31}")
        if idea is not None and (not isinstance(idea, str) or not 0 < len(idea) <= 36):
            raise BadRequest("idea must be the id of an idea")
        return cls(tuple(words), kind, idea)


def words_of_query(q: str) -> list[str]:
    """The query's words, case-folded; a word too long to be indexed is refused, since it
    could never match."""
    found = [m.group().casefold() for m in WORD.finditer(q)]
    too_long = [w for w in found if len(w) > MAX_WORD]
    if too_long:
        raise BadRequest(f"query words must be at most {MAX_WORD} characters")
    return found


@dataclass(frozen=True, slots=True)
class _Candidate:
    word: str  # a document word
    position: int  # the query word it matches
    exact: bool


class DocumentSearch:
    """Search over the index of one database; every call is scoped to one tenant."""

    def __init__(self, db: Database, *, rare_postings: int = RARE_POSTINGS) -> None:
        """``rare_postings``: see :data:`RARE_POSTINGS` (0 always fills pages by tiers)."""
        self.db = db
        self.rare_postings = rare_postings

    async def search(self, tenant: str, query: SearchQuery, *, limit: int | None,
                     cursor: str | None) -> dict[str, Any]:
        limit = page_limit(limit, default=20, maximum=100)
        after = _decode(cursor) if cursor else None
        async with self.db.reader() as conn:
            candidates = await _candidates(conn, query)
            rows = await _page(conn, tenant, query, candidates, after, limit + 1,
                               self.rare_postings)
            page = rows[:limit]
            states = {}
            if page:
                found_states = await conn.execute(
                    select(documents.c.id, documents.c.state)
                    .where(documents.c.id.in_([row.id for row in page])))
                states = {row.id: row.state for row in found_states}
        maximum = (TITLE_POINTS + 2) * len(query.words)
        items = [{
            "document": _listed(row),
            "score": round(row.score / maximum, 4),
            "matches": _matches(row.title, loads(states.get(row.id, "{}")), candidates),
        } for row in page]
        next_cursor = (encode_cursor(int(page[-1].score), page[-1].id)
                       if len(rows) > limit else None)
        return {"items": items, "next": next_cursor}


async def _candidates(conn: AsyncConnection, query: SearchQuery) -> list[_Candidate]:
    """Each query word itself (exact), and the vocabulary's words one edit from it."""
    candidates = [_Candidate(w, i, True) for i, w in enumerate(query.words)]
    keys = {key for w in query.words if len(w) >= FUZZY_MIN for key in deletion_keys(w)}
    if keys:
        found = await conn.execute(select(search_words.c.word).distinct()
                                   .where(search_words.c.key.in_(sorted(keys))))
        vocabulary = [row.word for row in found]
        candidates += [_Candidate(v, i, False) for i, w in enumerate(query.words)
                       if len(w) >= FUZZY_MIN for v in vocabulary if one_edit_apart(w, v)]
    return candidates


async def _page(conn: AsyncConnection, tenant: str, query: SearchQuery,
                candidates: list[_Candidate], after: tuple[int, str] | None,
                wanted: int, rare_postings: int) -> list[Row[Any]]:
    """Up to ``wanted`` ranked rows after ``after``, in three tiers that never overlap.

    Scoring every matching document is exact but reads every term of every candidate word,
    which for words found in most documents is most of the index. When one query word is
    rare (at most ``rare_postings`` documents), every result holds it, and only its
    documents are scored. Otherwise the page is filled from the top down, each tier read
    only while the page has room:

    1. documents with a title match (score at least ``n + 16``): scored in full when the
       candidates have few title terms, else level by level (:func:`_title_levels`);
    2. the densest level below: documents matching only in their states, with every query
       word that occurs in the tenant at all matched exactly (score ``n + |exact|``, the
       highest a state-only document can reach). All have one score, so they come in id
       order, and a scan in id order stops as soon as the page is full;
    3. everything scoring lower, scored in full.
    """
    n = len(query.words)
    rows: list[Row[Any]] = []
    sizes = await _posting_counts(conn, tenant, query, candidates, rare_postings)
    if min(sizes) == 0:
        return rows  # some query word matches nothing in the tenant: no tier can hold one
    rarest = sizes.index(min(sizes))
    if sizes[rarest] <= rare_postings:
        # Every result holds the rarest word: scoring only its few documents in full is
        # exact and cheap, where the tiers below would read a common word's every posting.
        t = search_terms.c
        docs = (await conn.execute(
            select(t.doc).distinct().where(t.tenant == tenant, t.word.in_(
                sorted({c.word for c in candidates if c.position == rarest}))))).scalars().all()
        return await _scored_within(conn, tenant, query, candidates, list(docs), after, wanted)
    title_floor = n + TITLE_POINTS
    if after is None or after[0] >= title_floor:
        titled = await _titled(conn, tenant, candidates, rare_postings)
        if len(titled) <= rare_postings:
            rows += await _scored_within(conn, tenant, query, candidates, titled, after,
                                         wanted, floor=title_floor)
        elif n <= PATTERN_WORDS:
            rows += await _title_levels(conn, tenant, query, candidates, after, wanted)
        else:
            rows += (await conn.execute(_ranked(tenant, query, candidates, after, wanted,
                                                floor=title_floor, titles=True))).all()
    if len(rows) >= wanted:
        return rows
    exact = await _occurring(conn, tenant, query)
    level = n + len(exact)
    if exact and (after is None or after[0] >= level):
        resume = after[1] if after is not None and after[0] == level else None
        rows += (await conn.execute(_level(tenant, query, candidates, exact, level, resume,
                                           wanted - len(rows)))).all()
        if len(rows) >= wanted:
            return rows
    # Below the level (its cursor, when it has one, lies at or above it, so only the
    # ceiling applies).
    below = level if exact else title_floor
    rows += (await conn.execute(_ranked(tenant, query, candidates, after, wanted - len(rows),
                                        ceiling=below))).all()
    return rows


async def _posting_counts(conn: AsyncConnection, tenant: str, query: SearchQuery,
                          candidates: list[_Candidate], rare_postings: int) -> list[int]:
    """Per query word, how many documents of the tenant hold one of its candidates, counted
    no further than ``rare_postings + 1``: enough to tell an absent word and a rare one from
    a common one without reading a common word's every posting."""
    t = search_terms.c
    counts = []
    for i in range(len(query.words)):
        found = (select(literal(1)).where(t.tenant == tenant, t.word.in_(
            sorted({c.word for c in candidates if c.position == i})))
            .limit(max(rare_postings, 0) + 1).subquery())
        counts.append(select(func.count()).select_from(found).scalar_subquery().label(f"w{i}"))
    return [int(count) for count in (await conn.execute(select(*counts))).one()]


async def _titled(conn: AsyncConnection, tenant: str, candidates: list[_Candidate],
                  rare_postings: int) -> list[str]:
    """The documents with a candidate in their title; all of them when they have no more
    than ``rare_postings`` title terms, else more than ``rare_postings`` of them.

    Terms, not distinct documents, are counted: ``DISTINCT`` would read every title term
    of a common word before the ``LIMIT`` could stop it."""
    t = search_terms.c
    found = (await conn.execute(
        select(t.doc).where(t.tenant == tenant, t.place != IN_STATE,
                            t.word.in_(sorted({c.word for c in candidates})))
        .limit(max(rare_postings, 0) + 1))).scalars().all()
    return list(found) if len(found) > rare_postings else sorted(set(found))


# How a query word's best match lies in a document, with its points: exact in the title,
# one edit away in the title, exact in the state only, one edit away in the state only.
_CLASSES = (("title", True, TITLE_POINTS + 2), ("title", False, TITLE_POINTS + 1),
            ("state", True, 2), ("state", False, 1))


async def _title_levels(conn: AsyncConnection, tenant: str, query: SearchQuery,
                        candidates: list[_Candidate], after: tuple[int, str] | None,
                        wanted: int) -> list[Row[Any]]:
    """The title tier level by level, for when many documents have a title match.

    A document's score is fixed by how each query word's best match lies in it (one of
    :data:`_CLASSES`), so the tier is a union of patterns, one class per word with at least
    one in the title. Patterns of equal score are read together in id order from a title
    term of the pattern, each other word checked by an index probe, and a level stops as
    soon as the page is full: a common title word no longer means scoring every document
    whose title holds it.
    """
    exact_words = {i: w for i, w in enumerate(query.words)}
    fuzzy_words = {i: sorted(c.word for c in candidates if c.position == i and not c.exact)
                   for i in range(len(query.words))}
    held = await _classes_held(conn, tenant, exact_words, fuzzy_words)
    levels: dict[int, list[tuple[tuple[str, bool], ...]]] = {}
    for pattern in itertools.product(_CLASSES, repeat=len(query.words)):
        if all(place == "state" for place, _, _ in pattern):
            continue
        if not all(held[i, place == "title", exact]
                   for i, (place, exact, _) in enumerate(pattern)):
            continue  # a class no document of the tenant can have: the pattern is empty
        score = sum(points for _, _, points in pattern)
        levels.setdefault(score, []).append(tuple((p, e) for p, e, _ in pattern))
    rows: list[Row[Any]] = []
    for score in sorted(levels, reverse=True):
        if after is not None and score > after[0]:
            continue
        resume = after[1] if after is not None and after[0] == score else None
        found = union_all(*(
            _pattern_docs(tenant, query, pattern, exact_words, fuzzy_words, resume,
                          wanted - len(rows))
            for pattern in levels[score])).subquery("found")
        page = select(found.c.doc).order_by(found.c.doc).limit(wanted - len(rows)) \
            .subquery("page")
        rows += (await conn.execute(_filtered(
            select(*_LISTED, literal(score, Integer()).label("score"))
            .join_from(page, documents, documents.c.id == page.c.doc)
            .where(documents.c.tenant == tenant), query).order_by(documents.c.id))).all()
        if len(rows) >= wanted:
            break
    return rows


async def _classes_held(conn: AsyncConnection, tenant: str, exact_words: dict[int, str],
                        fuzzy_words: dict[int, list[str]]) -> dict[tuple[int, bool, bool], bool]:
    """Per query word, in title or anywhere, exactly or one edit away: whether any document
    of the tenant holds such a term. One statement of index probes; the patterns it rules
    out would each cost a statement to find nothing (building and planning those was most
    of a crowded query's time)."""
    t = search_terms.c
    keys: list[tuple[int, bool, bool]] = []
    checks: list[Any] = []
    for i, word in exact_words.items():
        for exact, words in ((True, [word]), (False, fuzzy_words[i])):
            for title in (True, False):
                keys.append((i, title, exact))
                if not words:
                    checks.append(literal(False).label(f"c{len(checks)}"))
                    continue
                found = exists().where(t.tenant == tenant, t.word.in_(words))
                if title:
                    found = found.where(t.place != IN_STATE)
                checks.append(found.label(f"c{len(checks)}"))
    values = (await conn.execute(select(*checks))).one()
    return {key: bool(value) for key, value in zip(keys, values, strict=True)}


def _pattern_docs(tenant: str, query: SearchQuery, pattern: tuple[tuple[str, bool], ...],
                  exact_words: dict[int, str], fuzzy_words: dict[int, list[str]],
                  resume: str | None, limit: int) -> Any:
    """Up to ``limit`` documents (in id order, after ``resume``) whose query words match
    exactly as ``pattern`` says."""
    def words(i: int, exact: bool) -> list[str]:
        return [exact_words[i]] if exact else fuzzy_words[i]

    def term(doc: Any, word_list: list[str], *, title: bool) -> Any:
        t = search_terms.alias()
        found = exists().where(t.c.tenant == tenant, t.c.doc == doc,
                               t.c.word.in_(word_list) if len(word_list) > 1
                               else t.c.word == word_list[0])
        return found.where(t.c.place != IN_STATE) if title else found

    lead = next(i for i, (place, _) in enumerate(pattern) if place == "title")
    driver = search_terms.alias("driver")
    d = driver.c
    lead_words = words(lead, pattern[lead][1])
    conditions = [d.tenant == tenant, d.place != IN_STATE,
                  d.word.in_(lead_words) if len(lead_words) > 1 else d.word == lead_words[0]]
    for i, (place, exact) in enumerate(pattern):
        every = [exact_words[i], *fuzzy_words[i]]
        if place == "title":
            if i != lead:
                conditions.append(term(d.doc, words(i, exact), title=True))
            if not exact:
                conditions.append(~term(d.doc, [exact_words[i]], title=True))
        else:
            conditions.append(~term(d.doc, every, title=True))
            conditions.append(term(d.doc, words(i, exact), title=False))
            if not exact:
                conditions.append(~term(d.doc, [exact_words[i]], title=False))
    if resume is not None:
        conditions.append(d.doc > resume)
    chosen = select(d.doc).where(*conditions)
    if query.kind is not None or query.idea is not None:
        chosen = chosen.where(d.doc.in_(_filtered(
            select(documents.c.id).where(documents.c.tenant == tenant), query)))
    return select(chosen.distinct().order_by(d.doc).limit(limit).subquery().c.doc)


async def _occurring(conn: AsyncConnection, tenant: str, query: SearchQuery) -> list[int]:
    """The positions of the query words that some document of the tenant holds."""
    t = search_terms.c
    checks = [exists().where(t.tenant == tenant, t.word == word).label(f"w{i}")
              for i, word in enumerate(query.words)]
    found = (await conn.execute(select(*checks))).one()
    return [i for i in range(len(query.words)) if found[i]]


def _decode(cursor: str) -> tuple[int, str]:
    score, doc = decode_cursor(cursor, 2)
    if isinstance(score, bool) or not isinstance(score, int) or not isinstance(doc, str):
        raise BadRequest(FOREIGN_CURSOR)
    return score, doc


def _filtered(ranked: Any, query: SearchQuery) -> Any:
    if query.kind is not None:
        ranked = ranked.where(documents.c.kind == query.kind)
    if query.idea is not None:
        ranked = ranked.where(documents.c.idea == query.idea)
    return ranked


async def _scored_within(conn: AsyncConnection, tenant: str, query: SearchQuery,
                         candidates: list[_Candidate], docs: list[str],
                         after: tuple[int, str] | None, wanted: int, *,
                         floor: int = 0) -> list[Row[Any]]:
    """Up to ``wanted`` of ``docs`` scored in full, best first, scoring ``floor`` or more,
    after ``after``.

    Both the documents and the words go to the database as constant lists, so the index is
    probed once per (word, document) pair instead of reading a common word's every posting;
    the few rows found are scored here, by the same rule as :func:`_ranked`.
    """
    if not docs:
        return []
    if query.kind is not None or query.idea is not None:
        docs = list((await conn.execute(_filtered(
            select(documents.c.id).where(documents.c.tenant == tenant,
                                         documents.c.id.in_(docs)), query))).scalars().all())
    by_word: dict[str, list[_Candidate]] = {}
    for candidate in candidates:
        by_word.setdefault(candidate.word, []).append(candidate)
    t = search_terms.c
    found = await conn.execute(select(t.doc, t.word, t.place).where(
        t.tenant == tenant, t.word.in_(sorted(by_word)), t.doc.in_(docs)))
    best: dict[str, dict[int, int]] = {}
    for doc, word, place in found:
        points = TITLE_POINTS if place & IN_TITLE else 0
        per_word = best.setdefault(doc, {})
        for candidate in by_word[word]:
            value = points + (2 if candidate.exact else 1)
            if value > per_word.get(candidate.position, 0):
                per_word[candidate.position] = value
    scored = [(sum(per_word.values()), doc) for doc, per_word in best.items()
              if len(per_word) == len(query.words)]
    ranked = sorted((-score, doc) for score, doc in scored if score >= floor and (
        after is None or score < after[0] or (score == after[0] and doc > after[1])))
    page = {doc: -negated for negated, doc in ranked[:wanted]}
    if not page:
        return []
    rows: list[Row[Any]] = list((await conn.execute(  # type: ignore[arg-type]
        select(*_LISTED, case(page, value=documents.c.id).label("score"))
        .where(documents.c.tenant == tenant, documents.c.id.in_(list(page))))).all())
    return sorted(rows, key=lambda row: (-row.score, row.id))


def _ranked(tenant: str, query: SearchQuery, candidates: list[_Candidate],
            after: tuple[int, str] | None, limit: int, *, floor: int | None = None,
            ceiling: int | None = None, titles: bool = False) -> Any:
    """Documents scored in full, best first: ``floor <= score < ceiling``, after ``after``;
    with ``titles``, only documents with a title match are read."""
    wanted = union_all(*(
        select(literal(c.word, String()).label("word"),
               literal(c.position, Integer()).label("position"),
               literal(1 if c.exact else 0, Integer()).label("exact"))
        for c in candidates)).cte("wanted")
    terms = search_terms.alias("terms")
    t = terms.c
    # Per document and query word: its best match (title beats state, then exact beats not).
    in_title = t.place % 2  # IN_TITLE is the low bit of place
    best = (
        select(t.doc, wanted.c.position,
               func.max(in_title * TITLE_POINTS + wanted.c.exact + 1).label("points"))
        .join(wanted, t.word == wanted.c.word)
        .where(t.tenant == tenant))
    if titles:
        title = search_terms.c
        titled = (select(title.doc).distinct()
                  .where(title.tenant == tenant, title.place != IN_STATE,
                         title.word.in_(sorted({c.word for c in candidates})))
                  .subquery("titled"))
        best = best.where(t.doc.in_(select(titled.c.doc)))
    best_sq = best.group_by(t.doc, wanted.c.position).subquery("best")
    scored = (
        select(best_sq.c.doc, func.sum(best_sq.c.points).label("score"))
        .group_by(best_sq.c.doc)
        .having(func.count() == len(query.words))
        .subquery("scored"))
    ranked = select(scored.c.doc, scored.c.score)
    if query.kind is not None or query.idea is not None:
        ranked = ranked.where(scored.c.doc.in_(_filtered(
            select(documents.c.id).where(documents.c.tenant == tenant), query)))
    if floor is not None:
        ranked = ranked.where(scored.c.score >= floor)
    if ceiling is not None:
        ranked = ranked.where(scored.c.score < ceiling)
    if after is not None:
        score, doc = after
        ranked = ranked.where(or_(scored.c.score < score,
                                  (scored.c.score == score) & (scored.c.doc > doc)))
    # The page first, then its documents: fetching every match's row only to sort them
    # was half the time of queries that match many documents.
    page = ranked.order_by(scored.c.score.desc(), scored.c.doc).limit(limit).subquery("page")
    return (select(*_LISTED, page.c.score)
            .join_from(page, documents, documents.c.id == page.c.doc)
            .where(documents.c.tenant == tenant)
            .order_by(page.c.score.desc(), documents.c.id))


def _level(tenant: str, query: SearchQuery, candidates: list[_Candidate], exact: list[int],
           level: int, resume: str | None, limit: int) -> Any:
    """State-only documents holding the words at ``exact`` exactly and a candidate of each
    other query word, in id order (they all score ``level``)."""
    driver = search_terms.alias("driver")
    d = driver.c

    def holds(words: list[str], *, title: bool = False) -> Any:
        t = search_terms.alias()
        found = exists().where(t.c.tenant == tenant, t.c.doc == d.doc,
                               t.c.word.in_(words) if len(words) > 1 else t.c.word == words[0])
        return found.where(t.c.place != IN_STATE) if title else found

    conditions = [d.tenant == tenant, d.word == query.words[exact[0]]]
    for i, word in enumerate(query.words):
        if i == exact[0]:
            continue
        conditions.append(holds([word] if i in exact else
                                sorted(c.word for c in candidates if c.position == i)))
    conditions.append(~holds(sorted({c.word for c in candidates}), title=True))
    if resume is not None:
        conditions.append(d.doc > resume)
    ranked = _filtered(
        select(*_LISTED, literal(level, Integer()).label("score"))
        .join_from(driver, documents, documents.c.id == d.doc)
        .where(documents.c.tenant == tenant, *conditions), query)
    return ranked.order_by(d.doc).limit(limit)


def _listed(row: Row[Any]) -> dict[str, Any]:
    document = document_from_row(row, state={})
    del document["state"]
    return document


def _matches(title: str, state: Any, candidates: list[_Candidate]) -> list[dict[str, str]]:
    """The title and the strings of the state that hold a matching word, each with a snippet
    around its first one."""
    words = {c.word for c in candidates}
    found: list[dict[str, str]] = []
    for path, text in [("/title", title), *strings_of(state)]:
        # Case folding maps character by character, so a string holding a matching word
        # holds it as a substring of its folded form: a test at C speed that spares the
        # word-by-word scan of most strings (it was a fifth of a query's time).
        folded = text.casefold()
        if not any(word in folded for word in words):
            continue
        for match, word in words_of(text):
            if word in words:
                found.append({"path": path, "snippet": _snippet(text, match.start(),
                                                                 match.end())})
                break
        if len(found) >= MAX_MATCHES:
            break
    return found


def _snippet(text: str, start: int, end: int) -> str:
    """The text around ``text[start:end]``, cut at word boundaries where it is long."""
    left = max(0, start - SNIPPET_CONTEXT)
    right = min(len(text), end + SNIPPET_CONTEXT)
    if left > 0:
        space = text.find(" ", left, start)
        left = space + 1 if space != -1 else left
    if right < len(text):
        space = text.rfind(" ", end, right)
        right = space if space != -1 else right
    snippet = " ".join(text[left:right].split())
    return ("…" if left > 0 else "") + snippet + ("…" if right < len(text) else "")
