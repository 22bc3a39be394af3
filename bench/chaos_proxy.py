"""A loopback TCP proxy that stalls, cuts and holds links: the one place faults of a link
are made, for the chaos run and for the tests.

In the chaos run each node reaches each backing service through a proxy of its own, so a
fault can isolate one node from the database or the broker while the others keep working, as
a flaky link or a full socket buffer on one host would. The client tests put one between a
client and a node. :meth:`FaultProxy.stall` stops moving bytes in both directions on every
connection (new connections are accepted but hear nothing either): the peers see a silent
link, not an error. :meth:`FaultProxy.cut` aborts every connection with a reset, as a dead
link or a restarted middlebox would. :meth:`FaultProxy.hold_replies` drops what the server
sends on the open connections (the worst moment for a client: its request arrived, the reply
never will), and :meth:`FaultProxy.refuse` turns new connections away, as a node that is down.
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
        self.connections = 0  # accepted so far
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._clients: set[asyncio.StreamWriter] = set()  # the client side of each link
        self._held: set[asyncio.StreamWriter] = set()  # client sides that hear nothing
        self._refuse = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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

    def hold_replies(self) -> None:
        """Drop what the server sends on the open connections from now on."""
        self._held |= self._clients

    def refuse(self, refuse: bool = True) -> None:
        """Close new connections at once while set (a node that is down)."""
        self._refuse = refuse

    def cut(self) -> int:
        """Abort every open connection (RST); returns how many sockets were aborted."""
        writers, self._writers = self._writers, set()
        for writer in writers:
            if writer.transport is not None:
                writer.transport.abort()
        links = len(self._clients)
        self._clients.clear()
        self._held.clear()
        self.cuts += 1
        return links

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refuse:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.target_port), 5)
        except (OSError, TimeoutError):
            writer.transport.abort()
            return
        self.connections += 1
        self._writers |= {writer, up_writer}
        self._clients.add(writer)
        for task in (asyncio.create_task(self._pump(reader, up_writer)),
                     asyncio.create_task(self._pump(up_reader, writer))):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()
                if writer in self._held:
                    continue
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            self._clients.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()
