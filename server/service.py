"""What both edges (WebSocket and HTTP) do the same way: role checks, changes, and what
follows every commit.

A change is acknowledged only after its transaction committed. Persistence reports what
committed as typed facts (``persistence.facts``), and :meth:`Coedit.after_commit` is the one
place that turns them into broadcasts, stream wake-ups and metrics (docs/architecture.md,
"After a commit"). A refused action appends ``access.denied`` before answering
``forbidden``, so the audit log shows attempts, not just successes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from channels.hub import Hub
from channels.limits import WindowCounter
from channels.outbox import Flusher
from channels.presence import Presence
from channels.redis_broker import broker_unavailable
from channels.streams import EventStreams
from channels.tasks import cancel_and_wait
from persistence.audit import AuditContext, EventDraft
from persistence.database import Database, storage_unavailable, text_not_storable
from persistence.documents import DocumentStore
from persistence.errors import (
    BadRequest,
    CoeditError,
    Conflict,
    Forbidden,
    Internal,
    Unavailable,
)
from persistence.events import EventLog
from persistence.facts import (
    Committed,
    Delta,
    Fact,
    LockChanged,
    Notified,
    StepMoved,
    Touched,
)
from persistence.locks import MIN_TTL_MS, Holder, LockStore
from persistence.review_trail import ReviewTrailStores
from persistence.writes import WriteResult
from server.auth import Action, Identity, TokenIssuer, allowed
from server.config import Settings
from server.messages import delta_message, lock_message, touched_message
from server.metrics import Metrics
from server.notifications import LiveNotifications
from server.reads import Reads
from server.trail import ReviewTrail
from server.workflows import Workflows

__all__ = ["Coedit", "StoreDeltaLog", "protocol_error"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def protocol_error(exc: Exception) -> CoeditError:
    """The protocol error for an exception that escaped a request handler.

    Storage or a broker that cannot be reached is ``unavailable`` (the client may retry, with
    its idempotency key for writes), on every path; anything else is a bug and is logged as
    one. Only the exception's type and its driver's message are logged: SQLAlchemy's own
    text carries the statement's parameters, which may hold document content.
    """
    deltas = exc.extra.get("deltas") if isinstance(exc, Conflict) else None
    if isinstance(exc, Conflict) and deltas and isinstance(deltas[0], Delta):
        # A stale write's refusal lists the versions it missed; here they take wire shape
        # (once: the error may pass through here again on its way out).
        return Conflict(exc.message, **{**exc.extra, "deltas": [
            delta_message(d) for d in deltas]})
    if isinstance(exc, CoeditError):
        return exc
    if text_not_storable(exc):
        return BadRequest("the request holds a character that cannot be stored (NUL)")
    # Both classifiers count the plain OSError and TimeoutError of a socket as well.
    if storage_unavailable(exc) or broker_unavailable(exc):
        orig = getattr(exc, "orig", None) or exc
        log.warning("storage or broker unavailable: %s: %.200s", type(exc).__name__, orig)
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
        deltas = await self._store.deltas_since(tenant, doc, since, until)
        return None if deltas is None else [delta_message(d) for d in deltas]

    async def document(self, tenant: str, doc: str) -> dict[str, Any]:
        return await self._store.get(tenant, doc)

    def version_seen(self, doc: str, version: int) -> None:
        self._store.version_seen(doc, version)


class LiveSession(Protocol):
    """What the node needs of a connected session (implemented by ``server.session``)."""

    id: str
    holds_locks: bool

    def alive(self) -> bool: ...

    def check_deadlines(self, now: float, wall_now: float) -> None: ...

    def close(self, code: int) -> None: ...

    async def finished(self) -> None: ...


@dataclass
class Coedit:
    """The running server's parts, built by the app's lifespan."""

    settings: Settings
    db: Database
    store: DocumentStore
    locks: LockStore
    trail_stores: ReviewTrailStores
    hub: Hub
    presence: Presence
    events: EventLog
    streams: EventStreams
    tokens: TokenIssuer
    metrics: Metrics
    # People and limits: live notifications (server/notifications.py), and the counters
    # behind HTTP rate limits (server/http/limits.py) and the notification throttle.
    limits: WindowCounter
    notifications: LiveNotifications
    sessions: dict[str, LiveSession] = field(default_factory=dict)
    # One flush per loop turn for every connection's outbox (channels/outbox.py).
    flusher: Flusher = field(default_factory=Flusher)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    reads: Reads = field(init=False)
    trail: ReviewTrail = field(init=False)
    workflows: Workflows = field(init=False)

    def __post_init__(self) -> None:
        self.reads = Reads(self)
        self.trail = ReviewTrail(self)
        self.workflows = Workflows(self)

    # -- background work of the node ------------------------------------------------------

    def start_background(self) -> None:
        # Renew well inside the shortest lease a client may ask for, so a heartbeating
        # holder's lock never lapses between two renewals.
        renew_every = min(MIN_TTL_MS / 3000, self.settings.heartbeat_ms / 2000)
        sweep_every = min(0.5, self.settings.heartbeat_ms / 2000)
        self._tasks = [
            asyncio.create_task(self._every(renew_every, self._renew_locks),
                                name="lock-renewal"),
            asyncio.create_task(self._every(sweep_every, self._sweep_locks),
                                name="lock-sweeper"),
            asyncio.create_task(self._every(3600, self.store.purge_idempotency_keys),
                                name="idempotency-purge"),
            # One sweep for all sessions instead of a timer task per connection: a tenth of
            # an interval late at most against a three-interval timeout.
            asyncio.create_task(self._every(min(1.0, self.settings.heartbeat_ms / 10_000),
                                            self._sweep_sessions), name="session-sweeper"),
        ]

    async def stop_background(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []

    @staticmethod
    async def _every(seconds: float, job: Callable[[], Awaitable[Any]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except Exception:
                log.warning("background job %s failed; will retry", job.__name__, exc_info=True)

    async def _renew_locks(self) -> None:
        """One statement per node keeps every lock of every live local session alive."""
        holders = [s.id for s in self.sessions.values() if s.holds_locks and s.alive()]
        if holders:
            await self.locks.renew(holders, self.settings.node_id)

    async def _sweep_sessions(self) -> None:
        """Close sessions that fell silent for three intervals or whose token expired."""
        now, wall_now = time.monotonic(), time.time()
        for session in list(self.sessions.values()):
            session.check_deadlines(now, wall_now)

    async def _sweep_locks(self) -> None:
        self.after_commit(await self.locks.sweep_expired())

    async def close_sessions(self, code: int, *, within: float = 10.0) -> None:
        """Graceful shutdown: the node's presence goes at once, then every session releases
        its locks and closes."""
        deadline = asyncio.get_running_loop().time() + within
        # First, while the sessions' teardowns do not yet compete for the loop: one pipelined
        # removal of all this node's entries and one diff per document, rather than a leave
        # per session, which with thousands of sessions would still be queueing when the stop
        # runs out of time. The sessions' own leaves then change nothing.
        try:
            async with asyncio.timeout_at(deadline):
                await self.presence.withdraw()
        except Exception:
            log.warning("could not withdraw this node's presence; another node will reap it",
                        exc_info=True)
        sessions = list(self.sessions.values())
        for session in sessions:
            session.close(code)
        if sessions:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await asyncio.gather(*(s.finished() for s in sessions),
                                         return_exceptions=True)

    def holder(self, session: str, identity: Identity) -> Holder:
        return Holder(session=session, user_id=identity.id, user_name=identity.name,
                      node=self.settings.node_id)

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
        raise await self.refusal(
            identity, ctx, Forbidden(f"role {'/'.join(identity.roles)} may not {what}"),
            doc=doc, what=what, needs=action.value)

    async def refusal(
        self, identity: Identity, ctx: AuditContext, exc: Forbidden, *, doc: str | None,
        what: str, needs: str,
    ) -> Forbidden:
        """Record an ``access.denied`` event for ``exc`` and hand it back to be raised."""
        kind = None
        if doc is not None:
            kind = await self.store.kind_of(identity.tenant, doc)  # not_found before forbidden
        self.settle(await self.store.record(
            ctx,
            EventDraft("access.denied", doc, kind, None,
                       {"action": what, "needs": needs, "roles": list(identity.roles),
                        "reason": exc.message}),
        ))
        self.metrics.denied.inc()
        return exc

    # -- after a commit: the one seam ------------------------------------------------------

    def after_commit(self, facts: Iterable[Fact]) -> None:
        """Everything that follows a commit, for every kind of change, in one place.

        Persistence reports what committed as facts; here each becomes its broadcast (built
        by ``server/messages.py``, fanned out here at once and queued for the other nodes in
        commit order), its tenant's stream wake-up and its metrics. The caller's own reply
        goes out before this runs (see :meth:`queue_patch`), so a writer that follows the
        document sees its ``ok`` before its delta. A new kind of change returns a new fact
        and adds its case here; the edges do not change.
        """
        for fact in facts:
            if isinstance(fact, Delta):
                self.hub.publish_soon(delta_message(fact))
                self.metrics.deltas_published.inc()
            elif isinstance(fact, LockChanged):
                self.hub.publish_notice_soon(fact.doc, lock_message(fact))
            elif isinstance(fact, Touched):
                self.hub.publish_notice_soon(fact.doc, touched_message(fact))
                if fact.kind == "review":
                    self.metrics.review_transitions.labels(fact.body["status"]).inc()
            elif isinstance(fact, Notified):
                self.notifications.send_soon(fact)
            elif isinstance(fact, StepMoved):
                self.metrics.step_transitions.labels(fact.action, fact.to).inc()
                if fact.cycle_seconds is not None:
                    self.metrics.step_cycle_seconds.labels(fact.action).observe(
                        fact.cycle_seconds)
            self.streams.committed(fact.tenant)

    def settle(self, committed: Committed[T]) -> T:
        """:meth:`after_commit` for a change the caller awaited; returns its result."""
        self.after_commit(committed.facts)
        return committed.value

    async def settle_or_refuse(
        self, identity: Identity, ctx: AuditContext, change: Awaitable[Committed[T]], *,
        doc: str | None = None, what: str, needs: str,
    ) -> T:
        """:meth:`settle` ``change``; a ``forbidden`` its store raises about this resource
        (not the reviewer, not the assignee) is recorded like any refusal, then raised."""
        try:
            committed = await change
        except Forbidden as exc:
            raise await self.refusal(identity, ctx, exc, doc=doc, what=what,
                                     needs=needs) from None
        return self.settle(committed)

    # -- writes -----------------------------------------------------------------------------

    async def create_document(
        self, identity: Identity, ctx: AuditContext, body: dict[str, Any]
    ) -> dict[str, Any]:
        await self.authorize(identity, Action.WRITE, ctx, what="create documents")
        return self.settle(await self.store.create(
            ctx, kind=body.get("kind"), title=body.get("title"), state=body.get("state"),
            idea=body.get("idea")))

    async def patch(
        self, identity: Identity, ctx: AuditContext, doc: str, *, base: Any, ops: Any,
        key: Any = None, lock_token: int | None = None,
    ) -> WriteResult:
        """The versioned write of docs/protocol.md section 4, committed and announced."""
        await self.authorize(identity, Action.WRITE, ctx, doc=doc, what="patch documents")
        return await self.queue_patch(identity, ctx, doc, base=base, ops=ops, key=key,
                                      lock_token=lock_token)

    def queue_patch(
        self, identity: Identity, ctx: AuditContext, doc: str, *, base: Any, ops: Any,
        key: Any = None, session: str | None = None, lock_token: int | None = None,
        answer: Callable[[WriteResult | CoeditError], None] | None = None,
    ) -> asyncio.Future[WriteResult]:
        """Queue a versioned write for the group commit, without waiting; the caller has
        checked the role (a session's reader hands patches over in its own turn).

        Writes queued one after another commit in that order, so a connection may queue
        several before the first is done. When one is done, ``answer`` gets its result or
        its protocol error first, and then what follows the commit runs: replies and deltas
        leave in commit order, each reply before its delta.
        """
        started = time.perf_counter()
        try:
            future = self.store.submit_patch(ctx, doc, base=base, ops=ops, key=key,
                                             session=session, lock_token=lock_token)
        except Exception as exc:
            self.metrics.count(self.metrics.writes, getattr(exc, "code", "internal"))
            raise
        future.add_done_callback(functools.partial(self._write_done, started, answer))
        return future

    def _write_done(
        self, started: float, answer: Callable[[WriteResult | CoeditError], None] | None,
        future: asyncio.Future[WriteResult],
    ) -> None:
        outcome: WriteResult | CoeditError
        if future.cancelled():
            outcome = Unavailable("the server stopped before the write finished")
        elif (exc := future.exception()) is not None:
            self.metrics.count(self.metrics.writes, getattr(exc, "code", "internal"))
            if answer is None:
                return  # the awaiting caller gets the exception itself
            outcome = (protocol_error(exc) if isinstance(exc, Exception)
                       else Unavailable("the write was interrupted"))
        else:
            outcome = future.result()
            self.metrics.write_seconds.observe(time.perf_counter() - started)
            self.metrics.count(self.metrics.writes,
                               "duplicate" if outcome.delta is None else "ok")
        if answer is not None:
            answer(outcome)
        if isinstance(outcome, WriteResult):
            self.after_commit(outcome.facts)

    # -- edit locks -------------------------------------------------------------------------

    async def lock(
        self, identity: Identity, ctx: AuditContext, session: str, doc: str, *, path: Any,
        ttl_ms: Any = None, force: Any = False,
    ) -> dict[str, Any]:
        """Grant or renew an edit lock (docs/protocol.md section 7) and announce what changed."""
        if not isinstance(force, bool):
            raise BadRequest("force must be true or false")
        await self.authorize(identity, Action.WRITE, ctx, doc=doc, what="lock documents")
        if force:
            await self.authorize(identity, Action.ADMIN, ctx, doc=doc,
                                 what="take locks by force")
        return self.settle(await self.locks.acquire(
            ctx, doc, path, self.holder(session, identity), ttl_ms=ttl_ms, force=force,
            may_force=force,
        ))

    async def unlock(
        self, identity: Identity, ctx: AuditContext, session: str, doc: str, *, path: Any
    ) -> dict[str, Any]:
        # Only writers ever hold a lock, but the role table is checked before the state, as
        # for every action: a viewer hears forbidden, not "you hold no lock".
        await self.authorize(identity, Action.WRITE, ctx, doc=doc, what="unlock documents")
        return self.settle(await self.locks.release(ctx, doc, path, session))

    async def release_locks(self, identity: Identity, session: str) -> None:
        """A session closed: its locks end now (``disconnected``), not at their expiry."""
        self.after_commit(await self.locks.release_session(
            self.context(identity, "ws"), session))
