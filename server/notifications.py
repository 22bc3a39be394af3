"""Live delivery of stored notifications (docs/protocol.md section 14).

Persistence stores a notification and reports it as a ``Notified`` fact; after the commit
the service hands the fact here. Each one becomes a ``{"type":"notification"}`` message on
the channel of its addressee (``channels/people.py``): every session of that user, or of a
user holding that role, in that tenant, on any node, receives it without subscribing.

Two things may keep a notification from being pushed, never from being stored:

* ``COEDIT_NOTIFICATIONS`` off: nothing is pushed, and sessions join no channel at all.
* The throttle: one addressee is pushed at most ``COEDIT_NOTIFICATIONS_PER_MINUTE`` a
  minute. The node that committed the notification decides, on counters every node shares
  (Redis in a cluster, memory when embedded), so the budget holds however many nodes send.
  What it holds back stays listed for the addressee.

Facts are sent by one task in the order they committed, a burst with one throttle round
trip, so the commit path never waits for Redis.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import deque

from channels.hub import Sink
from channels.limits import WindowCounter
from channels.people import People
from channels.tasks import cancel_and_wait
from persistence.facts import Notified
from server.auth import Identity
from server.messages import notification_message
from server.metrics import Metrics

__all__ = ["LiveNotifications"]

log = logging.getLogger(__name__)

# Notifications sent together: one throttle round trip, then one publish round trip.
BURST = 256


def _throttle_key(fact: Notified) -> str:
    """The addressee's counter: a digest, so ids of any length or alphabet make one short
    key, and no id is spelled out in Redis."""
    kind, who = ("user", fact.user) if fact.user is not None else ("role", fact.role)
    digest = hashlib.blake2b(f"{fact.tenant}\0{kind}\0{who}".encode(), digest_size=16)
    return f"notify:{digest.hexdigest()}"


class LiveNotifications:
    """Sessions arrive and depart; committed notifications are pushed to them."""

    def __init__(
        self, people: People, throttle: WindowCounter, metrics: Metrics, *, enabled: bool,
        per_minute: int, window_ms: int = 60_000,
    ) -> None:
        self.people = people
        self.throttle = throttle
        self.metrics = metrics
        self.enabled = enabled
        self.per_minute = per_minute
        self.window_ms = window_ms
        self._queue: deque[Notified] = deque()
        self._sender: asyncio.Task[None] | None = None

    # -- sessions -------------------------------------------------------------------------

    async def arrive(self, sink: Sink, identity: Identity) -> None:
        """The session behind ``sink`` hears its user's and roles' notifications from now.

        A broker that cannot subscribe costs the session its live notifications, nothing
        else: it still works, and lists its notifications over HTTP.
        """
        if not self.enabled:
            return
        try:
            await self.people.arrive(sink, tenant=identity.tenant, user=identity.id,
                                     roles=identity.roles)
        except Exception as exc:
            log.warning("a session could not join its notification channels (%s); it gets "
                        "no live notifications", type(exc).__name__)

    async def depart(self, sink: Sink, identity: Identity) -> None:
        if self.enabled:
            await self.people.depart(sink, tenant=identity.tenant, user=identity.id,
                                     roles=identity.roles)

    # -- sending --------------------------------------------------------------------------

    def send_soon(self, fact: Notified) -> None:
        """Push ``fact`` to its addressee unless notifications are off or throttled."""
        if not self.enabled:
            self.metrics.notifications_live.labels("disabled").inc()
            return
        if (fact.user is None) == (fact.role is None):
            log.error("a notification must name exactly one of user and role; not sent")
            return
        self._queue.append(fact)
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_queued(), name="notifications")

    async def _send_queued(self) -> None:
        queue = self._queue
        try:
            while queue:
                burst = [queue.popleft() for _ in range(min(len(queue), BURST))]
                try:
                    await self._send(burst)
                except Exception:
                    log.exception("sending %d live notifications failed; they stay stored",
                                  len(burst))
        finally:
            self._sender = None

    async def _send(self, burst: list[Notified]) -> None:
        if self.per_minute:
            verdicts = await self.throttle.hit_many(
                [_throttle_key(fact) for fact in burst], limit=self.per_minute,
                window_ms=self.window_ms)
            allowed = [verdict.allowed for verdict in verdicts]
        else:
            allowed = [True] * len(burst)
        outcomes = self.metrics.notifications_live
        for fact, send in zip(burst, allowed, strict=True):
            if send:
                self.people.tell_soon(fact.tenant, notification_message(fact),
                                      user=fact.user, role=fact.role)
                outcomes.labels("sent").inc()
            else:
                outcomes.labels("throttled").inc()

    async def stop(self) -> None:
        """Let what committed before the stop reach the hub (briefly), then end."""
        sender = self._sender
        if sender is not None:
            await asyncio.wait([sender], timeout=5.0)
            await cancel_and_wait([sender])
