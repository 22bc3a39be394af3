"""``python -m bench chaos``: three nodes under a run of mixed faults, then the checker.

The run owns everything it breaks: a private PostgreSQL and a private Redis on ports of their
own (never the shared 5432 and 6379), and two loopback proxies per node (one to each), so a
fault can hit one node's links alone. Clients write, subscribe, follow streams and hold locks
throughout (see :mod:`bench.chaos_clients`). After each fault heals, the controller polls
every node until they all agree with the sentinels on presence and locks, and records how
long that took. When the faults are over the writers stop, the readers drain, and
:mod:`bench.chaos_check` compares every record with the database.

With ``redis_cluster`` (``--redis-cluster``) the Redis is a private Redis Cluster of three
masters and three replicas (:mod:`bench.chaos_redis_cluster`) that the nodes reach directly,
and the Redis faults are the cluster's own: a manual failover and a master's SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.chaos_check import check_run, load_events, load_states
from bench.chaos_clients import (
    ClientContext,
    LockHolder,
    Sentinel,
    StreamFollower,
    Subscriber,
    Writer,
)
from bench.chaos_proxy import FaultProxy
from bench.chaos_redis_cluster import PrivateRedisCluster
from bench.chaos_services import PrivatePostgres, PrivateRedis, free_port, scratch_dir
from bench.procs import COEDIT
from server.auth import TokenIssuer

__all__ = ["CLUSTER_FAULT_KINDS", "FAULT_KINDS", "ChaosConfig", "render_chaos_table", "run_chaos",
           "write_chaos_results"]

TENANT = "chaos"
DATABASE = "coedit_chaos"
FAULT_KINDS = ("node_kill", "node_pause", "redis_restart", "pg_restart",
               "pg_stall", "pg_cut", "redis_stall", "redis_cut")
# On a Redis Cluster the nodes reach each Redis at the address the slot map announces, so
# there is no per-node link to stall or cut, and restarting every server at once without
# persistence would lose the cluster's own configuration: the Redis faults are the
# cluster's own instead, a manual failover and a master's SIGKILL.
CLUSTER_FAULT_KINDS = ("node_kill", "node_pause", "pg_restart", "pg_stall", "pg_cut",
                       "redis_failover", "redis_master_kill")
WHOLE_CLUSTER_KINDS = ("redis_restart", "pg_restart", "redis_failover", "redis_master_kill")
CONVERGE_LIMIT_S = 60.0
DETECT_LIMIT_S = 20.0
READY_LIMIT_S = 90.0


@dataclass
class ChaosConfig:
    faults: int = 24
    nodes: int = 3
    heartbeat_ms: int = 1000
    seed: int = 1
    writer_interval_s: float = 0.3
    lock_ttl_ms: int = 1500
    stale_p: float = 0.25
    gap_s: float = 1.0            # quiet time between a fault's convergence and the next one
    kinds: tuple[str, ...] = FAULT_KINDS
    redis_cluster: bool = False   # three masters and three replicas instead of one Redis
    log_dir: Path = field(default_factory=lambda: Path("."))
    node_env: dict[str, str] = field(default_factory=dict)


class ChaosNode:
    """A ``coedit serve`` process that can be killed, paused and started again on its port."""

    def __init__(self, index: int, env: dict[str, str], log_dir: Path) -> None:
        self.index = index
        self.port = free_port()
        self.env = env
        self.log_path = log_dir / f"node{index}.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.paused = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def up(self) -> bool:
        return self.proc is not None and self.proc.returncode is None and not self.paused

    async def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                COEDIT, "serve", "--host", "127.0.0.1", "--port", str(self.port),
                "--log-level", "warning", env=self.env, cwd=self.log_path.parent,
                stdout=log, stderr=asyncio.subprocess.STDOUT)

    async def wait_ready(self, http: httpx.AsyncClient, limit: float) -> float | None:
        """Seconds until ``/readyz`` answers 200, or None when it never did within ``limit``."""
        started = time.monotonic()
        while time.monotonic() - started < limit:
            if self.proc is None or self.proc.returncode is not None:
                return None
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"{self.url}/readyz", timeout=2)).status_code == 200:
                    return time.monotonic() - started
            await asyncio.sleep(0.2)
        return None

    def signal(self, sig: signal.Signals) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(sig)
            self.paused = sig == signal.SIGSTOP

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await asyncio.wait_for(self.proc.wait(), 10)
        self.paused = False

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        if self.paused:
            self.signal(signal.SIGCONT)
        self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), 15)
        except TimeoutError:
            await self.kill()


@dataclass
class Cluster:
    pg: PrivatePostgres
    redis: PrivateRedis | PrivateRedisCluster
    nodes: list[ChaosNode]
    pg_proxies: list[FaultProxy]
    redis_proxies: list[FaultProxy]


def _fault_plan(config: ChaosConfig) -> list[tuple[str, int]]:
    """``faults`` faults, every kind in turn (shuffled per round), each on a random node."""
    rng = random.Random(config.seed)
    plan: list[tuple[str, int]] = []
    while len(plan) < config.faults:
        kinds = list(config.kinds)
        rng.shuffle(kinds)
        plan += [(kind, rng.randrange(config.nodes)) for kind in kinds]
    return plan[:config.faults]


async def _while_down(http: httpx.AsyncClient, cluster: Cluster, sentinels: list[Sentinel],
                      doc: str, at_least_s: float) -> dict[str, Any]:
    """With one node gone, how long the others took to drop its sessions and locks.

    Waits at least ``at_least_s`` in all, so that a pause outlasts the heartbeat timeout.
    """
    started = time.monotonic()
    presence_s, locks_s = await _converge(http, cluster, sentinels, doc, limit=DETECT_LIMIT_S)
    await asyncio.sleep(max(0.0, at_least_s - (time.monotonic() - started)))
    return {"others_dropped_presence_s": _rounded(presence_s),
            "others_dropped_locks_s": _rounded(locks_s)}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


async def _inject(kind: str, target: int, cluster: Cluster, config: ChaosConfig,
                  http: httpx.AsyncClient, rng: random.Random, sentinels: list[Sentinel],
                  doc: str) -> dict[str, Any]:
    """Inject one fault and heal it; returns what was done and how long it lasted.

    While a node is killed or paused, the others' view of presence and locks is watched
    too: they must drop its sessions (3 heartbeats) and its locks (their ttl) by themselves.
    """
    timeout_s = 3 * config.heartbeat_ms / 1000
    node = cluster.nodes[target]
    detail: dict[str, Any] = {}
    if kind == "node_kill":
        await node.kill()
        detail.update(await _while_down(http, cluster, sentinels, doc, rng.uniform(0.5, 2.0)))
        await node.start()
        detail["ready_s"] = _rounded(await node.wait_ready(http, READY_LIMIT_S))
    elif kind == "node_pause":
        started = time.monotonic()
        node.signal(signal.SIGSTOP)
        detail.update(await _while_down(http, cluster, sentinels, doc,
                                        timeout_s + rng.uniform(1.0, 3.0)))
        node.signal(signal.SIGCONT)
        detail["paused_s"] = round(time.monotonic() - started, 2)
    elif kind == "redis_failover":
        detail.update(await _redis_cluster(cluster).afail_over(rng))
    elif kind == "redis_master_kill":
        detail.update(await _redis_cluster(cluster).akill_master(rng, rng.uniform(0.5, 2.0)))
    elif kind == "redis_restart":
        if not isinstance(cluster.redis, PrivateRedis):
            raise ValueError("redis_restart needs a single Redis")
        kill = rng.random() < 0.5
        await cluster.redis.restart(rng.uniform(0.5, 2.0), kill=kill)
        detail["signal"] = "SIGKILL" if kill else "SIGTERM"
    elif kind == "pg_restart":
        mode = rng.choice(["fast", "immediate"])
        await cluster.pg.restart(rng.uniform(0.5, 2.0), mode=mode)
        detail["mode"] = mode
    elif kind in ("pg_stall", "redis_stall"):
        proxy = (cluster.pg_proxies if kind == "pg_stall" else cluster.redis_proxies)[target]
        stall = rng.uniform(2.0, timeout_s + 3.0)
        proxy.stall()
        await asyncio.sleep(stall)
        cut = rng.random() < 0.3  # sometimes the stalled link dies instead of recovering
        if cut:
            proxy.cut()
        proxy.resume()
        detail.update(stalled_s=round(stall, 2), then_cut=cut)
    elif kind in ("pg_cut", "redis_cut"):
        proxy = (cluster.pg_proxies if kind == "pg_cut" else cluster.redis_proxies)[target]
        detail["connections_cut"] = proxy.cut()
    else:
        raise ValueError(f"unknown fault kind {kind!r}")
    return detail


def _redis_cluster(cluster: Cluster) -> PrivateRedisCluster:
    if not isinstance(cluster.redis, PrivateRedisCluster):
        raise ValueError("a Redis Cluster fault needs the run's Redis Cluster (--redis-cluster)")
    return cluster.redis


async def _views(http: httpx.AsyncClient, node: ChaosNode,
                 doc: str) -> tuple[set[str], set[str]] | None:
    """The presence sessions and lock holder sessions one node reports for ``doc``."""
    try:
        presence = await http.get(f"{node.url}/api/presence", params={"doc": doc}, timeout=2)
        locks = await http.get(f"{node.url}/api/locks", params={"doc": doc}, timeout=2)
    except httpx.HTTPError:
        return None
    if presence.status_code != 200 or locks.status_code != 200:
        return None
    return ({e["session"] for e in presence.json()["presence"]},
            {lock["holder"]["session"] for lock in locks.json()["locks"]})


async def _converge(http: httpx.AsyncClient, cluster: Cluster, sentinels: list[Sentinel],
                    doc: str, seen: dict[str, Any] | None = None, *,
                    limit: float = CONVERGE_LIMIT_S) -> tuple[float | None, float | None]:
    """Seconds until every node's presence, then locks, agree with the sentinels' truth.

    ``seen`` receives the last disagreement, for the record of a fault that never converged.
    """
    started = time.monotonic()
    presence_s: float | None = None
    locks_s: float | None = None
    while time.monotonic() - started < limit:
        up = [n for n in cluster.nodes if n.up]
        expected_up = [s for s in sentinels if cluster.nodes[s.node].up]
        present = {s.present_session for s in expected_up if s.present_session is not None}
        holding = {s.ready_session for s in expected_up if s.ready_session is not None}
        views = await asyncio.gather(*(_views(http, n, doc) for n in up))
        now = time.monotonic() - started
        if all(v is not None for v in views):
            if (presence_s is None and len(present) == len(expected_up)
                    and all(v is not None and v[0] == present for v in views)):
                presence_s = now
            if (locks_s is None and len(holding) == len(expected_up)
                    and all(v is not None and v[1] == holding for v in views)):
                locks_s = now
        if presence_s is not None and locks_s is not None:
            break
        if seen is not None:
            seen.update(present=sorted(present), holding=sorted(holding),
                        views={n.index: None if v is None else [sorted(v[0]), sorted(v[1])]
                               for n, v in zip(up, views, strict=True)})
        await asyncio.sleep(0.25)
    return presence_s, locks_s


def _summary(values: list[float | None]) -> dict[str, Any]:
    done = sorted(v for v in values if v is not None)
    return {"p50_s": round(statistics.median(done), 2) if done else None,
            "max_s": round(done[-1], 2) if done else None,
            "never": sum(1 for v in values if v is None)}


async def _start_cluster(config: ChaosConfig, secret: str) -> Cluster:
    """PostgreSQL, Redis, the proxies and the nodes; whatever started is stopped on failure."""
    redis: PrivateRedis | PrivateRedisCluster = (
        PrivateRedisCluster(scratch_dir("coedit-chaos-redis-cluster-")) if config.redis_cluster
        else PrivateRedis(scratch_dir("coedit-chaos-redis-")))
    cluster = Cluster(PrivatePostgres(scratch_dir("coedit-chaos-pg-")), redis, [], [], [])
    try:
        await _bring_up(cluster, config, secret)
    except BaseException:
        await _stop_cluster(cluster)
        raise
    return cluster


async def _bring_up(cluster: Cluster, config: ChaosConfig, secret: str) -> None:
    pg, redis = cluster.pg, cluster.redis
    await asyncio.to_thread(pg.init)
    await asyncio.to_thread(pg.start)
    await asyncio.to_thread(redis.start)
    admin = await asyncpg.connect(pg.admin_dsn, timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await admin.close()
    for i in range(config.nodes):
        cluster.pg_proxies.append(FaultProxy(f"pg{i}", pg.port))
        if isinstance(redis, PrivateRedis):
            cluster.redis_proxies.append(FaultProxy(f"redis{i}", redis.port))
    for proxy in (*cluster.pg_proxies, *cluster.redis_proxies):
        await proxy.start()
    nodes = cluster.nodes
    for i in range(config.nodes):
        env = {k: v for k, v in os.environ.items() if not k.startswith("COEDIT_")}
        env.update(
            COEDIT_DATABASE_URL=(f"postgresql+asyncpg://postgres@127.0.0.1:"
                                 f"{cluster.pg_proxies[i].port}/{DATABASE}"),
            COEDIT_REDIS_URL=(f"redis://127.0.0.1:{cluster.redis_proxies[i].port}/0"
                              if cluster.redis_proxies else redis.url),
            COEDIT_SECRET=secret, COEDIT_AUTH="token", COEDIT_NODE_ID=f"chaos{i}",
            COEDIT_KEY_PREFIX="chaos", COEDIT_RATE_LIMIT="0", COEDIT_HTTP_RATE_LIMIT="0",
            COEDIT_HEARTBEAT_MS=str(config.heartbeat_ms), COEDIT_LOG_LEVEL="warning")
        env.update(config.node_env)
        nodes.append(ChaosNode(i, env, config.log_dir))
    await nodes[0].start()  # the first one migrates; the others find the schema ready
    async with httpx.AsyncClient() as http:
        if await nodes[0].wait_ready(http, READY_LIMIT_S) is None:
            raise RuntimeError(f"node 0 did not become ready; see {nodes[0].log_path}")
        for node in nodes[1:]:
            await node.start()
        for node in nodes[1:]:
            if await node.wait_ready(http, READY_LIMIT_S) is None:
                raise RuntimeError(f"node {node.index} did not become ready; see {node.log_path}")


async def _stop_cluster(cluster: Cluster) -> None:
    await asyncio.gather(*(n.stop() for n in cluster.nodes), return_exceptions=True)
    for proxy in (*cluster.pg_proxies, *cluster.redis_proxies):
        await proxy.stop()
    await asyncio.to_thread(cluster.redis.stop)  # a cluster's servers are SIGKILLed
    await asyncio.to_thread(cluster.pg.close)
    shutil.rmtree(cluster.redis.workdir, ignore_errors=True)


async def _create(http: httpx.AsyncClient, url: str, title: str,
                  state: dict[str, Any]) -> str:
    response = await http.post(f"{url}/api/documents",
                               json={"kind": "memo", "title": title, "state": state})
    response.raise_for_status()
    return str(response.json()["id"])


async def _drain(subscribers: list[Subscriber], followers: list[StreamFollower],
                 dsn: str, docs: list[str], limit: float) -> float | None:
    """Seconds until every reader has caught up with the database, or None."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        states = await load_states(dsn, docs)
        events = await load_events(dsn, docs)
        last_seq = events[-1]["seq"] if events else 0
        subs_done = all(s.last[d] == states[d]["version"] for s in subscribers for d in s.docs)
        streams_done = all(f.last == last_seq for f in followers)
        if subs_done and streams_done:
            return time.monotonic() - started
        await asyncio.sleep(0.5)
    return None


