"""``python -m bench write-cpu [--against DIR] [--rounds 5]``: the write path's CPU per write.

The node's share of a write, without the sockets, the load generators and the other
processes that share the machine's cores in the scenarios: writes go through the group
commit and the batch's statements (``persistence``) into a scratch PostgreSQL database, in
batches of one (a lone writer: the batch's fixed costs, two round trips) and of sixteen
(a busy node: the per-write rules). ``time.process_time`` counts this process only, so
PostgreSQL's own work is left out.

``--against DIR`` measures another checkout (a ``git worktree`` of the commit before a
change) in the same invocation, alternating with this one, and prints the ratios: this
machine's speed drifts by tens of percent within minutes, so only such pairs compare.

This file runs as a script in a child process with the measured checkout first on
``sys.path``, so it imports nothing from ``bench``.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

PG_ADMIN = os.environ.get("BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
DOCUMENTS = 16
# Lone writes, then full batches: (batch size, rounds timed, rounds of warm-up).
SHAPES = ((1, 300, 30), (16, 60, 10))


async def _measure() -> dict[str, dict[str, float]]:
    import asyncpg

    from persistence.audit import Actor, AuditContext
    from persistence.database import Database
    from persistence.documents import DocumentStore
    from persistence.migrate import upgrade

    name = f"coedit_write_cpu_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = PG_ADMIN.replace("postgresql://", "postgresql+asyncpg://").rsplit("/", 1)[0] + "/" + name
    results: dict[str, dict[str, float]] = {}
    try:
        await upgrade(url)
        db = Database(url)
        store = DocumentStore(db)
        writers = [AuditContext(Actor(f"w{i}", f"Writer {i}"), "bench") for i in range(DOCUMENTS)]
        docs = []
        for i, ctx in enumerate(writers):
            document, _ = await store.create(ctx, kind="memo", title=f"Memo {i}",
                                             state={"text": "", f"w{i}": ""})
            docs.append(document["id"])
        versions = dict.fromkeys(docs, 1)

        async def round_of(size: int) -> None:
            futures = [store.submit_patch(writers[i], docs[i], base=versions[docs[i]],
                                          ops=[{"op": "replace", "path": f"/w{i}",
                                                "value": "x" * 60}])
                       for i in range(size)]
            for i, future in enumerate(futures):
                versions[docs[i]] = (await asyncio.wait_for(future, 30)).reply["version"]

        for size, rounds, warmup in SHAPES:
            for _ in range(warmup):
                await round_of(size)
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(rounds):
                await round_of(size)
            writes = rounds * size
            results[f"batch_{size}"] = {
                "cpu_us_per_write": 1e6 * (time.process_time() - cpu) / writes,
                "wall_us_per_write": 1e6 * (time.perf_counter() - wall) / writes,
            }
        await db.dispose()
    finally:
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return results


def _child(checkout: Path) -> dict[str, dict[str, float]]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    done = subprocess.run([sys.executable, __file__, "--child"], env=env, cwd=checkout,
                          capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"write-cpu in {checkout} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def run(against: Path | None, rounds: int) -> int:
    """Print each checkout's CPU per write over ``rounds`` alternating runs; the ratio is of
    the medians (one quiet or one disturbed run moves a best or a mean)."""
    here = Path(__file__).resolve().parent.parent
    checkouts = {"this checkout": here}
    if against is not None:
        checkouts = {"baseline": against.resolve(), **checkouts}
    runs: dict[str, list[dict[str, dict[str, float]]]] = {label: [] for label in checkouts}
    for _ in range(rounds):
        for label, path in checkouts.items():
            runs[label].append(_child(path))
    medians: dict[str, float] = {}
    print("| checkout | batch | CPU per write (median) | every run | wall per write (median) |")
    print("|---|---|---|---|---|")
    for label, measured in runs.items():
        for shape in measured[0]:
            cpus = [m[shape]["cpu_us_per_write"] for m in measured]
            walls = [m[shape]["wall_us_per_write"] for m in measured]
            medians[f"{label}/{shape}"] = statistics.median(cpus)
            print(f"| {label} | {shape.split('_')[1]} | {statistics.median(cpus):,.0f} µs | "
                  f"{' / '.join(f'{c:,.0f}' for c in cpus)} | "
                  f"{statistics.median(walls):,.0f} µs |")
    if against is not None:
        for shape in runs["baseline"][0]:
            ratio = medians[f"this checkout/{shape}"] / medians[f"baseline/{shape}"]
            print(f"{shape}: this checkout needs {ratio:.2f}x the baseline's CPU per write")
    return 0


if __name__ == "__main__" and sys.argv[1:] == ["--child"]:
    sys.path.pop(0)  # this file's folder: the measured checkout's modules come first
    print(json.dumps(asyncio.run(_measure())))
