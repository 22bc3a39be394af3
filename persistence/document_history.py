"""A tenant's document as it was: the versions after one (to fill a gap or catch up), the
state at an earlier version or time, and the document's audit events.

To rebuild version ``v`` the nearest snapshot at or below it is replayed forward: a snapshot is
stored at version 1 and at every multiple of the snapshot interval, so that is at most N-1
revisions. History retention (``persistence/history_retention.py``) may have cut a document's
history at a *floor*, where it leaves a snapshot: versions below it answer ``not_found`` with
``retained_from``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Row

from persistence.audit import event_from_row, verify_rows
from persistence.database import Database
from persistence.document_reads import DocumentReads, document_from_row, select_document
from persistence.errors import BadRequest, NotFound
from persistence.facts import Delta
from persistence.history_retention import floor_of
from persistence.jsonutil import loads
from persistence.pagination import FOREIGN_CURSOR, decode_cursor, encode_cursor, page_limit
from persistence.patching import apply_ops
from persistence.schema import events, purged_heads, revisions, snapshots
from persistence.timeutil import format_ts
from persistence.writes import delta_from_revision

__all__ = ["DocumentHistory"]


def _before_floor(doc_id: str, floor: int, asked: str) -> NotFound:
    """History retention removed what was asked for: say so, and from where history is kept."""
    return NotFound(f"the history of document {doc_id!r} before version {floor} is no longer "
                    f"kept (history retention); {asked} cannot be replayed",
                    retained_from=floor)


class DocumentHistory:
    """The past of the documents of one database; every method is scoped to one tenant.

    ``current`` answers whether a document of the tenant exists before its events are read.
    """

    def __init__(self, db: Database, current: DocumentReads) -> None:
        self.db = db
        self.current = current

    # -- versions (gap reads, catch-up) -----------------------------------------------------

    async def deltas_since(
        self, tenant: str, doc_id: str, since: int, until: int | None = None
    ) -> list[Delta] | None:
        """Deltas ``since < version <= until`` in order, or None when the log has a hole."""
        query = select(revisions).where(
            revisions.c.doc == doc_id, revisions.c.tenant == tenant, revisions.c.version > since
        )
        if until is not None:
            query = query.where(revisions.c.version <= until)
        async with self.db.reader() as conn:
            rows = (await conn.execute(query.order_by(revisions.c.version))).all()
        expected = since + 1
        for row in rows:
            if row.version != expected:
                return None
            expected += 1
        if until is not None and expected != until + 1:
            return None
        return [delta_from_revision(tenant, row) for row in rows]

    # -- time travel ----------------------------------------------------------------------

    async def state_at(
        self, tenant: str, doc_id: str, *, version: int | None = None, at: datetime | None = None
    ) -> dict[str, Any]:
        """The document as it was at ``version`` (or at time ``at``), replayed from the nearest
        snapshot at or below it."""
        async with self.db.reader() as conn:
            head = (await conn.execute(select_document(tenant, doc_id))).first()
            if head is None:
                raise NotFound(f"no document {doc_id!r}")
            floor = await floor_of(conn, doc_id)
            if at is not None:
                found = (
                    await conn.execute(
                        select(revisions.c.version, revisions.c.ts)
                        .where(revisions.c.doc == doc_id, revisions.c.ts <= at)
                        .order_by(revisions.c.version.desc())
                        .limit(1)
                    )
                ).first()
                if found is None:
                    if floor > 1:
                        raise _before_floor(doc_id, floor, f"at {format_ts(at)}")
                    raise NotFound(f"document {doc_id!r} did not exist at {format_ts(at)}")
                version = found.version
            if version is None:
                version = head.version
            if version < 1 or version > head.version:
                raise NotFound(f"document {doc_id!r} has no version {version}")
            if version < floor:
                raise _before_floor(doc_id, floor, f"version {version}")
            snap = (
                await conn.execute(
                    select(snapshots.c.version, snapshots.c.state)
                    .where(snapshots.c.doc == doc_id, snapshots.c.version <= version)
                    .order_by(snapshots.c.version.desc())
                    .limit(1)
                )
            ).first()
            if snap is None:
                raise NotFound(f"document {doc_id!r} cannot be replayed to version {version}")
            steps = (
                await conn.execute(
                    select(revisions)
                    .where(revisions.c.doc == doc_id, revisions.c.version > snap.version,
                           revisions.c.version <= version)
                    .order_by(revisions.c.version)
                )
            ).all()
        if len(steps) != version - snap.version:
            raise NotFound(f"the log of {doc_id!r} cannot serve version {version}")
        state = loads(snap.state)
        for step in steps:
            state = apply_ops(state, loads(step.ops))
        document = document_from_row(head, state) | {"version": version}
        if version != head.version:
            made = steps[-1] if steps else None
            if made is None:
                made = await self._revision_row(doc_id, version)
            if made is not None:
                document["updated_at"] = format_ts(made.ts)
                document["updated_by"] = made.actor_id
        return document

    async def _revision_row(self, doc_id: str, version: int) -> Row[Any] | None:
        async with self.db.reader() as conn:
            return (
                await conn.execute(
                    select(revisions).where(revisions.c.doc == doc_id,
                                            revisions.c.version == version)
                )
            ).first()

    # -- audit reads ----------------------------------------------------------------------

    async def history(
        self, tenant: str, doc_id: str, *, since: int | None = None, limit: int | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """One document's events in ``seq`` order; ``next`` resumes after the last one."""
        await self.current.kind_of(tenant, doc_id)
        limit = page_limit(limit)
        after = since or 0
        if cursor:
            (last_seq,) = decode_cursor(cursor, 1)
            if not isinstance(last_seq, int):
                raise BadRequest(FOREIGN_CURSOR)
            after = max(after, last_seq)
        query = (
            select(events)
            .where(events.c.doc == doc_id, events.c.tenant == tenant, events.c.seq > after)
            .order_by(events.c.seq)
            .limit(limit + 1)
        )
        async with self.db.reader() as conn:
            rows = (await conn.execute(query)).all()
        items = [event_from_row(row) for row in rows[:limit]]
        next_cursor = encode_cursor(items[-1]["seq"]) if len(rows) > limit else None
        return {"events": items, "next": next_cursor}

    async def verify(self, tenant: str, doc_id: str) -> dict[str, Any]:
        """Recompute the document's hash chain from its first live event, linked to the last
        purged one if ``archive --purge`` removed its start."""
        await self.current.kind_of(tenant, doc_id)
        async with self.db.reader() as conn:
            purged = (await conn.execute(
                select(purged_heads.c.seq, purged_heads.c.hash)
                .where(purged_heads.c.chain == doc_id, purged_heads.c.tenant == tenant)
            )).first()
            rows = (
                await conn.execute(
                    select(events).where(events.c.doc == doc_id).order_by(events.c.seq)
                )
            ).all()
        return verify_rows(list(rows), after=(int(purged.seq), purged.hash) if purged else None)
