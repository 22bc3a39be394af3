"""Versioned documents: creation, the versioned write, reads, replay and history.

The versioned write is one transaction: lock the document row, answer a repeated idempotency
key, check the base version, rebase or reject by write units, apply the JSON Patch, update the
row, append the revision and the ``patch.applied`` event (linked into the hash chain), store a
snapshot every N versions and remember the key, then commit. Only after the commit does the
caller publish the delta, so no subscriber ever sees a version that could still roll back.

Writes go through a group commit (``persistence/batching.py``): patches submitted while a
write transaction is in flight share the next one, which ``persistence/writes.py`` runs. Each
patch still sees every patch submitted before it, committed or earlier in its batch, and gets
the reply it would have got alone.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.engine import Row

from persistence.audit import AuditContext, EventDraft, append_event, event_from_row, verify_rows
from persistence.batch_commit import BatchCommitter
from persistence.batching import GroupCommit
from persistence.database import Database
from persistence.errors import BadRequest, CoeditError, NotFound
from persistence.jsonutil import dumps, loads
from persistence.pagination import FOREIGN_CURSOR, decode_cursor, encode_cursor, page_limit
from persistence.patching import apply_ops, redact_value, validate_ops
from persistence.schema import documents, events, idempotency_keys, revisions, snapshots
from persistence.timeutil import format_ts, utcnow
from persistence.writes import (
    IDEMPOTENCY_WINDOW,
    PatchRequest,
    WriteResult,
    WriteRules,
    delta_from_revision,
    serialize_state,
)

__all__ = ["KIND_PATTERN", "MAX_WRITE_BATCH", "DocumentStore", "WriteResult"]

KIND_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,31}")
MAX_KEY_LENGTH = 128
MAX_TITLE_LENGTH = 500
# Patches per write transaction at most: enough to amortize a transaction's round trips,
# few enough that one batch's rows and statements stay small.
MAX_WRITE_BATCH = 64


def _document_from_row(row: Row[Any], state: Any = None) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "title": row.title,
        "version": row.version,
        "state": loads(row.state) if state is None else state,
        "created_at": format_ts(row.created_at),
        "updated_at": format_ts(row.updated_at),
        "updated_by": row.updated_by,
    }


def _document_of(request: PatchRequest) -> str:
    return request.doc_id


class DocumentStore:
    """The document half of ``persistence``; every method is scoped to one tenant."""

    def __init__(
        self,
        db: Database,
        *,
        snapshot_every: int = 50,
        max_state_bytes: int = 1024 * 1024,
        redact: frozenset[str] = frozenset(),
        max_batch: int = MAX_WRITE_BATCH,
        writes_in_flight: int = 1,
    ) -> None:
        if snapshot_every < 1:
            raise ValueError("snapshot_every must be at least 1")
        self.db = db
        self.snapshot_every = snapshot_every
        self.max_state_bytes = max_state_bytes
        self.redact = redact
        self.max_batch = max_batch
        self._committer = BatchCommitter(
            db, WriteRules(snapshot_every, max_state_bytes, redact))
        self._writes: GroupCommit[PatchRequest, WriteResult] = GroupCommit(
            self._commit_patches, key=_document_of, max_batch=max_batch,
            max_in_flight=writes_in_flight, name="document-writes")

    @property
    def moved_retries(self) -> int:
        """Optimistic batches tried again because a document moved under them (PostgreSQL)."""
        return self._committer.moved_retries

    # -- creation -------------------------------------------------------------------------

    async def create(
        self, ctx: AuditContext, *, kind: Any, title: Any, state: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Create a document at version 1; returns (document, its version-1 delta)."""
        if not isinstance(kind, str) or not KIND_PATTERN.fullmatch(kind):
            raise BadRequest("kind must match [a-z][a-z0-9_]{0,31}")
        if not isinstance(title, str) or not title.strip() or len(title) > MAX_TITLE_LENGTH:
            raise BadRequest(f"title must be a non-empty string of at most {MAX_TITLE_LENGTH}")
        if state is None:
            state = {}
        if not isinstance(state, dict):
            raise BadRequest("state must be a JSON object")
        state_text = serialize_state(state, self.max_state_bytes)
        doc_id = str(uuid.uuid4())
        now = utcnow()
        ops = [{"op": "replace", "path": "", "value": state}]
        async with self.db.transaction() as conn:
            await conn.execute(
                documents.insert().values(
                    id=doc_id, tenant=ctx.tenant, kind=kind, title=title, version=1,
                    state=state_text, created_at=now, created_by=ctx.actor.id,
                    updated_at=now, updated_by=ctx.actor.id, head_hash=None,
                )
            )
            event = await append_event(
                conn, ctx,
                EventDraft("document.created", doc_id, kind, 1,
                           {"title": title, "state": redact_value(state, self.redact)}),
                ts=now, prev_hash=None, head_locked=True,
            )
            await conn.execute(
                update(documents).where(documents.c.id == doc_id).values(head_hash=event["hash"])
            )
            await conn.execute(
                revisions.insert().values(
                    doc=doc_id, version=1, tenant=ctx.tenant, ops=dumps(ops), units=dumps([""]),
                    actor_id=ctx.actor.id, actor_name=ctx.actor.name, ts=now,
                    event_seq=event["seq"],
                )
            )
            await conn.execute(
                snapshots.insert().values(doc=doc_id, version=1, state=state_text, ts=now)
            )
        document = {
            "id": doc_id, "kind": kind, "title": title, "version": 1, "state": state,
            "created_at": format_ts(now), "updated_at": format_ts(now),
            "updated_by": ctx.actor.id,
        }
        delta = {
            "type": "delta", "doc": doc_id, "version": 1, "ops": ops,
            "actor": ctx.actor.public(), "ts": format_ts(now), "event": event["seq"],
        }
        return document, delta

    # -- the versioned write --------------------------------------------------------------

    async def apply_patch(
        self,
        ctx: AuditContext,
        doc_id: str,
        *,
        base: Any,
        ops: Any,
        key: Any = None,
        session: str | None = None,
        lock_token: int | None = None,
    ) -> WriteResult:
        """Apply ``ops`` made against version ``base``; see PROTOCOL.md section 4.

        ``session`` (the writer's connection) and ``lock_token`` (a token an HTTP writer
        presents) say which edit locks are the writer's own; any other live lock on a written
        path refuses the write with ``locked``. Returns once the write is durable.
        """
        return await self.submit_patch(ctx, doc_id, base=base, ops=ops, key=key,
                                       session=session, lock_token=lock_token)

    def submit_patch(
        self,
        ctx: AuditContext,
        doc_id: str,
        *,
        base: Any,
        ops: Any,
        key: Any = None,
        session: str | None = None,
        lock_token: int | None = None,
    ) -> asyncio.Future[WriteResult]:
        """Check the arguments now (``bad_request`` is raised here) and queue the write.

        The future resolves to what :meth:`apply_patch` returns, or raises what it raises,
        once the write's transaction is over. Writes submitted earlier commit no later than
        writes submitted later, so a caller may submit several patches of one document in a
        row (each based on the version the previous one will make) and await them in order.
        Cancelling the future before its batch starts drops the write; after, the write may
        still commit.
        """
        if isinstance(base, bool) or not isinstance(base, int) or base < 1:
            raise BadRequest("base must be a positive integer version")
        if key is not None and (not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_LENGTH):
            raise BadRequest(f"key must be a string of 1 to {MAX_KEY_LENGTH} characters")
        request = PatchRequest(ctx, doc_id, base, validate_ops(ops), key, session, lock_token)
        return self._writes.submit(request)

    async def _commit_patches(
        self, requests: list[PatchRequest]
    ) -> list[WriteResult | CoeditError]:
        # Read once per batch (by write_patches): every write of a batch has one instant.
        return await self._committer.commit(requests, clock=utcnow)

    async def purge_idempotency_keys(self) -> int:
        """Forget keys older than the 24-hour window; returns how many went."""
        async with self.db.transaction() as conn:
            result = await conn.execute(
                delete(idempotency_keys).where(
                    idempotency_keys.c.created_at < utcnow() - IDEMPOTENCY_WINDOW
                )
            )
        return int(result.rowcount or 0)

    # -- reads ----------------------------------------------------------------------------

    async def get(self, tenant: str, doc_id: str) -> dict[str, Any]:
        async with self.db.reader() as conn:
            row = (
                await conn.execute(
                    select(documents).where(documents.c.id == doc_id, documents.c.tenant == tenant)
                )
            ).first()
        if row is None:
            raise NotFound(f"no document {doc_id!r}")
        return _document_from_row(row)

    async def tenant_of(self, doc_id: str) -> str:
        """The tenant a document belongs to (operator tools only; the API is tenant-scoped)."""
        async with self.db.reader() as conn:
            tenant = (await conn.execute(
                select(documents.c.tenant).where(documents.c.id == doc_id))).scalar()
        if tenant is None:
            raise NotFound(f"no document {doc_id!r}")
        return str(tenant)

    async def kind_of(self, tenant: str, doc_id: str) -> str:
        """The kind of a document of ``tenant``; ``not_found`` for anything else."""
        async with self.db.reader() as conn:
            kind = (
                await conn.execute(
                    select(documents.c.kind).where(
                        documents.c.id == doc_id, documents.c.tenant == tenant
                    )
                )
            ).scalar()
        if kind is None:
            raise NotFound(f"no document {doc_id!r}")
        return str(kind)

    async def list_documents(
        self, tenant: str, *, kind: str | None = None, q: str | None = None,
        limit: int | None = None, cursor: str | None = None,
    ) -> dict[str, Any]:
        """Newest first, keyset-paginated on (created_at, id) so pages never shift."""
        limit = page_limit(limit, default=50, maximum=500)
        query = select(documents).where(documents.c.tenant == tenant)
        if kind:
            query = query.where(documents.c.kind == kind)
        if q:
            escaped = q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(func.lower(documents.c.title).like(f"%{escaped}%", escape="\\"))
        if cursor:
            created_text, last_id = decode_cursor(cursor, 2)
            try:
                created = datetime.fromisoformat(str(created_text).replace("Z", "+00:00"))
            except ValueError as exc:
                raise BadRequest(FOREIGN_CURSOR) from exc
            query = query.where(
                or_(
                    documents.c.created_at < created,
                    and_(documents.c.created_at == created, documents.c.id < last_id),
                )
            )
        query = query.order_by(documents.c.created_at.desc(), documents.c.id.desc()).limit(
            limit + 1
        )
        async with self.db.reader() as conn:
            rows = (await conn.execute(query)).all()
        items = [_document_from_row(row) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = encode_cursor(last.created_at.isoformat(), last.id)
        return {"items": items, "next": next_cursor}

    async def deltas_since(
        self, tenant: str, doc_id: str, since: int, until: int | None = None
    ) -> list[dict[str, Any]] | None:
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
        return [delta_from_revision(row) for row in rows]

    # -- time travel ----------------------------------------------------------------------

    async def state_at(
        self, tenant: str, doc_id: str, *, version: int | None = None, at: datetime | None = None
    ) -> dict[str, Any]:
        """The document as it was at ``version`` (or at time ``at``), replayed from the nearest
        snapshot at or below it."""
        async with self.db.reader() as conn:
            head = (
                await conn.execute(
                    select(documents).where(documents.c.id == doc_id, documents.c.tenant == tenant)
                )
            ).first()
            if head is None:
                raise NotFound(f"no document {doc_id!r}")
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
                    raise NotFound(f"document {doc_id!r} did not exist at {format_ts(at)}")
                version = found.version
            if version is None:
                version = head.version
            if version < 1 or version > head.version:
                raise NotFound(f"document {doc_id!r} has no version {version}")
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
        document = _document_from_row(head, state) | {"version": version}
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
        await self.kind_of(tenant, doc_id)
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
        """Recompute the document's hash chain from its first event."""
        await self.kind_of(tenant, doc_id)
        async with self.db.reader() as conn:
            rows = (
                await conn.execute(
                    select(events).where(events.c.doc == doc_id).order_by(events.c.seq)
                )
            ).all()
        return verify_rows(list(rows))

    async def record(
        self, ctx: AuditContext, draft: EventDraft
    ) -> dict[str, Any]:
        """Append an event that comes with no versioned write (a refusal, a lock, a review)."""
        async with self.db.transaction() as conn:
            return await append_event(conn, ctx, draft, ts=utcnow())
