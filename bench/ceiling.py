"""The ceiling: the ``websockets`` library's own ``broadcast()`` in a loop, nothing else.

``python -m bench.ceiling --port P --clients N --size 200 [--binary]`` accepts connections and,
once N are open, broadcasts one ``size``-byte message to all of them over and over. This is
the most a Python WebSocket server on this machine can push with one event loop: no
decoding, no queues, no tasks per message, one encoded payload written to every transport.

``broadcast()`` itself has no backpressure (its docstring says so), so the loop pauses while
any transport holds more than ``HIGH_WATER`` bytes. Without that the server would spend its
time filling kernel-bound buffers that the clients never drain in the window, and the
"ceiling" would measure memory growth instead of delivery.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from websockets.asyncio.server import ServerConnection, broadcast, serve

__all__ = ["main"]

HIGH_WATER = 64 * 1024


class Broadcaster:
    def __init__(self, clients: int, message: str | bytes) -> None:
        self.expected = clients
        self.message = message
        self.connections: set[ServerConnection] = set()
        self.full = asyncio.Event()

    async def handler(self, connection: ServerConnection) -> None:
        self.connections.add(connection)
        if len(self.connections) >= self.expected:
            self.full.set()
        try:
            await connection.wait_closed()
        finally:
            self.connections.discard(connection)

    def backlog(self) -> int:
        return max((c.transport.get_write_buffer_size() for c in self.connections), default=0)

    async def pump(self) -> None:
        await self.full.wait()
        while True:
            broadcast(self.connections, self.message)
            await asyncio.sleep(0)
            # A transport's buffer has no "drained below" event to wait on: poll it.
            while self.backlog() > HIGH_WATER:  # noqa: ASYNC110
                await asyncio.sleep(0.0005)


async def serve_ceiling(port: int, clients: int, size: int, binary: bool) -> None:
    payload = ("x" * size).encode() if binary else "x" * size
    broadcaster = Broadcaster(clients, payload)
    async with serve(broadcaster.handler, "127.0.0.1", port, compression=None,
                     ping_interval=None, max_queue=None):
        print("ready", flush=True)
        await broadcaster.pump()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--size", type=int, default=200)
    parser.add_argument("--binary", action="store_true")
    args = parser.parse_args(argv)
    # uvloop, as coedit gets from uvicorn: the ceiling runs on the same event loop.
    import uvloop

    try:
        uvloop.run(serve_ceiling(args.port, args.clients, args.size, args.binary))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
