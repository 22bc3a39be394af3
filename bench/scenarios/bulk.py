"""Bulk operations against their single calls: 1,000 reviews assigned with one request, next
to the same 1,000 assignments made one request at a time (sequentially, as a script would,
and 16 at a time), on one node over PostgreSQL, in the same run."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from bench.cluster import BenchCluster, Node
from bench.measure import RunContext

__all__ = ["bulk_against_single_calls"]

ITEMS = 1000


async def _documents(http: httpx.AsyncClient, count: int) -> list[str]:
    ids: list[str] = []
    for start in range(0, count, 50):
        batch = await asyncio.gather(*(
            http.post("/api/documents", json={"kind": "memo", "title": f"Memo {i}"})
            for i in range(start, min(count, start + 50))))
        ids += [response.json()["id"] for response in batch]
    return ids


async def _singles(http: httpx.AsyncClient, docs: list[str], reviewer: str,
                   concurrency: int) -> float:
    gate = asyncio.Semaphore(concurrency)

    async def one(doc: str) -> None:
        async with gate:
            response = await http.post(f"/api/documents/{doc}/reviews",
                                       json={"reviewer": {"id": reviewer}})
            if response.status_code != 201:
                raise RuntimeError(f"assign failed: {response.status_code} {response.text}")

    started = time.perf_counter()
    await asyncio.gather(*(one(doc) for doc in docs))
    return time.perf_counter() - started


async def _bulk(http: httpx.AsyncClient, docs: list[str], reviewer: str,
                dry_run: bool = False) -> float:
    started = time.perf_counter()
    response = await http.post("/api/bulk", json={
        "operation": "review.assign", "ids": docs, "dry_run": dry_run,
        "params": {"reviewer": {"id": reviewer}}})
    elapsed = time.perf_counter() - started
    body = response.json()
    if response.status_code != 200 or body["succeeded"] != len(docs):
        raise RuntimeError(f"bulk failed: {response.status_code} {str(body)[:300]}")
    return elapsed


async def bulk_against_single_calls(ctx: RunContext, cluster: BenchCluster,
                                    node: Node) -> dict[str, Any]:
    items = ITEMS // 4 if ctx.quick else ITEMS
    headers = {"Authorization": f"Bearer {cluster.token('bench-analyst')}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.port}", headers=headers,
                                 timeout=600) as http:
        docs = await _documents(http, items)
        return {
            "items": items,
            "single_sequential_s": await _singles(http, docs, "r1", 1),
            "single_16_s": await _singles(http, docs, "r2", 16),
            "bulk_dry_run_s": await _bulk(http, docs, "r3", dry_run=True),
            "bulk_s": await _bulk(http, docs, "r3"),
        }
