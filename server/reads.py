"""Everything a caller may read, for both edges, under one rule of who and one of what exists.

Who: every read needs the ``read`` action of the role table; a caller without it is refused
with ``forbidden`` and the refusal is recorded (``access.denied``), as for any other action.
What exists: a document of another tenant does not exist. Reads of one document answer
``not_found`` for it before anything else; lists, pages and presence only ever hold the
caller's tenant. The stores' queries are tenant-scoped already; where a read's own query
cannot tell "no such document" from "nothing yet" (its comments, review, locks, presence),
the document is looked up first.

WebSocket sessions and HTTP handlers call these methods and nothing below them, so a new
read path gets both rules by being written here.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from channels.presence_backend import PresenceEntry
from channels.streams import EventSink, StreamSubscription
from persistence.audit import AuditContext
from persistence.errors import BadRequest, PreconditionRequired, TooLarge
from persistence.events import EventFilter
from persistence.pagination import page_limit
from persistence.search import SearchQuery
from server.auth import Action, Identity

if TYPE_CHECKING:
    from server.service import Coedit

__all__ = ["Reads", "SubscriptionView"]


@dataclass(frozen=True, slots=True)
class SubscriptionView:
    """What a new subscriber of a document is told: the document, who is there, its locks."""

    document: dict[str, Any]
    presence: list[PresenceEntry]
    locks: list[dict[str, Any]]


class Reads:
    """The read side of :class:`~server.service.Coedit` (``coedit.reads``)."""

    def __init__(self, coedit: Coedit) -> None:
        self._coedit = coedit

    async def _may_read(self, identity: Identity, ctx: AuditContext, *, doc: str | None = None,
                        what: str = "read documents") -> None:
        await self._coedit.authorize(identity, Action.READ, ctx, doc=doc, what=what)

    async def kind_of(self, identity: Identity, ctx: AuditContext, doc: str) -> str:
        """The kind of a document the caller may read; ``not_found`` outside the tenant."""
        await self._may_read(identity, ctx, doc=doc)
        return await self._coedit.store.kind_of(identity.tenant, doc)

    async def placement(self, identity: Identity, ctx: AuditContext,
                        doc: str) -> tuple[str, str | None]:
        """The kind and idea of a document the caller may read (for presence entries)."""
        await self._may_read(identity, ctx, doc=doc)
        return await self._coedit.store.placement(identity.tenant, doc)

    # -- documents --------------------------------------------------------------------------

    async def document(
        self, identity: Identity, ctx: AuditContext, doc: str, *, version: int | None = None,
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """The document now, or as it was at ``version`` or time ``at``."""
        await self._may_read(identity, ctx, doc=doc)
        store = self._coedit.store
        if version is None and at is None:
            return await store.get(identity.tenant, doc)
        return await store.state_at(identity.tenant, doc, version=version, at=at)

    async def documents(
        self, identity: Identity, ctx: AuditContext, *, kind: str | None, q: str | None,
        limit: int | None, cursor: str | None,
    ) -> dict[str, Any]:
        await self._may_read(identity, ctx)
        return await self._coedit.store.list_documents(
            identity.tenant, kind=kind, q=q, limit=limit, cursor=cursor)

    async def search(
        self, identity: Identity, ctx: AuditContext, *, q: Any, kind: Any, idea: Any,
        limit: int | None, cursor: str | None,
    ) -> dict[str, Any]:
        """The caller's tenant's documents matching every word of ``q`` (section 16)."""
        await self._may_read(identity, ctx, what="search documents")
        query = SearchQuery.parse(q, kind, idea)
        return await self._coedit.store.search(identity.tenant, query, limit=limit,
                                               cursor=cursor)

    async def history(
        self, identity: Identity, ctx: AuditContext, doc: str, *, since: int | None,
        limit: int | None, cursor: str | None,
    ) -> dict[str, Any]:
        await self._may_read(identity, ctx, doc=doc)
        return await self._coedit.store.history(identity.tenant, doc, since=since, limit=limit,
                                                 cursor=cursor)

    async def verify(self, identity: Identity, ctx: AuditContext, doc: str) -> dict[str, Any]:
        await self._may_read(identity, ctx, doc=doc, what="verify documents")
        return await self._coedit.store.verify(identity.tenant, doc)

    async def subscription(
        self, identity: Identity, ctx: AuditContext, doc: str
    ) -> SubscriptionView:
        """The document, its presence and its live locks, for a ``subscribe`` reply."""
        await self._may_read(identity, ctx, doc=doc)
        coedit = self._coedit
        document = await coedit.store.get(identity.tenant, doc)
        return SubscriptionView(document, await coedit.presence.backend.for_doc(doc),
                                await coedit.locks.live(identity.tenant, doc))

    # -- around a document ------------------------------------------------------------------

    async def comments(
        self, identity: Identity, ctx: AuditContext, doc: str, *, resolved: bool | None = None,
        path: str | None = None,
    ) -> list[dict[str, Any]]:
        await self.kind_of(identity, ctx, doc)
        return await self._coedit.trail_stores.comments.list(identity.tenant, doc,
                                                             resolved=resolved, path=path)

    async def locks(
        self, identity: Identity, ctx: AuditContext, doc: str
    ) -> list[dict[str, Any]]:
        await self.kind_of(identity, ctx, doc)
        return await self._coedit.locks.live(identity.tenant, doc)

    async def tenant_locks(
        self, identity: Identity, ctx: AuditContext, *, limit: int | None
    ) -> dict[str, Any]:
        """Every live lock of the caller's tenant, oldest grant first (a page of ``limit``)."""
        await self._may_read(identity, ctx, what="read locks")
        held, more = await self._coedit.locks.live_in_tenant(
            identity.tenant, limit=page_limit(limit, default=200, maximum=1000))
        return {"locks": held, "more": more}

    async def presence(
        self, identity: Identity, ctx: AuditContext, *, doc: str | None = None,
        kind: str | None = None,
    ) -> list[PresenceEntry]:
        """Who is on ``doc``, or on every document of ``kind``, in the caller's tenant."""
        backend = self._coedit.presence.backend
        if doc is not None:
            await self.kind_of(identity, ctx, doc)
            entries = await backend.for_doc(doc)
        else:
            await self._may_read(identity, ctx)
            entries = await backend.for_kind(identity.tenant, kind or "")
        return [entry for entry in entries if entry.tenant == identity.tenant]

    @contextlib.asynccontextmanager
    async def not_found_first(
        self, identity: Identity, ctx: AuditContext, doc: str
    ) -> AsyncIterator[None]:
        """Bad input about a document the caller cannot see answers ``not_found``.

        The check runs only when the block refuses the input, so a request that is fine
        costs no extra query.
        """
        try:
            yield
        except (BadRequest, PreconditionRequired, TooLarge):
            await self._coedit.store.kind_of(identity.tenant, doc)
            raise

    # -- the review trail -------------------------------------------------------------------

    async def idea(self, identity: Identity, ctx: AuditContext, idea: str) -> dict[str, Any]:
        """The idea with its documents (no state), reviews and workflow instances."""
        await self._may_read(identity, ctx, what="read ideas")
        stores = self._coedit.trail_stores
        found = await stores.ideas.get(identity.tenant, idea)
        reviews = await stores.reviews.list(identity.tenant, idea=idea, limit=500)
        workflows = await self._coedit.workflows.of_idea(identity.tenant, idea)
        return {**found, "reviews": reviews["items"], "workflows": workflows}

    async def ideas(self, identity: Identity, ctx: AuditContext, *, q: str | None,
                    limit: int | None, cursor: str | None) -> dict[str, Any]:
        await self._may_read(identity, ctx, what="read ideas")
        return await self._coedit.trail_stores.ideas.list(identity.tenant, q=q, limit=limit,
                                                          cursor=cursor)

    async def review(self, identity: Identity, ctx: AuditContext,
                     review: str) -> dict[str, Any]:
        await self._may_read(identity, ctx, what="read reviews")
        return await self._coedit.trail_stores.reviews.get(identity.tenant, review)

    async def reviews(self, identity: Identity, ctx: AuditContext,
                      **filters: Any) -> dict[str, Any]:
        """Reviews of the tenant; ``reviewer="me"`` is the caller."""
        await self._may_read(identity, ctx, what="read reviews")
        if filters.get("reviewer") == "me":
            filters["reviewer"] = identity.id
        return await self._coedit.trail_stores.reviews.list(identity.tenant, **filters)

    async def idea_presence(self, identity: Identity, ctx: AuditContext,
                            idea: str) -> list[PresenceEntry]:
        """Who is on any document of ``idea`` (``not_found`` for another tenant's idea)."""
        await self._may_read(identity, ctx, what="read ideas")
        found = await self._coedit.trail_stores.ideas.get(identity.tenant, idea)
        backend = self._coedit.presence.backend
        entries: list[PresenceEntry] = []
        for document in found["documents"]:
            entries += await backend.for_doc(document["id"])
        return [entry for entry in entries if entry.tenant == identity.tenant]

    async def notifications(self, identity: Identity, ctx: AuditContext, *, unread: bool,
                            limit: int | None, cursor: str | None) -> dict[str, Any]:
        """Those addressed to the caller or to one of its roles, newest first (every role
        may read its own)."""
        return await self._coedit.trail_stores.notifications.list(
            identity.tenant, identity.id, identity.roles, unread=unread, limit=limit,
            cursor=cursor)

    # -- the audit log ----------------------------------------------------------------------

    async def follow_events(
        self, identity: Identity, ctx: AuditContext, sink: EventSink, flt: EventFilter
    ) -> StreamSubscription:
        """Register ``sink`` as a reader of the caller's tenant's events matching ``flt``.

        Both edges follow streams this way: the reader buffers until the caller has
        announced the stream and calls ``coedit.streams.activate``, and the caller
        unsubscribes it when done.
        """
        await self._may_read(identity, ctx, what="read events")
        return await self._coedit.streams.subscribe(sink, identity.tenant, flt)

    async def events(
        self, identity: Identity, ctx: AuditContext, *, flt: EventFilter, since: int | None,
        until: datetime | None, limit: int, cursor: str | None,
    ) -> dict[str, Any]:
        await self._may_read(identity, ctx, what="read events")
        return await self._coedit.events.page(identity.tenant, flt=flt, since=since,
                                              until=until, limit=limit, cursor=cursor)
