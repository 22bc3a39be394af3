"""The statements of the versioned write, behind one small interface with two implementations.

:mod:`persistence.writes` decides what a batch of patches reads and writes; this module says
how that reaches the database. :class:`CoreWriteStatements` is SQLAlchemy Core on an
``AsyncConnection`` and runs on SQLite and PostgreSQL alike. On PostgreSQL the write path uses
:class:`persistence.write_sql_pg.DriverWriteStatements` instead, the same reads and writes in
plain SQL on an asyncpg connection, with every write of a batch in one statement.
``persistence.writes.write_transaction`` is the one place that chooses.

Rows come back as objects with the columns as attributes (SQLAlchemy's ``Row``, or a thin
wrapper of asyncpg's ``Record``), so the write rules never see which driver ran.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.audit import PreparedEvent, insert_events
from persistence.schema import documents, idempotency_keys, locks, revisions, snapshots

__all__ = [
    "Advance",
    "BatchRows",
    "CoreWriteStatements",
    "HeadMoved",
    "KeyRow",
    "RevisionRow",
    "WriteStatements",
]


@dataclass(frozen=True, slots=True)
class Advance:
    """A document row moving on from ``old_version``, the version the batch read."""

    id: str
    old_version: int
    old_hash: str | None  # the head the batch read, with
    old_lock_seq: int  # the lock counter it read: neither may have moved
    version: int
    state: str
    updated_by: str
    head_hash: str | None


@dataclass(frozen=True, slots=True)
class RevisionRow:
    """A version's delta; its ``event_seq`` is its event's, known once that is inserted."""

    doc: str
    version: int
    tenant: str
    ops: str
    units: str
    actor_id: str
    actor_name: str
    event: PreparedEvent


@dataclass(frozen=True, slots=True)
class KeyRow:
    doc: str
    user_id: str
    key: str
    reply: str
    replaces_expired: bool  # a row for this key exists but is past the window: replace it


@dataclass(slots=True)
class BatchRows:
    """Everything one batch writes, at one instant ``now``."""

    now: datetime
    events: list[PreparedEvent] = field(default_factory=list)
    advances: list[Advance] = field(default_factory=list)
    revisions: list[RevisionRow] = field(default_factory=list)
    snapshots: list[tuple[str, int, str]] = field(default_factory=list)  # doc, version, state
    keys: list[KeyRow] = field(default_factory=list)


class HeadMoved(Exception):
    """An optimistic batch's write found a document changed since the batch read it: nothing
    was written, and the batch may be tried again from its reads."""


class WriteStatements(Protocol):
    """The reads and the write of one batch."""

    async def read_documents(self, ids: Sequence[str]) -> Sequence[Any]:
        """The documents, in id order; locked (``FOR UPDATE``) unless the statements are
        optimistic (locking in one order, batches that lock the same documents cannot
        deadlock)."""

    async def remembered_keys(self, docs: Sequence[str], keys: Sequence[str]) -> Sequence[Any]:
        """Idempotency key rows of these documents with one of these keys, live or not."""

    async def live_locks(self, docs: Sequence[str], now: datetime) -> Sequence[Any]:
        """Edit locks on these documents that expire after ``now``."""

    async def revisions_after(self, doc: str, after: int) -> Sequence[Any]:
        """The revisions of ``doc`` after version ``after``, in version order."""

    async def store(self, rows: BatchRows) -> int | None:
        """Write the batch; fill in each event's ``seq`` in list order.

        Returns how many document rows moved on, or None where the driver cannot count
        the rows of a multi-row UPDATE. Optimistic statements raise :class:`HeadMoved`
        instead of writing anything when a document is no longer as it was read.
        """


# Built once: building a statement per call showed in profiles. The expanding parameters
# take the batch's lists, so one compiled form serves every batch.
_LOCK_DOCUMENTS = (
    select(documents)
    .where(documents.c.id.in_(bindparam("b_ids", expanding=True)))
    .order_by(documents.c.id)
    .with_for_update()
)
_REMEMBERED_KEYS = select(idempotency_keys).where(
    idempotency_keys.c.doc.in_(bindparam("b_docs", expanding=True)),
    idempotency_keys.c.key.in_(bindparam("b_keys", expanding=True)),
)
_LIVE_LOCKS = select(locks).where(
    locks.c.doc.in_(bindparam("b_docs", expanding=True)),
    locks.c.expires_at > bindparam("b_now"),
)
_REVISIONS_AFTER = (
    select(revisions)
    .where(revisions.c.doc == bindparam("b_doc"), revisions.c.version > bindparam("b_after"))
    .order_by(revisions.c.version)
)
_ADVANCE_DOCUMENT = update(documents).where(
    documents.c.id == bindparam("b_id"), documents.c.version == bindparam("b_version"))
_INSERT_REVISIONS = revisions.insert()
_INSERT_SNAPSHOTS = snapshots.insert()
# An expired row for a key may still exist (the purge runs hourly): it is replaced.
_FORGET_KEY = delete(idempotency_keys).where(
    idempotency_keys.c.doc == bindparam("b_doc"),
    idempotency_keys.c.user_id == bindparam("b_user"),
    idempotency_keys.c.key == bindparam("b_key"),
)
_REMEMBER_KEYS = idempotency_keys.insert()


class CoreWriteStatements:
    """SQLAlchemy Core, one statement (or executemany) per table.

    ``counts_multi_row_updates`` says whether the driver reports the rows an executemany
    UPDATE changed (:attr:`persistence.database.DatabaseTraits.counts_multi_row_updates`).
    """

    def __init__(self, conn: AsyncConnection, *, counts_multi_row_updates: bool) -> None:
        self.conn = conn
        self.counts_multi_row_updates = counts_multi_row_updates

    async def read_documents(self, ids: Sequence[str]) -> Sequence[Any]:
        return (await self.conn.execute(_LOCK_DOCUMENTS, {"b_ids": list(ids)})).all()

    async def remembered_keys(self, docs: Sequence[str], keys: Sequence[str]) -> Sequence[Any]:
        found = await self.conn.execute(_REMEMBERED_KEYS, {"b_docs": list(docs),
                                                           "b_keys": list(keys)})
        return found.all()

    async def live_locks(self, docs: Sequence[str], now: datetime) -> Sequence[Any]:
        return (await self.conn.execute(_LIVE_LOCKS, {"b_docs": list(docs), "b_now": now})).all()

    async def revisions_after(self, doc: str, after: int) -> Sequence[Any]:
        found = await self.conn.execute(_REVISIONS_AFTER, {"b_doc": doc, "b_after": after})
        return found.all()

    async def store(self, rows: BatchRows) -> int | None:
        conn, now = self.conn, rows.now
        await insert_events(conn, rows.events)
        params = [{
            "b_id": a.id, "b_version": a.old_version, "version": a.version, "state": a.state,
            "updated_at": now, "updated_by": a.updated_by, "head_hash": a.head_hash,
        } for a in rows.advances]
        changed = await conn.execute(_ADVANCE_DOCUMENT, params[0] if len(params) == 1 else params)
        counted = len(params) == 1 or self.counts_multi_row_updates
        await conn.execute(_INSERT_REVISIONS, [{
            "doc": r.doc, "version": r.version, "tenant": r.tenant, "ops": r.ops,
            "units": r.units, "actor_id": r.actor_id, "actor_name": r.actor_name, "ts": now,
            "event_seq": r.event.seq,
        } for r in rows.revisions])
        if rows.snapshots:
            await conn.execute(_INSERT_SNAPSHOTS, [
                {"doc": doc, "version": version, "state": state, "ts": now}
                for doc, version, state in rows.snapshots])
        if rows.keys:
            expired = [{"b_doc": k.doc, "b_user": k.user_id, "b_key": k.key}
                       for k in rows.keys if k.replaces_expired]
            if expired:
                await conn.execute(_FORGET_KEY, expired)
            await conn.execute(_REMEMBER_KEYS, [
                {"doc": k.doc, "user_id": k.user_id, "key": k.key, "reply": k.reply,
                 "created_at": now} for k in rows.keys])
        return changed.rowcount if counted else None
