"""Scenario 4: how long a patch sent to node A takes to reach subscribers on node B.

1,000 writes a second in total, open loop, spread over ten documents (100 a second each,
one writer connection per document on node A); 200 subscribers on node B, twenty per
document. Spreading the writes is what makes the figure a latency: 1,000 writes a second
to *one* document with 200 subscribers would be 200,000 frames a second, more than the
``broadcast()`` ceiling, and would measure a queue growing instead.

Each patch carries the sender's ``time.monotonic_ns()``; a subscriber subtracts it from its
own clock on arrival (one clock for all processes on Linux). So a delta's latency covers the
client's send, the server's read, the write transaction, the commit, the Redis publish, node
B's fan-out and the socket to the subscriber.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import Any

from bench.cluster import BenchCluster, Node
from bench.coedit_client import CoeditClient
from bench.loadgen import FleetSpec
from bench.measure import RunContext, percentile, usage_during
from bench.procs import LoadFleet
from bench.profiling import profile_during
from bench.writers import RateWriter

__all__ = ["cross_node_latency"]

RATE = 1000
SUSTAINED_RATE = 200
DOCUMENTS = 10
SUBSCRIBERS = 200


async def cross_node_latency(ctx: RunContext, cluster: BenchCluster, node_a: Node,
                             node_b: Node, *, rate: int = RATE) -> dict[str, Any]:
    writers = [await CoeditClient.open(node_a.ws_url(cluster.token(f"writer{i}")))
               for i in range(DOCUMENTS)]
    tasks: list[asyncio.Task[None]] = []
    try:
        docs = [await w.create({"text": ""}) for w in writers]
        token = cluster.token("reader")
        spec = FleetSpec(mode="coedit", connections=SUBSCRIBERS, subprotocol="coedit.v1.json",
                         stamps=True,
                         targets=[{"url": node_b.ws_url(token), "doc": d} for d in docs])
        async with LoadFleet(spec, 2, ctx.log_dir) as fleet:
            opened = await fleet.open()
            if opened["failed"]:
                raise RuntimeError(f"latency: {opened['failed']} subscribers failed: {opened}")
            # Staggered: ten writers sending in step would arrive as bursts of ten, and the
            # figure would measure the burst instead of the steady rate.
            rate_writers = [RateWriter(w, d, 1, rate / DOCUMENTS, phase=i / DOCUMENTS)
                            for i, (w, d) in enumerate(zip(writers, docs, strict=True))]
            tasks = [asyncio.create_task(w.run()) for w in rate_writers]
            start = time.monotonic() + ctx.warmup
            end = start + ctx.window
            pids = {"node_a": node_a.pid, "node_b": node_b.pid, "controller": os.getpid()}
            pids.update({f"loadgen{i}": pid for i, pid in enumerate(fleet.pids)})
            database = cluster.database_url.rsplit("/", 1)[1]
            jobs: list[Any] = [fleet.measure(start, end),
                               usage_during(pids, start, end, database=database)]
            if ctx.profile:
                jobs += [profile_during(ctx, f"latency-{rate}-node-{name}", node.pid, start, end)
                         for name, node in (("a", node_a), ("b", node_b))]
            results, usage, *_ = await asyncio.gather(*jobs)
            for task in tasks:
                task.cancel()
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for writer in writers:
            writer.close()
    latencies = [ns / 1e6 for r in results for ns in r["latencies_ns"]]
    acks = [ms for w in rate_writers for ms in w.ack_ms_between(start, end)]
    writes = sum(w.stats.acked_between(start, end) for w in rate_writers)
    errors = sum(w.stats.errors for w in rate_writers)
    closes: dict[str, int] = {}
    for r in results:
        for code, count in r["unexpected_closes"].items():
            closes[code] = closes.get(code, 0) + count
    return {
        "target_writes_per_s": rate,
        "writes_per_s": writes / ctx.window,
        "write_errors": errors,
        "first_error": next((w.stats.first_error for w in rate_writers
                             if w.stats.first_error), ""),
        "deltas_timed": len(latencies),
        "p50_ms": percentile(latencies, 50),
        "p90_ms": percentile(latencies, 90),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies) if latencies else float("nan"),
        # The writer's own round trip on node A: send, read, write, commit, reply.
        "ack_p50_ms": percentile(acks, 50),
        "ack_p99_ms": percentile(acks, 99),
        "closed": closes,
        "usage": usage.as_dict(),
    }
