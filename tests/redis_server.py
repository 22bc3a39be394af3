"""A private ``redis-server`` process for tests that stop and restart Redis.

The machine's shared Redis (6379) serves every other test run; a restart there would break
them. A :class:`RedisServer` owns its own process on a free loopback port, with no
persistence, and can be stopped and started again *on the same port*, which is what a client
sees when Redis restarts. Every wait is bounded.

A :class:`RedisCluster` is several such processes with ``--cluster-enabled yes`` joined into
one Redis Cluster (three masters with a replica each), for the cluster backend's tests.

Fixtures: ``private_redis`` (a server of the test's own, to stop and restart),
``redis_url`` (the shared Redis, or a private one per run), ``redis_cluster_url`` (a cluster
named by ``COEDIT_TEST_REDIS_CLUSTER``, else one private cluster per run) and
``private_redis_cluster`` (a cluster of the test's own, to fail over). Import the
``*_fixture`` functions into a test module: the import registers them under those names.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest

__all__ = ["RedisCluster", "RedisServer", "command", "free_port", "private_redis_cluster_fixture",
           "private_redis_fixture", "redis_cluster_url_fixture", "redis_url_fixture"]

START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


def free_port() -> int:
    """A loopback port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers_ping(port: int, timeout: float = 0.5) -> bool:
    """True when something on ``port`` answers an inline ``PING`` with ``+PONG``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process on ``127.0.0.1:port``; ``stop()`` and ``start()`` again."""

    def __init__(self, *, port: int | None = None, workdir: Path | None = None,
                 extra_args: Sequence[str] = ()) -> None:
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self._own_dir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="coedit-redis-"))
        self.log_path = self.workdir / f"redis-{self.port}.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the process and return once it answers PING (or raise, naming the log)."""
        if self.running:
            return
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH; install Redis to run these tests")
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.workdir), "--daemonize", "no",
                 *self.extra_args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if _answers_ping(self.port):
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(
            f"redis-server on port {self.port} did not answer PING within {timeout}s; "
            f"see {self.log_path}"
        )

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, then SIGKILL if it lingers; returns once the process is gone."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def kill(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGKILL: Redis vanishes without closing its connections politely."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.kill()
        process.wait(timeout)

    async def astart(self, timeout: float = START_TIMEOUT) -> None:
        """:meth:`start` off the event loop, so clients keep running meanwhile."""
        await asyncio.wait_for(asyncio.to_thread(self.start, timeout), timeout + 5)

    async def astop(self, timeout: float = STOP_TIMEOUT) -> None:
        """:meth:`stop` off the event loop."""
        await asyncio.wait_for(asyncio.to_thread(self.stop, timeout), 2 * timeout + 5)

    def close(self) -> None:
        """Stop the process and remove its working directory (if this object made it)."""
        self.stop()
        if self._own_dir:
            with contextlib.suppress(OSError):
                shutil.rmtree(self.workdir)


class RedisCluster:
    """``masters`` masters with ``replicas`` replicas each, on private loopback ports.

    Node timeout is one second, so a replica replaces a dead master within about two.
    ``servers`` keeps its order: the masters as created first, then their replicas; after a
    failover ask :meth:`owner_of` and :meth:`replica_of` rather than trusting the order.
    """

    def __init__(self, *, masters: int = 3, replicas: int = 1) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="coedit-redis-cluster-"))
        self.masters = masters
        self.servers: list[RedisServer] = []
        for _ in range(masters * (1 + replicas)):
            port = free_port()
            self.servers.append(RedisServer(port=port, workdir=self.workdir, extra_args=[
                "--cluster-enabled", "yes", "--cluster-port", str(free_port()),
                "--cluster-config-file", f"nodes-{port}.conf", "--cluster-node-timeout", "1000",
                # A replica that lost its master a while ago may still take over: a test
                # restarts killed nodes, and waits are what it measures, not data age.
                "--cluster-replica-validity-factor", "0", "--repl-diskless-sync-delay", "0",
            ]))
        self.replicas = replicas

    @property
    def url(self) -> str:
        seeds = ",".join(f"127.0.0.1:{s.port}" for s in self.servers[: self.masters])
        return f"redis+cluster://{seeds}"

    def start(self, timeout: float = 30.0) -> None:
        """Start every process, join them into one cluster, return once all agree it is ok."""
        for server in self.servers:
            server.start()
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is not on PATH; install Redis to run these tests")
        created = subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{s.port}" for s in self.servers),
             "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            capture_output=True, timeout=timeout, check=False)
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout[-2000:]!r}")
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Until every running node says ``cluster_state:ok`` and every replica is in sync."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._healthy(s) for s in self.servers if s.running):
                return
            time.sleep(0.1)
        raise RuntimeError(f"the Redis Cluster in {self.workdir} did not become healthy")

    @staticmethod
    def _healthy(server: RedisServer) -> bool:
        info = command(server.port, "CLUSTER", "INFO") + command(server.port, "INFO",
                                                                   "replication")
        if "cluster_state:ok" not in info:
            return False
        return "role:master" in info or "master_link_status:up" in info

    def owner_of(self, key: str) -> RedisServer:
        """The master serving the hash slot of ``key`` (a channel name works the same)."""
        reply = command(self.running_server().port, "CLUSTER", "KEYSLOT", key)
        slot = int(reply.strip(":\r\n"))
        for fields in _nodes(self.running_server().port):
            if "master" not in fields[2] or "fail" in fields[2]:
                continue
            for part in fields[8:]:
                low, _, high = part.partition("-")
                if low.isdigit() and int(low) <= slot <= int(high or low):
                    return self.server_on(fields[1])
        raise RuntimeError(f"no master serves slot {slot}")

    def replica_of(self, master: RedisServer) -> RedisServer:
        """A running replica of ``master``."""
        table = _nodes(master.port)
        own = next(fields[0] for fields in table if "myself" in fields[2])
        for fields in table:
            if fields[3] == own and "fail" not in fields[2]:
                return self.server_on(fields[1])
        raise RuntimeError(f"no replica of the master on port {master.port}")

    def server_on(self, address: str) -> RedisServer:
        port = int(address.split("@")[0].rsplit(":", 1)[1])
        return next(s for s in self.servers if s.port == port)

    def running_server(self) -> RedisServer:
        return next(s for s in self.servers if s.running)

    def close(self) -> None:
        for server in self.servers:
            server.stop()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.workdir)


