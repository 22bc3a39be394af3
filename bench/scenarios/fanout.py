"""Scenarios 1 and 2: delivered frames a second, 200 subscribers of one document.

The same load processes (:mod:`bench.loadgen`) count frames for every server: the
``broadcast()`` ceiling, the python-socketio peer and coedit on one node or two. What is
measured is what the clients received inside the window, never what a server claims to have
sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from bench.cluster import BenchCluster, Node
from bench.coedit_client import CoeditClient
from bench.loadgen import FleetSpec
from bench.measure import RunContext, percentile, usage_during
from bench.procs import PYTHON, ChildProcess, LoadFleet, free_port, http_get
from bench.profiling import profile_during
from bench.scenarios.connections import DEFAULT_HEARTBEAT_S
from bench.writers import PacedWriter, patch

__all__ = ["ceiling", "coedit_fanout", "count_frames", "socketio_peer"]

SUBSCRIBERS = 200
FRAME_BYTES = 200


async def _window(ctx: RunContext, fleet: LoadFleet, pids: dict[str, int],
                  servers: list[str], profile: tuple[str, int] | None,
                  database: str | None) -> dict[str, Any]:
    start = time.monotonic() + 0.05
    end = start + ctx.window
    jobs: list[Any] = [fleet.measure(start, end),
                       usage_during(pids, start, end, database=database)]
    if profile is not None:
        jobs.append(profile_during(ctx, profile[0], profile[1], start, end))
    results, usage, *_ = await asyncio.gather(*jobs)
    frames = sum(r["frames"] for r in results)
    latencies = [ns / 1e6 for r in results for ns in r["latencies_ns"]]
    closes: dict[str, int] = {}
    for r in results:
        for code, count in r["unexpected_closes"].items():
            closes[code] = closes.get(code, 0) + count
    server_cores = sum(usage.processes.get(name, 0.0) for name in servers)
    return {
        "frames_per_s": frames / ctx.window,
        "frames": frames,
        # Frames per CPU-second of the server(s): how much each frame costs, which other
        # work on the machine disturbs far less than it disturbs frames/s.
        "frames_per_server_cpu_s": frames / ctx.window / server_cores if server_cores else 0,
        "bytes_per_frame": (sum(r["bytes"] for r in results) / frames) if frames else 0,
        "open_at_end": sum(r["open"] for r in results),
        "closed": closes,
        "usage": usage.as_dict(),
        # Write sent to delivery, when the writer stamps its writes (growth curves).
        "deliveries_timed": len(latencies),
        "p50_ms": percentile(latencies, 50) if latencies else None,
        "p99_ms": percentile(latencies, 99) if latencies else None,
    }


async def count_frames(ctx: RunContext, fleet: LoadFleet, server_pids: dict[str, int],
                 profile: tuple[str, int] | None = None,
                 database: str | None = None) -> dict[str, Any]:
    """Warm up, then count delivered frames in ``ctx.windows`` windows; keep the best.

    CPU of every process is read alongside. Only the first window is profiled (when asked).
    """
    await asyncio.sleep(ctx.warmup)
    pids = dict(server_pids)
    pids.update({f"loadgen{i}": pid for i, pid in enumerate(fleet.pids)})
    windows = []
    for index in range(ctx.windows):
        windows.append(await _window(ctx, fleet, pids, list(server_pids),
                                     profile if ctx.profile and index == 0 else None,
                                     database))
    best = max(windows, key=lambda w: w["frames_per_s"])
    closes: dict[str, int] = {}
    for window in windows:
        for code, count in window["closed"].items():
            closes[code] = closes.get(code, 0) + count
    return {**best, "closed": closes, "open_at_end": windows[-1]["open_at_end"],
            "windows": [round(w["frames_per_s"]) for w in windows]}


async def _baseline(ctx: RunContext, name: str, argv: list[str], url: str, mode: str,
                    processes: int) -> dict[str, Any]:
    server = ChildProcess(name, argv, log_dir=ctx.log_dir)
    await server.start()
    try:
        await server.wait_for_log("ready")
        spec = FleetSpec(mode=mode, targets=[{"url": url, "doc": ""}], connections=SUBSCRIBERS)
        async with LoadFleet(spec, processes, ctx.log_dir) as fleet:
            opened = await fleet.open()
            if opened["failed"]:
                raise RuntimeError(f"{name}: {opened['failed']} clients failed: {opened}")
            result = await count_frames(ctx, fleet, {"server": server.pid})
    finally:
        await server.stop()
    return {"processes": processes, **result}


async def ceiling(ctx: RunContext, *, binary: bool = False, processes: int = 2) -> dict[str, Any]:
    """``websockets.broadcast()`` of a 200-byte message to 200 clients, as fast as it goes."""
    port = free_port()
    argv = [PYTHON, "-m", "bench.ceiling", "--port", str(port), "--clients", str(SUBSCRIBERS),
            "--size", str(FRAME_BYTES)] + (["--binary"] if binary else [])
    return await _baseline(ctx, f"ceiling-{'bin' if binary else 'text'}-{processes}p", argv,
                           f"ws://127.0.0.1:{port}/", "plain", processes)


async def socketio_peer(ctx: RunContext, *, processes: int = 2) -> dict[str, Any]:
    """python-socketio (aiohttp) emitting a 200-byte event to a room of 200."""
    port = free_port()
    argv = [PYTHON, "-m", "bench.socketio_peer", "--port", str(port), "--clients",
            str(SUBSCRIBERS), "--size", str(FRAME_BYTES), "--server", "aiohttp"]
    return await _baseline(ctx, f"socketio-{processes}p", argv,
                           f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket",
                           "socketio", processes)


async def _sized_value(writer: CoeditClient, pacer: CoeditClient, doc: str,
                       version: int) -> tuple[str, int]:
    """The patch value that makes a JSON delta of this document FRAME_BYTES long."""
    sizes: list[int] = []
    hook = pacer.protocol.on_payload

    def measure(opcode: int, payload: bytes, now: float) -> None:
        if payload.startswith(b'{"type":"delta"'):
            sizes.append(len(payload))
        if hook is not None:
            hook(opcode, payload, now)

    pacer.protocol.on_payload = measure
    try:
        await writer.request(patch(doc, version, "/text", ""))
        await pacer.wait_version(doc, version + 1)
    finally:
        pacer.protocol.on_payload = hook
    return "x" * max(1, FRAME_BYTES - sizes[-1]), version + 1


async def coedit_fanout(ctx: RunContext, cluster: BenchCluster, nodes: list[Node], wire: str,
                        *, processes: int = 2, subscribers: int = SUBSCRIBERS,
                        stamp_every: int = 0, open_timeout: float = 600.0) -> dict[str, Any]:
    """One writer on ``nodes[0]``; ``subscribers`` spread evenly over ``nodes``.

    With ``stamp_every`` the writer stamps its patches and every n-th subscriber times them.
    """
    token = cluster.token("writer")
    writer = await CoeditClient.open(nodes[0].ws_url(token))
    pacers = [await CoeditClient.open(n.ws_url(cluster.token("pacer"))) for n in nodes]
    pump: asyncio.Task[None] | None = None
    try:
        doc = await writer.create({"text": ""})
        for pacer in pacers:
            await pacer.request({"type": "subscribe", "doc": doc})
        value, version = await _sized_value(writer, pacers[0], doc, 1)
        reader = cluster.token("reader")
        spec = FleetSpec(mode="coedit", connections=subscribers, subprotocol=wire,
                         stamps=stamp_every > 0, stamp_every=max(1, stamp_every),
                         concurrency=50, heartbeat_s=DEFAULT_HEARTBEAT_S,
                         targets=[{"url": n.ws_url(reader), "doc": doc} for n in nodes])
        async with LoadFleet(spec, processes, ctx.log_dir) as fleet:
            ramp_start = time.monotonic()
            try:
                opened = await fleet.open(timeout=open_timeout)
            except TimeoutError:
                count = await _open_connections(nodes[0])
                # Connected is not subscribed: each subscribe waits for its reply, which
                # lists every other session on the document (presence costs n squared).
                raise RuntimeError(f"{subscribers} subscribers did not all subscribe in "
                                   f"{open_timeout:.0f} s ({count} connections open on the "
                                   "first node)") from None
            if opened["failed"]:
                raise RuntimeError(f"coedit: {opened['failed']} subscribers failed: {opened}")
            subscribed_s = time.monotonic() - ramp_start
            # Every join announced before the count starts: the diffs of the last arrivals
            # would otherwise be measured as part of the fan-out.
            await pacers[0].wait_present(doc, subscribers + len(pacers) - 1,
                                         timeout=max(30.0, open_timeout - subscribed_s))
            settled_s = time.monotonic() - ramp_start
            paced = PacedWriter(writer, pacers, doc, version, value, stamped=stamp_every > 0)
            pump = asyncio.create_task(paced.run())
            pids = {f"node{n.index}": n.pid for n in nodes}
            result = await count_frames(ctx, fleet, pids,
                                  profile=(f"fanout-{len(nodes)}n-{wire}", nodes[0].pid),
                                  database=cluster.database_url.rsplit("/", 1)[1])
            result["writes_per_s"] = result["frames_per_s"] / subscribers
            result["subscribed_s"] = round(subscribed_s, 1)
            result["announced_s"] = round(settled_s, 1)
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            stats = paced.stats
    finally:
        if pump is not None:
            pump.cancel()
        for client in [writer, *pacers]:
            client.close()
    return {"nodes": len(nodes), "wire": wire, "processes": processes,
            "writes": stats.acked, "write_errors": stats.errors,
            "first_error": stats.first_error, **result}


async def _open_connections(node: Node) -> str:
    """The node's own count of open sessions (its ``/metrics``), for a ramp that ran out."""
    try:
        _, body = await asyncio.wait_for(http_get("127.0.0.1", node.port, "/metrics"), 10)
    except (OSError, TimeoutError):
        return "an unknown number"
    for line in body.splitlines():
        if line.startswith("coedit_ws_connections "):
            return str(int(float(line.split()[1])))
    return "an unknown number"
