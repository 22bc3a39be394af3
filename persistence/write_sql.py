"""The versioned write's statements in SQLAlchemy Core, one statement (or executemany) per
table.

They run on SQLite and PostgreSQL alike; on PostgreSQL the write path uses
:class:`persistence.write_sql_pg.DriverWriteStatements` instead (see
:mod:`persistence.batch_commit`, which chooses), so here they serve SQLite, where a batch holds
the database's write lock from its first read and nothing can move under it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Table, bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.audit import insert_events
from persistence.schema import documents, idempotency_keys, locks, revisions, snapshots
from persistence.search_index import apply_changes
from persistence.write_statements import (
    BatchRows,
    DocumentRow,
    LockRow,
    RememberedKey,
    Revision,
)

__all__ = ["CoreWriteStatements"]


def _columns(table: Table, names: tuple[str, ...]) -> Select[Any]:
    """``select`` of the columns a row type names, in its order (so its ``_make`` fits)."""
    return select(*(table.c[name] for name in names))


# Built once: building a statement per call showed in profiles. The expanding parameters
# take the batch's lists, so one compiled form serves every batch.
_LOCK_DOCUMENTS = (
    _columns(documents, DocumentRow._fields)
    .where(documents.c.id.in_(bindparam("b_ids", expanding=True)))
    .order_by(documents.c.id)
    .with_for_update()
)
_REMEMBERED_KEYS = _columns(idempotency_keys, RememberedKey._fields).where(
    idempotency_keys.c.doc.in_(bindparam("b_docs", expanding=True)),
    idempotency_keys.c.key.in_(bindparam("b_keys", expanding=True)),
)
_LIVE_LOCKS = _columns(locks, LockRow._fields).where(
    locks.c.doc.in_(bindparam("b_docs", expanding=True)),
    locks.c.expires_at > bindparam("b_now"),
)
_REVISIONS_AFTER = (
    _columns(revisions, Revision._fields)
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
    """SQLAlchemy Core on the caller's transaction.

    ``counts_multi_row_updates`` says whether the driver reports the rows an executemany
    UPDATE changed (:attr:`persistence.database.DatabaseTraits.counts_multi_row_updates`).
    """

    def __init__(self, conn: AsyncConnection, *, counts_multi_row_updates: bool) -> None:
        self.conn = conn
        self.counts_multi_row_updates = counts_multi_row_updates

    async def read_documents(self, ids: Sequence[str]) -> list[DocumentRow]:
        found = await self.conn.execute(_LOCK_DOCUMENTS, {"b_ids": list(ids)})
        return [DocumentRow._make(row) for row in found]

    async def remembered_keys(self, docs: Sequence[str],
                              keys: Sequence[str]) -> list[RememberedKey]:
        found = await self.conn.execute(_REMEMBERED_KEYS, {"b_docs": list(docs),
                                                           "b_keys": list(keys)})
        return [RememberedKey._make(row) for row in found]

    async def live_locks(self, docs: Sequence[str], now: datetime) -> list[LockRow]:
        found = await self.conn.execute(_LIVE_LOCKS, {"b_docs": list(docs), "b_now": now})
        return [LockRow._make(row) for row in found]

    async def revisions_after(self, doc: str, after: int) -> list[Revision]:
        found = await self.conn.execute(_REVISIONS_AFTER, {"b_doc": doc, "b_after": after})
        return [Revision._make(row) for row in found]

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
                {"doc": s.doc, "version": s.version, "state": s.state, "ts": now}
                for s in rows.snapshots])
        if rows.keys:
            expired = [{"b_doc": k.doc, "b_user": k.user_id, "b_key": k.key}
                       for k in rows.keys if k.replaces_expired]
            if expired:
                await conn.execute(_FORGET_KEY, expired)
            await conn.execute(_REMEMBER_KEYS, [
                {"doc": k.doc, "user_id": k.user_id, "key": k.key, "reply": k.reply,
                 "created_at": now} for k in rows.keys])
        if rows.index:  # search: the index follows the states written, in this transaction
            await apply_changes(conn, rows.index)
        return changed.rowcount if counted else None