async def run_chaos(config: ChaosConfig,
                    progress: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """Run the cluster, the clients and the faults; returns the full result (JSON-able)."""
    known = CLUSTER_FAULT_KINDS if config.redis_cluster else FAULT_KINDS
    if not set(config.kinds) <= set(known):
        raise ValueError(f"fault kinds {sorted(set(config.kinds) - set(known))} do not apply "
                         f"{'on a Redis Cluster' if config.redis_cluster else 'to one Redis'}")
    started_at = datetime.now(UTC)
    config.log_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(32)
    issuer = TokenIssuer(secret, dev_auth=False)
    users = ["holderA", "holderB", "observer"] + [
        f"{role}{i}" for role in ("writer", "sub", "follow", "sentinel")
        for i in range(config.nodes)]
    tokens = {u: issuer.mint(user=u, name=u.title(), roles=["analyst"], tenant=TENANT,
                             ttl_seconds=6 * 3600) for u in users}
    cluster = await _start_cluster(config, secret)
    redis_ports = (cluster.redis.ports if isinstance(cluster.redis, PrivateRedisCluster)
                   else [cluster.redis.port])
    progress(f"cluster up: postgres :{cluster.pg.port}, redis {redis_ports}, "
             f"nodes {[n.port for n in cluster.nodes]}")
    dsn = f"postgresql://postgres@127.0.0.1:{cluster.pg.port}/{DATABASE}"
    http = httpx.AsyncClient(headers={"Authorization": f"Bearer {tokens['observer']}"})
    writers_ctx: ClientContext | None = None
    readers_ctx: ClientContext | None = None
    tasks: list[asyncio.Task[None]] = []
    try:
        base = cluster.nodes[0].url
        write_docs = [await _create(http, base, f"chaos {i}", {"w": {}}) for i in range(3)]
        fenced_doc = await _create(http, base, "fenced", {"fenced": {}})
        presence_doc = await _create(http, base, "sentinels", {})
        ws_urls = [f"ws://127.0.0.1:{n.port}/ws" for n in cluster.nodes]
        http_urls = [n.url for n in cluster.nodes]
        hb_s = config.heartbeat_ms / 1000 / 2
        writers_ctx = ClientContext(ws_urls, http_urls, tokens, hb_s)
        readers_ctx = ClientContext(ws_urls, http_urls, tokens, hb_s)
        writers = [Writer(writers_ctx, f"writer{i}", i, write_docs, config.writer_interval_s)
                   for i in range(config.nodes)]
        holders = [LockHolder(writers_ctx, name, i, fenced_doc, ttl_ms=config.lock_ttl_ms,
                              stale_p=config.stale_p, seed=config.seed + i)
                   for i, name in enumerate(["holderA", "holderB"])]
        subscribers = [Subscriber(readers_ctx, f"sub{i}", i, [*write_docs, fenced_doc])
                       for i in range(config.nodes)]
        followers = [StreamFollower(readers_ctx, f"follow{i}", i, [*write_docs, fenced_doc])
                     for i in range(config.nodes)]
        sentinels = [Sentinel(readers_ctx, f"sentinel{i}", i, presence_doc, ttl_ms=3000)
                     for i in range(config.nodes)]
        clients: list[Any] = [*subscribers, *followers, *sentinels, *writers, *holders]
        tasks = [asyncio.create_task(c.run()) for c in clients]
        baseline = await _converge(http, cluster, sentinels, presence_doc)
        progress(f"clients running; initial convergence {baseline}")
        rng = random.Random(config.seed * 7919)
        faults: list[dict[str, Any]] = []
        for number, (kind, target) in enumerate(_fault_plan(config), 1):
            began = time.monotonic()
            detail = await _inject(kind, target, cluster, config, http, rng, sentinels,
                                   presence_doc)
            healed = time.monotonic()
            ready = await asyncio.gather(*(n.wait_ready(http, READY_LIMIT_S)
                                           for n in cluster.nodes))
            seen: dict[str, Any] = {}
            presence_s, locks_s = await _converge(http, cluster, sentinels, presence_doc, seen)
            if presence_s is None or locks_s is None:
                detail["last_disagreement"] = seen
            record = {"n": number, "kind": kind,
                      "node": None if kind in WHOLE_CLUSTER_KINDS else target,
                      "fault_s": round(healed - began, 2), **detail,
                      "nodes_ready_s": max((r for r in ready if r is not None), default=None),
                      "nodes_never_ready": [i for i, r in enumerate(ready) if r is None],
                      "presence_converged_s": None if presence_s is None else round(presence_s, 2),
                      "locks_converged_s": None if locks_s is None else round(locks_s, 2)}
            faults.append(record)
            progress(f"fault {number}/{config.faults} {kind} node {record['node']}: "
                     f"presence {record['presence_converged_s']} s, "
                     f"locks {record['locks_converged_s']} s")
            await asyncio.sleep(config.gap_s)
        writers_ctx.stopping.set()
        await asyncio.wait_for(asyncio.gather(*tasks[-len(writers) - len(holders):],
                                              return_exceptions=True), 60)
        all_docs = [*write_docs, fenced_doc]
        drained = await _drain(subscribers, followers, dsn, all_docs, 60)
        progress(f"writers stopped; readers drained in {drained} s")
        readers_ctx.stopping.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)
        verify = {}
        for doc in all_docs:
            response = await http.get(f"{base}/api/documents/{doc}/verify", timeout=30)
            verify[doc] = response.json()
        events = await load_events(dsn, all_docs)
        states = await load_states(dsn, all_docs)
        checked = check_run(writers=writers, holders=holders, subscribers=subscribers,
                            followers=followers, events=events, states=states,
                            write_docs=write_docs, fenced_doc=fenced_doc, verify=verify)
        never_ready = [f for f in faults if f["nodes_never_ready"]]
        checked["figures"].update(
            faults=len(faults), nodes_never_recovered=len(never_ready),
            presence_never_converged=sum(1 for f in faults if f["presence_converged_s"] is None),
            locks_never_converged=sum(1 for f in faults if f["locks_converged_s"] is None),
            gone_node_never_dropped=sum(
                1 for f in faults if "others_dropped_presence_s" in f
                and None in (f["others_dropped_presence_s"], f["others_dropped_locks_s"])))
        gone = [f for f in faults if "others_dropped_presence_s" in f]
        return {
            "started": started_at.isoformat(), "seconds": round(
                (datetime.now(UTC) - started_at).total_seconds(), 1),
            "config": {k: (str(v) if isinstance(v, Path) else v)
                       for k, v in config.__dict__.items()},
            "faults": faults,
            "convergence": {
                "presence": _summary([f["presence_converged_s"] for f in faults]),
                "locks": _summary([f["locks_converged_s"] for f in faults]),
                "gone_node_presence": _summary([f["others_dropped_presence_s"] for f in gone]),
                "gone_node_locks": _summary([f["others_dropped_locks_s"] for f in gone]),
                "by_kind": {kind: {
                    "presence": _summary([f["presence_converged_s"] for f in faults
                                          if f["kind"] == kind]),
                    "locks": _summary([f["locks_converged_s"] for f in faults
                                       if f["kind"] == kind])}
                    for kind in dict.fromkeys(f["kind"] for f in faults)},
            },
            "activity": {
                "writes_acknowledged": sum(len(w.acks) for w in writers),
                "fenced_writes_acknowledged": sum(len(h.acks) for h in holders),
                "subscriber_deltas": sum(s.deltas for s in subscribers),
                "stream_events": sum(len(f.seqs) for f in followers),
                "reconnections": {c.name: c.connections - 1
                                  for c in [*subscribers, *followers, *sentinels]},
            },
            "check": checked,
        }
    finally:
        for ctx in (writers_ctx, readers_ctx):
            if ctx is not None:
                ctx.stopping.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await http.aclose()
        await _stop_cluster(cluster)


