"""The review trail's changes, for both edges: ideas, reviews, comment threads, notification
marks, archiving and bulk operations (docs/protocol.md sections 10-12, 14, 15).

Each method checks the role table first (``forbidden`` with ``access.denied`` before any
state check), lets its store check and commit the change, and hands what committed to
``Coedit.settle``. A refusal the store makes about *this* resource (not the reviewer, not
the comment's author) is recorded as ``access.denied`` the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.audit import AuditContext
from persistence.bulk import BulkRequest, ItemRun, run_bulk
from persistence.errors import BadRequest, Forbidden
from persistence.facts import Committed
from persistence.reviews import REVIEWER_MOVES, REVIEWS, parse_person
from server.auth import Action, Identity, allowed

if TYPE_CHECKING:
    from server.service import Coedit

__all__ = ["BULK_OPERATIONS", "ReviewTrail"]

T = TypeVar("T")
BULK_OPERATIONS = ("review.assign", "review.transition", "workflow.step", "document.archive")


class ReviewTrail:
    """``coedit.trail``: the review trail's writes."""

    def __init__(self, coedit: Coedit) -> None:
        self._coedit = coedit
        self._stores = coedit.trail_stores

    # -- ideas ------------------------------------------------------------------------------

    async def create_idea(self, identity: Identity, ctx: AuditContext,
                          body: Any) -> dict[str, Any]:
        await self._coedit.authorize(identity, Action.WRITE, ctx, what="create ideas")
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        return self._coedit.settle(await self._stores.ideas.create(ctx, body))

    # -- reviews ----------------------------------------------------------------------------

    async def assign_review(self, identity: Identity, ctx: AuditContext, doc: str,
                            body: Any) -> dict[str, Any]:
        await self._coedit.authorize(identity, Action.WRITE, ctx, doc=doc,
                                     what="request reviews")
        return self._coedit.settle(await self._stores.reviews.assign(ctx, doc, body))

    async def transition_review(self, identity: Identity, ctx: AuditContext, review: str,
                                body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise BadRequest('the body is {"to": STATE, "note"?: TEXT}')
        # Which role is needed depends on the move, so the move must be one first.
        await self._authorize_review_move(identity, ctx, REVIEWS.move(body.get("to")).name)
        admin = allowed(identity, Action.ADMIN)
        return await self._coedit.settle_or_refuse(
            identity, ctx, self._stores.reviews.transition(ctx, review, body, admin=admin),
            doc=None, what="move reviews", needs="reviewer or assigner of the review")

    async def _authorize_review_move(self, identity: Identity, ctx: AuditContext,
                                     to: str) -> None:
        """Reviewers start, approve and request changes; who assigns reviews withdraws."""
        if to in REVIEWER_MOVES:
            await self._coedit.authorize(identity, Action.REVIEW, ctx, what="review documents")
        else:
            await self._coedit.authorize(identity, Action.WRITE, ctx, what="withdraw reviews")

    # -- comments ---------------------------------------------------------------------------

    async def add_comment(self, identity: Identity, ctx: AuditContext, doc: str,
                          body: Any) -> dict[str, Any]:
        await self._coedit.authorize(identity, Action.COMMENT, ctx, doc=doc, what="comment")
        return self._coedit.settle(await self._stores.comments.add(ctx, doc, body))

    async def edit_comment(self, identity: Identity, ctx: AuditContext, comment: str,
                           body: Any) -> dict[str, Any]:
        await self._coedit.authorize(identity, Action.COMMENT, ctx, what="edit comments")
        return await self._coedit.settle_or_refuse(identity, ctx,
                                   self._stores.comments.edit(ctx, comment, body),
                                   doc=None, what="edit comments", needs="author")

    async def set_thread_resolved(self, identity: Identity, ctx: AuditContext, comment: str,
                                  verb: str) -> dict[str, Any]:
        what = f"{verb} comment threads"
        await self._coedit.authorize(identity, Action.COMMENT, ctx, what=what)
        moderator = allowed(identity, Action.REVIEW)
        return await self._coedit.settle_or_refuse(
            identity, ctx,
            self._stores.comments.set_resolved(ctx, comment, verb, moderator=moderator),
            doc=None, what=what, needs="thread author, reviewer or admin")

    # -- notification marks: the caller's own, so every role may set them -----------------

    async def mark_read(self, identity: Identity, notification: str) -> dict[str, Any]:
        return await self._stores.notifications.mark_read(
            identity.tenant, identity.id, identity.roles, notification)

    async def read_all(self, identity: Identity) -> dict[str, Any]:
        return await self._stores.notifications.read_all(identity.tenant, identity.id,
                                                         identity.roles)

    # -- archiving --------------------------------------------------------------------------

    async def set_archived(self, identity: Identity, ctx: AuditContext, doc: str,
                           archived: bool) -> dict[str, Any]:
        await self._coedit.authorize(identity, Action.ADMIN, ctx, doc=doc,
                                     what="archive documents" if archived
                                     else "reopen documents")
        self._coedit.settle(await self._stores.archival.set_archived(ctx, doc, archived))
        return await self._coedit.store.get(identity.tenant, doc)

    # -- bulk -------------------------------------------------------------------------------

    async def bulk(self, identity: Identity, ctx: AuditContext, body: Any) -> dict[str, Any]:
        """Section 15: the role for the operation is checked once, for the whole request;
        each item then goes through exactly the store call its single request makes."""
        request = BulkRequest.parse(body, BULK_OPERATIONS)
        ctx = dataclasses.replace(ctx, source="bulk")
        run = await self._bulk_item(identity, ctx, request)
        answer = self._coedit.settle(await run_bulk(self._coedit.db, ctx, request, run))
        if not request.dry_run:
            for result in answer["results"]:
                if not result["ok"] and result["error"]["code"] == "forbidden":
                    await self._coedit.refusal(
                        identity, ctx, Forbidden(result["error"]["message"]), doc=None,
                        what=f"{request.operation} {result['id']}", needs="see reason")
        return answer

    async def _bulk_item(self, identity: Identity, ctx: AuditContext,
                         request: BulkRequest) -> ItemRun:
        stores, params = self._stores, request.params
        if request.operation == "review.assign":
            await self._coedit.authorize(identity, Action.WRITE, ctx, what="request reviews")
            parse_person(params.get("reviewer"), "params.reviewer")

            def assign(conn: AsyncConnection, doc: str) -> Awaitable[Committed[Any]]:
                return stores.reviews.assign_in(conn, ctx, doc, params)
            return assign
        if request.operation == "review.transition":
            await self._authorize_review_move(identity, ctx, REVIEWS.move(params.get("to")).name)
            admin = allowed(identity, Action.ADMIN)

            def transition(conn: AsyncConnection, review: str) -> Awaitable[Committed[Any]]:
                return stores.reviews.transition_in(conn, ctx, review, params, admin=admin)
            return transition
        if request.operation == "workflow.step":
            return await self._coedit.workflows.bulk_item(identity, ctx, params)
        await self._coedit.authorize(identity, Action.ADMIN, ctx, what="archive documents")
        if params:
            raise BadRequest("document.archive takes no params")

        def archive(conn: AsyncConnection, doc: str) -> Awaitable[Committed[Any]]:
            return stores.archival.set_archived_in(conn, ctx, doc, True)
        return archive

