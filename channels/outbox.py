"""Per-connection send queues, flushed once per event-loop turn with one write per socket.

Backpressure policy, stated plainly: a connection whose queue is full is *cut off*, never
waited for. Nothing is dropped silently: the overflowing connection is closed (1013) and its
client resumes with ``since``, which the log can always serve. So one slow socket never
delays the fan-out to the others, and memory per connection stays bounded.

Two ways to reach a socket:

* **Direct** (:class:`DirectSocket`, when the server exposes its transport): frames are
  complete WebSocket frames built once per delta (:meth:`Frame.wire_bytes`), and everything
  queued for a socket during one turn of the event loop leaves in one ``transport.write``.
  No task runs per connection while its socket keeps up; a writer task starts only while
  the transport has asked us to pause, and ends when the backlog is gone.
* **Through ``send``** (any other ASGI server): a writer task, started when frames wait and
  ended when none do, awaits ``send`` frame by frame.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from channels.frames import Frame, WireFormat

__all__ = ["DirectSocket", "Flusher", "Outbox"]

log = logging.getLogger(__name__)

SendFn = Callable[[str | bytes], Awaitable[None]]
EncodeFn = Callable[[Frame], str | bytes]


@dataclass(frozen=True, slots=True)
class DirectSocket:
    """What the outbox needs to write frames to a socket without the ASGI ``send`` chain.

    ``writable`` is set while the transport accepts more (its protocol's ``pause_writing``
    and ``resume_writing`` drive it); ``is_open`` is false once a close frame has been sent or
    received, after which no data frame may follow (RFC 6455 section 5.5.1).
    """

    transport: asyncio.WriteTransport
    writable: asyncio.Event
    is_open: Callable[[], bool]


class Flusher:
    """Flush every outbox that got frames during this turn of the loop, in one callback.

    Deferring the write to the end of the turn costs microseconds and lets several deltas
    committed together (a group commit, a burst from the broker) leave in one system call
    per socket instead of one per frame.
    """

    def __init__(self) -> None:
        self._dirty: list[Outbox] = []

    def schedule(self, outbox: Outbox) -> None:
        if not self._dirty:
            asyncio.get_running_loop().call_soon(self._flush_all)
        self._dirty.append(outbox)

    def _flush_all(self) -> None:
        dirty, self._dirty = self._dirty, []
        for outbox in dirty:
            outbox.flush()


class Outbox:
    """Queue frames for one socket; they leave in the order queued until ``finish()``."""

    __slots__ = ("_direct", "_encode", "_flusher", "_limit", "_on_failure", "_on_overflow",
                 "_pending", "_scheduled", "_send", "_writer", "closed", "overflowed", "wire")

    def __init__(
        self,
        send: SendFn,
        wire: WireFormat,
        *,
        limit: int = 1024,
        on_overflow: Callable[[], None],
        on_failure: Callable[[], None] | None = None,
        flusher: Flusher | None = None,
        encode: EncodeFn | None = None,
    ) -> None:
        """``encode`` turns a frame into what ``send`` takes; by default its payload in
        ``wire``'s format (another framing, such as Server-Sent Events, brings its own)."""
        self._send = send
        self.wire = wire
        self._encode = encode  # None: the payload in ``wire``'s format (no closure per socket)
        self._limit = limit
        # A list, not a deque: an empty deque holds a 64-slot block (760 bytes), and this
        # one is empty for most of a subscriber's life, at 10,000 subscribers per node.
        self._pending: list[Frame] = []
        self._on_overflow = on_overflow
        self._on_failure = on_failure
        self._flusher = flusher or Flusher()
        self._direct: DirectSocket | None = None
        self._writer: asyncio.Task[None] | None = None
        self._scheduled = False
        self.overflowed = False
        self.closed = False

    def attach(self, direct: DirectSocket) -> None:
        """Write straight to ``direct`` from now on (call it once the handshake is done)."""
        self._direct = direct

    def put(self, frame: Frame) -> bool:
        """Queue ``frame`` without waiting; False (and the overflow callback) if it is full."""
        if self.closed or self.overflowed:
            return False
        if len(self._pending) >= self._limit:
            self.overflowed = True
            self._pending.clear()  # the client resumes with `since`; keep no dead weight
            log.warning("send queue overflowed (%d frames); closing the connection",
                        self._limit)
            self._on_overflow()
            return False
        self._pending.append(frame)
        if not self._scheduled:
            self._scheduled = True
            self._flusher.schedule(self)
        return True

    def put_message(self, message: dict[str, Any]) -> bool:
        return self.put(Frame(message))

    @property
    def backlog(self) -> int:
        return len(self._pending)

    def flush(self) -> None:
        """Hand what is queued to the socket now, or to a writer task if it must wait."""
        self._scheduled = False
        if not self._pending or self._writer is not None:
            return
        direct = self._direct
        if direct is not None and direct.writable.is_set():
            try:
                self._write_direct(direct)
            except Exception:
                # A frame that cannot be encoded ends its own connection; raised, it would
                # also stop the flush of every other socket queued in the same turn.
                log.error("a frame could not be encoded; ending the session", exc_info=True)
                self._pending.clear()
                if self._on_failure is not None:
                    self._on_failure()
        else:
            self._writer = asyncio.create_task(self._drain())

    def _write_direct(self, direct: DirectSocket) -> None:
        pending = self._pending
        if not direct.is_open() or direct.transport.is_closing():
            pending.clear()  # the connection is ending; its session is being torn down
            return
        wire = self.wire
        if len(pending) == 1:
            data = pending.pop().wire_bytes(wire)
        else:
            data = b"".join([frame.wire_bytes(wire) for frame in pending])
            pending.clear()
        direct.transport.write(data)

    async def _drain(self) -> None:
        """Send the backlog while the socket makes us wait; end when nothing is left."""
        try:
            while self._pending:
                direct = self._direct
                if direct is not None:
                    await direct.writable.wait()
                    self._write_direct(direct)
                else:
                    frame = self._pending.pop(0)
                    encode = self._encode
                    await self._send(frame.encoded(self.wire) if encode is None
                                     else encode(frame))
        except asyncio.CancelledError:
            raise
        except Exception:
            # A send that fails means the socket is gone: the session must end, not spin.
            log.debug("send failed; ending the session", exc_info=True)
            self._pending.clear()
            if self._on_failure is not None:
                self._on_failure()
        finally:
            self._writer = None

    async def finish(self) -> None:
        """Accept no more frames, and wait until those queued so far have reached the socket.

        The caller bounds the wait: a peer that stopped reading never lets the last frames
        leave. After an overflow nothing is kept to send.
        """
        self.closed = True
        self.flush()
        writer = self._writer
        if writer is not None:
            await asyncio.wait([writer])  # not shielded from the caller's own timeout

    async def stop(self) -> None:
        """Drop whatever is queued and stop the writer task, if one runs."""
        self.closed = True
        self._pending.clear()
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
