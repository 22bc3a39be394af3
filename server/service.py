"""What both edges (WebSocket and HTTP) do the same way: role checks, writes, publishing.

A write is acknowledged only after its transaction committed; the delta is published after
that, once, for every node. A refused action appends ``access.denied`` before answering
``forbidden``, so the audit log shows attempts, not just successes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError

from channels.hub import Hub
from persistence.audit import AuditContext, EventDraft
from persistence.database import Database
from persistence.documents import DocumentStore, WriteResult
from persistence.errors import CoeditError, Forbidden, Internal, Unavailable
from server.auth import Action, Identity, TokenIssuer, allowed
from server.config import Settings
from server.metrics import Metrics

__all__ = ["Coedit", "StoreDeltaLog", "protocol_error"]

log = logging.getLogger(__name__)


def protocol_error(exc: Exception) -> CoeditError:
    """The protocol error for an exception that escaped a request handler.

    Storage that cannot be reached is ``unavailable`` (the client may retry, with its
    idempotency key for writes); anything else is a bug and is logged as one.
    """
    if isinstance(exc, CoeditError):
        return exc
    if isinstance(exc, (OperationalError, InterfaceError, ConnectionError, OSError, TimeoutError)):
        log.warning("storage unavailable: %s", exc)
        return Unavailable("storage is unavailable; retry shortly")
    log.error("request failed", exc_info=exc)
    return Internal("internal error")


class StoreDeltaLog:
    """The two reads the hub may make, bound to the document store (the hub never sees it)."""

    def __init__(self, store: DocumentStore) -> None:
        self._store = store

    async def deltas(
        self, tenant: str, doc: str, since: int, until: int | None
    ) -> list[dict[str, Any]] | None:
        return await self._store.deltas_since(tenant, doc, since, until)

    async def document(self, tenant: str, doc: str) -> dict[str, Any]:
        return await self._store.get(tenant, doc)


@dataclass
class Coedit:
    """The running server's parts, built by the app's lifespan."""

    settings: Settings
    db: Database
    store: DocumentStore
    hub: Hub
    tokens: TokenIssuer
    metrics: Metrics

    def context(
        self, identity: Identity, source: str, correlation_id: str | None = None
    ) -> AuditContext:
        if correlation_id:
            return AuditContext(identity.actor, identity.tenant, source, correlation_id[:128])
        return AuditContext(identity.actor, identity.tenant, source)

    async def authorize(
        self, identity: Identity, action: Action, ctx: AuditContext, *, doc: str | None = None,
        what: str,
    ) -> None:
        """Return if ``identity`` may do ``action``; else log the refusal and raise."""
        if allowed(identity, action):
            return
        kind = None
        if doc is not None:
            kind = await self.store.kind_of(identity.tenant, doc)  # not_found before forbidden
        await self.store.record(
            ctx,
            EventDraft("access.denied", doc, kind, None,
                       {"action": what, "needs": action.value, "roles": list(identity.roles)}),
        )
        self.metrics.denied.inc()
        raise Forbidden(f"role {'/'.join(identity.roles)} may not {what}")

    async def create_document(
        self, identity: Identity, ctx: AuditContext, body: dict[str, Any]
    ) -> dict[str, Any]:
        await self.authorize(identity, Action.WRITE, ctx, what="create documents")
        document, _delta = await self.store.create(
            ctx, kind=body.get("kind"), title=body.get("title"), state=body.get("state")
        )
        return document

    async def patch(
        self, identity: Identity, ctx: AuditContext, doc: str, *, base: Any, ops: Any,
        key: Any = None,
    ) -> WriteResult:
        """The versioned write of PROTOCOL.md section 4, committed but not yet published.

        The caller queues its reply first and then calls :meth:`publish`, so a writer that
        follows the document sees the ``ok`` before its own delta.
        """
        await self.authorize(identity, Action.WRITE, ctx, doc=doc, what="patch documents")
        started = time.perf_counter()
        try:
            result = await self.store.apply_patch(ctx, doc, base=base, ops=ops, key=key)
        except Exception as exc:
            self.metrics.writes.labels(getattr(exc, "code", "internal")).inc()
            raise
        self.metrics.write_seconds.observe(time.perf_counter() - started)
        self.metrics.writes.labels("duplicate" if result.delta is None else "ok").inc()
        return result

    async def publish(self, result: WriteResult) -> None:
        if result.delta is not None:
            await self.hub.publish(result.delta)
            self.metrics.deltas_published.inc()
