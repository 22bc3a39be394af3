"""coedit nodes for a run: a scratch PostgreSQL database, Redis key prefix, tokens, processes.

Nodes are ``coedit serve`` processes started with the environment a user would set (see the
README's "Running a cluster"). The per-connection rate limit is turned off
(``COEDIT_RATE_LIMIT=0``) because the writers deliberately send faster than the default
1,000 requests a second; nothing else differs from a production configuration.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from bench.procs import COEDIT, ChildProcess, free_port
from channels.redis_client import connect
from server.auth import TokenIssuer

__all__ = ["BenchCluster", "Node", "scratch_database"]

PG_ADMIN = os.environ.get("BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
TENANT = "bench"


@asynccontextmanager
async def scratch_database(prefix: str) -> AsyncIterator[str]:
    """A new, empty database for this run, dropped afterwards; yields its DSN."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = PG_ADMIN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(PG_ADMIN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@dataclass
class Node:
    index: int
    process: ChildProcess
    port: int

    @property
    def pid(self) -> int:
        return self.process.pid

    def ws_url(self, token: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws?token={token}"


@dataclass
class BenchCluster:
    """Nodes sharing one database and one Redis key prefix."""

    database_url: str
    log_dir: Path
    secret: str = field(default_factory=lambda: secrets.token_hex(32))
    prefix: str = field(default_factory=lambda: f"coedit-bench-{uuid.uuid4().hex[:8]}")
    nodes: list[Node] = field(default_factory=list)
    # COEDIT_* settings given to every node (``--node-env``), for trying a setting out.
    node_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.issuer = TokenIssuer(self.secret, dev_auth=False)

    def token(self, user: str) -> str:
        return self.issuer.mint(user=user, name=user.title(), roles=["analyst"], tenant=TENANT,
                                ttl_seconds=6 * 3600)

    def env(self, index: int, *, redis: bool, extra: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COEDIT_")}
        env.update(
            COEDIT_DATABASE_URL=self.database_url, COEDIT_SECRET=self.secret,
            COEDIT_AUTH="token", COEDIT_KEY_PREFIX=self.prefix,
            COEDIT_NODE_ID=f"bench{index}", COEDIT_RATE_LIMIT="0", COEDIT_LOG_LEVEL="warning",
        )
        if redis:
            env["COEDIT_REDIS_URL"] = REDIS_URL
        env.update(self.node_env)
        env.update(extra)
        return env

    async def start(self, count: int, *, redis: bool = True,
                    extra: dict[str, str] | None = None, tag: str = "") -> list[Node]:
        """Start ``count`` more nodes and wait until each answers ``/readyz``."""
        started: list[Node] = []
        for _ in range(count):
            index = len(self.nodes)
            port = free_port()
            process = ChildProcess(
                f"coedit{tag}-{index}",
                [COEDIT, "serve", "--host", "127.0.0.1", "--port", str(port),
                 "--log-level", "warning"],
                env=self.env(index, redis=redis, extra=extra or {}), log_dir=self.log_dir,
                cwd=self.log_dir,
            )
            await process.start()
            node = Node(index, process, port)
            self.nodes.append(node)
            started.append(node)
        await asyncio.gather(*(n.process.wait_http_ready(f"http://127.0.0.1:{n.port}/readyz")
                               for n in started))
        return started

    async def stop(self) -> None:
        await asyncio.gather(*(n.process.stop() for n in self.nodes), return_exceptions=True)
        self.nodes.clear()

    async def forget_redis_keys(self) -> int:
        """Delete what the run's nodes left under its key prefix; returns how many keys.

        Presence entries of sessions a node had not yet released when it stopped stay in
        Redis without expiry when no other node of the prefix is alive to reap them.
        """
        client = connect(REDIS_URL)  # BENCH_REDIS_URL may name a Redis Cluster
        try:
            keys = [key async for key in client.scan_iter(match=f"{self.prefix}:*", count=1000)]
            for start in range(0, len(keys), 500):
                # One key per DEL: on a cluster the keys of one command must share a slot.
                async with client.pipeline(transaction=False) as pipe:
                    for key in keys[start:start + 500]:
                        pipe.delete(key)
                    await pipe.execute()
            return len(keys)
        finally:
            await client.aclose()
