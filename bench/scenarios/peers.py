"""Head to head with the JavaScript servers a team would pick instead of coedit.

Each peer (``bench/node/<peer>/``) runs on Node 22 as its users deploy it: persistence in
the same PostgreSQL (a scratch database per peer and scenario), Redis between two nodes. The
writing side of every scenario is the peer's own client library in a separate Node process
(:class:`bench.nodejs.NodeDriver`); the subscribers, which are only counted and timed, are
the same load processes that measure coedit (:mod:`bench.loadgen`, with the peer's wire in
``bench/wires/``). The scenarios mirror coedit's:

* fan-out: one writer, 200 subscribers of its document, on one node and on two through Redis;
  the writer stays at most eight changes ahead of a pacer on every node;
* acknowledged writes: 16 closed-loop writers on 16 documents, then on one hot document;
* latency: 1,000 writes a second on node A over ten documents, 200 subscribers on node B
  timing each change by the sender's monotonic clock;
* memory: 10,000 idle subscribed connections, 20 to a document.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from bench.cluster import REDIS_URL, scratch_database
from bench.loadgen import FleetSpec
from bench.measure import RunContext, percentile, usage_during
from bench.nodejs import NodeDriver, ensure_installed, node_server
from bench.procs import ChildProcess, LoadFleet, free_port
from bench.scenarios import fanout, growth, latency
from bench.scenarios.connections import PER_DOCUMENT

__all__ = ["PEERS", "Peer", "peer_fanout", "peer_latency", "peer_memory", "peer_writes"]

SUBSCRIBERS = 200
WRITERS = 16
STORED = re.compile(r"^stored .* t=([\d.]+)$", re.MULTILINE)


@dataclass(frozen=True)
class Peer:
    name: str  # the folder under bench/node/ and the wire module under bench/wires/
    label: str
    path: str  # what a subscriber's WebSocket URL asks for
    # Whether a write's acknowledgement means it is in PostgreSQL. Hocuspocus acknowledges
    # (SyncStatus) once the update is applied in memory and stores later, debounced.
    acks_durable: bool = True
    # Settings of the peer's own default that merges several changes into one frame, which
    # the one-frame-per-change scenarios turn off (its figure is reported beside them).
    merging: dict[str, str] | None = None

    def url(self, port: int) -> str:
        return f"ws://127.0.0.1:{port}{self.path}"


PEERS = (
    Peer("sharedb", "ShareDB", "/"),
    Peer("hocuspocus", "Hocuspocus", "/", acks_durable=False,
         merging={"HOCUSPOCUS_FLUSH_DELAY": "0"}),
    Peer("socketio", "Socket.IO (Node)", "/socket.io/?EIO=4&transport=websocket"),
)


@dataclass
class PeerNode:
    process: ChildProcess
    port: int

    @property
    def pid(self) -> int:
        return self.process.pid


@contextlib.asynccontextmanager
async def peer_nodes(ctx: RunContext, peer: Peer, count: int, *, redis: bool,
                     tag: str, env: dict[str, str] | None = None
                     ) -> AsyncIterator[list[PeerNode]]:
    """``count`` nodes of ``peer`` on a fresh database (and Redis under a fresh prefix)."""
    ensure_installed((peer.name,))
    async with scratch_database(f"bench_{peer.name}") as dsn:
        prefix = f"bench-{peer.name}-{dsn.rsplit('_', 1)[1]}"
        nodes: list[PeerNode] = []
        try:
            for index in range(count):
                port = free_port()
                settings = {"PORT": str(port), "PG_URL": dsn, "REDIS_PREFIX": prefix,
                            **(env or {})}
                if redis:
                    settings["REDIS_URL"] = REDIS_URL
                process = node_server(peer.name, f"{peer.name}{tag}-{index}", settings,
                                      ctx.log_dir)
                await process.start()
                nodes.append(PeerNode(process, port))
            await asyncio.gather(*(n.process.wait_for_log("ready", 60) for n in nodes))
            yield nodes
        finally:
            await asyncio.gather(*(n.process.stop() for n in nodes), return_exceptions=True)


@contextlib.asynccontextmanager
async def driving(ctx: RunContext, peer: Peer, name: str,
                  spec: dict[str, Any]) -> AsyncIterator[NodeDriver]:
    driver = NodeDriver(peer.name, name, spec, ctx.log_dir)
    try:
        await driver.launch()
        yield driver
    finally:
        await driver.stop()


async def peer_fanout(ctx: RunContext, peer: Peer, *, nodes: int = 1,
                      env: dict[str, str] | None = None, tag: str = "") -> dict[str, Any]:
    doc = "fanout"
    tag = f"-fanout{nodes}n{tag}"
    async with peer_nodes(ctx, peer, nodes, redis=nodes > 1, tag=tag, env=env) as servers:
        urls = [peer.url(n.port) for n in servers]
        spec = {"scenario": "fanout", "url": urls[0], "pacer_urls": urls, "doc": doc,
                "size": fanout.FRAME_BYTES, "ahead": 8}
        async with driving(ctx, peer, f"{peer.name}{tag}-driver", spec) as driver:
            fleet_spec = FleetSpec(mode=peer.name, connections=SUBSCRIBERS, concurrency=50,
                                   targets=[{"url": u, "doc": doc} for u in urls])
            async with LoadFleet(fleet_spec, ctx.generators, ctx.log_dir,
                                 name=f"{peer.name}{tag}-load") as fleet:
                opened = await fleet.open()
                if opened["failed"]:
                    raise RuntimeError(f"{peer.name}: {opened['failed']} subscribers failed: "
                                       f"{opened['errors']}")
                driver.go()
                pids = {f"node{i}": n.pid for i, n in enumerate(servers)}
                result = await fanout.count_frames(ctx, fleet, pids)
    return {"nodes": nodes, **result}


async def peer_writes(ctx: RunContext, peer: Peer, *, documents: int) -> dict[str, Any]:
    tag = f"-writes{documents}"
    async with peer_nodes(ctx, peer, 1, redis=False, tag=tag) as servers:
        spec = {"scenario": "writes", "url": peer.url(servers[0].port), "writers": WRITERS,
                "docs": documents, "prefix": "w"}
        async with driving(ctx, peer, f"{peer.name}{tag}-driver", spec) as driver:
            driver.go()
            await asyncio.sleep(ctx.warmup)
            pids = {"node": servers[0].pid, "driver": driver.pid}
            windows = []
            for _ in range(ctx.windows):
                start = time.monotonic() + 0.05
                end = start + ctx.window
                result, usage = await asyncio.gather(driver.window(start, end),
                                                     usage_during(pids, start, end))
                windows.append({**result, "usage": usage.as_dict(), "start": start,
                                "end": end})
        log = servers[0].process.log_tail(10_000_000)
    for window in windows:
        window["stores"] = _stores_between(log, window["start"], window["end"])
    best = max(windows, key=lambda w: w["acked"])
    rate = best["acked"] / ctx.window
    node_cores = best["usage"]["cores"].get("node", 0.0)
    return {**best, "writers": WRITERS, "documents": documents, "commits_per_s": rate,
            "node_cpu_ms_per_commit": 1000 * node_cores / rate if rate else None,
            "windows": [round(w["acked"] / ctx.window, 1) for w in windows]}


def _stores_between(log: str, start: float, end: float) -> int | None:
    """Stores a server logged (``stored ... t=<monotonic s>``) inside a window; None for a
    peer that stores with every acknowledged write and logs none."""
    times = [float(t) for t in STORED.findall(log)]
    return sum(1 for t in times if start <= t < end) if times or "stores=" in log else None


async def peer_latency(ctx: RunContext, peer: Peer, *,
                       rate: int = latency.RATE) -> dict[str, Any]:
    docs = [f"l{i}" for i in range(latency.DOCUMENTS)]
    async with peer_nodes(ctx, peer, 2, redis=True, tag=f"-latency{rate}") as servers:
        node_a, node_b = servers
        fleet_spec = FleetSpec(mode=peer.name, connections=latency.SUBSCRIBERS, stamps=True,
                               targets=[{"url": peer.url(node_b.port), "doc": d}
                                        for d in docs])
        spec = {"scenario": "latency", "url": peer.url(node_a.port), "docs": docs,
                "rate": rate}
        async with driving(ctx, peer, f"{peer.name}-latency-driver", spec) as driver, \
                LoadFleet(fleet_spec, 2, ctx.log_dir, name=f"{peer.name}-latency-load") as fleet:
            opened = await fleet.open()
            if opened["failed"]:
                raise RuntimeError(f"{peer.name}: {opened['failed']} subscribers failed: "
                                   f"{opened['errors']}")
            driver.go()
            start = time.monotonic() + ctx.warmup
            end = start + ctx.window
            pids = {"node_a": node_a.pid, "node_b": node_b.pid, "driver": driver.pid}
            results, written, usage = await asyncio.gather(
                fleet.measure(start, end), driver.window(start, end),
                usage_during(pids, start, end))
    latencies = [ns / 1e6 for r in results for ns in r["latencies_ns"]]
    return {
        "target_writes_per_s": rate,
        "writes_per_s": written["acked"] / ctx.window,
        "write_errors": written.get("errors", 0),
        "deltas_timed": len(latencies),
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies) if latencies else float("nan"),
        "usage": usage.as_dict(),
    }


async def peer_memory(ctx: RunContext, peer: Peer, *,
                      points: tuple[int, ...]) -> list[dict[str, Any]]:
    """Idle subscribed connections, 20 to a document, on one node joined to Redis."""
    async with peer_nodes(ctx, peer, 1, redis=True, tag="-memory") as servers:
        url = peer.url(servers[0].port)

        def spec_for(first: int, count: int) -> FleetSpec:
            targets = [{"url": url, "doc": f"room{(first + i) // PER_DOCUMENT}"}
                       for i in range(count)]
            return FleetSpec(mode=peer.name, connections=count, concurrency=50,
                             targets=targets)

        return await growth.memory_curve(ctx, servers[0].pid, points, spec_for,
                                         f"{peer.name}-memory")