def command(port: int, *words: str, timeout: float = 2.0) -> str:
    """One command in RESP on a fresh connection; the raw reply as text ("" if unreachable)."""
    request = f"*{len(words)}\r\n" + "".join(f"${len(w)}\r\n{w}\r\n" for w in words)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(request.encode())
            chunks = [sock.recv(65536)]
            header = chunks[0].split(b"\r\n", 1)[0]
            if header.startswith(b"$") and int(header[1:]) > 0:
                want = int(header[1:]) + len(header) + 4
                while sum(map(len, chunks)) < want:
                    more = sock.recv(65536)
                    if not more:
                        break
                    chunks.append(more)
            return b"".join(chunks).decode(errors="replace")
    except OSError:
        return ""


def _nodes(port: int) -> list[list[str]]:
    """``CLUSTER NODES`` as seen by the node on ``port``: one list of fields per node."""
    reply = command(port, "CLUSTER", "NODES")
    lines = reply.split("\r\n", 1)[1] if reply.startswith("$") else ""
    return [line.split() for line in lines.splitlines() if len(line.split()) >= 8]


@pytest.fixture(name="private_redis")
async def private_redis_fixture() -> AsyncIterator[RedisServer]:
    """A running Redis of this test's own, which the test may stop and start again."""
    server = RedisServer()
    await server.astart()
    try:
        yield server
    finally:
        await asyncio.to_thread(server.close)


@pytest.fixture(scope="session", name="redis_url")
def redis_url_fixture() -> Iterator[str]:
    """A Redis for tests that never restart it: the shared one named by ``COEDIT_TEST_REDIS``
    (tests keep to key and channel prefixes of their own), else one private server per run."""
    shared = os.environ.get("COEDIT_TEST_REDIS")
    if shared:
        yield shared
        return
    server = RedisServer()
    server.start()
    try:
        yield server.url
    finally:
        server.close()


@pytest.fixture(scope="session", name="redis_cluster_url")
def redis_cluster_url_fixture() -> Iterator[str]:
    """A Redis Cluster for tests that never fail it over: ``COEDIT_TEST_REDIS_CLUSTER`` (a
    ``redis+cluster://`` URL) when set, else three masters and three replicas of this run's
    own (started on first use, about two seconds)."""
    shared = os.environ.get("COEDIT_TEST_REDIS_CLUSTER")
    if shared:
        yield shared
        return
    cluster = RedisCluster()
    try:
        cluster.start()
        yield cluster.url
    finally:
        cluster.close()


@pytest.fixture(name="private_redis_cluster")
async def private_redis_cluster_fixture() -> AsyncIterator[RedisCluster]:
    """A Redis Cluster of this test's own, whose masters it may kill or fail over."""
    cluster = RedisCluster()
    try:
        await asyncio.wait_for(asyncio.to_thread(cluster.start), 60)
        yield cluster
    finally:
        await asyncio.to_thread(cluster.close)
