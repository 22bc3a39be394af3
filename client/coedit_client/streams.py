"""Event streams and stage feeds over the WebSocket, resumed across reconnects.

An :class:`EventStream` remembers the ``seq`` of the last event it handed out. After a
reconnect it subscribes again with ``since`` = that seq and drops anything at or below it, so
an ``async for`` over it sees every matching event exactly once, in ``seq`` order, whichever
node it is connected to.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import TYPE_CHECKING, Any

from coedit_client.errors import ClientClosed, CoeditError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from types import TracebackType

    from coedit_client.connection import Client

__all__ = ["EventStream", "PresenceFeed"]


class _Feed:
    """A queue that a reader drains; ``end`` wakes it with a failure or a clean end."""

    def __init__(self) -> None:
        self.queue: deque[dict[str, Any]] = deque()
        self.wake = asyncio.Event()
        self.failure: BaseException | None = None

    def put(self, item: dict[str, Any]) -> None:
        self.queue.append(item)
        self.wake.set()

    def end(self, exc: BaseException) -> None:
        self.failure = exc
        self.wake.set()

    async def get(self) -> dict[str, Any]:
        while True:
            if self.queue:
                return self.queue.popleft()
            if self.failure is not None:
                if isinstance(self.failure, ClientClosed):
                    raise StopAsyncIteration
                raise self.failure
            self.wake.clear()
            await self.wake.wait()


class EventStream:
    """Build with ``client.events(...)``; iterate with ``async for``; ``async with`` (or
    :meth:`close`) unsubscribes."""

    def __init__(self, client: Client, spec: dict[str, list[str]], since: int | None) -> None:
        self.client = client
        self.spec = spec
        self.last_seq = since  # the seq of the last event handed out (or the start)
        self.stream_id: str | None = None
        self.subscriptions = 0  # how many times it (re)subscribed
        self._feed = _Feed()
        self._started = False

    async def start(self) -> EventStream:
        if not self._started:
            self._started = True
            self.client.register(self)
            try:
                await self._subscribe()
            except BaseException:
                self.client.unregister(self)
                raise
        return self

    async def _subscribe(self) -> None:
        fields: dict[str, Any] = {"stream": self.spec}
        if self.last_seq is not None:
            fields["since"] = self.last_seq
        await self.client.request("subscribe", retry=True, within=300,
                                  on_reply=self._subscribed, **fields)

    def _subscribed(self, reply: dict[str, Any]) -> None:
        if reply.get("type") != "ok":
            return
        if self.stream_id is not None:
            self.client.streams.pop(self.stream_id, None)
        self.stream_id = str(reply["stream"])
        self.client.streams[self.stream_id] = self
        self.subscriptions += 1
        if self.last_seq is None:
            self.last_seq = int(reply["seq"])

    async def resume(self) -> None:
        await self._subscribe()

    def disconnected(self) -> None:
        if self.stream_id is not None:
            self.client.streams.pop(self.stream_id, None)
            self.stream_id = None

    def deliver(self, message: dict[str, Any]) -> None:
        event = message.get("event")
        if not isinstance(event, dict):
            return
        seq = event.get("seq")
        if not isinstance(seq, int) or (self.last_seq is not None and seq <= self.last_seq):
            return  # replayed by a resume: handed out already
        self.last_seq = seq
        self._feed.put(event)

    def end(self, exc: BaseException) -> None:
        self._feed.end(exc)

    async def close(self) -> None:
        self.client.unregister(self)
        stream_id, self.stream_id = self.stream_id, None
        if stream_id is not None:
            self.client.streams.pop(stream_id, None)
            with contextlib.suppress(CoeditError):
                if self.client.connected:
                    await self.client.request("unsubscribe", stream=stream_id)
        self._feed.end(ClientClosed("the stream was closed"))

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self

    async def __anext__(self) -> dict[str, Any]:
        await self.start()
        if self.client._failure is not None and not self._feed.queue:
            self._feed.end(self.client._failure)
        return await self._get()

    async def _get(self) -> dict[str, Any]:
        # Wake up when the client fails for good, not only when an event arrives.
        getter = asyncio.ensure_future(self._feed.get())
        stopped = asyncio.ensure_future(self.client._stopped.wait())
        try:
            await asyncio.wait([getter, stopped], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if not getter.done():
            getter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await getter
            if self._feed.queue:
                return self._feed.queue.popleft()
            failure = self.client._failure or ClientClosed("the client was closed")
            if isinstance(failure, ClientClosed):
                raise StopAsyncIteration
            raise failure
        return getter.result()

    async def __aenter__(self) -> EventStream:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()


class PresenceFeed:
    """The presence of every document of one kind (``scope="stage"``, PROTOCOL.md section 6)
    or of one idea (``scope="idea"``, section 10):
    :attr:`entries` by ``(session, doc)`` (one session may be on several documents of the
    kind or idea), and each diff as it comes from ``async for``. Subscribed again after every
    reconnect, with the entries replaced by the reply's."""

    def __init__(self, client: Client, scope: str, key: str) -> None:
        if scope not in ("stage", "idea"):
            raise ValueError("scope must be 'stage' or 'idea'")
        self.client = client
        self.scope = scope
        self.key = key
        self.entries: dict[tuple[str, str], dict[str, Any]] = {}
        self._feed = _Feed()
        self._started = False

    async def start(self) -> PresenceFeed:
        if not self._started:
            self._started = True
            self.client.presence_feeds[(self.scope, self.key)] = self
            self.client.register(self)
            await self.resume()
        return self

    async def resume(self) -> None:
        scope: dict[str, Any] = {self.scope: self.key}
        reply = await self.client.request("subscribe", retry=True, within=300, **scope)
        self.entries = {(e["session"], e["doc"]): e for e in reply.get("presence") or []}

    def disconnected(self) -> None:
        self.entries = {}

    def deliver(self, message: dict[str, Any]) -> None:
        for entry in (message.get("joins") or []) + (message.get("updates") or []):
            self.entries[(entry["session"], entry["doc"])] = entry
        for entry in message.get("leaves") or []:
            self.entries.pop((entry.get("session"), entry.get("doc")), None)
        self._feed.put(message)

    def end(self, exc: BaseException) -> None:
        self._feed.end(exc)

    async def close(self) -> None:
        self.client.unregister(self)
        self.client.presence_feeds.pop((self.scope, self.key), None)
        with contextlib.suppress(CoeditError):
            if self.client.connected:
                scope: dict[str, Any] = {self.scope: self.key}
                await self.client.request("unsubscribe", **scope)
        self._feed.end(ClientClosed("the feed was closed"))

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self

    async def __anext__(self) -> dict[str, Any]:
        await self.start()
        return await self._feed.get()

    async def __aenter__(self) -> PresenceFeed:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()
