"""A private Redis Cluster for the chaos run, whose masters it fails over and kills.

Three masters with a replica each, every one a :class:`bench.chaos_services.PrivateRedis`
with ``--cluster-enabled yes`` in one temporary directory, joined by ``redis-cli --cluster
create``. The node timeout is one second, so a replica replaces a dead master within about
two; the replica validity factor is 0, so a replica that lost its master a while ago may
still take over (the run kills masters repeatedly, and what it measures is the nodes'
recovery, not the age of a replica's data).

The nodes of coedit reach the cluster directly, at the addresses the cluster announces (the
slot map names them), so the single-Redis run's per-node link proxies have no place here:
the faults are on the cluster's side, a manual failover and a master's SIGKILL.

A killed master is started again on its port with its ``nodes-<port>.conf``; it finds that
its replica took its slots and rejoins as that one's replica. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import redis

from bench.chaos_services import PrivateRedis, free_port

__all__ = ["PrivateRedisCluster"]

HEALTHY_LIMIT_S = 60.0


class PrivateRedisCluster:
    """``masters`` masters and as many replicas on loopback ports of their own."""

    def __init__(self, workdir: Path, *, masters: int = 3) -> None:
        self.workdir = workdir
        self.masters = masters
        self.servers: list[PrivateRedis] = []
        for _ in range(2 * masters):
            server = PrivateRedis(workdir)
            server.extra_args = [
                "--cluster-enabled", "yes", "--cluster-port", str(free_port()),
                "--cluster-config-file", f"nodes-{server.port}.conf",
                "--cluster-node-timeout", "1000", "--cluster-replica-validity-factor", "0",
                "--repl-diskless-sync-delay", "0"]
            self.servers.append(server)

    @property
    def url(self) -> str:
        """What the coedit nodes are given: the first masters as seeds."""
        seeds = ",".join(f"127.0.0.1:{s.port}" for s in self.servers[:self.masters])
        return f"redis+cluster://{seeds}"

    @property
    def ports(self) -> list[int]:
        return [s.port for s in self.servers]

    def start(self, timeout: float = HEALTHY_LIMIT_S) -> None:
        for server in self.servers:
            server.start()
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is not on PATH")
        created = subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{s.port}" for s in self.servers),
             "--cluster-replicas", "1", "--cluster-yes"],
            capture_output=True, timeout=timeout, check=False)
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout[-2000:]!r}")
        self.wait_healthy(timeout)

    def stop(self) -> None:
        for server in self.servers:
            server.stop(kill=True)

    def wait_healthy(self, timeout: float = HEALTHY_LIMIT_S) -> float:
        """Seconds until every running server says ``cluster_state:ok``, sees ``masters``
        masters none of which is failed, and every replica's link to its master is up."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if all(self._healthy(s) for s in self.servers if s.running):
                return time.monotonic() - started
            time.sleep(0.1)
        raise RuntimeError(f"the Redis Cluster in {self.workdir} did not become healthy "
                           f"within {timeout} s")

    def _healthy(self, server: PrivateRedis) -> bool:
        try:
            info = str(_command(server.port, "CLUSTER", "INFO"))
            replication = _command(server.port, "INFO", "replication")
            table = _nodes(server.port)
        except redis.RedisError:
            return False
        if "cluster_state:ok" not in info:
            return False
        masters = [f for f in table if "master" in f[2] and "fail" not in f[2] and f[8:]]
        if len(masters) != self.masters or any("fail" in f[2] for f in table):
            return False
        if not isinstance(replication, dict):
            return False
        return bool(replication.get("role") == "master"
                    or replication.get("master_link_status") == "up")

    def _roles(self) -> tuple[dict[str, PrivateRedis], dict[str, str]]:
        """Node id to server, and replica id to its master's id, from one running server."""
        asker = next(s for s in self.servers if s.running)
        table = _nodes(asker.port)
        by_id = {f[0]: self._server_on(f[1]) for f in table}
        replica_of = {f[0]: f[3] for f in table if "slave" in f[2] and "fail" not in f[2]}
        masters = {f[0]: by_id[f[0]] for f in table
                   if "master" in f[2] and "fail" not in f[2] and f[8:]}
        return masters, replica_of

    def _server_on(self, address: str) -> PrivateRedis:
        port = int(address.split("@")[0].rsplit(":", 1)[1])
        return next(s for s in self.servers if s.port == port)

    def _pick(self, rng: random.Random) -> tuple[PrivateRedis, PrivateRedis]:
        masters, replica_of = self._roles()
        master_id = rng.choice(sorted(masters))
        replica_id = next(r for r, m in sorted(replica_of.items()) if m == master_id)
        return masters[master_id], self._roles_server(replica_id)

    def _roles_server(self, node_id: str) -> PrivateRedis:
        asker = next(s for s in self.servers if s.running)
        row = next(f for f in _nodes(asker.port) if f[0] == node_id)
        return self._server_on(row[1])

    def _wait_master(self, server: PrivateRedis, timeout: float) -> float:
        """Seconds until ``server`` says it is a master."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            try:
                replication = _command(server.port, "INFO", "replication")
            except redis.RedisError:
                replication = {}
            if isinstance(replication, dict) and replication.get("role") == "master":
                return time.monotonic() - started
            time.sleep(0.05)
        raise RuntimeError(f"redis {server.port} did not become a master within {timeout} s")

    def fail_over(self, rng: random.Random) -> dict[str, Any]:
        """``CLUSTER FAILOVER`` on a random master's replica: the replica catches up, then
        takes the slots; nothing acknowledged by the old master is lost."""
        master, replica = self._pick(rng)
        started = time.monotonic()
        reply = _command(replica.port, "CLUSTER", "FAILOVER")
        if reply not in (True, b"OK", "OK"):
            raise RuntimeError(f"CLUSTER FAILOVER on {replica.port} answered {reply!r}")
        promoted = self._wait_master(replica, HEALTHY_LIMIT_S)
        healthy = self.wait_healthy()
        return {"master": master.port, "replica": replica.port,
                "promoted_s": round(promoted, 2),
                "cluster_ok_s": round(time.monotonic() - started, 2),
                "healthy_after_s": round(healthy, 2)}

    def kill_master(self, rng: random.Random, down_s: float) -> dict[str, Any]:
        """SIGKILL a random master; its replica takes over after the node timeout; the killed
        one starts again ``down_s`` after that and rejoins as a replica."""
        master, replica = self._pick(rng)
        started = time.monotonic()
        master.stop(kill=True)
        promoted = self._wait_master(replica, HEALTHY_LIMIT_S)
        time.sleep(down_s)
        master.start()
        self.wait_healthy()
        return {"master": master.port, "replica": replica.port,
                "promoted_s": round(promoted, 2),
                "down_s": round(time.monotonic() - started, 2)}

    async def afail_over(self, rng: random.Random) -> dict[str, Any]:
        return await asyncio.wait_for(asyncio.to_thread(self.fail_over, rng),
                                      3 * HEALTHY_LIMIT_S)

    async def akill_master(self, rng: random.Random, down_s: float) -> dict[str, Any]:
        return await asyncio.wait_for(asyncio.to_thread(self.kill_master, rng, down_s),
                                      3 * HEALTHY_LIMIT_S)


def _command(port: int, *words: str) -> Any:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2,
                         socket_connect_timeout=2, decode_responses=True)
    try:
        return client.execute_command(*words)
    finally:
        client.close()


def _nodes(port: int) -> list[list[str]]:
    """``CLUSTER NODES`` as the server on ``port`` sees it: one list of fields per node."""
    text = _command(port, "CLUSTER", "NODES")
    return [line.split() for line in str(text).splitlines() if len(line.split()) >= 8]
