"""A private ``redis-server`` process for tests that stop and restart Redis.

The machine's shared Redis (6379) serves every other test run; a restart there would break
them. A :class:`RedisServer` owns its own process on a free loopback port, with no
persistence, and can be stopped and started again *on the same port*, which is what a client
sees when Redis restarts. Every wait is bounded.

Fixtures: ``private_redis`` (a server of the test's own, to stop and restart) and
``redis_url`` (the shared Redis, or a private one per run). Import ``private_redis_fixture``
or ``redis_url_fixture`` into a test module: the import registers them under those names.
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
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

__all__ = ["RedisServer", "free_port", "private_redis_fixture", "redis_url_fixture"]

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

    def __init__(self, *, port: int | None = None, workdir: Path | None = None) -> None:
        self.port = port or free_port()
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
                 "--appendonly", "no", "--dir", str(self.workdir), "--daemonize", "no"],
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
