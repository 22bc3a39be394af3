"""HTTP rate limits against no limit: what counting every ``/api/`` request costs the server.

Three nodes of the same run on the same PostgreSQL database serve the same document read:
one with the limit off (the baseline), one counting in memory (a node alone), one counting in
Redis (a cluster). Each is given the same requests, eight at a time, in interleaved rounds;
the figures are the server's CPU time per request (from ``/proc``, which the machine's other
load disturbs less than wall time) and the requests a second, the best round of each.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from bench.cluster import BenchCluster, Node
from bench.measure import RunContext
from bench.procs import cpu_seconds

__all__ = ["MODES", "limits_against_no_limit"]

# name: (node settings, whether the node joins Redis). The limit is far above what a round
# sends, so nothing is refused: the figures are the cost of counting alone.
MODES: dict[str, tuple[dict[str, str], bool]] = {
    "off": ({"COEDIT_HTTP_RATE_LIMIT": "0"}, False),
    "memory": ({"COEDIT_HTTP_RATE_LIMIT": "10000000"}, False),
    "redis": ({"COEDIT_HTTP_RATE_LIMIT": "10000000"}, True),
}
CONCURRENCY = 8


async def _round(http: httpx.AsyncClient, node: Node, path: str, requests: int
                 ) -> tuple[float, float]:
    """Server CPU microseconds per request, and requests a second, for one round."""
    left = requests

    async def client() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            response = await http.get(path)
            if response.status_code != 200:
                raise RuntimeError(f"read failed: {response.status_code} {response.text[:200]}")

    cpu_before, started = cpu_seconds(node.pid), time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - started
    return (cpu_seconds(node.pid) - cpu_before) / requests * 1e6, requests / elapsed


async def limits_against_no_limit(ctx: RunContext, cluster: BenchCluster) -> dict[str, Any]:
    nodes: dict[str, Node] = {}
    for name, (extra, redis) in MODES.items():
        (nodes[name],) = await cluster.start(1, redis=redis, extra=extra, tag=f"-limits-{name}")
    requests = 300 if ctx.quick else 1000
    rounds = 2 if ctx.quick else 3
    headers = {"Authorization": f"Bearer {cluster.token('bench-reader')}"}
    clients = {name: httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.port}",
                                       headers=headers, timeout=60)
               for name, node in nodes.items()}
    try:
        created = await clients["off"].post("/api/documents", json={
            "kind": "memo", "title": "Read often", "state": {"text": "x" * 2000}})
        path = f"/api/documents/{created.json()['id']}"
        for name, http in clients.items():  # warm every node's code paths and pools
            await _round(http, nodes[name], path, 100)
        cpu: dict[str, list[float]] = {name: [] for name in nodes}
        rate: dict[str, list[float]] = {name: [] for name in nodes}
        for _ in range(rounds):
            for name, http in clients.items():
                per_request, per_second = await _round(http, nodes[name], path, requests)
                cpu[name].append(per_request)
                rate[name].append(per_second)
    finally:
        await asyncio.gather(*(http.aclose() for http in clients.values()))
    return {"requests": requests, "rounds": rounds,
            **{name: {"cpu_us": min(cpu[name]), "per_second": max(rate[name]),
                      "cpu_us_rounds": cpu[name], "per_second_rounds": rate[name]}
               for name in nodes}}
