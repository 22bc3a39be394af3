"""The peer: python-socketio emitting a 200-byte event to a room of N clients, in a loop.

``python -m bench.socketio_peer --port P --clients N [--server aiohttp|uvicorn]``. Every client
that connects to the default namespace enters the room ``doc``; once N are in, the server
emits ``("delta", <size bytes>)`` to the room over and over. That is how a python-socketio
application fans a change out, so it is the figure coedit is compared with.

Engine.IO queues packets per client without a bound, so, like the ceiling, the loop pauses
while any client's queue holds more than ``HIGH_WATER`` packets instead of measuring how fast
memory fills.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import socketio

__all__ = ["main"]

HIGH_WATER = 64
ROOM = "doc"


class RoomEmitter:
    def __init__(self, sio: socketio.AsyncServer, clients: int, size: int) -> None:
        self.sio = sio
        self.expected = clients
        self.payload = "x" * size
        self.joined = 0
        self.full = asyncio.Event()

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        await self.sio.enter_room(sid, ROOM)
        self.joined += 1
        if self.joined >= self.expected:
            self.full.set()

    def backlog(self) -> int:
        sockets = self.sio.eio.sockets.values()
        return max((s.queue.qsize() for s in sockets), default=0)

    async def pump(self) -> None:
        await self.full.wait()
        while True:
            await self.sio.emit("delta", self.payload, room=ROOM)
            # Engine.IO's queues have no "drained below" event to wait on: poll them.
            while self.backlog() > HIGH_WATER:  # noqa: ASYNC110
                await asyncio.sleep(0.0005)


def _server(mode: str, clients: int, size: int) -> tuple[socketio.AsyncServer, RoomEmitter]:
    sio = socketio.AsyncServer(async_mode=mode, cors_allowed_origins="*", ping_interval=25,
                               ping_timeout=60, logger=False, engineio_logger=False)
    emitter = RoomEmitter(sio, clients, size)
    sio.on("connect", emitter.on_connect)
    return sio, emitter


async def serve_aiohttp(port: int, clients: int, size: int) -> None:
    from aiohttp import web

    sio, emitter = _server("aiohttp", clients, size)
    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await emitter.pump()


async def serve_uvicorn(port: int, clients: int, size: int) -> None:
    import uvicorn

    sio, emitter = _server("asgi", clients, size)
    app = socketio.ASGIApp(sio)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           ws="websockets-sansio", ws_ping_interval=None,
                                           lifespan="off"))
    pump = asyncio.create_task(emitter.pump())
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no started event
        await asyncio.sleep(0.05)
    print("ready", flush=True)
    await asyncio.gather(pump, serving)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--size", type=int, default=200)
    parser.add_argument("--server", choices=("aiohttp", "uvicorn"), default="aiohttp")
    args = parser.parse_args(argv)
    import uvloop

    run = serve_aiohttp if args.server == "aiohttp" else serve_uvicorn
    uvloop.run(run(args.port, args.clients, args.size))


if __name__ == "__main__":
    main()