def render_chaos_table(result: dict[str, Any]) -> str:
    figures = result["check"]["figures"]
    lines = ["checker figure                      value", "-" * 42]
    lines += [f"{name:<34}{value:>8}" for name, value in figures.items()]
    conv = result["convergence"]
    lines += ["", "convergence (s after healing;  p50 s    max s   never",
              " gone_node: after kill/pause)", "-" * 52]
    for what in ("presence", "locks"):
        s = conv[what]
        lines.append(f"{what:<28}{s['p50_s']!s:>7}{s['max_s']!s:>9}{s['never']:>8}")
    for what in ("gone_node_presence", "gone_node_locks"):
        s = conv[what]
        lines.append(f"{what:<28}{s['p50_s']!s:>7}{s['max_s']!s:>9}{s['never']:>8}")
    for kind, by in conv["by_kind"].items():
        for what in ("presence", "locks"):
            s = by[what]
            lines.append(f"  {kind + ' ' + what:<26}{s['p50_s']!s:>7}{s['max_s']!s:>9}"
                         f"{s['never']:>8}")
    activity = result["activity"]
    lines += ["", f"writes acknowledged {activity['writes_acknowledged']}, fenced writes "
              f"{activity['fenced_writes_acknowledged']}, deltas {activity['subscriber_deltas']},"
              f" stream events {activity['stream_events']}"]
    return "\n".join(lines)


def write_chaos_results(out: Path, result: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.fromisoformat(result["started"]).strftime("%Y%m%dT%H%M%SZ")
    path = out / f"chaos-{stamp}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    return path

