"""A loopback TCP proxy between one node and PostgreSQL or Redis, which stalls and cuts.

Each node reaches each backing service through a proxy of its own, so a fault can isolate
one node from the database or the broker while the others keep working, as a flaky link or
a full socket buffer on one host would. :meth:`FaultProxy.stall` stops moving bytes in both
directions on every connection (new connections are accepted but hear nothing either): the
peers see a silent link, not an error. :meth:`FaultProxy.cut` aborts every connection with a
reset, as a dead link or a restarted middlebox would.
"""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["FaultProxy"]


class FaultProxy:
    def __init__(self, name: str, target_port: int) -> None:
        self.name = name
        self.target_port = target_port
        self.port = 0
        self.accepted = 0
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self._flowing.set()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def stall(self) -> None:
        """Stop forwarding in both directions until :meth:`resume`."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def cut(self) -> int:
        """Abort every open connection (RST); returns how many sockets were aborted."""
        writers, self._writers = self._writers, set()
        for writer in writers:
            if writer.transport is not None:
                writer.transport.abort()
        self.cuts += 1
        return len(writers)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.target_port), 5)
        except (OSError, TimeoutError):
            writer.transport.abort()
            return
        self.accepted += 1
        self._writers |= {writer, up_writer}
        for task in (asyncio.create_task(self._pump(reader, up_writer)),
                     asyncio.create_task(self._pump(up_reader, writer))):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()
