"""Reading a tenant's documents as they are now: one by id, or a page of a listing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.engine import Row

from persistence.database import Database
from persistence.errors import NotFound
from persistence.jsonutil import loads
from persistence.pagination import newest_first, page_limit, page_of
from persistence.schema import documents
from persistence.timeutil import format_ts

__all__ = ["DocumentReads", "document_from_row", "select_document"]


def select_document(tenant: str, doc_id: str) -> Select[Any]:
    """The row of a document of ``tenant``; none for another tenant's, as if it did not exist."""
    return select(documents).where(documents.c.id == doc_id, documents.c.tenant == tenant)


def document_from_row(row: Row[Any], state: Any = None) -> dict[str, Any]:
    """A ``documents`` row as the API shows it; ``state`` replaces the stored one (an older
    version's, rebuilt)."""
    return {
        "id": row.id,
        "kind": row.kind,
        "idea": row.idea,
        "title": row.title,
        "version": row.version,
        "state": loads(row.state) if state is None else state,
        "created_at": format_ts(row.created_at),
        "updated_at": format_ts(row.updated_at),
        "updated_by": row.updated_by,
    }


class DocumentReads:
    """The current documents of one database; every method is scoped to one tenant."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, tenant: str, doc_id: str) -> dict[str, Any]:
        async with self.db.reader() as conn:
            row = (await conn.execute(select_document(tenant, doc_id))).first()
        if row is None:
            raise NotFound(f"no document {doc_id!r}")
        return document_from_row(row)

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

    async def placement(self, tenant: str, doc_id: str) -> tuple[str, str | None]:
        """The kind and idea of a document of ``tenant``; ``not_found`` for anything else."""
        async with self.db.reader() as conn:
            row = (await conn.execute(select(documents.c.kind, documents.c.idea).where(
                documents.c.id == doc_id, documents.c.tenant == tenant))).first()
        if row is None:
            raise NotFound(f"no document {doc_id!r}")
        return str(row.kind), row.idea

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
            query = query.where(func.lower(documents.c.title).contains(q.lower(),
                                                                       autoescape=True))
        query = newest_first(query, documents.c.created_at, documents.c.id, cursor, limit)
        async with self.db.reader() as conn:
            rows = (await conn.execute(query)).all()
        return page_of(rows, limit, document_from_row)
