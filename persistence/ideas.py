"""Ideas: the investment case that groups a memo, its numbers, a valuation and monitoring.

An idea is created once and never rewritten; its documents name it when they are created.
Its own events (``idea.created``) chain per tenant, since they concern no document, and
carry the idea's id in the event's ``idea`` field like every event of its documents,
reviews and comments, which is what the idea's timeline reads.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.audit import AuditContext, EventDraft, append_event
from persistence.database import Database
from persistence.errors import BadRequest, NotFound
from persistence.facts import Appended, Committed
from persistence.pagination import newest_first, page_limit, page_of
from persistence.schema import documents, ideas
from persistence.timeutil import format_ts, utcnow
from persistence.word_match import query_words, starts_a_word

__all__ = ["IdeaStore", "idea_from_row", "person", "require_idea"]

MAX_TITLE = 200
MAX_TICKER = 32
MAX_QUERY = 200


def person(user_id: str, name: str | None) -> dict[str, str]:
    """A person as every resource names one."""
    return {"id": user_id, "name": name or user_id}


def idea_from_row(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id, "title": row.title, "ticker": row.ticker,
        "created_by": person(row.created_by_id, row.created_by_name),
        "created_at": format_ts(row.created_at),
    }


async def require_idea(conn: AsyncConnection, tenant: str, idea: str) -> Row[Any]:
    """The idea ``idea`` of ``tenant``; ``not_found`` for none, or another tenant's."""
    row = (await conn.execute(
        select(ideas).where(ideas.c.id == idea, ideas.c.tenant == tenant))).first()
    if row is None:
        raise NotFound(f"no idea {idea!r}")
    return row


def _words_query(query: Select[Any], q: str) -> Select[Any]:
    """Every word of ``q`` starts a word of the title, or is the ticker's start."""
    ticker = func.lower(func.coalesce(ideas.c.ticker, ""))
    for word in query_words(q, MAX_QUERY):
        query = query.where(or_(starts_a_word(ideas.c.title, word),
                                ticker.startswith(word, autoescape=True)))
    return query


class IdeaStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, ctx: AuditContext, body: dict[str, Any]) -> Committed[dict[str, Any]]:
        title, ticker = body.get("title"), body.get("ticker")
        if not isinstance(title, str) or not title.strip() or len(title) > MAX_TITLE:
            raise BadRequest(f"title must be non-empty text of at most {MAX_TITLE} characters")
        if ticker is not None and (not isinstance(ticker, str) or not ticker.strip()
                                   or len(ticker) > MAX_TICKER):
            raise BadRequest(f"ticker must be text of at most {MAX_TICKER} characters")
        unknown = set(body) - {"title", "ticker"}
        if unknown:
            raise BadRequest(f"unknown fields: {', '.join(sorted(unknown))}")
        idea_id = str(uuid.uuid4())
        now = utcnow()
        async with self.db.transaction() as conn:
            await conn.execute(ideas.insert().values(
                id=idea_id, tenant=ctx.tenant, title=title.strip(),
                ticker=ticker.strip() if ticker else None, created_by_id=ctx.actor.id,
                created_by_name=ctx.actor.name, created_at=now))
            await append_event(conn, ctx, EventDraft(
                "idea.created", None, None, None,
                {"title": title.strip(), "ticker": ticker.strip() if ticker else None},
                idea_id), ts=now)
            row = await require_idea(conn, ctx.tenant, idea_id)
        return Committed(idea_from_row(row), (Appended(ctx.tenant),))

    async def get(self, tenant: str, idea: str) -> dict[str, Any]:
        """The idea with its documents (without their state)."""
        async with self.db.reader() as conn:
            row = await require_idea(conn, tenant, idea)
            docs = (await conn.execute(
                select(documents.c.id, documents.c.kind, documents.c.title,
                       documents.c.version, documents.c.created_at, documents.c.updated_at,
                       documents.c.updated_by, documents.c.archived_at)
                .where(documents.c.idea == idea, documents.c.tenant == tenant)
                .order_by(documents.c.created_at, documents.c.id))).all()
        return {**idea_from_row(row), "documents": [{
            "id": d.id, "kind": d.kind, "idea": idea, "title": d.title, "version": d.version,
            "created_at": format_ts(d.created_at), "updated_at": format_ts(d.updated_at),
            "updated_by": d.updated_by, "archived": d.archived_at is not None,
        } for d in docs]}

    async def list(self, tenant: str, *, q: str | None, limit: int | None,
                   cursor: str | None) -> dict[str, Any]:
        """Newest first, keyset-paginated on (created_at, id)."""
        limit = page_limit(limit, default=50, maximum=500)
        query = select(ideas).where(ideas.c.tenant == tenant)
        if q:
            query = _words_query(query, q)
        query = newest_first(query, ideas.c.created_at, ideas.c.id, cursor, limit)
        async with self.db.reader() as conn:
            rows = (await conn.execute(query)).all()
        return page_of(rows, limit, idea_from_row)
