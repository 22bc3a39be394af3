"""The short chaos runs: three real nodes on a private PostgreSQL and a private Redis, one fault
of each family (node SIGKILL, node SIGSTOP past the heartbeat timeout, Redis restart, PostgreSQL
restart, a stalled and a cut link through the run's proxies), then the checker; and the same
nodes on a private Redis Cluster (three masters, three replicas), where a master's failover and
a master's SIGKILL take the Redis faults' place. The long runs (``python -m bench chaos
[--redis-cluster]``) and their figures are in docs/reliability.md."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bench.chaos import ChaosConfig, run_chaos
from bench.chaos_services import missing_binaries

MISSING = missing_binaries()
MISSING_FOR_CLUSTER = missing_binaries(redis_cluster=True)

SHORT_KINDS = ("node_kill", "node_pause", "redis_restart", "pg_restart", "redis_stall", "pg_cut")
CLUSTER_KINDS = ("node_kill", "node_pause", "pg_restart", "pg_stall", "redis_failover",
                 "redis_master_kill")


@pytest.mark.skipif(bool(MISSING), reason=f"the chaos run needs {', '.join(MISSING)}")
@pytest.mark.timeout(450)  # the run is bounded by its own 420 s below, not the suite's 120 s
async def test_a_short_chaos_run_loses_nothing_and_converges(tmp_path: Path) -> None:
    """Under one fault of each kind no acknowledged write is lost or applied twice, no
    subscriber or stream follower sees a gap or a duplicate after resuming, every hash chain
    verifies, no superseded fencing token is accepted, and presence and locks converge."""
    config = ChaosConfig(faults=len(SHORT_KINDS), kinds=SHORT_KINDS, seed=3, gap_s=0.5,
                         log_dir=tmp_path / "logs")
    async with asyncio.timeout(420):
        result = await run_chaos(config)
    _assert_clean(result, SHORT_KINDS)


@pytest.mark.skipif(bool(MISSING_FOR_CLUSTER),
                    reason=f"the chaos run on a cluster needs {', '.join(MISSING_FOR_CLUSTER)}")
@pytest.mark.timeout(450)  # 34-46 s here; bounded by its own 420 s below
async def test_a_short_chaos_run_on_a_redis_cluster_loses_nothing_and_converges(
        tmp_path: Path) -> None:
    """On a Redis Cluster, through a master's failover, a master's SIGKILL (its replica takes
    over), node and PostgreSQL faults, the same promises hold as on one Redis."""
    config = ChaosConfig(faults=len(CLUSTER_KINDS), kinds=CLUSTER_KINDS, seed=3, gap_s=0.5,
                         redis_cluster=True, log_dir=tmp_path / "logs")
    async with asyncio.timeout(420):
        result = await run_chaos(config)
    _assert_clean(result, CLUSTER_KINDS)
    promoted = [f["promoted_s"] for f in result["faults"] if f["kind"].startswith("redis_")]
    assert len(promoted) == 2, result["faults"]  # both replicas did take over


def _assert_clean(result: dict[str, Any], kinds: tuple[str, ...]) -> None:
    figures = result["check"]["figures"]
    promised_zero = {name: value for name, value in figures.items() if name != "faults"}
    assert promised_zero == dict.fromkeys(promised_zero, 0), (figures, result["faults"])
    assert figures["faults"] == len(kinds)
    assert sorted(f["kind"] for f in result["faults"]) == sorted(kinds)
    activity = result["activity"]
    assert activity["writes_acknowledged"] > 50 and activity["subscriber_deltas"] > 0
    assert activity["stream_events"] > 0
    # The faults were felt (clients had to resume) and the fencing path was exercised.
    assert sum(activity["reconnections"].values()) > 0, activity
    fencing = result["check"]["fencing"]
    assert fencing["fenced_writes"] > 0 and fencing["stale_attempts"] > 0, fencing
