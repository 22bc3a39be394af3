"""uvicorn's sans-I/O WebSocket protocol, holding less for each idle connection.

Most of a subscribed connection's life is waiting: for the next heartbeat, the next delta.
What it holds while it waits is what 10,000 connections cost. uvicorn's protocol keeps, for
the whole life of a connection, an ``asyncio.Queue`` of received messages (three deques and an
``Event`` with a fourth, about 760 bytes each, even when empty), a ``writable`` event with its
own deque, and the handshake's parsed request (twice: websockets' parser holds it too) and
response with all their headers. This subclass swaps the queue for a list with one waiter,
makes the event's deque only when someone waits on it, and lets go of the handshake once the
accept went out: about 9 KB less per connection, with uvicorn's behaviour otherwise unchanged
(the same methods, called the same way).
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, Literal

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

__all__ = ["LeanWebSocketProtocol"]


class _Inbox:
    """The part of ``asyncio.Queue`` uvicorn uses (``put_nowait``, ``get``, ``empty``).

    One reader at a time (the ASGI app's ``receive``), and uvicorn pauses reading the socket
    as soon as one message waits, so the list stays at a message or two.
    """

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            if self._waiter is not None:
                raise RuntimeError("the inbox has one reader at a time")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)


class _LazyEvent(asyncio.Event):
    """``asyncio.Event`` whose waiter deque exists only once somebody waits.

    ``set`` walks the waiters and ``clear`` ignores them, so an empty tuple serves until the
    first ``wait`` (a socket that filled its buffer: rare for an idle subscriber).
    """

    def __init__(self) -> None:
        super().__init__()
        self._waiters: Any = ()

    async def wait(self) -> Literal[True]:
        if self.is_set():  # uvicorn waits before every send: mostly on a set event
            return True
        if not isinstance(self._waiters, collections.deque):
            self._waiters = collections.deque()
        return await super().wait()


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _Inbox()  # type: ignore[assignment]
        self.writable = _LazyEvent()
        self.writable.set()

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        # websockets' parser keeps the parsed request in its generator's frame for as long
        # as the connection lives; the scope holds its own copy of the headers by now, and
        # the accept was computed from them.
        event.headers.clear()

    async def send(self, message: Any) -> None:
        await super().send(message)
        # Once the accept (or a refusal) is written, nothing reads the handshake again.
        if self.handshake_complete and getattr(self, "response", None) is not None:
            self.request = self.response = None  # type: ignore[assignment]
