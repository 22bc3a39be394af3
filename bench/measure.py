"""Shared pieces of every scenario: the run context, CPU accounting, result rows.

Each window also records how busy the whole machine was and how much of that was neither the
server nor the load generator ("foreign" CPU). On a shared two-core machine a figure taken
while something else ran is not comparable, and the table should say so rather than hide it.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.procs import cpu_seconds, postgres_backends

__all__ = ["Row", "RunContext", "Usage", "median", "percentile", "usage_during"]


@dataclass
class RunContext:
    """Settings every scenario reads: where logs go and how long to measure."""

    log_dir: Path
    quick: bool = False
    generators: int = 2  # load processes for the fan-out scenarios
    profile: bool = False  # py-spy the coedit node during fan-out and write windows
    database_url: str = ""
    peers: tuple[str, ...] = ("sharedb", "hocuspocus", "socketio")  # the Node peers to run

    @property
    def warmup(self) -> float:
        return 0.5 if self.quick else 1.0

    @property
    def window(self) -> float:
        return 1.5 if self.quick else 3.0

    @property
    def windows(self) -> int:
        """Throughput is the best of this many back-to-back windows.

        The machine is shared: anything else that runs takes CPU from the server under test
        and only ever lowers a throughput figure. The best window is the least disturbed.
        """
        return 2 if self.quick else 3


@dataclass
class Row:
    """One line of the results table."""

    scenario: str
    measure: str
    value: float
    unit: str
    baseline: str = ""
    baseline_value: float | None = None
    target: str = ""
    verdict: str = ""
    notes: str = ""

    @property
    def ratio(self) -> float | None:
        if not self.baseline_value:
            return None
        return self.value / self.baseline_value


@dataclass
class Usage:
    """CPU use during one window, in cores (1.0 = one core busy the whole time)."""

    seconds: float
    processes: dict[str, float] = field(default_factory=dict)
    machine: float = 0.0
    foreign: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"seconds": round(self.seconds, 3),
                "cores": {k: round(v, 3) for k, v in self.processes.items()},
                "machine_cores": round(self.machine, 3), "foreign_cores": round(self.foreign, 3)}


def _machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies over all cores since boot, from ``/proc/stat``."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return total - idle, total


def _group_cpu(pids: list[int]) -> dict[int, float]:
    found = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            found[pid] = cpu_seconds(pid)
    return found


async def usage_during(pids: dict[str, int], start: float, end: float, *, cores: int = 2,
                       database: str | None = None) -> Usage:
    """CPU of ``pids`` (name -> pid) and of the machine between monotonic ``start`` and ``end``.

    With ``database``, the PostgreSQL backends serving it at ``start`` count as
    ``postgres``. ``foreign`` is the machine's busy time minus everything named: other
    work on the machine (and Redis, and backends that connected during the window).
    """
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    groups = {name: [pid] for name, pid in pids.items()}
    if database:
        groups["postgres"] = postgres_backends(database)
    before = {name: _group_cpu(members) for name, members in groups.items()}
    busy0, total0 = _machine_busy()
    t0 = time.monotonic()
    await asyncio.sleep(max(0.0, end - time.monotonic()))
    after = {name: _group_cpu(members) for name, members in groups.items()}
    busy1, total1 = _machine_busy()
    seconds = time.monotonic() - t0
    used = {name: sum(after[name].get(pid, t) - t for pid, t in before[name].items()) / seconds
            for name in groups}
    machine = cores * (busy1 - busy0) / max(1, total1 - total0)
    return Usage(seconds, used, machine, max(0.0, machine - sum(used.values())))


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")

