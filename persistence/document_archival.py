"""Archiving a document (read-only from then on) and reopening it.

Not to be confused with ``persistence.archive``, which copies old audit events out of the
database: here a document's status changes, and that change is itself an event.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.audit import AuditContext
from persistence.database import Database
from persistence.errors import InvalidTransition
from persistence.facts import Appended, Committed
from persistence.reviews import append_document_event, locked_document
from persistence.schema import documents
from persistence.timeutil import utcnow

__all__ = ["DocumentArchival"]


class DocumentArchival:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def set_archived(self, ctx: AuditContext, doc: str,
                           archived: bool) -> Committed[None]:
        async with self.db.transaction() as conn:
            return await self.set_archived_in(conn, ctx, doc, archived)

    async def set_archived_in(self, conn: AsyncConnection, ctx: AuditContext, doc: Any,
                              archived: bool) -> Committed[None]:
        """Archive or reopen ``doc`` in the caller's transaction; moving to where it is
        already is ``invalid_transition``."""
        row = await locked_document(conn, ctx.tenant, doc)
        state = "archived" if row.archived_at is not None else "open"
        if (row.archived_at is not None) == archived:
            raise InvalidTransition(f"the document is {state} already", state=state)
        await conn.execute(update(documents).where(documents.c.id == doc)
                           .values(archived_at=utcnow() if archived else None))
        await append_document_event(
            conn, ctx, row, "document.archived" if archived else "document.reopened", {})
        return Committed(None, (Appended(ctx.tenant),))
