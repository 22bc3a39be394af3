"""Reading the audit log in ``seq`` order without ever skipping a late commit.

The problem: ``seq`` comes from a sequence, drawn *before* commit. Transaction A may draw seq
10, transaction B seq 11, and B may commit first. A reader that handed out 11 and moved its
cursor past it would never see 10. Serializing commits per tenant (drawing the seq under a
lock held to commit) would cap a tenant at about one commit per WAL flush.

The technique (PostgreSQL): the column default of ``events.seq`` is a function that takes a
*shared* transaction-level advisory lock and only then draws the seq. Writers never wait on
each other for it, and every transaction that holds a seq holds the lock until it ends. A
reader reads the sequence's last value ``L`` and then the set of transactions holding the
lock; once all of those have ended, every seq up to ``L`` is final: committed and visible, or
never to appear. Transactions that take the lock later draw seqs above ``L``. The wait is the
length of the write transactions in flight (milliseconds), and :class:`SeqHorizon` shares one
computation among every concurrent caller of a node.

SQLite has one writer at a time, which commits in ``seq`` order, so every visible event is
final there.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.audit import event_from_row
from persistence.database import Database
from persistence.errors import BadRequest
from persistence.pagination import FOREIGN_CURSOR, decode_cursor, encode_cursor
from persistence.schema import events, purged_heads

__all__ = ["EventFilter", "EventLog", "SeqHorizon"]

MAX_FILTER_VALUES = 100
_TYPE_PATTERN = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)*(\.\*)?")


def _strings(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [v for v in value.split(",") if v]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise BadRequest(f"{name} must be a list of non-empty strings")
    if len(value) > MAX_FILTER_VALUES:
        raise BadRequest(f"{name} holds at most {MAX_FILTER_VALUES} values")
    return tuple(value)


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events a reader wants; empty fields match everything."""

    kinds: tuple[str, ...] = ()
    types: tuple[str, ...] = ()  # exact, or a prefix ending in ".*"
    docs: tuple[str, ...] = ()
    actors: tuple[str, ...] = ()
    ideas: tuple[str, ...] = ()
    _exact: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    _prefixes: tuple[str, ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def parse(cls, *, kinds: Any = None, types: Any = None, docs: Any = None,
              actors: Any = None, ideas: Any = None) -> EventFilter:
        type_list = _strings(types, "types")
        for entry in type_list:
            if not _TYPE_PATTERN.fullmatch(entry):
                raise BadRequest(f"event type {entry!r} is not a type or a prefix like 'lock.*'")
        return cls(
            kinds=_strings(kinds, "kinds"), types=type_list, docs=_strings(docs, "docs"),
            actors=_strings(actors, "actors"), ideas=_strings(ideas, "ideas"),
            _exact=frozenset(t for t in type_list if not t.endswith(".*")),
            _prefixes=tuple(t[:-1] for t in type_list if t.endswith(".*")),
        )

    def matches(self, event: dict[str, Any]) -> bool:
        if self.kinds and event.get("kind") not in self.kinds:
            return False
        if self.docs and event.get("doc") not in self.docs:
            return False
        if self.actors and event["actor"]["id"] not in self.actors:
            return False
        if self.ideas and event.get("idea") not in self.ideas:
            return False
        if self.types:
            kind = event["type"]
            if kind not in self._exact and not any(kind.startswith(p) for p in self._prefixes):
                return False
        return True

    def where(self, query: Select[Any]) -> Select[Any]:
        if self.kinds:
            query = query.where(events.c.kind.in_(self.kinds))
        if self.docs:
            query = query.where(events.c.doc.in_(self.docs))
        if self.actors:
            query = query.where(events.c.actor_id.in_(self.actors))
        if self.ideas:
            query = query.where(events.c.idea.in_(self.ideas))
        if self.types:
            clauses: list[ColumnElement[bool]] = []
            if self._exact:
                clauses.append(events.c.type.in_(sorted(self._exact)))
            clauses += [events.c.type.startswith(p, autoescape=True) for p in self._prefixes]
            query = query.where(or_(*clauses))
        return query


# The log's cursors carry a tag, so a cursor of a document listing (two parts too) is refused.
_CURSOR_TAG = "e"


def _position_of(cursor: str) -> int:
    tag, seq = decode_cursor(cursor, 2)
    if tag != _CURSOR_TAG or not isinstance(seq, int):
        raise BadRequest(FOREIGN_CURSOR)
    return seq


LOCK_CLASS = 1668244836  # the advisory lock of migration 0003 ("coed", 1)
LOCK_OBJECT = 1
EVERYTHING = 2**62


class SeqHorizon:
    """Answers "up to which seq is everything final?" for one database."""

    def __init__(self, db: Database, *, max_wait: float = 10.0) -> None:
        self.db = db
        self.max_wait = max_wait
        self._last_safe = 0
        self._running: asyncio.Future[int] | None = None

    async def safe_point(self) -> int:
        if self.db.traits.one_writer:  # commits come in seq order: what is visible is final
            return EVERYTHING
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._compute())
        return await asyncio.shield(self._running)

    async def _compute(self) -> int:
        async with self.db.reader() as conn:
            seq_row = (await conn.execute(
                text("SELECT last_value, is_called FROM events_seq_seq"))).one()
            await conn.commit()
            last = int(seq_row.last_value) if seq_row.is_called else 0
            holders = await self._holders(conn, None)
            deadline = asyncio.get_running_loop().time() + self.max_wait
            pause = 0.001
            while holders:
                if asyncio.get_running_loop().time() > deadline:
                    # A writer that keeps its transaction open this long holds streams back;
                    # answer what is known to be final rather than wait forever.
                    return self._last_safe
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.02)
                holders = await self._holders(conn, holders)
        self._last_safe = max(self._last_safe, last)
        return self._last_safe

    @staticmethod
    async def _holders(conn: AsyncConnection, among: list[str] | None) -> list[str]:
        query = (
            "SELECT virtualtransaction FROM pg_locks WHERE locktype = 'advisory' "
            "AND classid = :c AND objid = :o AND objsubid = 2 AND granted"
        )
        params: dict[str, Any] = {"c": LOCK_CLASS, "o": LOCK_OBJECT}
        if among is not None:
            query += " AND virtualtransaction = ANY(:among)"
            params["among"] = among
        rows = (await conn.execute(text(query), params)).scalars().all()
        await conn.commit()
        return list(rows)


