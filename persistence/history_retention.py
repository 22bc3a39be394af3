"""History retention: revisions and snapshots older than a cut-off leave the database.

Every write keeps a revision (its real ops, for catch-up, rebase and time travel) and every
N-th one a snapshot, so both grow with every write forever. Retention gives each document a
*floor*: the version that was current at the cut-off. A snapshot of the floor is written
(replayed from the nearest older snapshot), then the revisions and snapshots below it are
deleted in the same transaction, and the floor is recorded. Every version from the floor up
still replays exactly as before; an older one answers ``not_found`` naming the floor, and a
subscriber resuming from below it gets ``reset`` (the gap can no longer be served). The
database refuses to delete a revision at or above its document's floor.

The audit log is untouched: it keeps every event (redacted) until ``archive`` moves it out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.database import Database
from persistence.jsonutil import canonical_json, loads
from persistence.patching import apply_ops
from persistence.schema import documents, history_floors, revisions, snapshots
from persistence.timeutil import utcnow

__all__ = ["HistoryRetention", "RetentionResult", "floor_of"]


@dataclass(slots=True)
class RetentionResult:
    documents: int = 0
    revisions: int = 0
    snapshots: int = 0


async def floor_of(conn: AsyncConnection, doc: str) -> int:
    """The oldest version of ``doc`` that can still be replayed (1 when nothing was cut)."""
    found = (await conn.execute(
        select(history_floors.c.version).where(history_floors.c.doc == doc))).scalar()
    return int(found or 1)


class HistoryRetention:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def prune(
        self, *, older_than: timedelta, now: datetime | None = None
    ) -> RetentionResult:
        """Cut every document's history at the version current ``older_than`` ago."""
        cutoff = (now or utcnow()) - older_than
        async with self.db.reader() as conn:
            candidates = (await conn.execute(
                select(revisions.c.doc, func.max(revisions.c.version))
                .where(revisions.c.ts < cutoff)
                .group_by(revisions.c.doc)
            )).all()
        result = RetentionResult()
        for doc, floor in candidates:
            cut = await self._cut(doc, int(floor))
            if cut is not None:
                result.documents += 1
                result.revisions += cut[0]
                result.snapshots += cut[1]
        return result

    async def _cut(self, doc: str, floor: int) -> tuple[int, int] | None:
        async with self.db.transaction() as conn:
            head = (await conn.execute(
                select(documents.c.tenant).where(documents.c.id == doc))).first()
            if head is None or floor <= await floor_of(conn, doc):
                return None
            made = (await conn.execute(
                select(revisions.c.ts).where(revisions.c.doc == doc,
                                             revisions.c.version == floor))).scalar_one()
            kept = (await conn.execute(
                select(snapshots.c.version).where(snapshots.c.doc == doc,
                                                  snapshots.c.version == floor))).first()
            if kept is None:
                await conn.execute(insert(snapshots).values(
                    doc=doc, version=floor, state=await _replay(conn, doc, floor), ts=made))
            old_floor = await conn.execute(
                update(history_floors).where(history_floors.c.doc == doc)
                .values(version=floor, ts=made))
            if not old_floor.rowcount:
                await conn.execute(insert(history_floors).values(
                    doc=doc, tenant=head.tenant, version=floor, ts=made))
            gone_revisions = (await conn.execute(
                delete(revisions).where(revisions.c.doc == doc, revisions.c.version < floor)
            )).rowcount
            gone_snapshots = (await conn.execute(
                delete(snapshots).where(snapshots.c.doc == doc, snapshots.c.version < floor)
            )).rowcount
        return int(gone_revisions or 0), int(gone_snapshots or 0)


async def _replay(conn: AsyncConnection, doc: str, version: int) -> str:
    """The state of ``doc`` at ``version`` as stored text, from the nearest older snapshot."""
    snap = (await conn.execute(
        select(snapshots.c.version, snapshots.c.state)
        .where(snapshots.c.doc == doc, snapshots.c.version <= version)
        .order_by(snapshots.c.version.desc()).limit(1))).one()
    steps = (await conn.execute(
        select(revisions.c.ops).where(revisions.c.doc == doc, revisions.c.version > snap.version,
                                      revisions.c.version <= version)
        .order_by(revisions.c.version))).all()
    state: Any = loads(snap.state)
    for step in steps:
        state = apply_ops(state, loads(step.ops))
    return canonical_json(state)
