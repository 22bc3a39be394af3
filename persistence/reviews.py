"""The review workflow around a document: comments, the review, archiving and reopening.

Each change locks the document row, changes its table and appends its audit event in one
transaction, so the event chain of a document interleaves patches, locks and reviews in the
order they happened. Permission checks (who may review, who may archive) belong to the edge;
this module enforces what the data allows (a known state change, a comment that exists).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.audit import AuditContext, EventDraft, append_event
from persistence.database import Database
from persistence.errors import BadRequest, Conflict, Forbidden, NotFound
from persistence.facts import Appended, Committed
from persistence.schema import comments, documents, reviews
from persistence.timeutil import format_ts, utcnow

__all__ = ["REVIEW_STATES", "ReviewStore"]

MAX_COMMENT = 10_000
REVIEW_STATES = ("in_review", "changes_requested", "approved")
# Which review states may follow which: approval can be withdrawn by asking again.
TRANSITIONS = {
    "in_review": ("changes_requested", "approved"),
    "changes_requested": ("in_review",),
    "approved": ("in_review",),
}


def _comment(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id, "doc": row.doc, "path": row.path, "body": row.body,
        "author": {"id": row.author_id, "name": row.author_name},
        "created_at": format_ts(row.created_at),
        "resolved_at": format_ts(row.resolved_at) if row.resolved_at else None,
        "resolved_by": row.resolved_by,
    }


def _review(row: Row[Any]) -> dict[str, Any]:
    return {
        "doc": row.doc, "state": row.state,
        "reviewer": {"id": row.reviewer_id, "name": row.reviewer_name},
        "assigned_by": row.assigned_by, "version": row.version,
        "updated_at": format_ts(row.updated_at),
    }


class ReviewStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def _document(self, conn: AsyncConnection, tenant: str, doc: str) -> Row[Any]:
        row = (await conn.execute(
            select(documents.c.id, documents.c.kind, documents.c.version,
                   documents.c.archived_at)
            .where(documents.c.id == doc, documents.c.tenant == tenant).with_for_update()
        )).first()
        if row is None:
            raise NotFound(f"no document {doc!r}")
        return row  # type: ignore[return-value]

    async def _event(self, conn: AsyncConnection, ctx: AuditContext, row: Row[Any],
                     event_type: str, data: dict[str, Any]) -> None:
        await append_event(conn, ctx, EventDraft(event_type, row.id, row.kind, row.version,
                                                 data), ts=utcnow())

    # -- comments -------------------------------------------------------------------------

    async def add_comment(self, ctx: AuditContext, doc: str, body: Any,
                          path: Any = "") -> Committed[dict[str, Any]]:
        if not isinstance(body, str) or not body.strip() or len(body) > MAX_COMMENT:
            raise BadRequest(f"body must be non-empty text of at most {MAX_COMMENT} characters")
        if not isinstance(path, str) or (path and not path.startswith("/")):
            raise BadRequest("path must be a JSON pointer ('' for the whole document)")
        comment_id = str(uuid.uuid4())
        now = utcnow()
        async with self.db.transaction() as conn:
            row = await self._document(conn, ctx.tenant, doc)
            await conn.execute(comments.insert().values(
                id=comment_id, tenant=ctx.tenant, doc=doc, path=path, body=body,
                author_id=ctx.actor.id, author_name=ctx.actor.name, created_at=now))
            await self._event(conn, ctx, row, "comment.added",
                              {"comment": comment_id, "path": path, "body": body})
            created = (await conn.execute(
                select(comments).where(comments.c.id == comment_id))).one()
        return Committed(_comment(created), (Appended(ctx.tenant),))

    async def resolve_comment(self, ctx: AuditContext, doc: str, comment_id: str, *,
                              may_resolve_any: bool) -> Committed[dict[str, Any]]:
        async with self.db.transaction() as conn:
            row = await self._document(conn, ctx.tenant, doc)
            found = (await conn.execute(select(comments).where(
                comments.c.id == comment_id, comments.c.doc == doc))).first()
            if found is None:
                raise NotFound(f"no comment {comment_id!r} on this document")
            if found.author_id != ctx.actor.id and not may_resolve_any:
                raise Forbidden("only the author or a reviewer may resolve a comment")
            if found.resolved_at is not None:
                raise Conflict("the comment is resolved already")
            await conn.execute(update(comments).where(comments.c.id == comment_id)
                               .values(resolved_at=utcnow(), resolved_by=ctx.actor.id))
            await self._event(conn, ctx, row, "comment.resolved", {"comment": comment_id})
            resolved = (await conn.execute(
                select(comments).where(comments.c.id == comment_id))).one()
        return Committed(_comment(resolved), (Appended(ctx.tenant),))

    async def comments(self, tenant: str, doc: str) -> list[dict[str, Any]]:
        async with self.db.reader() as conn:
            rows = (await conn.execute(
                select(comments).where(comments.c.doc == doc, comments.c.tenant == tenant)
                .order_by(comments.c.created_at, comments.c.id))).all()
        return [_comment(row) for row in rows]

    # -- the review -----------------------------------------------------------------------

    async def assign(
        self, ctx: AuditContext, doc: str, reviewer: Any
    ) -> Committed[dict[str, Any]]:
        if (not isinstance(reviewer, dict) or not isinstance(reviewer.get("id"), str)
                or not reviewer["id"] or not isinstance(reviewer.get("name", ""), str)):
            raise BadRequest('reviewer must be {"id": ..., "name": ...}')
        reviewer_name = reviewer.get("name") or reviewer["id"]
        now = utcnow()
        async with self.db.transaction() as conn:
            row = await self._document(conn, ctx.tenant, doc)
            existing = (await conn.execute(select(reviews).where(reviews.c.doc == doc))).first()
            values = {"reviewer_id": reviewer["id"], "reviewer_name": reviewer_name,
                      "state": "in_review", "assigned_by": ctx.actor.id,
                      "version": row.version, "updated_at": now}
            if existing is None:
                await conn.execute(reviews.insert().values(doc=doc, tenant=ctx.tenant, **values))
            else:
                await conn.execute(update(reviews).where(reviews.c.doc == doc).values(**values))
            await self._event(conn, ctx, row, "review.assigned",
                              {"reviewer": {"id": reviewer["id"], "name": reviewer_name},
                               "previous": existing.reviewer_id if existing else None})
            result = (await conn.execute(select(reviews).where(reviews.c.doc == doc))).one()
        return Committed(_review(result), (Appended(ctx.tenant),))

    async def transition(self, ctx: AuditContext, doc: str, to: Any, *, note: Any = None,
                         may_act_for_reviewer: bool) -> Committed[dict[str, Any]]:
        if to not in REVIEW_STATES:
            raise BadRequest(f"to must be one of {', '.join(REVIEW_STATES)}")
        if note is not None and (not isinstance(note, str) or len(note) > MAX_COMMENT):
            raise BadRequest("note must be text")
        async with self.db.transaction() as conn:
            row = await self._document(conn, ctx.tenant, doc)
            current = (await conn.execute(select(reviews).where(reviews.c.doc == doc))).first()
            if current is None:
                raise Conflict("the document has no review; assign a reviewer first")
            if current.reviewer_id != ctx.actor.id and not may_act_for_reviewer:
                raise Forbidden("only the assigned reviewer may move this review")
            if to not in TRANSITIONS[current.state]:
                raise Conflict(f"a review cannot go from {current.state} to {to}",
                               state=current.state)
            await conn.execute(update(reviews).where(reviews.c.doc == doc).values(
                state=to, version=row.version, updated_at=utcnow()))
            await self._event(conn, ctx, row, "review.transitioned",
                              {"from": current.state, "to": to, "note": note})
            result = (await conn.execute(select(reviews).where(reviews.c.doc == doc))).one()
        return Committed(_review(result), (Appended(ctx.tenant),))

    async def review(self, tenant: str, doc: str) -> dict[str, Any] | None:
        async with self.db.reader() as conn:
            row = (await conn.execute(select(reviews).where(
                reviews.c.doc == doc, reviews.c.tenant == tenant))).first()
        return None if row is None else _review(row)

    # -- archiving a document -------------------------------------------------------------

    async def set_archived(
        self, ctx: AuditContext, doc: str, archived: bool
    ) -> Committed[None]:
        """Archive (read-only from then on) or reopen a document."""
        async with self.db.transaction() as conn:
            row = await self._document(conn, ctx.tenant, doc)
            if (row.archived_at is not None) == archived:
                raise Conflict("the document is archived already" if archived
                               else "the document is not archived")
            await conn.execute(update(documents).where(documents.c.id == doc)
                               .values(archived_at=utcnow() if archived else None))
            await self._event(conn, ctx, row,
                              "document.archived" if archived else "document.reopened", {})
        return Committed(None, (Appended(ctx.tenant),))