class EventLog:
    """Tenant-scoped reads of the audit log for histories, pages and live streams."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.horizon = SeqHorizon(db)

    async def read(
        self, tenant: str, *, after: int, flt: EventFilter | None = None, limit: int = 500,
        until: datetime | None = None, upto: int | None = None,
    ) -> tuple[list[dict[str, Any]], int, bool]:
        """Final events after ``after`` in seq order, at most up to ``upto``.

        Returns ``(events, position, more)``: ``position`` is how far the reader may move
        its cursor (past events a filter hid too); ``more`` says a full page was read.
        """
        safe = await self.horizon.safe_point()
        if upto is not None:
            safe = min(safe, upto)
        if safe <= after:
            return [], after, False
        query = select(events).where(events.c.tenant == tenant, events.c.seq > after,
                                     events.c.seq <= safe)
        if until is not None:
            query = query.where(events.c.ts <= until)
        if flt is not None:
            query = flt.where(query)
        async with self.db.reader() as conn:
            rows = list((await conn.execute(query.order_by(events.c.seq).limit(limit))).all())
        more = len(rows) == limit
        if more:
            position = int(rows[-1].seq)
        elif safe == EVERYTHING:
            position = int(rows[-1].seq) if rows else after
        else:
            position = safe  # nothing else up to ``safe`` can ever appear
        return [event_from_row(row) for row in rows], position, more

    async def head(self, tenant: str) -> int:
        """The position a new reader starts from to get only events committed from now on."""
        safe = await self.horizon.safe_point()
        if safe != EVERYTHING:
            return safe
        async with self.db.reader() as conn:
            seq = (await conn.execute(
                select(events.c.seq).where(events.c.tenant == tenant)
                .order_by(events.c.seq.desc()).limit(1))).scalar()
        return int(seq or 0)

    async def purged_through(self, tenant: str) -> int:
        """The seq of the tenant's last event that ``archive --purge`` removed (0: none):
        a reader asking for events after a lower seq cannot be given all of them."""
        async with self.db.reader() as conn:
            seq = (await conn.execute(
                select(func.max(purged_heads.c.seq)).where(purged_heads.c.tenant == tenant)
            )).scalar()
        return int(seq or 0)

    async def page(
        self, tenant: str, *, flt: EventFilter, since: int | None, until: datetime | None,
        limit: int, cursor: str | None,
    ) -> dict[str, Any]:
        """``GET /api/events``: one page and a cursor that resumes exactly after it."""
        after = since or 0
        if cursor:
            after = max(after, _position_of(cursor))
        found, position, more = await self.read(tenant, after=after, flt=flt, limit=limit,
                                                until=until)
        page: dict[str, Any] = {"events": found,
                                "next": encode_cursor(_CURSOR_TAG, position) if more else None}
        if since is not None and not cursor:
            # As a stream says ``reset``: events after ``since`` up to this seq were purged
            # (``archive --purge``) and are only in the archive files.
            purged = await self.purged_through(tenant)
            if since < purged:
                page["purged_through"] = purged
        return page
