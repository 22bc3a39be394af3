"""Versioned documents: creation, the versioned write, reads, replay and history.

The versioned write is one transaction: lock the document row, answer a repeated idempotency
key, check the base version, rebase or reject by write units, apply the JSON Patch, update the
row, append the revision and the ``patch.applied`` event (linked into the hash chain), store a
snapshot every N versions and remember the key, then commit. Only after the commit does the
caller publish the delta, so no subscriber ever sees a version that could still roll back.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.audit import AuditContext, EventDraft, append_event, event_from_row, verify_rows
from persistence.database import Database
from persistence.errors import BadRequest, Conflict, NotFound, TooLarge
from persistence.jsonutil import dumps, loads
from persistence.locks import check_write_locks
from persistence.patching import (
    apply_ops,
    redact_at_paths,
    redact_ops,
    redact_value,
    units_overlap,
    validate_ops,
    values_at,
    write_units,
    written_paths,
)
from persistence.schema import documents, events, idempotency_keys, revisions, snapshots
from persistence.timeutil import format_ts, utcnow

__all__ = ["KIND_PATTERN", "DocumentStore", "WriteResult"]

KIND_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,31}")
MAX_KEY_LENGTH = 128
MAX_TITLE_LENGTH = 500
IDEMPOTENCY_WINDOW = timedelta(hours=24)

# Statements of the versioned write, built once (building one per call showed in profiles).
_ADVANCE_DOCUMENT = update(documents).where(
    documents.c.id == bindparam("b_id"), documents.c.version == bindparam("b_version"))
_INSERT_REVISION = revisions.insert()


@dataclass(slots=True)
class WriteResult:
    """What an accepted (or replayed duplicate) write tells its caller."""

    reply: dict[str, Any]
    delta: dict[str, Any] | None  # None for a duplicate: nothing new to publish
    document: dict[str, Any] | None


def _encode_cursor(*parts: Any) -> str:
    return base64.urlsafe_b64encode(dumps(list(parts)).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, arity: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error) as exc:
        raise BadRequest("cursor is not one this server issued") from exc
    if not isinstance(parts, list) or len(parts) != arity:
        raise BadRequest("cursor is not one this server issued")
    return parts


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


def _delta_from_revision(row: Row[Any]) -> dict[str, Any]:
    return {
        "type": "delta",
        "doc": row.doc,
        "version": row.version,
        "ops": loads(row.ops),
        "actor": {"id": row.actor_id, "name": row.actor_name},
        "ts": format_ts(row.ts),
        "event": row.event_seq,
    }


def _clamp_limit(limit: int | None, default: int = 100, maximum: int = 1000) -> int:
    if limit is None:
        return default
    if limit < 1 or limit > maximum:
        raise BadRequest(f"limit must be between 1 and {maximum}")
    return limit


class DocumentStore:
    """The document half of ``persistence``; every method is scoped to one tenant."""

    def __init__(
        self,
        db: Database,
        *,
        snapshot_every: int = 50,
        max_state_bytes: int = 1024 * 1024,
        redact: frozenset[str] = frozenset(),
    ) -> None:
        if snapshot_every < 1:
            raise ValueError("snapshot_every must be at least 1")
        self.db = db
        self.snapshot_every = snapshot_every
        self.max_state_bytes = max_state_bytes
        self.redact = redact

    # -- helpers --------------------------------------------------------------------------

    def _serialize_state(self, state: dict[str, Any]) -> str:
        text = dumps(state)
        if len(text.encode("utf-8")) > self.max_state_bytes:
            raise TooLarge(
                f"document state would be larger than {self.max_state_bytes} bytes as JSON",
                limit=self.max_state_bytes,
            )
        return text

    async def _locked_row(self, conn: AsyncConnection, tenant: str, doc_id: str) -> Row[Any]:
        row = (
            await conn.execute(
                select(documents)
                .where(documents.c.id == doc_id, documents.c.tenant == tenant)
                .with_for_update()
            )
        ).first()
        if row is None:
            raise NotFound(f"no document {doc_id!r}")
        return row

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
        state_text = self._serialize_state(state)
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
        path refuses the write with ``locked``.
        """
        if isinstance(base, bool) or not isinstance(base, int) or base < 1:
            raise BadRequest("base must be a positive integer version")
        if key is not None and (not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_LENGTH):
            raise BadRequest(f"key must be a string of 1 to {MAX_KEY_LENGTH} characters")
        ops = validate_ops(ops)
        async with self.db.transaction() as conn:
            row = await self._locked_row(conn, ctx.tenant, doc_id)
            now = utcnow()
            if key is not None:
                previous = await self._remembered_reply(conn, doc_id, ctx.actor.id, key, now)
                if previous is not None:
                    return WriteResult({**previous, "duplicate": True}, None, None)
            if row.archived_at is not None:
                raise Conflict("the document is archived; an admin may reopen it",
                               archived=True)
            if base > row.version:
                raise BadRequest(
                    f"base {base} is ahead of the current version {row.version}",
                    current_version=row.version,
                )
            paths = written_paths(ops)
            if row.lock_seq:  # a document never locked has no lock to check
                await check_write_locks(conn, doc_id, paths, session=session,
                                        lock_token=lock_token, now=now)
            state = loads(row.state)
            units = write_units(ops, state)
            rebased = False
            if base < row.version:
                await self._check_rebase(conn, doc_id, base, row.version, units)
                rebased = True
            before = values_at(state, paths)
            new_state = apply_ops(state, ops)
            state_text = self._serialize_state(new_state)
            after = values_at(new_state, paths, dash_is_last=True)
            version = row.version + 1
            event = await append_event(
                conn, ctx,
                EventDraft("patch.applied", doc_id, row.kind, version, {
                    "ops": redact_ops(ops, self.redact),
                    "before": redact_at_paths(before, self.redact),
                    "after": redact_at_paths(after, self.redact),
                    "base": base,
                    "rebased": rebased,
                }),
                ts=now, prev_hash=row.head_hash, head_locked=True,
            )
            changed = await conn.execute(_ADVANCE_DOCUMENT, {
                "b_id": doc_id, "b_version": row.version, "version": version,
                "state": state_text, "updated_at": now, "updated_by": ctx.actor.id,
                "head_hash": event["hash"],
            })
            if changed.rowcount != 1:
                # The row lock makes this unreachable; refuse rather than fork the history.
                raise Conflict("document changed during the write", current_version=row.version)
            await conn.execute(_INSERT_REVISION, {
                "doc": doc_id, "version": version, "tenant": ctx.tenant, "ops": dumps(ops),
                "units": dumps(units), "actor_id": ctx.actor.id, "actor_name": ctx.actor.name,
                "ts": now, "event_seq": event["seq"],
            })
            if version % self.snapshot_every == 0:
                await conn.execute(
                    snapshots.insert().values(doc=doc_id, version=version, state=state_text, ts=now)
                )
            reply: dict[str, Any] = {"version": version}
            if rebased:
                reply["rebased"] = True
            if key is not None:
                await self._remember_reply(conn, doc_id, ctx.actor.id, key, reply, now)
        delta = {
            "type": "delta", "doc": doc_id, "version": version, "ops": ops,
            "actor": ctx.actor.public(), "ts": format_ts(now), "event": event["seq"],
        }
        document = _document_from_row(row, new_state) | {
            "version": version, "updated_at": format_ts(now), "updated_by": ctx.actor.id,
        }
        return WriteResult(reply, delta, document)

    async def _check_rebase(
        self, conn: AsyncConnection, doc_id: str, base: int, current: int, units: list[str]
    ) -> None:
        rows = (
            await conn.execute(
                select(revisions)
                .where(revisions.c.doc == doc_id, revisions.c.version > base)
                .order_by(revisions.c.version)
            )
        ).all()
        later_units = [unit for row in rows for unit in loads(row.units)]
        overlapping = [u for u in units if any(units_overlap(u, other) for other in later_units)]
        if overlapping or len(rows) != current - base:
            raise Conflict(
                f"the patch overlaps writes made after version {base}",
                current_version=current,
                your_version=base,
                paths=overlapping,
                deltas=[_delta_from_revision(row) for row in rows],
            )

    async def _remembered_reply(
        self, conn: AsyncConnection, doc_id: str, user_id: str, key: str, now: datetime
    ) -> dict[str, Any] | None:
        row = (
            await conn.execute(
                select(idempotency_keys.c.reply, idempotency_keys.c.created_at).where(
                    idempotency_keys.c.doc == doc_id,
                    idempotency_keys.c.user_id == user_id,
                    idempotency_keys.c.key == key,
                )
            )
        ).first()
        if row is None or row.created_at < now - IDEMPOTENCY_WINDOW:
            return None
        return loads(row.reply)  # type: ignore[no-any-return]

    async def _remember_reply(
        self, conn: AsyncConnection, doc_id: str, user_id: str, key: str,
        reply: dict[str, Any], now: datetime,
    ) -> None:
        # An expired row for the same key may still exist: replace it.
        await conn.execute(
            delete(idempotency_keys).where(
                idempotency_keys.c.doc == doc_id,
                idempotency_keys.c.user_id == user_id,
                idempotency_keys.c.key == key,
            )
        )
        await conn.execute(
            idempotency_keys.insert().values(
                doc=doc_id, user_id=user_id, key=key, reply=dumps(reply), created_at=now
            )
        )

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
        limit = _clamp_limit(limit, default=50, maximum=500)
        query = select(documents).where(documents.c.tenant == tenant)
        if kind:
            query = query.where(documents.c.kind == kind)
        if q:
            escaped = q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(func.lower(documents.c.title).like(f"%{escaped}%", escape="\\"))
        if cursor:
            created_text, last_id = _decode_cursor(cursor, 2)
            try:
                created = datetime.fromisoformat(str(created_text).replace("Z", "+00:00"))
            except ValueError as exc:
                raise BadRequest("cursor is not one this server issued") from exc
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
            next_cursor = _encode_cursor(last.created_at.isoformat(), last.id)
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
        return [_delta_from_revision(row) for row in rows]

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
        limit = _clamp_limit(limit)
        after = since or 0
        if cursor:
            (last_seq,) = _decode_cursor(cursor, 1)
            if not isinstance(last_seq, int):
                raise BadRequest("cursor is not one this server issued")
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
        next_cursor = _encode_cursor(items[-1]["seq"]) if len(rows) > limit else None
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
