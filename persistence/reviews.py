"""Reviews of a document: assigned to a reviewer with an optional due date, then moved
through their state machine until approved or withdrawn.

Each change locks the document row, so reviews, comments and patches of one document
serialise and its event chain interleaves them in the order they happened; the review's
event, its notification and its row change commit together. A document may have any number
of reviews but one open review per reviewer (checked here under the row lock, and held by a
partial unique index as well). Who may call at all (the role table) is the server's check;
who may make which move on *this* review is the machine's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.audit import AuditContext, EventDraft, append_event
from persistence.database import Database
from persistence.errors import BadRequest, InvalidTransition, NotFound
from persistence.facts import Appended, Committed, Fact, Touched
from persistence.ideas import person
from persistence.notifications import NotificationStore
from persistence.pagination import newest_first, page_limit, page_of
from persistence.patching import redact_value
from persistence.schema import REVIEW_FINAL, comments, documents, reviews
from persistence.state_machine import Move, StateMachine
from persistence.timeutil import format_ts, parse_ts, utcnow

if TYPE_CHECKING:
    from persistence.workflows.engine import WorkflowEngine

__all__ = [
    "REVIEWS",
    "ReviewStore",
    "append_document_event",
    "locked_document",
    "parse_person",
]

MAX_NOTE = 10_000
MAX_NAME = 256
MAX_ID = 128


@dataclass(frozen=True, slots=True)
class ReviewMove:
    """What the review machine's checks look at."""

    actor: str
    admin: bool
    reviewer: str
    assigned_by: str
    note: Any
    open_threads: int


def _reviewer_only(move: ReviewMove) -> str | None:
    if move.admin or move.actor == move.reviewer:
        return None
    return "only the reviewer (or an admin) may make this move"


def _assigner_only(move: ReviewMove) -> str | None:
    if move.admin or move.actor == move.assigned_by:
        return None
    return "only who assigned the review (or an admin) may withdraw it"


def _needs_note(move: ReviewMove) -> str | None:
    if isinstance(move.note, str) and move.note.strip():
        return None
    return "changes_requested needs a non-empty note saying what to change"


def _no_open_threads(move: ReviewMove) -> str | None:
    if move.open_threads == 0:
        return None
    return f"the document has {move.open_threads} unresolved comment thread(s)"


OPEN = frozenset({"assigned", "in_progress", "changes_requested"})
REVIEWS: StateMachine[ReviewMove] = StateMachine.of(
    "review",
    states=("assigned", "in_progress", "changes_requested", "approved", "withdrawn"),
    final=REVIEW_FINAL,
    moves=[
        Move("in_progress", frozenset({"assigned", "changes_requested"}), "in_progress",
             who=_reviewer_only),
        Move("approved", frozenset({"in_progress"}), "approved", who=_reviewer_only,
             guards=(_no_open_threads,),
             extra=lambda move: {"open_threads": move.open_threads}),
        Move("changes_requested", frozenset({"in_progress"}), "changes_requested",
             who=_reviewer_only, payload=_needs_note),
        Move("withdrawn", OPEN, "withdrawn", who=_assigner_only),
    ],
)
# The moves a reviewer makes; withdrawing is the assigner's (the server's role check).
REVIEWER_MOVES = frozenset({"in_progress", "approved", "changes_requested"})


def parse_person(value: Any, field: str) -> dict[str, str]:
    """``{"id","name"}`` as a request names a person; ``bad_request`` otherwise."""
    if (not isinstance(value, dict) or not isinstance(value.get("id"), str)
            or not value["id"].strip() or len(value["id"]) > MAX_ID
            or not isinstance(value.get("name", ""), str)
            or len(value.get("name", "")) > MAX_NAME or set(value) - {"id", "name"}):
        raise BadRequest(f'{field} must be {{"id": ..., "name": ...}}')
    return person(value["id"], value.get("name") or None)


