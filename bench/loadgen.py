"""One load-generator process: many client connections that count (and optionally time) frames.

The controller starts several of these (``python -m bench.loadgen``) so that receiving never
runs on the same core-time slice as the controller's own writers, and talks to each over
stdin/stdout with one JSON object per line:

* stdin, first line: the :class:`FleetSpec` fields. The process connects every connection,
  subscribes it (coedit) or joins the room (Socket.IO), then prints ``{"event": "ready"}``.
* stdin ``{"cmd": "window", "start": t0, "end": t1}`` (``time.monotonic()`` seconds, which is
  one clock for every process on a Linux machine): frames arriving in ``[t0, t1)`` are counted;
  after ``t1`` the process prints ``{"event": "result", ...}``.
* stdin ``{"cmd": "exit"}`` or end of input: close everything and exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import itertools
import json
import os
import re
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import msgpack

from bench.wsclient import (
    OP_BINARY,
    OP_TEXT,
    FrameCounter,
    PayloadHook,
    WsClientProtocol,
    connect,
)

__all__ = ["FleetSpec", "main"]

STAMP = re.compile(rb"t=(\d{6,})")


@dataclass
class FleetSpec:
    """What one load process opens and how its connections behave."""

    # "coedit", "plain" (a broadcast server), or a peer's wire: a module of bench/wires
    mode: str
    targets: list[dict[str, str]]  # {"url", "doc"}; connection i uses targets[i % len]
    connections: int
    subprotocol: str | None = None
    heartbeat_s: float | None = None  # coedit: a heartbeat with an id every interval
    stamps: bool = False  # record latency from "t=<monotonic ns>" found in payloads
    # Time only every n-th connection: with thousands of subscribers, searching every frame
    # for a stamp would make the generator, not the server, the limit.
    stamp_every: int = 1
    decode: bool = False  # coedit JSON: count presence joins and closes by decoding frames
    concurrency: int = 64
    extra: dict[str, Any] = field(default_factory=dict)


_PRESENCE_TAIL = b',"presence":['


def _without_presence(payload: bytes) -> bytes:
    """A subscribe reply without its presence list, when nothing reads that list.

    The reply lists every other subscriber of the document, and coedit writes that list
    last. Parsed in full, the replies of 10,000 subscribers to one document are about 12 GB
    of JSON: minutes of the load generators' CPU, on the cores the node needs.
    """
    at = payload.rfind(_PRESENCE_TAIL) if len(payload) > 65_536 else -1
    if at < 0 or not payload.endswith(b"]}"):
        return payload
    return payload[:at] + b"}"


def decode_payload(opcode: int, payload: bytes) -> Any:
    """A coedit frame as a Python object (setup and low-volume paths only)."""
    if opcode == OP_BINARY:
        return msgpack.unpackb(payload, raw=False, strict_map_key=False)
    return json.loads(payload)


class Fleet:
    def __init__(self, spec: FleetSpec) -> None:
        self.spec = spec
        self.counter = FrameCounter()
        self.clients: list[WsClientProtocol] = []
        self.failed = 0
        self.errors: list[str] = []
        self.latencies_ns: list[int] = []
        self.heartbeat_rtts: list[float] = []
        self.presence_joins = 0
        self.heartbeats_sent = 0
        self.own_joins = 0
        # Per coedit connection: the other sessions it knows to be on its document, from its
        # subscribe reply's ``presence`` and the ``joins`` and ``leaves`` of later diffs.
        self.known: list[set[str]] = []
        self.unexpected_closes: dict[str, int] = {}
        self.closing = False
        self.stamp_turn = itertools.count()

    # -- connecting -----------------------------------------------------------------------

    async def open_all(self) -> None:
        gate = asyncio.Semaphore(self.spec.concurrency)

        async def one(index: int) -> None:
            target = self.spec.targets[index % len(self.spec.targets)]
            async with gate:
                try:
                    client = await self._open(target)
                except Exception as exc:
                    self.failed += 1
                    if len(self.errors) < 5:
                        self.errors.append(f"{type(exc).__name__}: {exc}")
                    return
                self.clients.append(client)
                client.closed.add_done_callback(lambda f: self._on_closed(f))

        await asyncio.gather(*(one(i) for i in range(self.spec.connections)))

    def _on_closed(self, future: asyncio.Future[int | None]) -> None:
        if self.closing:
            return
        key = str(future.result() if not future.cancelled() else "cancelled")
        self.unexpected_closes[key] = self.unexpected_closes.get(key, 0) + 1

    async def _open(self, target: dict[str, str]) -> WsClientProtocol:
        client = await connect(target["url"], self.counter, subprotocol=self.spec.subprotocol)
        if self.spec.mode == "coedit":
            await self._subscribe(client, target["doc"])
            return client
        wire = _wire(self.spec.mode)
        if wire is not None:
            async with asyncio.timeout(60):
                await wire.join(client, target)
        client.set_hook(self._hook_for(client))
        return client

    async def _subscribe(self, client: WsClientProtocol, doc: str) -> None:
        """Welcome, subscribe, ok; frames after the ok go straight to the fleet's hook.

        The switch happens inside the setup hook, on the very frame that carries the reply:
        presence diffs that arrive in the same read must be counted, not dropped.
        """
        replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        session: list[str] = []  # filled from the welcome, read by the presence counter
        known: set[str] = set()
        self.known.append(known)
        final = self._hook_for(client, session, known)
        done = False
        spec_decode = self.spec.decode

        def setup_hook(opcode: int, payload: bytes, now: float) -> None:
            nonlocal done
            if done:
                if final is not None:
                    final(opcode, payload, now)
                return
            if not spec_decode and opcode != OP_BINARY:
                payload = _without_presence(payload)
            message = decode_payload(opcode, payload)
            if message.get("re") == 1:
                done = True
                client.on_payload = final
                known.update(e["session"] for e in message.get("presence", []))
            replies.put_nowait(message)

        client.set_hook(setup_hook)
        binary = self.spec.subprotocol == "coedit.v1.msgpack"
        request = {"type": "subscribe", "id": 1, "doc": doc}
        async with asyncio.timeout(60):
            welcome = await replies.get()
            if welcome.get("type") != "welcome":
                raise ConnectionError(f"expected welcome, got {welcome.get('type')}")
            session.append(str(welcome.get("session")))
            if binary:
                client.send(msgpack.packb(request), OP_BINARY)
            else:
                client.send(json.dumps(request).encode(), OP_TEXT)
            while True:
                reply = await replies.get()
                if reply.get("re") == 1:
                    if reply.get("type") != "ok":
                        raise ConnectionError(f"subscribe refused: {reply}")
                    return

    def _hook_for(self, client: WsClientProtocol, session: list[str] | None = None,
                  known: set[str] | None = None) -> PayloadHook | None:
        """What a connection does with each data frame once it is set up."""
        spec = self.spec
        stamps = spec.stamps and next(self.stamp_turn) % spec.stamp_every == 0
        wire = _wire(spec.mode)
        if wire is not None:
            # The peer's keep-alive answers (Engine.IO's ping, say), then the latency stamps.
            keep = wire.keepalive(client)
            stamp = self._stamp_hook if stamps else None
            if keep is None or stamp is None:
                return keep or stamp

            def both(opcode: int, payload: bytes, now: float) -> None:
                keep(opcode, payload, now)
                stamp(opcode, payload, now)
            return both
        if stamps:
            return self._stamp_hook
        if spec.decode:  # presence and heartbeat round trips; else frames are only counted
            def decode(opcode: int, payload: bytes, now: float) -> None:
                self._decode(opcode, payload, now, session[0] if session else "",
                             set() if known is None else known)
            return decode
        return None

    def _stamp_hook(self, opcode: int, payload: bytes, now: float) -> None:
        counter = self.counter
        if not counter.start <= now < counter.end:
            return
        found = STAMP.search(payload)
        if found is not None:
            self.latencies_ns.append(time.monotonic_ns() - int(found.group(1)))

    def _decode(self, opcode: int, payload: bytes, now: float, session: str,
                known: set[str]) -> None:
        if opcode == OP_TEXT and payload.startswith(b'{"type":"ok","re":"hb'):
            sent = float(json.loads(payload)["re"][2:])
            if self.counter.start <= now < self.counter.end:
                self.heartbeat_rtts.append(now - sent)
        elif payload.startswith(b'{"type":"presence"'):
            diff = json.loads(payload)
            for entry in diff.get("joins", []):
                if entry.get("session") == session:
                    self.own_joins += 1  # a session told of its own arrival
                else:
                    self.presence_joins += 1
                    known.add(entry.get("session"))
            for entry in diff.get("leaves", []):
                known.discard(entry.get("session"))

    # -- running --------------------------------------------------------------------------

    async def heartbeats(self) -> None:
        """Every connection says it is alive once per interval, spread evenly over it."""
        interval = self.spec.heartbeat_s
        if not interval:
            return
        next_at = time.monotonic()
        while True:
            clients = list(self.clients)
            if not clients:
                await asyncio.sleep(0.1)
                next_at = time.monotonic()
                continue
            step = interval / len(clients)
            for client in clients:
                now = time.monotonic()
                if self.counter.start <= now < self.counter.end:
                    self.heartbeats_sent += 1
                client.send(json.dumps({"type": "heartbeat", "id": f"hb{now:.6f}"}).encode())
                # Absolute deadlines: sleeping ``step`` each time would drift late by the
                # timer's granularity and send fewer heartbeats than the interval asks for.
                next_at += step
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    def result(self, cpu_start: float, cpu_end: float) -> dict[str, Any]:
        window = self.counter.end - self.counter.start
        return {
            "event": "result",
            "frames": self.counter.frames,
            "bytes": self.counter.bytes,
            "seconds": window,
            "connected": len(self.clients),
            "open": sum(1 for c in self.clients if not c.closed.done()),
            "unexpected_closes": self.unexpected_closes,
            "latencies_ns": self.latencies_ns,
            "heartbeat_rtts": self.heartbeat_rtts,
            "heartbeats_sent": self.heartbeats_sent,
            "presence_joins": self.presence_joins,
            "own_joins": self.own_joins,
            "presence_known": sum(len(k) for k in self.known),
            "cpu_seconds": cpu_end - cpu_start,
        }


def _wire(mode: str) -> Any:
    """The module that speaks a peer's wire (``bench/wires/<mode>.py``), or None for coedit
    and the plain broadcast servers, which need no set-up beyond the handshake."""
    if mode in ("coedit", "plain"):
        return None
    return importlib.import_module(f"bench.wires.{mode.replace('-', '_')}")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _lines() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 26)  # a spec lists every connection's target
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def run() -> None:
    raise_fd_limit()
    reader = await _lines()
    spec = FleetSpec(**json.loads(await reader.readline()))
    fleet = Fleet(spec)
    # Heartbeats start with the first connection: opening thousands takes longer than the
    # server's silence limit, and the first ones must not be closed while the rest connect.
    beats = asyncio.create_task(fleet.heartbeats())
    await fleet.open_all()
    _emit({"event": "ready", "connected": len(fleet.clients), "failed": fleet.failed,
           "errors": fleet.errors, "pid": os.getpid()})
    try:
        while line := await reader.readline():
            command = json.loads(line)
            if command["cmd"] == "exit":
                break
            if command["cmd"] == "window":
                # Each window counts from zero: results are per window, not cumulative.
                counter = fleet.counter
                counter.frames = counter.bytes = 0
                counter.start, counter.end = command["start"], command["end"]
                await asyncio.sleep(max(0.0, command["start"] - time.monotonic()))
                cpu_start = _cpu()
                await asyncio.sleep(max(0.0, command["end"] - time.monotonic()))
                cpu_end = _cpu()
                await asyncio.sleep(0.05)  # frames of the window already in the buffers
                _emit(fleet.result(cpu_start, cpu_end))
                fleet.latencies_ns, fleet.heartbeat_rtts = [], []
                fleet.heartbeats_sent = 0
    finally:
        fleet.closing = True
        beats.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beats
        for client in fleet.clients:
            client.close()
        await asyncio.sleep(0.1)


def raise_fd_limit(wanted: int = 65536) -> None:
    """Many sockets per process: lift the soft (and, as root, the hard) descriptor limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for target in ((wanted, max(hard, wanted)), (hard, hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, target)
            return
        except (ValueError, OSError):
            continue


def main() -> None:
    # A full pass of the cyclic collector stalls this process for tens of milliseconds, which
    # would count as latency of the server under test: what the imports made is frozen.
    gc.collect()
    gc.freeze()
    try:
        import uvloop
    except ImportError:
        asyncio.run(run())
    else:
        uvloop.run(run())


if __name__ == "__main__":
    main()
