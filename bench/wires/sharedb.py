"""ShareDB's JSON protocol (sharedb 7, protocol 1.2), over a raw WebSocket.

On connect the server sends the legacy ``{"a":"init",...}`` message; a current client answers
with the handshake ``{"a":"hs","id":null,"protocol":1,"protocolMinor":2}`` and waits for the
server's ``hs`` reply (see sharedb's ``lib/client/connection.js``). Then
``{"a":"s","c":"docs","d":<doc>,"v":null}`` subscribes from the latest snapshot; its reply is
an ``s`` message for that document (with ``data``, or ``error``). After that every committed
op arrives as one ``{"a":"op",...}`` frame, which the client never answers. ShareDB has no
application-level ping (the server's keep-alive is a WebSocket ping, answered by
:mod:`bench.wsclient` itself).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from bench.wsclient import PayloadHook, WsClientProtocol

__all__ = ["COLLECTION", "join", "keepalive"]

COLLECTION = "docs"  # as bench/node/sharedb/shape.mjs
PROTOCOL = {"protocol": 1, "protocolMinor": 2}


async def join(client: WsClientProtocol, target: dict[str, str]) -> None:
    messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    client.set_hook(lambda opcode, payload, now: messages.put_nowait(json.loads(payload)))

    async def reply(action: str) -> dict[str, Any]:
        while True:
            message = await messages.get()
            if message.get("a") == action:
                if "error" in message:
                    raise ConnectionError(f"ShareDB refused {action!r}: {message['error']}")
                return message

    await reply("init")
    client.send(json.dumps({"a": "hs", "id": None, **PROTOCOL}).encode())
    await reply("hs")
    doc = target.get("doc")
    if not doc:
        return
    client.send(json.dumps({"a": "s", "c": COLLECTION, "d": doc, "v": None}).encode())
    while True:
        message = await reply("s")
        if message.get("d") == doc:
            return


def keepalive(client: WsClientProtocol) -> PayloadHook | None:
    return None
