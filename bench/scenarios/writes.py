"""Scenario 3: acknowledged versioned writes over WebSocket against pgbench's ceiling.

Sixteen writer connections, each waiting for its ``ok`` before the next patch (a commit a
second is an acknowledged commit, not a sent request). First on sixteen documents, where
PostgreSQL can commit in parallel; then all on one hot document, where the row lock
serializes them and the server rebases every patch whose base went stale.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import asyncpg

from bench import pgbench
from bench.cluster import BenchCluster, Node, scratch_database
from bench.coedit_client import CoeditClient
from bench.measure import RunContext, usage_during
from bench.profiling import profile_during
from bench.writers import AckWriter

__all__ = ["coedit_writes", "pgbench_ceiling"]

WRITERS = 16
VALUE = "x" * 60  # the same size as the pgbench script's patch value


async def pgbench_ceiling(ctx: RunContext) -> dict[str, Any]:
    """pgbench on a scratch database with coedit's schema: full and minimal shapes."""
    results: dict[str, Any] = {}
    async with scratch_database("coedit_pgbench") as dsn:
        await pgbench.prepare(dsn, ctx.log_dir)
        for shape, script in (("full", pgbench.FULL), ("minimal", pgbench.MINIMAL)):
            for label, clients, hot in (("distinct", WRITERS, False), ("hot", WRITERS, True),
                                        ("single", 1, False)):
                if shape == "minimal" and label != "distinct":
                    continue
                # The two figures coedit is compared with are, like coedit's, the best of
                # several windows; the others are for reference and run once.
                repeats = ctx.windows if shape == "full" and label != "single" else 1
                runs = [await pgbench.run_pgbench(
                    dsn, ctx.log_dir, script=script, name=f"{shape}-{label}-{i}",
                    clients=clients, seconds=ctx.window, hot=hot) for i in range(repeats)]
                best = max(runs, key=lambda run: run["commits_per_s"])
                results[f"{shape}-{label}"] = {
                    **best, "windows": [round(r["commits_per_s"]) for r in runs]}
    return results


async def coedit_writes(ctx: RunContext, cluster: BenchCluster, node: Node,
                        *, hot: bool, splices: bool = False, writers: int = WRITERS,
                        documents: int | None = None) -> dict[str, Any]:
    """Commits a second of closed-loop writers on distinct documents or one hot one;
    with ``splices``, all typing into one string of the hot document.

    ``documents`` beyond the writer count are shared out: writer i takes documents i,
    i + writers, ... in turn (the growth curve over 1 to 10,000 documents).
    """
    clients = [await CoeditClient.open(node.ws_url(cluster.token(f"writer{i}")))
               for i in range(writers)]
    tasks: list[asyncio.Task[None]] = []
    acks: list[AckWriter] = []
    try:
        state: dict[str, str] = {f"w{i}": "" for i in range(writers)}
        state["text"] = ""
        count = 1 if hot else (documents or writers)
        docs = await _create_documents(clients, state, count)
        if documents is not None:
            await _analyze(cluster.database_url)
        # With fewer documents than writers, writers share them (each its own field).
        acks = [AckWriter(c, docs[i::writers] or [docs[i % count]], 1,
                          "/text" if splices else f"/w{i}", "x" if splices else VALUE,
                          splices=splices)
                for i, c in enumerate(clients)]
        tasks = [asyncio.create_task(w.run()) for w in acks]
        await asyncio.sleep(ctx.warmup)
        pids = {"node": node.pid, "controller": os.getpid()}
        database = cluster.database_url.rsplit("/", 1)[1]
        windows: list[tuple[float, float, Any]] = []
        for index in range(ctx.windows):
            start = time.monotonic() + 0.01
            end = start + ctx.window
            jobs: list[Any] = [usage_during(pids, start, end, database=database)]
            if ctx.profile and index == 0:
                jobs.append(profile_during(ctx, f"writes-{'hot' if hot else 'distinct'}"
                                                f"{'-splices' if splices else ''}",
                                           node.pid, start, end))
            usage, *_ = await asyncio.gather(*jobs)
            windows.append((start, end, usage))
        await asyncio.sleep(0.05)
    finally:
        for ack in acks:
            ack.stopped = True
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        for client in clients:
            client.close()
    rates = [sum(w.stats.acked_between(start, end) for w in acks) / ctx.window
             for start, end, _ in windows]
    best = max(range(len(rates)), key=lambda i: rates[i])
    usage = windows[best][2]
    rebased = sum(w.stats.rebased for w in acks)
    total = sum(w.stats.acked for w in acks)
    errors = sum(w.stats.errors for w in acks)
    return {
        "commits_per_s": rates[best],
        "windows": [round(r, 1) for r in rates],
        # CPU milliseconds the node spends per acknowledged commit.
        "node_cpu_ms_per_commit": 1000 * usage.processes["node"] / rates[best]
        if rates[best] else None,
        "postgres_cpu_ms_per_commit": 1000 * usage.processes.get("postgres", 0.0) / rates[best]
        if rates[best] else None,
        "writers": writers,
        "documents": len(docs),
        "rebased_share": rebased / total if total else 0.0,
        "errors": errors,
        "first_error": next((w.stats.first_error for w in acks if w.stats.first_error), ""),
        "usage": usage.as_dict(),
    }


async def _analyze(database_url: str) -> None:
    """Statistics for the documents just created, as after any bulk load.

    Created seconds before the count, 10,000 documents are rows the planner has no
    statistics for until autovacuum comes by (a minute or more): the write statement's
    cached plan then read the whole documents table on every batch, and PostgreSQL spent
    1.9 ms of CPU per write instead of 0.3 (the growth run of 2026-12-07, evening).
    """
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await asyncio.wait_for(conn.execute("ANALYZE"), 300)
    finally:
        await conn.close()


async def _create_documents(clients: list[CoeditClient], state: dict[str, str],
                            count: int) -> list[str]:
    """``count`` documents, created over every client at once (10,000 take seconds)."""
    shares = [list(range(i, count, len(clients))) for i in range(len(clients))]

    async def make(client: CoeditClient, share: list[int]) -> list[tuple[int, str]]:
        return [(n, await client.create(state, title=f"Bench {n}")) for n in share]

    made = await asyncio.gather(*(make(c, share) for c, share in zip(clients, shares,
                                                                        strict=True)))
    return [doc for _, doc in sorted(pair for part in made for pair in part)]
