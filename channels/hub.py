"""The hub: which local connections follow which document, and in what order they get deltas.

Guarantee (docs/protocol.md section 5): each subscriber receives every version after the one it
started from exactly once, in version order, with no gap. How:

* Per document the hub keeps a *channel* with the highest version it has fanned out. A delta
  for the next version goes out at once; a later one waits in ``pending`` while a filler task
  gives the broker a moment, then reads the missing versions from the log. Duplicates (a
  delta seen both on the local fast path and from the broker) are dropped by version.
* A new subscriber is registered *before* the caller reads the current version ``C``; from
  then on every version the channel fans out lands in the subscriber's buffer. The catch-up
  ``since..C`` comes from the log. The channel may nevertheless have gone past ``C`` without
  the buffer seeing it: when several sessions join a channel that nobody on this node
  followed yet, the first to activate fixes the channel's version to *its* ``C`` and drops
  what lies at or below it, while another joiner may have read a lower ``C``. So activation
  reads from the log whatever lies between ``C`` and the first version the buffer holds (or
  the channel's version), replays the buffer, and only then joins the live stream. See
  :meth:`Hub.activate` for why this leaves no gap in any interleaving.
* After a broker reconnect every channel catches up from the log: pub/sub is only the fast
  path, the database is the source of truth.

The module is longer than most (about 500 lines) on purpose: joining, activation, fan-out,
filling and resets all move the same two counters (a channel's version and each member's next
version), and the proof above holds only if every move is read together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from channels.broker import Broker
from channels.frames import Frame, decode_msgpack, encode_msgpack
from channels.tasks import cancel_and_wait

__all__ = ["DeltaLog", "Hub", "Sink", "Subscription"]

log = logging.getLogger(__name__)

# Messages that carry a document version: each moves a subscriber to that version.
_VERSIONED = frozenset({"delta", "reset"})


class DeltaLog(Protocol):
    """What the hub may ask of storage; the app factory passes an adapter, not the store."""

    async def deltas(
        self, tenant: str, doc: str, since: int, until: int | None
    ) -> list[dict[str, Any]] | None:
        """Deltas ``since < version <= until`` in order, or None if the log cannot serve."""

    async def document(self, tenant: str, doc: str) -> dict[str, Any]:
        """The current document (for a ``reset``)."""

    def version_seen(self, doc: str, version: int) -> None:
        """A delta of ``doc`` at ``version`` came through the broker (storage may hold what
        is now stale)."""


class Sink(Protocol):
    """A connection's outbox: takes frames without waiting, False when it cut the socket."""

    def put(self, frame: Frame) -> bool: ...


@dataclass(eq=False)
class Subscription:
    """One connection following one document on this node."""

    sink: Sink
    tenant: str
    doc: str
    next_version: int | None = None  # None while joining: deltas go to ``buffer``
    buffer: list[Frame] = field(default_factory=list)


@dataclass(eq=False)
class _Channel:
    name: str
    tenant: str
    doc: str
    # The broker subscription, made once and awaited by every joiner (see Hub.join).
    subscribed: asyncio.Task[None]
    members: set[Subscription] = field(default_factory=set)
    version: int | None = None  # highest version fanned out; None until the first activation
    pending: dict[int, Frame] = field(default_factory=dict)
    filler: asyncio.Task[None] | None = None


