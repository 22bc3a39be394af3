"""Presence: who is on which document right now, across every node.

Presence is ephemeral and never touches the database. Each node writes its own sessions'
entries to a :class:`PresenceBackend` (Redis in a cluster, memory when embedded) and keeps one
liveness key for itself. Heartbeats cost nothing per connection: a session that stops
heartbeating is closed by its own node (4408), which removes its entries; a node that stops
refreshing its liveness key (crash, SIGKILL, network split) is reaped by whichever other node
notices first, which removes all its entries and announces the leaves.

Timing: the liveness key lives 1.5 intervals and is refreshed every half interval; every node
looks for dead nodes every half interval. A dead node's sessions therefore leave everyone's view
at most about 2 intervals after its last refresh, inside the 3 intervals the protocol allows.

Writes: every join, update and leave of a node's sessions goes through one writer task, which
sends whatever queued up meanwhile as one pipelined write and then one diff per document. A
thousand sessions closing at once cost a few round trips rather than two each, and never need
more Redis connections than one (a connection per leave ran the client's pool dry). While
changes keep coming, batches go out at most ten times a second (less often on a document with
thousands of subscribers), so a crowd opening one document costs its subscribers a diff per
tenth of a second, not one per arrival. A graceful
stop goes further: :meth:`Presence.withdraw` removes all of the node's entries at once and
announces their leaves, and the closing sessions' own leaves then change nothing.

Diffs go out as ``presence`` messages with ``joins``, ``updates`` and ``leaves`` on the
document's channel (for its subscribers) and on the stage topic of the document's kind.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from channels.hub import Hub
from channels.presence_backend import PresenceBackend, PresenceEntry
from persistence.errors import Unavailable

__all__ = ["Presence", "idea_topic", "stage_topic"]

log = logging.getLogger(__name__)

# Publishes of presence diffs in flight at once (a diff per document and one per stage).
ANNOUNCE_CONCURRENCY = 32
# In a burst of changes, a batch is written and announced at most this often (seconds)...
BURST_INTERVAL = 0.1
# ... and, on a document with more subscribers on this node than this many a second, only
# as often as keeps its diffs within this many frames a second.
BURST_FRAMES_PER_SECOND = 20_000


def stage_topic(tenant: str, kind: str) -> str:
    return f"stage:{tenant}:{kind}"


def idea_topic(tenant: str, idea: str) -> str:
    """Presence of every document of one idea (docs/protocol.md section 10)."""
    return f"idea:{tenant}:{idea}"


_Group = Literal["joins", "updates", "leaves"]


@dataclass(slots=True)
class _Change:
    """One queued join, update or leave, and the future its session awaits."""

    group: _Group
    entry: PresenceEntry
    done: asyncio.Future[None]


class Presence:
    """This node's presence: entries of its sessions, diffs, liveness and reaping.

    ``batch_limit`` bounds how many changes one write (and its diffs) carries, and
    ``burst_interval`` how often a batch goes out while changes keep coming (see
    :meth:`_write_queued`).
    """

    def __init__(self, backend: PresenceBackend, hub: Hub, *, node: str, heartbeat_ms: int,
                 batch_limit: int = 2000, burst_interval: float = BURST_INTERVAL) -> None:
        self.backend = backend
        self.hub = hub
        self.node = node
        self.heartbeat_ms = heartbeat_ms
        self.batch_limit = batch_limit
        self.burst_interval = burst_interval
        self._last_batch = float("-inf")  # loop time the last batch was announced
        self._gap = burst_interval  # how long after it the next may go out
        self._tasks: list[asyncio.Task[None]] = []
        # This node's own entries, to write back if the backend lost them (Redis restarted,
        # or other nodes reaped this one during a long pause).
        self._local: dict[tuple[str, str], PresenceEntry] = {}
        self._queue: deque[_Change] = deque()
        self._writer: asyncio.Task[None] | None = None
        # Held around every write of entries, so the keep-alive's rewrite of ``_local`` cannot
        # land after (and undo) the removal of an entry that left meanwhile.
        self._write_lock = asyncio.Lock()
        self._stopping = False  # withdraw() began: this node's sessions change nothing more
        self._withdrawn = False  # ... and it finished
        self._withdraw_lock = asyncio.Lock()

    async def start(self) -> None:
        await self.backend.node_alive(self.node, self._liveness_ms)
        self._tasks = [asyncio.create_task(self._keep_alive(), name="presence-alive"),
                       asyncio.create_task(self._reap_dead(), name="presence-reaper")]

    async def stop(self, *, within: float = 5.0) -> None:
        """Withdraw (if the graceful drain did not), end the background work, close."""
        try:
            async with asyncio.timeout(within):
                await self.withdraw()
        except Exception:
            log.warning("could not withdraw this node's presence; other nodes will reap it",
                        exc_info=True)
        tasks = [t for t in (*self._tasks, self._writer) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            # Bounded: redis-py (8.1) can lose a cancellation that lands inside a command,
            # and the task then runs on. These loops also end by themselves once stopping.
            await asyncio.wait(tasks, timeout=1.0)
        self._tasks = []
        await self.backend.close()

    @property
    def _liveness_ms(self) -> int:
        return self.heartbeat_ms * 3 // 2

    async def _keep_alive(self) -> None:
        rewrite = False  # the entries must be written back (kept until a write succeeds)
        while not self._stopping:
            await asyncio.sleep(self.heartbeat_ms / 2000)
            try:
                # Under the write lock, and only while not stopping: withdraw() takes the same
                # lock, so no refresh can put the node back after it withdrew.
                restored: list[PresenceEntry] = []
                async with self._write_lock:
                    if self._stopping:
                        return
                    if not await self.backend.node_alive(self.node, self._liveness_ms):
                        rewrite = True
                    if rewrite:
                        restored = list(self._local.values())
                        await self.backend.write(put=restored)
                        rewrite = False
                if restored:
                    # A reaper announced these sessions' leaves: their subscribers need joins.
                    log.info("wrote back %d presence entries of this node", len(restored))
                    await self._announce(joins=restored)
            except Exception:
                log.warning("could not refresh this node's presence liveness", exc_info=True)

    async def _reap_dead(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.heartbeat_ms / 2000)
            try:
                for node in await self.backend.dead_nodes():
                    if node == self.node or self._stopping:
                        continue
                    entries = await self.backend.reap(node)
                    if entries:
                        log.info("node %s stopped answering; %d sessions left", node,
                                 len(entries))
                    await self._announce(leaves=entries)
            except Exception:
                log.warning("presence reaping failed; will retry", exc_info=True)

    # -- this node's sessions ---------------------------------------------------------------

    async def join(self, entry: PresenceEntry) -> None:
        self._local[(entry.doc, entry.session)] = entry
        await self._change("joins", entry)

    async def update(self, entry: PresenceEntry) -> None:
        self._local[(entry.doc, entry.session)] = entry
        await self._change("updates", entry)

    async def leave(self, doc: str, session: str) -> None:
        known = self._local.pop((doc, session), None)
        if self._stopping:
            return  # withdraw() removes every entry of this node
        if known is not None:
            await self._change("leaves", known)
            return
        # Not an entry this node wrote (or remembers): look it up where it may still be.
        entry = await self.backend.remove(doc, session)
        if entry is not None:
            await self._announce(leaves=[entry])

    async def withdraw(self) -> None:
        """Take every entry of this node out of everyone's view at once (a graceful stop).

        One read and one pipelined delete remove all of the node's entries, each document
        gets one diff with its leaves, and the node's liveness ends, so nobody reaps it
        later. From the first call on, joins, updates and leaves of this node's sessions
        change nothing (they are closing); changes still queued are dropped, since the
        withdrawal covers them, and only a batch being written is waited for. A call that
        fails (or is cancelled) leaves the work to the next call, or to the other nodes'
        reapers once the liveness key expired.
        """
        self._stopping = True  # before any await: no session's leave may slip in alone
        async with self._withdraw_lock:
            if self._withdrawn:
                return
            # Liveness and reaping end with ``_stopping``; they are not awaited here, since a
            # cancellation inside a redis-py command can be lost (the task then runs on).
            for task in self._tasks:
                task.cancel()
            superseded = list(self._queue)
            self._queue.clear()
            _settle(superseded, None)
            if self._writer is not None:
                await asyncio.wait([self._writer])
            async with self._write_lock:
                entries = await self.backend.withdraw(self.node)
            self._withdrawn = True
            self._local.clear()
            if entries:
                log.info("withdrew %d presence entries of this node", len(entries))
            await self._announce(leaves=entries)

    # -- the writer -------------------------------------------------------------------------

    async def _change(self, group: _Group, entry: PresenceEntry) -> None:
        """Queue a change for the writer; return once it is written and announced."""
        if self._stopping:
            return
        done = asyncio.get_running_loop().create_future()
        self._queue.append(_Change(group, entry, done))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_queued(), name="presence-writer")
        await done

    async def _write_queued(self) -> None:
        """Write and announce queued changes, batch after batch, until none are left.

        No await lies between the last look at the queue and ``_writer = None``, so a change
        queued meanwhile either is seen here or starts a new writer.

        A change after a quiet spell goes out at once. In a burst, batches go out at most
        every ``burst_interval``, each carrying all that queued meanwhile: every diff goes
        to every subscriber of its document, so a thousand sessions opening one document
        one by one would otherwise cost half a million frames (a diff per join, to all
        present), where a tenth of a second between batches bounds it by the subscribers
        times ten a second. Past 2,000 subscribers on this node the gap grows with them
        (``BURST_FRAMES_PER_SECOND``): 10,000 arriving at one document get a diff every
        half second, not ten a second each, which took the whole node.
        """
        batch: list[_Change] = []
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                wait = self._last_batch + self._gap - loop.time()
                if wait > 0:
                    batch = []
                    await asyncio.sleep(wait)
                    if not self._queue:
                        break  # withdraw() took them over
                batch = self._next_batch()
                try:
                    async with self._write_lock:
                        await self.backend.write(
                            put=[c.entry for c in batch if c.group != "leaves"],
                            remove=[c.entry for c in batch if c.group == "leaves"])
                except Exception as exc:
                    _settle(batch, exc)  # each waiting session logs it
                    continue
                audience = await self._announce(
                    joins=[c.entry for c in batch if c.group == "joins"],
                    updates=[c.entry for c in batch if c.group == "updates"],
                    leaves=[c.entry for c in batch if c.group == "leaves"])
                self._last_batch = loop.time()
                self._gap = max(self.burst_interval, audience / BURST_FRAMES_PER_SECOND)
                _settle(batch, None)
        finally:
            self._writer = None
            # Only when cancelled (the node stops): nobody may wait forever for these.
            stopped = Unavailable("presence stopped before this change was written")
            _settle([*batch, *self._queue], stopped)
            self._queue.clear()

    def _next_batch(self) -> list[_Change]:
        """The oldest queued changes, up to the first that touches a session already in it.

        A leave queued right behind the same session's join goes in the next batch: one write
        cannot order the two, and one diff cannot say which came first.
        """
        batch: list[_Change] = []
        seen: set[tuple[str, str]] = set()
        while self._queue and len(batch) < self.batch_limit:
            entry = self._queue[0].entry
            key = (entry.doc, entry.session)
            if key in seen:
                break
            seen.add(key)
            batch.append(self._queue.popleft())
        return batch

    async def _announce(
        self, *, joins: Iterable[PresenceEntry] = (), updates: Iterable[PresenceEntry] = (),
        leaves: Iterable[PresenceEntry] = (),
    ) -> int:
        """One diff per document (and per stage) touched, a few on their way at once;
        returns the most subscribers this node has on one of those documents.

        Each publish is a round trip. One after the other, the diffs of a batch that touched
        500 documents took up to 24 s on a node busy with 10,000 connections; a bounded
        number at a time keeps the broker client's connection pool from running dry. A
        document gets one diff per call, and the writer announces one batch at a time, so
        the diffs about this node's sessions on a document stay in order.
        """
        grouped: dict[str, dict[str, list[PresenceEntry]]] = {}
        for name, entries in (("joins", joins), ("updates", updates), ("leaves", leaves)):
            for entry in entries:
                grouped.setdefault(entry.doc, {"joins": [], "updates": [], "leaves": []})[
                    name].append(entry)
        diffs: list[tuple[str, PresenceEntry, dict[str, Any]]] = []
        for doc, diff in grouped.items():
            first = next(e for group in diff.values() for e in group)
            message = {"type": "presence", "doc": doc,
                       **{k: [e.public() for e in v] for k, v in diff.items()}}
            diffs.append((doc, first, message))
        for start in range(0, len(diffs), ANNOUNCE_CONCURRENCY // 2):
            publishes: list[Awaitable[None]] = []
            for doc, first, message in diffs[start:start + ANNOUNCE_CONCURRENCY // 2]:
                publishes.append(self.hub.publish_notice(doc, message))
                publishes.append(self.hub.publish_topic(stage_topic(first.tenant, first.kind),
                                                        {**message, "stage": first.kind}))
                if first.idea is not None:
                    publishes.append(self.hub.publish_topic(
                        idea_topic(first.tenant, first.idea), {**message, "idea": first.idea}))
            await asyncio.gather(*publishes)
        return max((self.hub.subscriber_count(doc) for doc in grouped), default=0)


def _settle(changes: Iterable[_Change], error: BaseException | None) -> None:
    """Wake the sessions waiting on ``changes`` (those that stopped waiting are skipped)."""
    for change in changes:
        if change.done.done():
            continue
        if error is None:
            change.done.set_result(None)
        else:
            change.done.set_exception(error)