def _due(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise BadRequest("due must be an ISO 8601 time or null")
    try:
        return parse_ts(value)
    except ValueError:
        raise BadRequest("due must be an ISO 8601 time or null") from None


def review_from_row(row: Any) -> dict[str, Any]:
    """A ``reviews`` row (or the values just inserted as one) as the API shows it."""
    return {
        "id": row.id, "doc": row.doc, "idea": row.idea, "stage": row.stage,
        "reviewer": person(row.reviewer_id, row.reviewer_name),
        "assigned_by": person(row.assigned_by_id, row.assigned_by_name),
        "status": row.status, "due": format_ts(row.due) if row.due else None,
        "note": row.note, "created_at": format_ts(row.created_at),
        "updated_at": format_ts(row.updated_at),
    }


# Built once, with bound parameters: a bulk request runs these a thousand times, and building
# a statement costs about as much as running it.
_LOCKED_DOCUMENT = (
    select(documents.c.id, documents.c.kind, documents.c.idea, documents.c.title,
           documents.c.version, documents.c.archived_at, documents.c.head_hash)
    .where(documents.c.id == bindparam("doc"), documents.c.tenant == bindparam("tenant"))
    .with_for_update())
_MOVE_HEAD = (update(documents).where(documents.c.id == bindparam("doc"))
              .values(head_hash=bindparam("head")))
_OPEN_REVIEW = select(reviews.c.id, reviews.c.status).where(
    reviews.c.doc == bindparam("doc"), reviews.c.reviewer_id == bindparam("reviewer"),
    reviews.c.status.not_in(REVIEW_FINAL))
_INSERT_REVIEW = reviews.insert()


async def locked_document(conn: AsyncConnection, tenant: str, doc: str) -> Row[Any]:
    """The document row, locked for the rest of the transaction; ``not_found`` outside the
    tenant. It carries the head of the document's chain, so the change's event links to it
    without reading the row again (:func:`append_document_event`)."""
    row = (await conn.execute(_LOCKED_DOCUMENT, {"doc": doc, "tenant": tenant})).first()
    if row is None:
        raise NotFound(f"no document {doc!r}")
    return row  # type: ignore[return-value]


async def append_document_event(conn: AsyncConnection, ctx: AuditContext, doc: Row[Any],
                                event_type: str, data: dict[str, Any]) -> None:
    """Append an event to the chain of ``doc``, a row :func:`locked_document` read (once per
    transaction: the head it carries is the one this event moves on from)."""
    event = await append_event(conn, ctx, EventDraft(
        event_type, doc.id, doc.kind, doc.version, data, doc.idea), ts=utcnow(),
        prev_hash=doc.head_hash, head_locked=True)
    await conn.execute(_MOVE_HEAD, {"doc": doc.id, "head": event["hash"]})


class ReviewStore:
    def __init__(self, db: Database, notifications: NotificationStore,
                 redact: frozenset[str] = frozenset()) -> None:
        self.db = db
        self.notifications = notifications
        self.redact = redact
        # Told of every approval of an idea's document, in the approving transaction, so a
        # workflow step waiting for it completes in the same commit.
        self.workflows: WorkflowEngine | None = None

    async def _event(self, conn: AsyncConnection, ctx: AuditContext, doc: Row[Any],
                     event_type: str, data: dict[str, Any]) -> None:
        await append_document_event(conn, ctx, doc, event_type, redact_value(data, self.redact))

    # -- assigning --------------------------------------------------------------------------

    async def assign(self, ctx: AuditContext, doc: str,
                     body: dict[str, Any]) -> Committed[dict[str, Any]]:
        async with self.db.transaction() as conn:
            return await self.assign_in(conn, ctx, doc, body)

    async def assign_in(self, conn: AsyncConnection, ctx: AuditContext, doc: str,
                        body: dict[str, Any]) -> Committed[dict[str, Any]]:
        """Ask ``body["reviewer"]`` to review ``doc``, in the caller's transaction."""
        if not isinstance(body, dict) or set(body) - {"reviewer", "due"}:
            raise BadRequest('the body is {"reviewer": {"id","name"}, "due"?}')
        reviewer = parse_person(body.get("reviewer"), "reviewer")
        due = _due(body.get("due"))
        row = await locked_document(conn, ctx.tenant, doc)
        open_one = (await conn.execute(
            _OPEN_REVIEW, {"doc": doc, "reviewer": reviewer["id"]})).first()
        if open_one is not None:
            raise InvalidTransition(
                f"{reviewer['name']} already has an open review of this document",
                state=open_one.status, review=open_one.id)
        now = utcnow()
        review_id = str(uuid.uuid4())
        values = {
            "id": review_id, "tenant": ctx.tenant, "doc": doc, "idea": row.idea,
            "stage": row.kind, "reviewer_id": reviewer["id"], "reviewer_name": reviewer["name"],
            "assigned_by_id": ctx.actor.id, "assigned_by_name": ctx.actor.name,
            "status": "assigned", "due": due, "note": None, "created_at": now,
            "updated_at": now,
        }
        await conn.execute(_INSERT_REVIEW, values)
        review = review_from_row(SimpleNamespace(**values))
        await self._event(conn, ctx, row, "review.assigned", {
            "review": review_id, "reviewer": reviewer, "due": review["due"],
            "stage": row.kind})
        facts: list[Fact] = [Appended(ctx.tenant), Touched(ctx.tenant, doc, "review", review)]
        due_text = f", due {review['due'][:10]}" if review["due"] else ""
        notified = await self.notifications.add(
            conn, tenant=ctx.tenant, type="review.assigned", user=reviewer["id"],
            title=f"Review requested: {row.title}",
            body=f"{ctx.actor.name} asked you to review the {row.kind}{due_text}.",
            doc=doc, idea=row.idea)
        if notified is not None:
            facts.append(notified)
        return Committed(review, tuple(facts))

    # -- moving -----------------------------------------------------------------------------

    async def transition(self, ctx: AuditContext, review: str, body: dict[str, Any], *,
                         admin: bool) -> Committed[dict[str, Any]]:
        async with self.db.transaction() as conn:
            return await self.transition_in(conn, ctx, review, body, admin=admin)

    async def transition_in(self, conn: AsyncConnection, ctx: AuditContext, review: str,
                            body: dict[str, Any], *, admin: bool) -> Committed[dict[str, Any]]:
        """Move a review as ``body`` says (``{"to","note"?}``), in the caller's transaction."""
        if not isinstance(body, dict) or set(body) - {"to", "note"}:
            raise BadRequest('the body is {"to": STATE, "note"?: TEXT}')
        to, note = body.get("to"), body.get("note")
        REVIEWS.move(to)  # an unknown target is bad input before anything is read
        if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE):
            raise BadRequest(f"note must be text of at most {MAX_NOTE} characters")
        current = await self._review(conn, ctx.tenant, review)
        if to == "approved" and current.idea is not None and self.workflows is not None:
            # Workflows may react to this approval: their lock order (chain, then rows).
            await self.workflows.lock_before_rows(conn, ctx.tenant)
        row = await locked_document(conn, ctx.tenant, current.doc)
        current = await self._review(conn, ctx.tenant, review)  # as of the lock
        threads = await self.open_threads(conn, current.doc) if to == "approved" else 0
        move = REVIEWS.check(to, current.status, ReviewMove(
            ctx.actor.id, admin, current.reviewer_id, current.assigned_by_id, note, threads))
        now = utcnow()
        kept_note = note if note is not None else current.note
        await conn.execute(update(reviews).where(reviews.c.id == review).values(
            status=move.target, note=kept_note, updated_at=now))
        moved = review_from_row((await conn.execute(
            select(reviews).where(reviews.c.id == review))).one())
        await self._event(conn, ctx, row, "review.transitioned", {
            "review": review, "from": current.status, "to": move.target, "note": note})
        facts: list[Fact] = [Appended(ctx.tenant),
                             Touched(ctx.tenant, current.doc, "review", moved)]
        if move.target in ("approved", "changes_requested"):
            verdict = "approved" if move.target == "approved" else "requested changes to"
            notified = await self.notifications.add(
                conn, tenant=ctx.tenant, type="review.decided", user=current.assigned_by_id,
                title=f"Review {move.target.replace('_', ' ')}: {row.title}",
                body=f"{ctx.actor.name} {verdict} the {row.kind}"
                     + (f": {note}" if note else "."),
                doc=current.doc, idea=row.idea)
            if notified is not None:
                facts.append(notified)
        if move.target == "approved" and row.idea is not None and self.workflows is not None:
            facts += await self.workflows.review_approved(conn, ctx, idea=row.idea,
                                                          stage=row.kind)
        return Committed(moved, tuple(facts))

    @staticmethod
    async def _review(conn: AsyncConnection, tenant: str, review: str) -> Row[Any]:
        if not isinstance(review, str) or len(review) > 64:
            raise NotFound(f"no review {review!r}")
        row = (await conn.execute(select(reviews).where(
            reviews.c.id == review, reviews.c.tenant == tenant))).first()
        if row is None:
            raise NotFound(f"no review {review!r}")
        return row

    @staticmethod
    async def open_threads(conn: AsyncConnection, doc: str) -> int:
        """Unresolved threads of ``doc`` (a thread is its first comment)."""
        return int((await conn.execute(select(func.count()).select_from(comments).where(
            comments.c.doc == doc, comments.c.parent.is_(None),
            comments.c.resolved.is_(False)))).scalar() or 0)

    # -- reading ----------------------------------------------------------------------------

    async def get(self, tenant: str, review: str) -> dict[str, Any]:
        async with self.db.reader() as conn:
            return review_from_row(await self._review(conn, tenant, review))

    async def list(
        self, tenant: str, *, reviewer: str | None = None, status: str | None = None,
        doc: str | None = None, idea: str | None = None, overdue: bool = False,
        limit: int | None = None, cursor: str | None = None,
    ) -> dict[str, Any]:
        """Newest first, keyset-paginated on (created_at, id)."""
        limit = page_limit(limit, default=50, maximum=500)
        query = select(reviews).where(reviews.c.tenant == tenant)
        if reviewer:
            query = query.where(reviews.c.reviewer_id == reviewer)
        if status:
            if status not in REVIEWS.states:
                raise BadRequest(f"status must be one of {', '.join(REVIEWS.states)}")
            query = query.where(reviews.c.status == status)
        if doc:
            query = query.where(reviews.c.doc == doc)
        if idea:
            query = query.where(reviews.c.idea == idea)
        if overdue:
            query = query.where(reviews.c.due < utcnow(), reviews.c.status.not_in(REVIEW_FINAL))
        query = newest_first(query, reviews.c.created_at, reviews.c.id, cursor, limit)
        async with self.db.reader() as conn:
            rows = (await conn.execute(query)).all()
        return page_of(rows, limit, review_from_row)
