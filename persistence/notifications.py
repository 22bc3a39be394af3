"""Notifications: stored for one user or for a role of a tenant, read marks per user.

A notification is stored in the transaction of the change that causes it (a review
assigned or decided, a reply in a thread, a workflow step becoming ready), so it exists
exactly when its cause committed. The store reports each as a :class:`Notified` fact; live
delivery to the addressee's sessions on every node, and the per-addressee throttle, follow
the commit in the server. "Read" belongs to the reader: a role's notification read by one
reviewer stays unread for the others. "Read all" is one watermark per user.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import and_, delete, exists, func, insert, or_, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.database import Database
from persistence.errors import BadRequest, NotFound
from persistence.facts import Notified
from persistence.pagination import FOREIGN_CURSOR, decode_cursor, encode_cursor, page_limit
from persistence.schema import notification_marks, notification_reads, notifications
from persistence.timeutil import format_ts, utcnow

__all__ = ["NOTIFICATION_TYPES", "NotificationStore"]

NOTIFICATION_TYPES = ("review.assigned", "review.decided", "comment.reply", "step.ready")
_INSERT = insert(notifications)  # built once: bulk requests store hundreds in a row
MAX_TITLE = 300
MAX_BODY = 2000


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _notification(row: Row[Any], read: bool) -> dict[str, Any]:
    return {
        "id": row.id, "type": row.type, "title": row.title, "body": row.body,
        "doc": row.doc, "idea": row.idea, "created_at": format_ts(row.created_at),
        "read": read,
    }


class NotificationStore:
    """``enabled`` is ``COEDIT_NOTIFICATIONS``: when off, no notification is made at all."""

    def __init__(self, db: Database, *, enabled: bool = True) -> None:
        self.db = db
        self.enabled = enabled

    async def add(
        self, conn: AsyncConnection, *, tenant: str, type: str, title: str, body: str,
        doc: str | None = None, idea: str | None = None, user: str | None = None,
        role: str | None = None,
    ) -> Notified | None:
        """Store one notification in the caller's transaction; its fact, or None when
        notifications are off."""
        if (user is None) == (role is None):
            raise ValueError("a notification goes to one user or to one role")
        if type not in NOTIFICATION_TYPES:
            raise ValueError(f"unknown notification type {type!r}")
        if not self.enabled:
            return None
        created = utcnow()
        values: dict[str, Any] = {
            "id": str(uuid.uuid4()), "tenant": tenant, "user_id": user, "role": role,
            "type": type, "title": _clip(title, MAX_TITLE), "body": _clip(body, MAX_BODY),
            "doc": doc, "idea": idea, "created_at": created,
        }
        await conn.execute(_INSERT, values)
        shown = {"id": values["id"], "type": type, "title": values["title"],
                 "body": values["body"], "doc": doc, "idea": idea,
                 "created_at": format_ts(created), "read": False}
        return Notified(tenant, shown, user=user, role=role)

    @staticmethod
    def _addressed(tenant: str, user: str, roles: tuple[str, ...]) -> Any:
        return and_(notifications.c.tenant == tenant,
                    or_(notifications.c.user_id == user, notifications.c.role.in_(roles)))

    @staticmethod
    def _read(tenant: str, user: str) -> Any:
        """Whether the caller has read a notification: its own mark, or under the watermark."""
        marked = exists().where(notification_reads.c.tenant == tenant,
                                notification_reads.c.user_id == user,
                                notification_reads.c.seq == notifications.c.seq)
        through = (select(notification_marks.c.read_through)
                   .where(notification_marks.c.tenant == tenant,
                          notification_marks.c.user_id == user).scalar_subquery())
        return or_(marked, notifications.c.seq <= func.coalesce(through, 0))

    async def list(
        self, tenant: str, user: str, roles: tuple[str, ...], *, unread: bool,
        limit: int | None, cursor: str | None,
    ) -> dict[str, Any]:
        """Newest first: those addressed to the caller or one of its roles."""
        limit = page_limit(limit, default=50, maximum=500)
        read = self._read(tenant, user)
        query = select(notifications, read.label("is_read")).where(
            self._addressed(tenant, user, roles))
        if unread:
            query = query.where(~read)
        if cursor:
            (last,) = decode_cursor(cursor, 1)
            if not isinstance(last, int):
                raise BadRequest(FOREIGN_CURSOR)
            query = query.where(notifications.c.seq < last)
        query = query.order_by(notifications.c.seq.desc()).limit(limit + 1)
        async with self.db.reader() as conn:
            rows = (await conn.execute(query)).all()
        items = [_notification(row, bool(row.is_read)) for row in rows[:limit]]
        next_cursor = encode_cursor(rows[limit - 1].seq) if len(rows) > limit else None
        return {"items": items, "next": next_cursor}

    async def mark_read(self, tenant: str, user: str, roles: tuple[str, ...],
                        notification: str) -> dict[str, Any]:
        """Mark one notification read for the caller; ``not_found`` unless addressed to it."""
        async with self.db.transaction() as conn:
            row = (await conn.execute(select(notifications).where(
                notifications.c.id == notification,
                self._addressed(tenant, user, roles)))).first()
            if row is None:
                raise NotFound(f"no notification {notification!r}")
            # Delete-then-insert keeps the mark idempotent with the same SQL on both databases.
            await conn.execute(delete(notification_reads).where(
                notification_reads.c.tenant == tenant, notification_reads.c.user_id == user,
                notification_reads.c.seq == row.seq))
            await conn.execute(insert(notification_reads).values(
                tenant=tenant, user_id=user, seq=row.seq))
        return _notification(row, True)

    async def read_all(self, tenant: str, user: str, roles: tuple[str, ...]) -> dict[str, Any]:
        """Everything addressed to the caller so far counts as read; later ones do not."""
        async with self.db.transaction() as conn:
            newest = (await conn.execute(select(func.max(notifications.c.seq)).where(
                self._addressed(tenant, user, roles)))).scalar()
            if newest is None:
                return {"read_through": None}
            await conn.execute(delete(notification_marks).where(
                notification_marks.c.tenant == tenant, notification_marks.c.user_id == user))
            await conn.execute(insert(notification_marks).values(
                tenant=tenant, user_id=user, read_through=newest))
            # The watermark covers them now; single marks below it are no longer needed.
            await conn.execute(delete(notification_reads).where(
                notification_reads.c.tenant == tenant, notification_reads.c.user_id == user,
                notification_reads.c.seq <= newest))
        return {"read_through": int(newest)}
