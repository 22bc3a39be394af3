"""Every write of a tenant's documents: creation, the queued versioned write, events that
come with no write, and forgetting old idempotency keys.

The versioned write is one transaction: lock the document row, answer a repeated idempotency
key, check the base version, rebase or reject by write units, apply the JSON Patch, update the
row, append the revision and the ``patch.applied`` event (linked into the hash chain), store a
snapshot every N versions and remember the key, then commit. Only after the commit does the
caller publish the delta, so no subscriber ever sees a version that could still roll back.

Writes go through a group commit (``persistence/batching.py``): patches submitted while a
write transaction is in flight share the next one, which ``persistence/batch_commit.py``
runs against the database and ``persistence/writes.py`` decides. Each patch still sees every
patch submitted before it, committed or earlier in its batch, and gets the reply it would
have got alone.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, update

from persistence.audit import AuditContext, EventDraft, append_event
from persistence.batch_commit import BatchCommitter
from persistence.batching import GroupCommit
from persistence.database import Database
from persistence.errors import BadRequest, CoeditError
from persistence.facts import Appended, Committed, Fact
from persistence.ideas import require_idea
from persistence.jsonutil import dumps
from persistence.patching import redact_value, validate_ops
from persistence.schema import documents, idempotency_keys, revisions, snapshots
from persistence.search_index import apply_changes, new_document_changes
from persistence.timeutil import format_ts, utcnow
from persistence.writes import (
    IDEMPOTENCY_WINDOW,
    PatchRequest,
    WriteResult,
    WriteRules,
    serialize_state,
)

if TYPE_CHECKING:
    from persistence.workflows.engine import WorkflowEngine

__all__ = ["KIND_PATTERN", "MAX_WRITE_BATCH", "DocumentWriter"]

KIND_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,31}")
MAX_KEY_LENGTH = 128
MAX_TITLE_LENGTH = 500
# Patches per write transaction at most: enough to amortize a transaction's round trips,
# few enough that one batch's rows and statements stay small.
MAX_WRITE_BATCH = 64


def _document_of(request: PatchRequest) -> str:
    return request.doc_id


class DocumentWriter:
    """Writes documents of one database; every method is scoped to one tenant."""

    def __init__(
        self, db: Database, rules: WriteRules, *, max_batch: int = MAX_WRITE_BATCH,
        writes_in_flight: int = 1,
    ) -> None:
        self.db = db
        self.rules = rules
        self.committer = BatchCommitter(db, rules)
        # Told of every document created in an idea, in the creating transaction, so a
        # workflow step waiting for that stage completes in the same commit.
        self.workflows: WorkflowEngine | None = None
        self._queue: GroupCommit[PatchRequest, WriteResult] = GroupCommit(
            self._commit_patches, key=_document_of, max_batch=max_batch,
            max_in_flight=writes_in_flight, name="document-writes")

    # -- creation -------------------------------------------------------------------------

    async def create(
        self, ctx: AuditContext, *, kind: Any, title: Any, state: Any = None, idea: Any = None
    ) -> Committed[dict[str, Any]]:
        """Create a document at version 1, in ``idea`` when one is named."""
        if not isinstance(kind, str) or not KIND_PATTERN.fullmatch(kind):
            raise BadRequest("kind must match [a-z][a-z0-9_]{0,31}")
        if not isinstance(title, str) or not title.strip() or len(title) > MAX_TITLE_LENGTH:
            raise BadRequest(f"title must be a non-empty string of at most {MAX_TITLE_LENGTH}")
        if "\x00" in title:  # PostgreSQL cannot store it; refused on every backend alike
            raise BadRequest("title must not hold the NUL character")
        if state is None:
            state = {}
        if not isinstance(state, dict):
            raise BadRequest("state must be a JSON object")
        if idea is not None and (not isinstance(idea, str) or not 0 < len(idea) <= 36):
            raise BadRequest("idea must be the id of an idea")
        state_text = serialize_state(state, self.rules.max_state_bytes)
        doc_id = str(uuid.uuid4())
        now = utcnow()
        ops = [{"op": "replace", "path": "", "value": state}]
        async with self.db.transaction() as conn:
            if idea is not None:
                await require_idea(conn, ctx.tenant, idea)
            await conn.execute(
                documents.insert().values(
                    id=doc_id, tenant=ctx.tenant, kind=kind, title=title, version=1,
                    state=state_text, created_at=now, created_by=ctx.actor.id,
                    updated_at=now, updated_by=ctx.actor.id, head_hash=None, idea=idea,
                )
            )
            event = await append_event(
                conn, ctx,
                EventDraft("document.created", doc_id, kind, 1,
                           {"title": title, "state": redact_value(state, self.rules.redact)},
                           idea),
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
            if self.rules.search_index:
                # Search: the new document is found as soon as its creation commits.
                await apply_changes(conn, new_document_changes(ctx.tenant, doc_id, title, state))
            facts: list[Fact] = [Appended(ctx.tenant)]
            if idea is not None and self.workflows is not None:
                facts += await self.workflows.document_created(conn, ctx, idea=idea,
                                                               stage=kind)
        document = {
            "id": doc_id, "kind": kind, "idea": idea, "title": title, "version": 1,
            "state": state,
            "created_at": format_ts(now), "updated_at": format_ts(now),
            "updated_by": ctx.actor.id,
        }
        # Nobody can follow a document before it exists: its creation is news for event
        # streams only.
        return Committed(document, tuple(facts))

    # -- the versioned write --------------------------------------------------------------

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
        """Check the arguments now (``bad_request`` is raised here) and queue the write of
        ``ops`` made against version ``base`` (docs/protocol.md section 4).

        ``session`` (the writer's connection) and ``lock_token`` (a token an HTTP writer
        presents) say which edit locks are the writer's own; any other live lock on a written
        path refuses the write with ``locked``. The future resolves to the write's result, or
        raises its refusal, once the write's transaction is over (the write is durable).
        Writes submitted earlier commit no later than writes submitted later, so a caller may
        submit several patches of one document in a row (each based on the version the
        previous one will make) and await them in order.
        Cancelling the future before its batch starts drops the write; after, the write may
        still commit.
        """
        if isinstance(base, bool) or not isinstance(base, int) or base < 1:
            raise BadRequest("base must be a positive integer version")
        if key is not None and (not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_LENGTH):
            raise BadRequest(f"key must be a string of 1 to {MAX_KEY_LENGTH} characters")
        if key is not None and "\x00" in key:
            # Checked before the batch: PostgreSQL's refusal would fail the whole group commit.
            raise BadRequest("key must not hold the NUL character")
        request = PatchRequest(ctx, doc_id, base, validate_ops(ops), key, session, lock_token)
        return self._queue.submit(request)

    async def _commit_patches(
        self, requests: list[PatchRequest]
    ) -> list[WriteResult | CoeditError]:
        # Read once per batch (by write_patches): every write of a batch has one instant.
        return await self.committer.commit(requests, clock=utcnow)

    async def purge_idempotency_keys(self) -> int:
        """Forget keys older than the 24-hour window; returns how many went."""
        async with self.db.transaction() as conn:
            result = await conn.execute(
                delete(idempotency_keys).where(
                    idempotency_keys.c.created_at < utcnow() - IDEMPOTENCY_WINDOW
                )
            )
        return int(result.rowcount or 0)

    # -- events without a write ----------------------------------------------------------

    async def record(
        self, ctx: AuditContext, draft: EventDraft
    ) -> Committed[dict[str, Any]]:
        """Append an event that comes with no versioned write (a refusal, a lock, a review)."""
        async with self.db.transaction() as conn:
            event = await append_event(conn, ctx, draft, ts=utcnow())
        return Committed(event, (Appended(ctx.tenant),))
