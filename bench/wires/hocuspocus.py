"""Hocuspocus 4's binary protocol, as @hocuspocus/provider speaks it.

Every WebSocket message is ``varstring(document) varuint(type) payload`` in lib0's encoding
(varuint: 7 bits a byte, least significant first, high bit set on all but the last;
varstring: varuint byte length, then UTF-8). Types used here: 0 Sync (payload: a y-protocols
sync message, ``0`` step 1 with a state vector, ``1`` step 2 with an update, ``2`` update),
1 Awareness, 2 Auth (``0`` token from the client; the server answers ``2`` authenticated
with the scope or ``1`` permission denied with a reason), 4 SyncReply, 5 Stateless, 7 Close,
8 SyncStatus (``1`` once the server applied our update), 9 Ping (a bare one-byte message).

Joining a document: the authentication message, then sync step 1 with the empty state
vector. The server answers authenticated, its own sync step 1 and sync step 2; we answer its
step 1 with the (empty) step 2 of an empty document, and its SyncStatus for that marks the end
of set-up. From then on each change arrives as one ``document 0 2 update`` frame; SyncStatus
only ever goes to the connection that sent the change, and awareness frames only when some
client publishes awareness (the benchmark's driver does not).

The server closes a connection that has sent nothing for its ``timeout`` (60 s by default;
the browser provider renews its awareness every 15 s). A listening subscriber therefore sends
an empty stateless message every 30 s, which the server accepts without answering anyone.
"""

from __future__ import annotations

import asyncio
import random

from bench.wsclient import OP_BINARY, PayloadHook, WsClientProtocol

__all__ = ["join", "keepalive"]

SYNC, AWARENESS, AUTH, SYNC_REPLY, STATELESS, CLOSE, SYNC_STATUS, PING, PONG = (
    0, 1, 2, 4, 5, 7, 8, 9, 10)
STEP1, STEP2, UPDATE = 0, 1, 2
AUTH_TOKEN, AUTH_DENIED, AUTH_OK = 0, 1, 2
KEEPALIVE_S = 30.0

_keepalives: set[asyncio.Task[None]] = set()


def varuint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def varstring(text: str) -> bytes:
    raw = text.encode()
    return varuint(len(raw)) + raw


def read_varuint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def read_varstring(data: bytes, pos: int) -> tuple[str, int]:
    length, pos = read_varuint(data, pos)
    return data[pos:pos + length].decode(errors="replace"), pos + length


def message(doc: str, kind: int, payload: bytes = b"") -> bytes:
    return varstring(doc) + varuint(kind) + payload


async def join(client: WsClientProtocol, target: dict[str, str]) -> None:
    doc = target["doc"]
    frames: asyncio.Queue[bytes] = asyncio.Queue()
    client.set_hook(lambda opcode, payload, now: frames.put_nowait(payload))
    # Auth with an empty token (the server has no onAuthenticate hook), then sync step 1 with
    # the empty state vector (no clients: varuint 0, as a one-byte varUint8Array).
    client.send(message(doc, AUTH, varuint(AUTH_TOKEN) + varstring("")), OP_BINARY)
    client.send(message(doc, SYNC, varuint(STEP1) + varuint(1) + b"\x00"), OP_BINARY)
    answered = False
    while True:
        frame = await frames.get()
        if frame == bytes([PING]):
            client.send(bytes([PONG]), OP_BINARY)
            continue
        _, pos = read_varstring(frame, 0)
        kind, pos = read_varuint(frame, pos)
        if kind == AUTH:
            sub, pos = read_varuint(frame, pos)
            if sub == AUTH_DENIED:
                reason, _ = read_varstring(frame, pos)
                raise ConnectionError(f"hocuspocus refused {doc!r}: {reason}")
        elif kind in (SYNC, SYNC_REPLY):
            sub, pos = read_varuint(frame, pos)
            if sub == STEP1 and not answered:
                # Step 2 of an empty document: an update of no structs and no deletions.
                client.send(message(doc, SYNC, varuint(STEP2) + varuint(2) + b"\x00\x00"),
                            OP_BINARY)
                answered = True
        elif kind == SYNC_STATUS and answered:
            break
        elif kind == CLOSE:
            reason, _ = read_varstring(frame, pos)
            raise ConnectionError(f"hocuspocus closed {doc!r}: {reason}")
    task = asyncio.create_task(_stay_alive(client, doc))
    _keepalives.add(task)
    task.add_done_callback(_keepalives.discard)
    client.closed.add_done_callback(lambda _: task.cancel())


async def _stay_alive(client: WsClientProtocol, doc: str) -> None:
    """An empty stateless message every KEEPALIVE_S (spread out): the server's idle timeout
    counts only messages it receives, and a subscriber has nothing else to say."""
    payload = message(doc, STATELESS, varstring(""))
    await asyncio.sleep(random.uniform(0, KEEPALIVE_S))
    while not client.closed.done():
        client.send(payload, OP_BINARY)
        await asyncio.sleep(KEEPALIVE_S)


def keepalive(client: WsClientProtocol) -> PayloadHook | None:
    """None: the server (4.7) sends no application-level ping, so frames after set-up need
    no look at all. (The provider would answer a bare Ping byte with a Pong; join does too.)"""
    return None
