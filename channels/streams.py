"""Live event streams: every matching audit event after ``since``, in ``seq`` order, once.

The database is the stream. Each node runs one *pump* per tenant that has stream readers on
it: the pump reads settled events after its position (see ``persistence.events`` for why a
settled prefix never has a hole behind it) and hands each one to the matching readers. A pump
wakes when this node commits an event, when another node says it did (a broker topic), and
every ``poll`` seconds regardless, so a lost notice or a broker restart only delays events,
never loses them.

A new reader is registered with the pump before its catch-up is read, exactly like a document
subscriber: what the pump hands out meanwhile is buffered, the catch-up reads up to the pump's
position at registration, and the buffer is replayed past the last event the catch-up sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from channels.frames import Frame
from channels.hub import Hub
from channels.tasks import cancel_and_wait
from persistence.events import EventFilter

__all__ = ["EventReader", "EventSink", "EventStreams", "StreamSubscription"]

log = logging.getLogger(__name__)

PAGE = 500


class EventReader(Protocol):
    async def read(self, tenant: str, *, after: int, flt: EventFilter | None = None,
                   limit: int = PAGE, upto: int | None = None,
                   ) -> tuple[list[dict[str, Any]], int, bool]: ...

    async def head(self, tenant: str) -> int: ...

    async def purged_through(self, tenant: str) -> int: ...


class EventSink(Protocol):
    def put(self, frame: Frame) -> bool: ...


@dataclass(eq=False)
class StreamSubscription:
    sink: EventSink
    tenant: str
    flt: EventFilter
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    last: int = 0
    start: int = 0  # the pump's position when this reader was registered
    joining: bool = True
    buffer: list[dict[str, Any]] = field(default_factory=list)

    def offer(self, event: dict[str, Any]) -> None:
        if self.joining:
            self.buffer.append(event)
        elif event["seq"] > self.last:
            self.sink.put(Frame({"type": "event", "stream": self.id, "event": event}))
            self.last = event["seq"]


@dataclass(eq=False)
class _Pump:
    tenant: str
    position: int
    readers: set[StreamSubscription] = field(default_factory=set)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    joined: bool = False  # listening to other nodes' notices


class EventStreams:
    def __init__(self, reader: EventReader, hub: Hub, *, poll: float = 0.25) -> None:
        self.reader = reader
        self.hub = hub
        self.poll = poll
        self._pumps: dict[str, _Pump] = {}
        self._notices: set[str] = set()
        self._notice_flush: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Future[None]] = set()

    def topic(self, tenant: str) -> str:
        return f"events:{tenant}"

    async def stop(self) -> None:
        """Stop every pump, then send the wake notices still due: they must leave before
        the hub closes the broker, not race it (or reopen a connection after it)."""
        for pump in list(self._pumps.values()):
            await self._stop_pump(pump)
        self._pumps.clear()
        if self._notice_flush is not None:
            self._notice_flush.cancel()
            self._flush_notices()
        if self._sending:
            await asyncio.wait(list(self._sending), timeout=5.0)

    # -- readers --------------------------------------------------------------------------

    async def subscribe(
        self, sink: EventSink, tenant: str, flt: EventFilter
    ) -> StreamSubscription:
        """Register a reader (buffering); its reply may go out, then :meth:`activate`."""
        pump = self._pumps.get(tenant)
        if pump is None:
            head = await self.reader.head(tenant)
            pump = self._pumps.get(tenant)  # another reader may have started it meanwhile
            if pump is None:
                pump = self._pumps[tenant] = _Pump(tenant, head)
                pump.task = asyncio.create_task(self._run(pump), name=f"event-pump-{tenant}")
                await self._join_topic(pump)
        sub = StreamSubscription(sink, tenant, flt, start=pump.position)
        pump.readers.add(sub)
        return sub

    async def activate(self, sub: StreamSubscription, since: int | None) -> None:
        """Send everything after ``since`` up to the registration point, then go live.

        When ``since`` lies below events that ``archive --purge`` removed, the reader is told
        first (``reset`` with the purge point) and the stream goes on after that point: it
        must not look as if the oldest live event came right after ``since``.
        """
        if since is not None:
            purged = await self.reader.purged_through(sub.tenant)
            if since < purged:
                sub.sink.put(Frame({"type": "reset", "stream": sub.id, "since": since,
                                    "seq": purged}))
                since = purged
        cursor = last = sub.start if since is None else since
        while cursor < sub.start:
            found, position, more = await self.reader.read(
                sub.tenant, after=cursor, flt=sub.flt, limit=PAGE, upto=sub.start)
            for event in found:
                sub.sink.put(Frame({"type": "event", "stream": sub.id, "event": event}))
                last = event["seq"]
            if not more:
                break
            cursor = position
        # Everything up to the registration point was sent or does not match the filter;
        # what came after it is in the buffer.
        sub.last = max(last, sub.start)
        sub.joining = False
        buffered, sub.buffer = sub.buffer, []
        for event in buffered:
            sub.offer(event)

    async def unsubscribe(self, sub: StreamSubscription) -> None:
        pump = self._pumps.get(sub.tenant)
        if pump is None:
            return
        pump.readers.discard(sub)
        if not pump.readers:
            del self._pumps[sub.tenant]
            await self._stop_pump(pump)

    async def _join_topic(self, pump: _Pump) -> None:
        """Hear other nodes' commits; without the broker the pump still polls the log."""
        try:
            await self.hub.join_topic(_Waker(pump), self.topic(pump.tenant))
            pump.joined = True
        except Exception:
            log.warning("event notices for %s unavailable; polling until the broker is back",
                        pump.tenant)

    async def _stop_pump(self, pump: _Pump) -> None:
        await cancel_and_wait([pump.task])
        if pump.joined:
            await self.hub.leave_topic(_Waker(pump), self.topic(pump.tenant))

    # -- notices --------------------------------------------------------------------------

    def committed(self, tenant: str) -> None:
        """This node committed an event of ``tenant``: wake the local pump, tell the others.

        Notices to other nodes are coalesced for a few milliseconds, so a burst of writes
        costs one broker message, not one per write.
        """
        pump = self._pumps.get(tenant)
        if pump is not None:
            pump.wake.set()
        self._notices.add(tenant)
        if self._notice_flush is None:
            loop = asyncio.get_running_loop()
            self._notice_flush = loop.call_later(0.005, self._flush_notices)

    def _flush_notices(self) -> None:
        self._notice_flush = None
        tenants, self._notices = self._notices, set()
        for tenant in tenants:
            task = asyncio.ensure_future(
                self.hub.publish_topic(self.topic(tenant), {"type": "wake"}))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    # -- the pump -------------------------------------------------------------------------

    async def _run(self, pump: _Pump) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll):  # a cancel is never swallowed here
                    await pump.wake.wait()
            pump.wake.clear()
            if not pump.joined:
                await self._join_topic(pump)
            try:
                while True:
                    found, position, more = await self.reader.read(
                        pump.tenant, after=pump.position, limit=PAGE)
                    for event in found:
                        for sub in list(pump.readers):
                            if sub.flt.matches(event):
                                sub.offer(event)
                    pump.position = position
                    if not more:
                        break
            except Exception:
                log.warning("reading events of %s failed; retrying", pump.tenant,
                            exc_info=True)
                await asyncio.sleep(self.poll)


@dataclass(frozen=True)
class _Waker:
    """A hub sink that turns any message on the tenant's topic into a wake-up."""

    pump: _Pump

    def put(self, frame: Frame) -> bool:
        self.pump.wake.set()
        return True

    def __hash__(self) -> int:
        return id(self.pump)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Waker) and other.pump is self.pump
