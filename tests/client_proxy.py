"""A TCP proxy in front of a server, for client tests that cut connections.

The client library reconnects by itself; to prove that nothing is lost or applied twice, a
test must be able to drop its connections at chosen moments, including the worst one: after a
request reached the server and before its reply reached the client. :meth:`Proxy.hold_replies`
stops forwarding the server's bytes on the open connections (they are dropped, as by a dead
link; connections made later are not affected) and :meth:`Proxy.cut`
aborts every connection, without a close frame, as a network failure would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

__all__ = ["Proxy", "proxy_to"]


class Proxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.connections = 0  # accepted so far
        self._server: asyncio.Server | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._held: set[asyncio.StreamWriter] = set()  # client sides that hear nothing
        self._refuse = False

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def hold_replies(self) -> None:
        """Drop what the server sends on the open connections from now on."""
        self._held |= {client for client, _ in self._links}

    def refuse(self, refuse: bool = True) -> None:
        """Close new connections at once while set (a node that is down)."""
        self._refuse = refuse

    def cut(self) -> int:
        """Abort every open connection; returns how many there were."""
        links, self._links = self._links, set()
        for client, upstream in links:
            for writer in (client, upstream):
                transport = writer.transport
                if transport is not None:
                    transport.abort()
        self._held.clear()
        return len(links)

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
        link = (writer, up_writer)
        self._links.add(link)
        for task in (asyncio.create_task(self._pump(reader, up_writer, upstream=True)),
                     asyncio.create_task(self._pump(up_reader, writer, upstream=False))):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                    upstream: bool) -> None:
        try:
            while data := await reader.read(65536):
                if not upstream and writer in self._held:
                    continue
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()


@contextlib.asynccontextmanager
async def proxy_to(port: int) -> AsyncIterator[Proxy]:
    proxy = Proxy(port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()
