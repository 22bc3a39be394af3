"""Per-connection send queues: one bounded queue and one writer task per socket.

Backpressure policy, stated plainly: a connection whose queue is full is *cut off*, never
waited for. Nothing is dropped silently: the overflowing connection is closed (1013) and its
client resumes with ``since``, which the log can always serve. So one slow socket never
delays the fan-out to the others, and memory per connection stays bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from channels.frames import Frame, WireFormat

__all__ = ["Outbox"]

log = logging.getLogger(__name__)

SendFn = Callable[[str | bytes], Awaitable[None]]


class Outbox:
    """Queue frames for one socket; ``run()`` drains them until ``close()`` or a send fails."""

    def __init__(
        self,
        send: SendFn,
        wire: WireFormat,
        *,
        limit: int = 1024,
        on_overflow: Callable[[], None],
    ) -> None:
        self._send = send
        self.wire = wire
        self._queue: asyncio.Queue[Frame | None] = asyncio.Queue(maxsize=limit)
        self._on_overflow = on_overflow
        self.overflowed = False
        self.closed = False

    def put(self, frame: Frame) -> bool:
        """Queue ``frame`` without waiting; False (and the overflow callback) if it is full."""
        if self.closed or self.overflowed:
            return False
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.overflowed = True
            log.warning("send queue overflowed (%d frames); closing the connection",
                        self._queue.maxsize)
            self._on_overflow()
            return False
        return True

    def put_message(self, message: dict[str, Any]) -> bool:
        return self.put(Frame(message))

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        """Stop after the frames already queued (a sentinel marks the end)."""
        if self.closed:
            return
        self.closed = True
        # A full queue means an overflow already ended the session and cancels run().
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)

    async def run(self) -> None:
        """The connection's only writer: frames reach the socket in the order queued."""
        while True:
            frame = await self._queue.get()
            if frame is None:
                return
            await self._send(frame.encoded(self.wire))
