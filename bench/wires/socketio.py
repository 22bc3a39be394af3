"""Socket.IO v5 over Engine.IO v4, WebSocket transport only.

python-socketio's peer puts every client in its room on connect (``target["doc"]`` empty);
the Node peer (``bench/node/socketio``) is asked in its own idiom, an event with an
acknowledgement: ``420["join","<doc>"]`` answered by ``430[{"version":n}]``, or by
``430[{"error":"..."}]`` when it refuses. After that the connection receives one
``42["delta",{...}]`` frame per change and Engine.IO's pings (``2``, answered ``3``).
"""

from __future__ import annotations

import asyncio
import json

from bench.wsclient import PayloadHook, WsClientProtocol

__all__ = ["join", "keepalive"]


async def join(client: WsClientProtocol, target: dict[str, str]) -> None:
    packets: asyncio.Queue[bytes] = asyncio.Queue()
    client.set_hook(lambda opcode, payload, now: packets.put_nowait(payload))
    first = await packets.get()
    if not first.startswith(b"0"):
        raise ConnectionError(f"expected an Engine.IO open packet, got {first[:40]!r}")
    client.send(b"40")
    while not (await packets.get()).startswith(b"40"):
        pass
    doc = target.get("doc")
    if not doc:
        return
    client.send(b"420" + json.dumps(["join", doc]).encode())
    while True:
        packet = await packets.get()
        if packet.startswith(b"430"):
            answer = json.loads(packet[3:])
            if isinstance(answer, list) and answer and isinstance(answer[0], dict) \
                    and "error" in answer[0]:
                raise ConnectionError(f"join {doc!r} refused: {answer[0]['error']}")
            return
        if packet == b"2":
            client.send(b"3")


def keepalive(client: WsClientProtocol) -> PayloadHook:
    def engineio_ping(opcode: int, payload: bytes, now: float) -> None:
        if payload == b"2":
            client.send(b"3")
    return engineio_ping
