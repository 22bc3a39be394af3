"""A private PostgreSQL and a private Redis for the chaos run, which restarts both.

The machine's shared PostgreSQL (5432) and Redis (6379) serve every other test run; a restart
there would break them. Each service here lives in a temporary directory on a free loopback
port of its own and can be stopped and started again *on the same port*, which is what the
nodes see when a database or a broker restarts. Every wait is bounded.

PostgreSQL refuses to run as root, so under root the binaries run as the ``postgres`` user
(``runuser``) in a directory that user owns.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["PG_BIN", "PrivatePostgres", "PrivateRedis", "free_port", "missing_binaries",
           "scratch_dir"]

PG_BIN = Path(os.environ.get("CHAOS_PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def missing_binaries(*, redis_cluster: bool = False) -> list[str]:
    """The binaries the run needs that this machine lacks (empty when it can run)."""
    wanted = [PG_BIN / "initdb", PG_BIN / "pg_ctl", PG_BIN / "postgres"]
    missing = [str(path) for path in wanted if not os.access(path, os.X_OK)]
    tools = ["redis-server", "redis-cli"] if redis_cluster else ["redis-server"]
    missing += [tool for tool in tools if shutil.which(tool) is None]
    return missing


def _answers(port: int, probe: bytes, expect: bytes | None) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            if not probe:
                return True
            sock.sendall(probe)
            return expect is None or sock.recv(64).startswith(expect)
    except OSError:
        return False


class PrivateRedis:
    """One ``redis-server`` without persistence on ``127.0.0.1:port``."""

    def __init__(self, workdir: Path, *, extra_args: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.extra_args = list(extra_args)
        self.log_path = workdir / f"redis-{self.port}.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH")
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.workdir), "--daemonize", "no",
                 *self.extra_args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is None and _answers(self.port, b"PING\r\n", b"+PONG"):
                return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on {self.port} did not answer; see {self.log_path}")

    def stop(self, *, kill: bool = False, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        if kill:
            process.kill()
        else:
            process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    async def restart(self, down_s: float, *, kill: bool) -> None:
        await asyncio.wait_for(asyncio.to_thread(self.stop, kill=kill), 30)
        await asyncio.sleep(down_s)
        await asyncio.wait_for(asyncio.to_thread(self.start), 30)


class PrivatePostgres:
    """A PostgreSQL 15 cluster of its own (trust auth, loopback only) in a temp directory.

    ``fsync`` is off: the run restarts the server process, never the machine, so what a
    committed transaction wrote is in the kernel's page cache either way, and the disk stays
    free for the other runs sharing this machine.
    """

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.data = workdir / "pgdata"
        self.log_path = workdir / "postgres.log"
        self._as_user: list[str] = []

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str, timeout: float = 120.0) -> None:
        result = subprocess.run([*self._as_user, *argv], capture_output=True, timeout=timeout,
                                check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({result.returncode}):\n"
                               f"{result.stdout.decode()[-2000:]}{result.stderr.decode()[-2000:]}")

    def init(self) -> None:
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.workdir, user.pw_uid, user.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "--no-sync", "-E", "UTF8")

    def start(self, timeout: float = 60.0) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.workdir} "
                   "-c fsync=off -c full_page_writes=off -c max_connections=200 "
                   "-c shared_buffers=64MB")
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log_path),
                  "-o", options, "-w", "-t", str(int(timeout)), "start", timeout=timeout + 10)

    def stop(self, mode: str = "fast", timeout: float = 60.0) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w",
                  "-t", str(int(timeout)), "stop", timeout=timeout + 10)

    async def restart(self, down_s: float, *, mode: str) -> None:
        await asyncio.wait_for(asyncio.to_thread(self.stop, mode), 90)
        await asyncio.sleep(down_s)
        await asyncio.wait_for(asyncio.to_thread(self.start), 90)

    def close(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self.stop("immediate")
        except RuntimeError:
            pass  # not running after all (a failed start): nothing to stop
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


def scratch_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
