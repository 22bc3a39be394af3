"""Edit locks: leases on a region of a document, stored beside the document itself.

Why in the database and not in Redis: the check that a write does not touch someone else's
region must happen in the same transaction as the write, against the same truth. A lock held
only in Redis could expire, be re-granted and be written through between the check and the
commit. Here a grant, a release and a write on one document all serialize on its row lock,
and the fencing token comes from a per-document counter on that row, so it only ever grows.

A lock is live while ``expires_at`` is ahead. Its holder's node renews it (one statement per
node per interval, not per connection); when the node dies the renewals stop and any node's
sweeper removes the lock once it expired.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.audit import Actor, AuditContext, EventDraft, append_event
from persistence.database import Database
from persistence.errors import BadRequest, Conflict, Forbidden, Locked, NotFound
from persistence.facts import Committed, LockChanged
from persistence.patching import parse_pointer, units_overlap
from persistence.schema import documents, locks
from persistence.timeutil import format_ts, utcnow
from persistence.write_statements import LockRow

__all__ = [
    "DEFAULT_TTL_MS",
    "MIN_TTL_MS",
    "Holder",
    "LockStore",
    "lock_from_row",
    "refuse_locked_paths",
]

DEFAULT_TTL_MS = 30_000
MIN_TTL_MS = 1_000
MAX_TTL_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a lock: a connection (WebSocket session, or an HTTP client's pseudo-session)."""

    session: str
    user_id: str
    user_name: str
    node: str


def lock_from_row(row: LockRow | Row[Any]) -> dict[str, Any]:
    return {
        "doc": row.doc,
        "path": row.path,
        "holder": {"session": row.holder_session,
                   "user": {"id": row.holder_user_id, "name": row.holder_user_name}},
        "token": int(row.token),
        "expires_at": format_ts(row.expires_at),
    }


def _paths_overlap(a: str, b: str) -> bool:
    return units_overlap(a, b)


def refuse_locked_paths(
    live: Iterable[LockRow], paths: list[str], *, session: str | None,
    lock_token: int | None, now: datetime,
) -> None:
    """Refuse (``locked``) a write to ``paths`` when one of the ``live`` lock rows of its
    document belongs to another holder and overlaps them.

    Pure, so a batch of writes can read the locks of all its documents at once. Rows that
    expired by ``now`` are skipped; the writer's own locks are those of its ``session`` or
    the one whose fencing token it presents.

    A presented token must be that of a live lock of the document: a holder that paused past
    its ttl may have been superseded by a newer grant that has since been released, and
    without this check its late write would be accepted over the newer holder's work, which
    is exactly what a fencing token exists to prevent.
    """
    token_live = False
    for row in live:
        if row.expires_at <= now:
            continue
        if session is not None and row.holder_session == session:
            continue
        if lock_token is not None and int(row.token) == lock_token:
            token_live = True
            continue
        if any(_paths_overlap(row.path, path) for path in paths):
            raise Locked(f"{row.path or 'the document'} is locked by {row.holder_user_name}",
                         lock=lock_from_row(row))
    if lock_token is not None and not token_live:
        raise Locked(f"lock token {lock_token} is not a live lock of this document (it expired,"
                     " was released or was superseded); take the lock again")


class LockStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def _doc_row(self, conn: AsyncConnection, tenant: str, doc: str) -> Row[Any]:
        row = (
            await conn.execute(
                select(documents.c.id, documents.c.kind, documents.c.lock_seq,
                       documents.c.head_hash, documents.c.archived_at)
                .where(documents.c.id == doc, documents.c.tenant == tenant)
                .with_for_update()
            )
        ).first()
        if row is None:
            raise NotFound(f"no document {doc!r}")
        return row  # type: ignore[return-value]

    async def _event(
        self, conn: AsyncConnection, ctx: AuditContext, kind: str | None, event_type: str,
        doc: str, data: dict[str, Any], now: datetime,
    ) -> None:
        await append_event(conn, ctx, EventDraft(event_type, doc, kind, None, data), ts=now)

    async def acquire(
        self, ctx: AuditContext, doc: str, path: Any, holder: Holder, *,
        ttl_ms: Any = None, force: bool = False, may_force: bool = False,
    ) -> Committed[dict[str, Any]]:
        """Grant or renew a lock; returns it and the changes to broadcast (grant, steals)."""
        if not isinstance(path, str):
            raise BadRequest("path must be a JSON pointer string ('' is the whole document)")
        parse_pointer(path)
        ttl = DEFAULT_TTL_MS if ttl_ms is None else ttl_ms
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not MIN_TTL_MS <= ttl <= MAX_TTL_MS:
            raise BadRequest(f"ttl_ms must be an integer from {MIN_TTL_MS} to {MAX_TTL_MS}")
        if force and not may_force:
            raise Forbidden("only an admin may take a lock by force")
        changes: list[LockChanged] = []
        async with self.db.transaction() as conn:
            row = await self._doc_row(conn, ctx.tenant, doc)
            if row.archived_at is not None:
                raise Conflict("the document is archived; an admin may reopen it",
                               archived=True)
            now = utcnow()
            changes += await self._expire_doc(conn, ctx, row.kind, doc, now)
            live = (await conn.execute(select(locks).where(locks.c.doc == doc))).all()
            expires = now + timedelta(milliseconds=ttl)
            mine = next((r for r in live if r.path == path and r.holder_session == holder.session),
                        None)
            if mine is not None:
                await conn.execute(
                    update(locks).where(locks.c.doc == doc, locks.c.path == path)
                    .values(expires_at=expires, ttl_ms=ttl)
                )
                lock = lock_from_row(mine) | {"expires_at": format_ts(expires)}
                return Committed(lock, tuple(changes))
            blocking = [r for r in live
                        if r.holder_session != holder.session and _paths_overlap(r.path, path)]
            if blocking and not force:
                raise Locked(f"{blocking[0].path or 'the document'} is locked by "
                             f"{blocking[0].holder_user_name}", lock=lock_from_row(blocking[0]))
            for old in blocking:
                await conn.execute(
                    delete(locks).where(locks.c.doc == doc, locks.c.path == old.path)
                )
                stolen = lock_from_row(old)
                await self._event(conn, ctx, row.kind, "lock.stolen", doc,
                                  {"path": old.path, "token": int(old.token),
                                   "holder": stolen["holder"]}, now)
                changes.append(LockChanged(ctx.tenant, stolen, "stolen"))
            # A lock of the same holder on an overlapping path is replaced by the new one.
            for own in live:
                if (own.holder_session == holder.session and own.path != path
                        and _paths_overlap(own.path, path)):
                    await conn.execute(
                        delete(locks).where(locks.c.doc == doc, locks.c.path == own.path)
                    )
            token = int(row.lock_seq) + 1
            await conn.execute(update(documents).where(documents.c.id == doc)
                               .values(lock_seq=token))
            await conn.execute(
                locks.insert().values(
                    doc=doc, path=path, tenant=ctx.tenant, holder_session=holder.session,
                    holder_user_id=holder.user_id, holder_user_name=holder.user_name,
                    node=holder.node, token=token, ttl_ms=ttl, acquired_at=now,
                    expires_at=expires,
                )
            )
            await self._event(conn, ctx, row.kind, "lock.acquired", doc,
                              {"path": path, "token": token, "ttl_ms": ttl,
                               "session": holder.session}, now)
            lock = {
                "doc": doc, "path": path,
                "holder": {"session": holder.session,
                           "user": {"id": holder.user_id, "name": holder.user_name}},
                "token": token, "expires_at": format_ts(expires),
            }
        changes.append(LockChanged(ctx.tenant, lock))
        return Committed(lock, tuple(changes))

    async def release(
        self, ctx: AuditContext, doc: str, path: Any, holder_session: str
    ) -> Committed[dict[str, Any]]:
        if not isinstance(path, str):
            raise BadRequest("path must be a JSON pointer string")
        async with self.db.transaction() as conn:
            row = await self._doc_row(conn, ctx.tenant, doc)
            held = (
                await conn.execute(
                    select(locks).where(locks.c.doc == doc, locks.c.path == path,
                                        locks.c.holder_session == holder_session)
                )
            ).first()
            if held is None:
                raise NotFound(f"you hold no lock on {path!r}")
            await conn.execute(delete(locks).where(locks.c.doc == doc, locks.c.path == path))
            now = utcnow()
            await self._event(conn, ctx, row.kind, "lock.released", doc,
                              {"path": path, "token": int(held.token), "reason": "released"}, now)
        change = LockChanged(ctx.tenant, lock_from_row(held), "released")
        return Committed(change.lock, (change,))

    async def release_session(self, ctx: AuditContext, holder_session: str) -> list[LockChanged]:
        """Everything a closing connection held ends at once (reason ``disconnected``)."""
        async with self.db.reader() as conn:
            held = (
                await conn.execute(
                    select(locks.c.doc).where(locks.c.holder_session == holder_session)
                )
            ).all()
        changes: list[LockChanged] = []
        for (doc,) in {(r.doc,) for r in held}:
            async with self.db.transaction() as conn:
                try:
                    row = await self._doc_row(conn, ctx.tenant, doc)
                except NotFound:
                    continue
                gone = (
                    await conn.execute(
                        delete(locks)
                        .where(locks.c.doc == doc, locks.c.holder_session == holder_session)
                        .returning(*locks.c)
                    )
                ).all()
                now = utcnow()
                for lock_row in gone:
                    await self._event(conn, ctx, row.kind, "lock.released", doc,
                                      {"path": lock_row.path, "token": int(lock_row.token),
                                       "reason": "disconnected"}, now)
                    changes.append(LockChanged(ctx.tenant, lock_from_row(lock_row),
                                               "disconnected"))
        return changes

    async def renew(self, sessions: list[str], node: str) -> int:
        """Extend every lock held by ``sessions`` of ``node`` by its own ttl (one statement
        per distinct ttl, normally one)."""
        if not sessions:
            return 0
        renewed = 0
        async with self.db.transaction() as conn:
            # The clock is read inside the transaction and a lease only ever moves forward: a
            # grant that renewed the same lock while this statement waited has already set a
            # later expiry, which an older reading of the clock must not pull back.
            now = utcnow()
            ttls = (
                await conn.execute(
                    select(locks.c.ttl_ms).distinct()
                    .where(locks.c.node == node, locks.c.holder_session.in_(sessions),
                           locks.c.expires_at > now)
                )
            ).scalars().all()
            for ttl in ttls:
                until = now + timedelta(milliseconds=int(ttl))
                result = await conn.execute(
                    update(locks)
                    .where(locks.c.node == node, locks.c.holder_session.in_(sessions),
                           locks.c.ttl_ms == ttl, locks.c.expires_at > now,
                           locks.c.expires_at < until)
                    .values(expires_at=until)
                )
                renewed += int(result.rowcount or 0)
        return renewed

    async def sweep_expired(self) -> list[LockChanged]:
        """Remove locks whose lease ran out (their holder vanished); any node may run this."""
        now = utcnow()
        async with self.db.reader() as conn:
            docs = (
                await conn.execute(
                    select(locks.c.doc, locks.c.tenant).distinct()
                    .where(locks.c.expires_at <= now)
                )
            ).all()
        changes: list[LockChanged] = []
        system = Actor("system", "coedit", "system")
        for doc, tenant in docs:
            ctx = AuditContext(system, tenant, "system")
            async with self.db.transaction() as conn:
                try:
                    row = await self._doc_row(conn, tenant, doc)
                except NotFound:
                    continue
                changes += await self._expire_doc(conn, ctx, row.kind, doc, utcnow())
        return changes

    async def _expire_doc(
        self, conn: AsyncConnection, ctx: AuditContext, kind: str, doc: str, now: datetime
    ) -> list[LockChanged]:
        gone = (
            await conn.execute(
                delete(locks).where(locks.c.doc == doc, locks.c.expires_at <= now)
                .returning(*locks.c)
            )
        ).all()
        system_ctx = AuditContext(Actor("system", "coedit", "system"), ctx.tenant, "system",
                                  ctx.correlation_id)
        changes = []
        for lock_row in gone:
            await self._event(conn, system_ctx, kind, "lock.expired", doc,
                              {"path": lock_row.path, "token": int(lock_row.token),
                               "holder": lock_from_row(lock_row)["holder"]}, now)
            changes.append(LockChanged(ctx.tenant, lock_from_row(lock_row), "expired"))
        return changes

    async def live(self, tenant: str, doc: str) -> list[dict[str, Any]]:
        async with self.db.reader() as conn:
            rows = (
                await conn.execute(
                    select(locks)
                    .where(locks.c.doc == doc, locks.c.tenant == tenant,
                           locks.c.expires_at > utcnow())
                    .order_by(locks.c.path)
                )
            ).all()
        return [lock_from_row(row) for row in rows]

    async def live_in_tenant(self, tenant: str, *, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Every live lock of ``tenant`` (at most ``limit``, and whether more are held), for
        a dashboard that shows all of them at once instead of asking document by document."""
        async with self.db.reader() as conn:
            rows = (
                await conn.execute(
                    select(locks)
                    .where(locks.c.tenant == tenant, locks.c.expires_at > utcnow())
                    .order_by(locks.c.acquired_at, locks.c.doc, locks.c.path)
                    .limit(limit + 1)
                )
            ).all()
        return [lock_from_row(row) for row in rows[:limit]], len(rows) > limit
