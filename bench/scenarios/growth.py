"""Growth curves: how coedit's cost grows as the work grows.

* Subscribers of one document, 200 -> 2,000 -> 10,000: deliveries a second, and the p99 from
  a write leaving the writer to its delivery (every n-th subscriber times, about 200 in all).
* Acknowledged writes a second as closed-loop writers grow 1 -> 64 (each on its own
  document), beside pgbench with as many clients; and as the documents 16 writers spread
  over grow 1 -> 10,000.
* Resident memory as subscribed, heartbeating connections grow to 20,000, on one node that
  keeps them all: the connections of each point stay open while the next are added.

:func:`memory_curve` takes any server process and any fleet, so the peers are measured with
the very same steps (:mod:`bench.scenarios.peers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import pgbench
from bench.cluster import BenchCluster, scratch_database
from bench.coedit_client import CoeditClient
from bench.loadgen import FleetSpec
from bench.measure import RunContext
from bench.procs import LoadFleet, rss_kb
from bench.scenarios import fanout, writes
from bench.scenarios.connections import DEFAULT_HEARTBEAT_S, PER_DOCUMENT

__all__ = ["connections_curve", "documents_curve", "memory_curve", "subscribers_curve",
           "writers_curve"]

JSON = "coedit.v1.json"
TIMED_SUBSCRIBERS = 200  # how many subscribers time deliveries, whatever the total
CONNECTIONS_PER_PROCESS = 2500
# Every subscriber of one document is told of every other (its subscribe reply lists them,
# each join is announced to all), so filling one document costs the square of its size in
# bytes: 23 GB for 10,000, about 190 s on a two-core machine. Past this long a point is
# reported with how many had subscribed.
RAMP_LIMIT_S = 360.0


def _points(ctx: RunContext, full: tuple[int, ...], quick: tuple[int, ...]) -> tuple[int, ...]:
    return quick if ctx.quick else full


async def subscribers_curve(ctx: RunContext, cluster: BenchCluster,
                            points: tuple[int, ...] | None = None) -> list[dict[str, Any]]:
    readings = []
    for count in points or _points(ctx, (200, 1000, 2000, 4000, 10_000), (200, 1000, 2000)):
        nodes = await cluster.start(1, redis=False, tag=f"-grow-sub{count}")
        try:
            result = await fanout.coedit_fanout(
                ctx, cluster, nodes, JSON, subscribers=count,
                processes=max(2, min(4, count // CONNECTIONS_PER_PROCESS)),
                stamp_every=max(1, count // TIMED_SUBSCRIBERS), open_timeout=RAMP_LIMIT_S)
        except Exception as exc:  # the points measured so far still count
            readings.append({"subscribers": count, "error": _describe(exc)})
            continue
        finally:
            await cluster.stop()
        readings.append({"subscribers": count, **result})
    return readings


def _describe(exc: BaseException) -> str:
    """The error and where it was raised: a bare TimeoutError says nothing of which wait."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in reversed(frames[-4:]))
    return f"{type(exc).__name__}: {exc} at {where}"


async def writers_curve(ctx: RunContext, cluster: BenchCluster) -> list[dict[str, Any]]:
    """Each writer on its own document; pgbench with as many clients, same shape."""
    points = []
    counts = _points(ctx, (1, 4, 16, 64), (1, 16, 64))
    async with scratch_database("coedit_pgbench_growth") as dsn:
        await pgbench.prepare(dsn, ctx.log_dir)
        baselines = {n: await pgbench.run_pgbench(
            dsn, ctx.log_dir, script=pgbench.FULL, name=f"growth-{n}", clients=n,
            seconds=ctx.window, hot=False) for n in counts}
    nodes = await cluster.start(1, redis=False, tag="-grow-writers")
    try:
        for n in counts:
            result = await writes.coedit_writes(ctx, cluster, nodes[0], hot=False, writers=n)
            points.append({"writers": n, "pgbench_commits_per_s":
                           baselines[n]["commits_per_s"], **result})
    finally:
        await cluster.stop()
    return points


async def documents_curve(ctx: RunContext, cluster: BenchCluster) -> list[dict[str, Any]]:
    """16 writers over a growing set of documents (1 is the hot document)."""
    points = []
    nodes = await cluster.start(1, redis=False, tag="-grow-docs")
    try:
        for count in _points(ctx, (1, 16, 1000, 10_000), (1, 16, 1000)):
            result = await writes.coedit_writes(ctx, cluster, nodes[0], hot=count == 1,
                                                documents=count)
            points.append({"documents": count, **result})
    finally:
        await cluster.stop()
    return points


async def memory_curve(ctx: RunContext, pid: int, points: tuple[int, ...],
                       spec_for: Callable[[int, int], FleetSpec],
                       name: str) -> list[dict[str, Any]]:
    """RSS of ``pid`` as connections grow: ``spec_for(first, count)`` describes the
    connections ``first .. first + count`` and every fleet stays open to the end."""
    await asyncio.sleep(0.5)
    base = rss_kb(pid)
    readings: list[dict[str, Any]] = []
    async with contextlib.AsyncExitStack() as stack:
        fleets: list[LoadFleet] = []
        opened_total = 0
        for target in points:
            count = target - opened_total
            spec = spec_for(opened_total, count)
            processes = max(1, -(-count // CONNECTIONS_PER_PROCESS))
            fleet = await stack.enter_async_context(
                LoadFleet(spec, processes, ctx.log_dir, name=f"{name}-{target}"))
            opened = await fleet.open(timeout=600)
            fleets.append(fleet)
            opened_total = target
            await asyncio.sleep(2.0)  # the last subscribe replies and presence diffs
            rss = rss_kb(pid)
            readings.append({"connections": target, "connected": opened["connected"],
                             "failed": opened["failed"], "errors": opened["errors"],
                             "rss_kb": rss,
                             "per_connection_kb": (rss - base) / max(1, target)})
        # Still all there? A short window over every fleet counts the open connections.
        start = time.monotonic() + 0.2  # the load processes' clock
        results = await asyncio.gather(*(f.measure(start, start + 1.0) for f in fleets))
        still_open = sum(r["open"] for batch in results for r in batch)
    return [{**r, "base_rss_kb": base, "open_at_end": still_open} for r in readings]


async def connections_curve(ctx: RunContext, cluster: BenchCluster,
                            points: tuple[int, ...] | None = None) -> list[dict[str, Any]]:
    points = points or _points(ctx, (2500, 5000, 10_000, 20_000), (1000, 2000, 4000))
    nodes = await cluster.start(1, redis=True, tag="-grow-conns")
    setup = await CoeditClient.open(nodes[0].ws_url(cluster.token("setup")))
    try:
        docs = [await setup.create({"text": ""}, title=f"Room {i}")
                for i in range(points[-1] // PER_DOCUMENT)]
        await setup.request({"type": "subscribe", "doc": docs[0]})
        await setup.request({"type": "unsubscribe", "doc": docs[0]})
        url = nodes[0].ws_url(cluster.token("viewer"))

        def spec_for(first: int, count: int) -> FleetSpec:
            # Connection i of the whole curve goes to document i // 20, so every point
            # fills whole rooms of twenty.
            targets = [{"url": url, "doc": docs[(first + i) // PER_DOCUMENT]}
                       for i in range(count)]
            return FleetSpec(mode="coedit", connections=count, subprotocol=JSON,
                             heartbeat_s=DEFAULT_HEARTBEAT_S, concurrency=50, targets=targets)

        return await memory_curve(ctx, nodes[0].pid, points, spec_for, "grow-conns")
    finally:
        setup.close()
        await cluster.stop()