class Hub:
    """Local subscriptions over a :class:`Broker`; see the module docstring for ordering."""

    def __init__(
        self, broker: Broker, delta_log: DeltaLog, *, prefix: str = "coedit",
        gap_wait: float = 0.05, fill_attempts: int = 20,
    ) -> None:
        self.broker = broker
        self.delta_log = delta_log
        self.prefix = prefix
        self.gap_wait = gap_wait
        self.fill_attempts = fill_attempts
        self._channels: dict[str, _Channel] = {}
        self._topics: dict[str, set[Sink]] = {}
        self._topic_subscribed: dict[str, asyncio.Task[None]] = {}
        self._broker_lock = asyncio.Lock()
        self._started = False
        # Committed deltas on their way to the broker, in commit order (see publish_soon).
        self._outgoing: deque[tuple[str, bytes]] = deque()
        self._publisher: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        await self.broker.start(self._on_message, self._on_reconnect)
        self._started = True

    async def stop(self) -> None:
        self._started = False
        publisher = self._publisher
        if publisher is not None:
            # Deltas committed before the stop still reach the other nodes if the broker lets
            # them; otherwise those nodes fill the hole from the log.
            await asyncio.wait([publisher], timeout=5.0)
            await cancel_and_wait([publisher])
        for channel in list(self._channels.values()):
            await self._cancel_filler(channel)
        await cancel_and_wait([c.subscribed for c in self._channels.values()])
        await cancel_and_wait(self._topic_subscribed.values())
        self._channels.clear()
        self._topics.clear()
        self._topic_subscribed.clear()
        await self.broker.stop()

    def channel_name(self, doc: str) -> str:
        return f"{self.prefix}:doc:{doc}"

    def topic_name(self, topic: str) -> str:
        return f"{self.prefix}:topic:{topic}"

    # -- subscriptions --------------------------------------------------------------------

    async def join(self, sink: Sink, tenant: str, doc: str) -> Subscription:
        """Register ``sink`` for ``doc`` (buffering), then wait until the broker carries it.

        Returns once the broker subscription is live, so the caller may read the current
        version next and then call :meth:`activate`.
        """
        if not self._started:
            raise RuntimeError("Hub not started. Did you forget to call start()?")
        name = self.channel_name(doc)
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = _Channel(name, tenant, doc,
                                                      self._subscribe_broker(name))
        subscription = Subscription(sink, tenant, doc)
        channel.members.add(subscription)
        try:
            # Every joiner waits, not only the one that created the channel. Until the broker
            # confirms, what any node publishes on the channel is lost: a second joiner that
            # went on at once would read the version and announce its presence into a
            # channel this node does not hear yet, and miss deltas and the presence joins
            # of the sessions subscribing with it (1.4 % of all joins at 10,000 connections).
            await asyncio.shield(channel.subscribed)
        except BaseException:
            await self.leave(subscription)
            raise
        return subscription

    def _subscribe_broker(self, name: str) -> asyncio.Task[None]:
        """Subscribe the broker to ``name`` once, for every local joiner to wait on."""

        async def subscribe() -> None:
            async with self._broker_lock:
                await self.broker.subscribe(name)

        task = asyncio.create_task(subscribe(), name=f"hub-subscribe-{name}")
        # The joiners receive the outcome; if all of them gave up waiting, nobody is left to.
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return task

    async def activate(self, sub: Subscription, *, current: int, since: int | None) -> None:
        """Send the catch-up ``since..current`` (or a reset), then the buffered live deltas.

        Why no version goes missing, whatever the interleaving: the subscriber stays in
        buffering mode through every await here, and the switch to live delivery at the end
        runs without one. At that moment it has received every version up to ``start``
        (catch-up or reset); the buffer holds, contiguously, every version the channel fanned
        out since the subscriber joined (a channel reset is buffered too, see
        ``_reset_channel``); :meth:`_close_gap` has read from the log whatever lay between
        ``start`` and the first buffered version, or the channel's version when nothing is
        buffered; and everything the channel fans out afterwards is delivered live, in order.
        Versions that arrive twice (log and buffer) are dropped by ``_deliver``.
        """
        channel = self._channels.get(self.channel_name(sub.doc))
        if channel is None or sub not in channel.members:
            return
        start = current
        if since is not None and since < current:
            deltas = await self.delta_log.deltas(sub.tenant, sub.doc, since, current)
            if deltas is None:
                start = await self._send_reset(sub)
            else:
                for delta in deltas:
                    sub.sink.put(Frame(delta))
        start = await self._close_gap(channel, sub, start)
        sub.next_version = start + 1
        buffered, sub.buffer = sub.buffer, []
        for frame in buffered:
            self._deliver(sub, frame)
        if channel.version is None:
            channel.version = start
            self._drain(channel)

    async def _close_gap(self, channel: _Channel, sub: Subscription, start: int) -> int:
        """Send what the channel fanned out above ``start`` before ``sub`` could buffer it.

        That happens when another joiner activated the channel first with a higher current
        version (the versions between were dropped as stale) or the channel moved on while
        this subscriber was still reading its own version. Returns the version the
        subscriber now holds. Deltas fanned out during the read land in the buffer, which
        the loop's second pass then finds covering the rest.
        """
        while channel.version is not None and channel.version > start:
            first = _first_buffered_version(sub.buffer)
            if first is None:
                until = channel.version
            elif first.message["type"] == "reset":
                return start  # the reset covers everything below it
            else:
                until = min(channel.version, int(first.message["version"]) - 1)
            if until <= start:
                return start
            deltas = await self.delta_log.deltas(sub.tenant, sub.doc, start, until)
            if not deltas or int(deltas[-1]["version"]) != until:
                return await self._send_reset(sub)  # the log no longer serves that range
            for delta in deltas:
                sub.sink.put(Frame(delta))
            start = until
        return start

    async def leave(self, sub: Subscription) -> None:
        """Stop following; the broker channel goes when its last local subscriber does."""
        name = self.channel_name(sub.doc)
        channel = self._channels.get(name)
        if channel is None:
            return
        channel.members.discard(sub)
        if channel.members:
            return
        del self._channels[name]
        await self._cancel_filler(channel)
        with contextlib.suppress(Exception):
            async with self._broker_lock:
                # A new first joiner may have come meanwhile and subscribed again already.
                if name not in self._channels:
                    await self.broker.unsubscribe(name)

    async def join_topic(self, sink: Sink, topic: str) -> None:
        """Follow an unordered topic (stage presence, node notices): messages as they come."""
        if not self._started:
            raise RuntimeError("Hub not started. Did you forget to call start()?")
        name = self.topic_name(topic)
        members = self._topics.get(name)
        if members is None:
            members = self._topics[name] = set()
            self._topic_subscribed[name] = self._subscribe_broker(name)
        members.add(sink)
        try:
            await asyncio.shield(self._topic_subscribed[name])  # every joiner: see join()
        except BaseException:
            await self.leave_topic(sink, topic)
            raise

    async def leave_topic(self, sink: Sink, topic: str) -> None:
        name = self.topic_name(topic)
        members = self._topics.get(name)
        if members is None:
            return
        members.discard(sink)
        if members:
            return
        del self._topics[name]
        self._topic_subscribed.pop(name, None)
        with contextlib.suppress(Exception):
            async with self._broker_lock:
                if name not in self._topics:  # see leave()
                    await self.broker.unsubscribe(name)

    async def publish_topic(self, topic: str, message: dict[str, Any]) -> None:
        """Send to every node's followers of ``topic`` (delivered through the broker only)."""
        await self._publish_quietly(self.topic_name(topic), message)

    async def publish_notice(self, doc: str, message: dict[str, Any]) -> None:
        """An unversioned message for a document's subscribers (locks, presence).

        It goes through the broker only, local subscribers included, so nobody sees it twice;
        there is no version to drop a duplicate by.
        """
        await self._publish_quietly(self.channel_name(doc), message)

    def publish_notice_soon(self, doc: str, message: dict[str, Any]) -> None:
        """:meth:`publish_notice` without waiting: queued behind the deltas committed before
        it, so a document's notices and deltas reach the broker in commit order."""
        self._queue_outgoing(self.channel_name(doc), encode_msgpack(message))

    def publish_topic_soon(self, topic: str, message: dict[str, Any]) -> None:
        """:meth:`publish_topic` without waiting: queued behind what was committed before it,
        sent by the hub's one publisher task (a burst in one round trip)."""
        self._queue_outgoing(self.topic_name(topic), encode_msgpack(message))

    async def _publish_quietly(self, name: str, message: dict[str, Any]) -> None:
        try:
            await self.broker.publish(name, encode_msgpack(message))
        except Exception:
            log.exception("publishing a %s notice on %s failed", message.get("type"), name)

    def subscriber_count(self, doc: str) -> int:
        channel = self._channels.get(self.channel_name(doc))
        return 0 if channel is None else len(channel.members)

    def topic_followers(self, topic: str) -> int:
        """Local sinks following ``topic``; the broker carries it while this is above 0."""
        return len(self._topics.get(self.topic_name(topic), ()))

    # -- publishing -----------------------------------------------------------------------

    async def publish(self, delta: dict[str, Any]) -> None:
        """:meth:`publish_soon`, then wait until the broker was handed the delta.

        A broker failure is logged, not raised: the write is durable already, and other nodes
        fill the hole from the log when their broker connection comes back.
        """
        self.publish_soon(delta)
        publisher = self._publisher
        if publisher is not None:
            await asyncio.wait([publisher])

    def publish_soon(self, delta: dict[str, Any]) -> None:
        """Fan out a committed delta here now; queue it for the other nodes.

        Callers publish in commit order and never wait for the broker: one task per hub
        sends the queue in that order, so a burst of deltas (a group commit) costs no task
        per delta and the broker sees each document's versions in sequence. With a broker
        that reaches no other node, the local fan-out is all there is to do.
        """
        name = self.channel_name(delta["doc"])
        channel = self._channels.get(name)
        if channel is not None:
            self._offer(channel, Frame(delta))
        if self.broker.reaches_other_nodes:
            self._queue_outgoing(name, encode_msgpack(delta))

    def _queue_outgoing(self, name: str, data: bytes) -> None:
        self._outgoing.append((name, data))
        if self._publisher is None:
            self._publisher = asyncio.create_task(self._send_outgoing(), name="hub-publisher")

    async def _send_outgoing(self) -> None:
        outgoing = self._outgoing
        try:
            while outgoing:
                burst = [outgoing.popleft() for _ in range(min(len(outgoing), 512))]
                try:
                    await self.broker.publish_many(burst)
                except Exception:
                    log.exception("publishing %d deltas failed; other nodes will catch up "
                                  "from the log", len(burst))
        finally:
            self._publisher = None

    def _on_message(self, name: str, data: bytes) -> None:
        channel = self._channels.get(name)
        topic = self._topics.get(name)
        if channel is None and topic is None:
            return
        try:
            message = decode_msgpack(data)
            if not isinstance(message, dict):
                raise TypeError("not a map")
            if message.get("type") == "delta":
                version = int(message["version"])
        except Exception:
            log.warning("dropping an undecodable message on %s", name)
            return
        frame = Frame(message)
        if topic is not None:
            for sink in list(topic):
                sink.put(frame)
        elif channel is not None:
            if message.get("type") == "delta":
                self.delta_log.version_seen(channel.doc, version)
                self._offer(channel, frame)
            else:
                self._broadcast(channel, frame)

    @staticmethod
    def _broadcast(channel: _Channel, frame: Frame) -> None:
        for sub in list(channel.members):
            if sub.next_version is None:
                sub.buffer.append(frame)  # kept in arrival order with the deltas
            else:
                sub.sink.put(frame)

    async def _on_reconnect(self) -> None:
        for channel in list(self._channels.values()):
            self._schedule_fill(channel, wait=0.0)

    # -- ordering -------------------------------------------------------------------------

    def _offer(self, channel: _Channel, frame: Frame, *, fill: bool = True) -> None:
        version = int(frame.message["version"])
        if channel.version is not None and version <= channel.version:
            return  # a duplicate: fast path and broker both brought it, or the log did
        channel.pending[version] = frame
        self._drain(channel, fill=fill)

    def _fan_out(self, channel: _Channel, frame: Frame, version: int) -> None:
        """Move the channel to ``version`` (a delta, or a reset to the current state)."""
        channel.version = version
        for sub in list(channel.members):
            if sub.next_version is None:
                sub.buffer.append(frame)
            else:
                self._deliver(sub, frame)

    @staticmethod
    def _deliver(sub: Subscription, frame: Frame) -> None:
        if frame.message.get("type") not in _VERSIONED:
            sub.sink.put(frame)
            return
        version = int(frame.message["version"])
        if sub.next_version is None or version < sub.next_version:
            return  # the subscriber holds this version already
        # A delta beyond next_version cannot happen: the channel fans out without holes, a
        # member's next version is never beyond the channel's, and a reset covers any jump.
        sub.sink.put(frame)
        sub.next_version = version + 1

    def _drain(self, channel: _Channel, *, fill: bool = True) -> None:
        """Fan out pending versions while they follow on; start a filler at the first hole."""
        if channel.version is None:
            return
        for stale in [v for v in channel.pending if v <= channel.version]:
            del channel.pending[stale]
        while channel.version + 1 in channel.pending:
            version = channel.version + 1
            self._fan_out(channel, channel.pending.pop(version), version)
        if channel.pending and fill:
            self._schedule_fill(channel, wait=self.gap_wait)

    def _schedule_fill(self, channel: _Channel, *, wait: float) -> None:
        if channel.filler is None or channel.filler.done():
            channel.filler = asyncio.create_task(self._fill(channel, wait))

    async def _cancel_filler(self, channel: _Channel) -> None:
        task, channel.filler = channel.filler, None
        await cancel_and_wait([task])

    async def _fill(self, channel: _Channel, wait: float) -> None:
        """Read what the broker did not bring from the log, until the channel has no hole.

        A delta is published only after it committed, and a document's versions commit in
        order, so a read of the log that starts after version N arrived shows every version
        below N. A hole that ``fill_attempts`` reads in a row did not narrow is no delay: the
        versions waiting above it came from a message that was wrong (malformed, or from a
        foreign publisher), and looking again would poll the log forever. They are dropped;
        a later delta that does not follow on starts a new fill.
        """
        if wait:
            await asyncio.sleep(wait)
        fruitless = 0
        while channel.version is not None and self._channels.get(channel.name) is channel:
            since = channel.version
            try:
                deltas = await self.delta_log.deltas(channel.tenant, channel.doc, since, None)
            except Exception:
                log.exception("reading the log of %s failed; retrying", channel.doc)
                await asyncio.sleep(0.5)
                continue
            if deltas is None:
                await self._reset_channel(channel)
            else:
                for delta in deltas:
                    self._offer(channel, Frame(delta), fill=False)
            if not channel.pending or channel.version is None:
                return
            fruitless = 0 if channel.version > since else fruitless + 1
            if fruitless >= self.fill_attempts:
                self._drop_unfillable(channel)
                return
            # Pending still holds versions the log did not show yet: look again shortly.
            await asyncio.sleep(self.gap_wait)

    def _drop_unfillable(self, channel: _Channel) -> None:
        versions = sorted(channel.pending)
        channel.pending.clear()
        log.warning(
            "%s: the log has no version %s after %d reads; dropping %d waiting version(s) "
            "%s..%s that cannot follow on", channel.doc,
            None if channel.version is None else channel.version + 1, self.fill_attempts,
            len(versions), versions[0], versions[-1])

    async def _send_reset(self, sub: Subscription) -> int:
        document = await self.delta_log.document(sub.tenant, sub.doc)
        sub.sink.put(Frame({"type": "reset", "doc": sub.doc, "version": document["version"],
                            "state": document["state"]}))
        return int(document["version"])

    async def _reset_channel(self, channel: _Channel) -> None:
        """The log cannot serve the hole: every member restarts from the current state."""
        document = await self.delta_log.document(channel.tenant, channel.doc)
        version = int(document["version"])
        if channel.version is not None and version <= channel.version:
            return  # the channel caught up meanwhile
        # Joiners still buffering get the reset in their buffer: it covers the versions the
        # channel skips, so their activation sees no hole (see activate()).
        self._fan_out(channel, Frame({"type": "reset", "doc": channel.doc, "version": version,
                                      "state": document["state"]}), version)
        self._drain(channel)


def _first_buffered_version(buffer: list[Frame]) -> Frame | None:
    """The first delta or reset a joining subscriber buffered (notices carry no version)."""
    for frame in buffer:
        if frame.message.get("type") in _VERSIONED:
            return frame
    return None
