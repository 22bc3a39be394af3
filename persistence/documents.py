"""Versioned documents, as the server uses them: one object over their writes, their current
state and their past.

:class:`DocumentStore` owns no logic of its own. It builds its parts from one set of
settings and hands each call to the part whose job it is:

- :class:`persistence.document_writes.DocumentWriter`: creation, the queued versioned write,
  events without a write, the idempotency-key purge;
- :class:`persistence.document_reads.DocumentReads`: a document now, and listings;
- :class:`persistence.document_history.DocumentHistory`: deltas after a version, the state at
  a version or time, the document's events and their chain;
- :class:`persistence.search.DocumentSearch`: search over the index the writes keep current.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from persistence.audit import AuditContext, EventDraft
from persistence.database import Database
from persistence.document_history import DocumentHistory
from persistence.document_reads import DocumentReads
from persistence.document_writes import MAX_WRITE_BATCH, DocumentWriter
from persistence.facts import Committed, Delta
from persistence.search import DocumentSearch, SearchQuery
from persistence.writes import WriteResult, WriteRules

__all__ = ["DocumentStore"]


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
        search_index: bool = True,
    ) -> None:
        if snapshot_every < 1:
            raise ValueError("snapshot_every must be at least 1")
        self.db = db
        self.snapshot_every = snapshot_every
        self.max_state_bytes = max_state_bytes
        self.redact = redact
        self.max_batch = max_batch
        self.writer = DocumentWriter(
            db, WriteRules(snapshot_every, max_state_bytes, redact, search_index),
            max_batch=max_batch,
            writes_in_flight=writes_in_flight)
        self.reads = DocumentReads(db)
        self.past = DocumentHistory(db, self.reads)
        self.finder = DocumentSearch(db)

    @property
    def moved_retries(self) -> int:
        """Optimistic batches tried again because a document moved under them (PostgreSQL)."""
        return self.writer.committer.moved_retries

    # -- writes ---------------------------------------------------------------------------

    async def create(
        self, ctx: AuditContext, *, kind: Any, title: Any, state: Any = None, idea: Any = None
    ) -> Committed[dict[str, Any]]:
        """Create a document at version 1, in ``idea`` when one is named."""
        return await self.writer.create(ctx, kind=kind, title=title, state=state, idea=idea)

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
        """Apply ``ops`` made against version ``base``; see docs/protocol.md section 4.

        ``session`` (the writer's connection) and ``lock_token`` (a token an HTTP writer
        presents) say which edit locks are the writer's own; any other live lock on a written
        path refuses the write with ``locked``. Returns once the write is durable.
        """
        return await self.writer.submit_patch(ctx, doc_id, base=base, ops=ops, key=key,
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
        """Queue the write; see :meth:`DocumentWriter.submit_patch`."""
        return self.writer.submit_patch(ctx, doc_id, base=base, ops=ops, key=key,
                                        session=session, lock_token=lock_token)

    def version_seen(self, doc_id: str, version: int) -> None:
        """A delta of ``doc_id`` at ``version`` arrived from the broker (any node's, this
        one's included): what the writes keep of an older version is dropped."""
        heads = self.writer.committer.heads
        if heads is not None:
            heads.saw(doc_id, version)

    async def purge_idempotency_keys(self) -> int:
        """Forget keys older than the 24-hour window; returns how many went."""
        return await self.writer.purge_idempotency_keys()

    async def record(self, ctx: AuditContext, draft: EventDraft) -> Committed[dict[str, Any]]:
        """Append an event that comes with no versioned write (a refusal, a lock, a review)."""
        return await self.writer.record(ctx, draft)

    # -- the documents now ----------------------------------------------------------------

    async def get(self, tenant: str, doc_id: str) -> dict[str, Any]:
        return await self.reads.get(tenant, doc_id)

    async def tenant_of(self, doc_id: str) -> str:
        """The tenant a document belongs to (operator tools only; the API is tenant-scoped)."""
        return await self.reads.tenant_of(doc_id)

    async def kind_of(self, tenant: str, doc_id: str) -> str:
        """The kind of a document of ``tenant``; ``not_found`` for anything else."""
        return await self.reads.kind_of(tenant, doc_id)

    async def placement(self, tenant: str, doc_id: str) -> tuple[str, str | None]:
        return await self.reads.placement(tenant, doc_id)

    async def list_documents(
        self, tenant: str, *, kind: str | None = None, q: str | None = None,
        limit: int | None = None, cursor: str | None = None,
    ) -> dict[str, Any]:
        """Newest first, keyset-paginated on (created_at, id) so pages never shift."""
        return await self.reads.list_documents(tenant, kind=kind, q=q, limit=limit,
                                               cursor=cursor)

    async def search(self, tenant: str, query: SearchQuery, *, limit: int | None = None,
                     cursor: str | None = None) -> dict[str, Any]:
        """The tenant's documents matching every word of ``query``, best first."""
        return await self.finder.search(tenant, query, limit=limit, cursor=cursor)

    # -- their past -----------------------------------------------------------------------

    async def deltas_since(
        self, tenant: str, doc_id: str, since: int, until: int | None = None
    ) -> list[Delta] | None:
        """Deltas ``since < version <= until`` in order, or None when the log has a hole."""
        return await self.past.deltas_since(tenant, doc_id, since, until)

    async def state_at(
        self, tenant: str, doc_id: str, *, version: int | None = None, at: datetime | None = None
    ) -> dict[str, Any]:
        """The document as it was at ``version`` (or at time ``at``)."""
        return await self.past.state_at(tenant, doc_id, version=version, at=at)

    async def history(
        self, tenant: str, doc_id: str, *, since: int | None = None, limit: int | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """One document's events in ``seq`` order; ``next`` resumes after the last one."""
        return await self.past.history(tenant, doc_id, since=since, limit=limit, cursor=cursor)

    async def verify(self, tenant: str, doc_id: str) -> dict[str, Any]:
        """Recompute the document's hash chain from its first event."""
        return await self.past.verify(tenant, doc_id)
