"""Scenario 5: 10,000 subscribed connections on one node, heartbeating at the default interval.

The node's resident memory (``VmRSS``) is read before the first connection (after one warm-up
connection has loaded every code path) and again once every connection has subscribed; the
difference over the number of connections is the cost of one. Then the connections keep
heartbeating (with an ``id``, so each heartbeat gets an ``ok`` whose round trip is timed)
for a window longer than the server's silence limit of three intervals, which would close
any connection whose heartbeats the server failed to see.

Presence is checked by what each connection ends up knowing: the sessions listed in its
subscribe reply plus those of every later ``joins`` entry (less ``leaves``). Once all are in,
each of a document's ``k`` subscribers must know the ``k-1`` others, ``k(k-1)`` in all; fewer
means lost presence. The ``joins`` entries are counted as well, but they are no exact
measure: ``k(k-1)/2`` is what arrives when sessions subscribe one at a time, while two that
subscribe at the same moment are each told of the other (rightly: each was subscribed when
the other joined), so an over-count there can hide losses.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.cluster import BenchCluster, Node
from bench.coedit_client import CoeditClient
from bench.loadgen import FleetSpec
from bench.measure import RunContext, percentile, usage_during
from bench.procs import LoadFleet, rss_kb

__all__ = ["many_connections"]

PER_DOCUMENT = 20
DEFAULT_HEARTBEAT_S = 10.0


async def many_connections(ctx: RunContext, cluster: BenchCluster, node: Node,
                           *, connections: int, window: float) -> dict[str, Any]:
    setup = await CoeditClient.open(node.ws_url(cluster.token("setup")))
    try:
        documents = max(1, connections // PER_DOCUMENT)
        docs = [await setup.create({"text": ""}, title=f"Room {i}") for i in range(documents)]
        # Warm every code path of a subscription before the first reading.
        await setup.request({"type": "subscribe", "doc": docs[0]})
        await setup.request({"type": "unsubscribe", "doc": docs[0]})
        await asyncio.sleep(0.5)
        rss_before = rss_kb(node.pid)
        token = cluster.token("viewer")
        spec = FleetSpec(mode="coedit", connections=connections, subprotocol="coedit.v1.json",
                         heartbeat_s=DEFAULT_HEARTBEAT_S, decode=True, concurrency=50,
                         targets=[{"url": node.ws_url(token), "doc": d} for d in docs])
        processes = 4 if connections >= 4000 else 2
        async with LoadFleet(spec, processes, ctx.log_dir) as fleet:
            ramp_start = time.monotonic()
            opened = await fleet.open(timeout=600)
            ramp_seconds = time.monotonic() - ramp_start
            await asyncio.sleep(2.0)  # the last presence diffs
            rss_after = rss_kb(node.pid)
            start = time.monotonic() + 0.2
            end = start + window
            results, usage = await asyncio.gather(
                fleet.measure(start, end), usage_during({"node": node.pid}, start, end))
            rss_end = rss_kb(node.pid)
    finally:
        setup.close()
    connected = opened["connected"]
    rtts = [rtt * 1000 for r in results for rtt in r["heartbeat_rtts"]]
    joins = sum(r["presence_joins"] for r in results)
    own_joins = sum(r["own_joins"] for r in results)
    known = sum(r["presence_known"] for r in results)
    sizes = [connections // documents + (1 if i < connections % documents else 0)
             for i in range(documents)]
    expected_joins = sum(k * (k - 1) // 2 for k in sizes)
    expected_known = sum(k * (k - 1) for k in sizes)
    closes: dict[str, int] = {}
    for r in results:
        for code, count in r["unexpected_closes"].items():
            closes[code] = closes.get(code, 0) + count
    return {
        "connections": connections,
        "connected": connected,
        "failed": opened["failed"],
        "errors": opened["errors"],
        "open_at_end": sum(r["open"] for r in results),
        "closed": closes,
        "ramp_seconds": ramp_seconds,
        "rss_before_kb": rss_before,
        "rss_after_kb": rss_after,
        "rss_end_kb": rss_end,
        "rss_per_connection_kb": (rss_after - rss_before) / max(1, connected),
        "window_s": window,
        "heartbeats_answered": len(rtts),
        "heartbeats_expected": round(connected * window / DEFAULT_HEARTBEAT_S),
        "heartbeats_sent": sum(r["heartbeats_sent"] for r in results),
        "heartbeat_p50_ms": percentile(rtts, 50),
        "heartbeat_p99_ms": percentile(rtts, 99),
        "heartbeat_max_ms": max(rtts) if rtts else float("nan"),
        "presence_joins": joins,
        "presence_joins_expected": expected_joins,
        "presence_own_joins": own_joins,
        "presence_known": known,
        "presence_known_expected": expected_known,
        "usage": usage.as_dict(),
    }
