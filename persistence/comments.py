"""Comment threads on a document: add, reply, edit, resolve and reopen a whole thread.

A thread is its first comment and every reply to any comment of it (``thread`` is the first
comment's id). Resolution belongs to the thread: resolving marks each of its comments and
records who and when on the first one; reopening clears that. Each change locks the
document row and appends its event (bodies redacted by ``COEDIT_REDACT`` like any event
data) in the same transaction; a reply notifies the thread's other authors.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.audit import AuditContext
from persistence.database import Database
from persistence.errors import BadRequest, Forbidden, NotFound
from persistence.facts import Appended, Committed, Fact, Touched
from persistence.ideas import person
from persistence.notifications import NotificationStore
from persistence.patching import redact_value
from persistence.reviews import append_document_event, locked_document
from persistence.schema import comments
from persistence.state_machine import Move, StateMachine
from persistence.timeutil import format_ts, utcnow

__all__ = ["THREADS", "CommentStore", "comment_from_row"]

MAX_BODY = 10_000
MAX_PATH = 1024


@dataclass(frozen=True, slots=True)
class ThreadMove:
    actor: str
    author: str  # of the thread's first comment
    moderator: bool  # a reviewer or an admin


def _author_or_moderator(move: ThreadMove) -> str | None:
    if move.moderator or move.actor == move.author:
        return None
    return "only the thread's author, reviewers and admins may resolve or reopen it"


THREADS: StateMachine[ThreadMove] = StateMachine.of(
    "comment thread", states=("open", "resolved"), final=(),
    moves=[Move("resolve", frozenset({"open"}), "resolved", who=_author_or_moderator),
           Move("reopen", frozenset({"resolved"}), "open", who=_author_or_moderator)],
)


def comment_from_row(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id, "doc": row.doc, "thread": row.thread, "parent": row.parent,
        "path": row.path, "author": person(row.author_id, row.author_name),
        "body": row.body, "created_at": format_ts(row.created_at),
        "edited_at": format_ts(row.edited_at) if row.edited_at else None,
        "resolved": bool(row.resolved),
        "resolved_by": (person(row.resolved_by, row.resolved_by_name)
                        if row.resolved_by else None),
        "resolved_at": format_ts(row.resolved_at) if row.resolved_at else None,
    }


def _body(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_BODY:
        raise BadRequest(f"body must be text of 1 to {MAX_BODY:,} characters")
    return value


def _path(value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_PATH or (value and value[0] != "/"):
        raise BadRequest("path must be a JSON pointer into the document ('' for all of it)")
    return value


class CommentStore:
    def __init__(self, db: Database, notifications: NotificationStore,
                 redact: frozenset[str] = frozenset()) -> None:
        self.db = db
        self.notifications = notifications
        self.redact = redact

    async def _event(self, conn: AsyncConnection, ctx: AuditContext, doc: Row[Any],
                     event_type: str, data: dict[str, Any]) -> None:
        await append_document_event(conn, ctx, doc, event_type, redact_value(data, self.redact))

    @staticmethod
    async def _comment(conn: AsyncConnection, tenant: str, comment: Any) -> Row[Any]:
        if not isinstance(comment, str) or len(comment) > 64:
            raise NotFound(f"no comment {comment!r}")
        row = (await conn.execute(select(comments).where(
            comments.c.id == comment, comments.c.tenant == tenant))).first()
        if row is None:
            raise NotFound(f"no comment {comment!r}")
        return row

    async def _thread(self, conn: AsyncConnection, thread: str) -> list[Row[Any]]:
        return list((await conn.execute(select(comments).where(comments.c.thread == thread)
                                        .order_by(comments.c.created_at, comments.c.id))).all())

    async def add(self, ctx: AuditContext, doc: str,
                  body: dict[str, Any]) -> Committed[dict[str, Any]]:
        """A new thread, or with ``parent`` a reply that joins the parent's thread."""
        if not isinstance(body, dict) or set(body) - {"body", "path", "parent"}:
            raise BadRequest('the body is {"body": TEXT, "path"?: POINTER, "parent"?: ID}')
        text = _body(body.get("body"))
        parent_id = body.get("parent")
        if parent_id is not None and (not isinstance(parent_id, str) or len(parent_id) > 64):
            raise BadRequest("parent must be the id of a comment of this document")
        async with self.db.transaction() as conn:
            row = await locked_document(conn, ctx.tenant, doc)
            thread_rows: list[Row[Any]] = []
            parent = None
            if parent_id is not None:
                parent = (await conn.execute(select(comments).where(
                    comments.c.id == parent_id, comments.c.doc == doc))).first()
                if parent is None:
                    raise BadRequest("parent must be the id of a comment of this document")
                thread_rows = await self._thread(conn, parent.thread)
            path = _path(body["path"]) if "path" in body else (parent.path if parent else "")
            comment_id = str(uuid.uuid4())
            thread = parent.thread if parent is not None else comment_id
            await conn.execute(comments.insert().values(
                id=comment_id, tenant=ctx.tenant, doc=doc, thread=thread, parent=parent_id,
                path=path, body=text, author_id=ctx.actor.id, author_name=ctx.actor.name,
                created_at=utcnow(), edited_at=None,
                # A reply joins its thread as it stands, resolved or not.
                resolved=bool(parent is not None and parent.resolved)))
            added = comment_from_row(await self._comment(conn, ctx.tenant, comment_id))
            await self._event(conn, ctx, row, "comment.added", {
                "comment": comment_id, "thread": thread, "parent": parent_id, "path": path,
                "body": text})
            facts: list[Fact] = [Appended(ctx.tenant),
                                 Touched(ctx.tenant, doc, "comment", added)]
            others = dict.fromkeys(r.author_id for r in thread_rows
                                   if r.author_id != ctx.actor.id)
            for author in others:
                notified = await self.notifications.add(
                    conn, tenant=ctx.tenant, type="comment.reply", user=author,
                    title=f"New reply on {row.title}",
                    body=f"{ctx.actor.name}: {text}", doc=doc, idea=row.idea)
                if notified is not None:
                    facts.append(notified)
        return Committed(added, tuple(facts))

    async def edit(self, ctx: AuditContext, comment: str,
                   body: dict[str, Any]) -> Committed[dict[str, Any]]:
        """Change a comment's text: its author only; the event keeps before and after."""
        if not isinstance(body, dict) or set(body) != {"body"}:
            raise BadRequest('the body is {"body": TEXT}')
        text = _body(body["body"])
        async with self.db.transaction() as conn:
            found = await self._comment(conn, ctx.tenant, comment)
            row = await locked_document(conn, ctx.tenant, found.doc)
            found = await self._comment(conn, ctx.tenant, comment)
            if found.author_id != ctx.actor.id:
                raise Forbidden("only its author may edit a comment")
            await conn.execute(update(comments).where(comments.c.id == comment)
                               .values(body=text, edited_at=utcnow()))
            edited = comment_from_row(await self._comment(conn, ctx.tenant, comment))
            await self._event(conn, ctx, row, "comment.edited", {
                "comment": comment, "thread": found.thread, "before": found.body,
                "after": text})
        return Committed(edited, (Appended(ctx.tenant),
                                  Touched(ctx.tenant, found.doc, "comment", edited)))

    async def set_resolved(self, ctx: AuditContext, comment: str, verb: str, *,
                           moderator: bool) -> Committed[dict[str, Any]]:
        """``resolve`` or ``reopen`` the thread of ``comment``; answers its first comment."""
        async with self.db.transaction() as conn:
            found = await self._comment(conn, ctx.tenant, comment)
            row = await locked_document(conn, ctx.tenant, found.doc)
            thread = await self._thread(conn, found.thread)
            first = thread[0]
            move = THREADS.check(verb, "resolved" if first.resolved else "open",
                                 ThreadMove(ctx.actor.id, first.author_id, moderator))
            resolving = move.target == "resolved"
            now = utcnow()
            await conn.execute(update(comments).where(comments.c.thread == found.thread)
                               .values(resolved=resolving))
            await conn.execute(update(comments).where(comments.c.id == first.id).values(
                resolved_at=now if resolving else None,
                resolved_by=ctx.actor.id if resolving else None,
                resolved_by_name=ctx.actor.name if resolving else None))
            changed = [comment_from_row(r) for r in await self._thread(conn, found.thread)]
            await self._event(conn, ctx, row,
                              "comment.resolved" if resolving else "comment.reopened",
                              {"comment": comment, "thread": found.thread})
        facts: list[Fact] = [Appended(ctx.tenant)]
        facts += [Touched(ctx.tenant, found.doc, "comment", c) for c in changed]
        return Committed(changed[0], tuple(facts))

    async def list(self, tenant: str, doc: str, *, resolved: bool | None = None,
                   path: str | None = None) -> list[dict[str, Any]]:
        """In creation order; ``path`` keeps the comments on that pointer or below it."""
        query = select(comments).where(comments.c.doc == doc, comments.c.tenant == tenant)
        if resolved is not None:
            query = query.where(comments.c.resolved.is_(resolved))
        if path is not None:
            _path(path)
            if path:
                query = query.where((comments.c.path == path) | comments.c.path.startswith(
                    path + "/", autoescape=True))
        async with self.db.reader() as conn:
            rows = (await conn.execute(
                query.order_by(comments.c.created_at, comments.c.id))).all()
        return [comment_from_row(row) for row in rows]
