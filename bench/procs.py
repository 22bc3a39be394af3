"""Child processes of a run: servers under test, baselines and load generators.

Every server is a separate process started the way a user starts it, so the figures include
exactly what a deployment pays (uvicorn, the event loop, the kernel's loopback) and nothing
of the controller. CPU time and resident memory are read from ``/proc``, which needs no
cooperation from the process being measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.loadgen import FleetSpec

__all__ = [
    "CLOCK_TICKS",
    "COEDIT",
    "ChildProcess",
    "LoadFleet",
    "cpu_seconds",
    "free_port",
    "postgres_backends",
    "rss_kb",
]

PYTHON = sys.executable
ROOT = Path(__file__).resolve().parent.parent  # so that ``python -m bench.*`` finds the package
COEDIT = str(Path(sys.executable).parent / "coedit")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of one process so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def postgres_backends(database: str) -> list[int]:
    """PIDs of the PostgreSQL backends connected to ``database`` (from their titles)."""
    marker = f" {database} ".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                title = cmdline.read()
        except OSError:
            continue
        if title.startswith(b"postgres: ") and marker in title:
            found.append(int(entry))
    return found


def rss_kb(pid: int) -> int:
    """Resident set size (``VmRSS``) in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


class ChildProcess:
    """A server process whose log goes to a file, stopped with SIGTERM then SIGKILL."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str] | None = None,
                 log_dir: Path, cwd: Path | None = None) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.cwd = cwd or ROOT
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.name} was not started")
        return self.proc.pid

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text()[-chars:]
        except OSError:
            return ""

    async def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, env=self.env, cwd=self.cwd, stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )

    async def wait_for_log(self, marker: str, timeout: float = 30.0) -> None:
        """Until ``marker`` appears in the log (the baselines print ``ready``)."""
        async with asyncio.timeout(timeout):
            while marker not in self.log_tail(100_000):
                if self.proc is None or self.proc.returncode is not None:
                    raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")
                await asyncio.sleep(0.05)

    async def wait_http_ready(self, url: str, timeout: float = 60.0) -> None:
        """Until ``GET url`` answers 200 (coedit's ``/readyz``)."""
        host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
        path = "/" + url.split("//", 1)[1].split("/", 1)[1]
        async with asyncio.timeout(timeout):
            while True:
                if self.proc is None or self.proc.returncode is not None:
                    raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")
                with contextlib.suppress(OSError):
                    reader, writer = await asyncio.open_connection(host, int(port))
                    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
                                 "Connection: close\r\n\r\n".encode())
                    status = await reader.readline()
                    writer.close()
                    if b" 200 " in status:
                        return
                await asyncio.sleep(0.1)

    async def stop(self, timeout: float = 15.0) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()


class _LoadProcess:
    def __init__(self, spec: FleetSpec, log_dir: Path, name: str) -> None:
        self.spec = spec
        self.log_path = log_dir / f"{name}.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.ready: dict[str, Any] = {}

    async def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                PYTHON, "-m", "bench.loadgen", cwd=ROOT, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=log,
                limit=64 * 1024 * 1024,
            )
        self._send({**asdict(self.spec)})

    def _send(self, message: dict[str, Any]) -> None:
        if self.proc is None or self.proc.stdin is None:
            raise RuntimeError("load process not started")
        self.proc.stdin.write((json.dumps(message) + "\n").encode())

    async def _receive(self, timeout: float) -> dict[str, Any]:
        if self.proc is None or self.proc.stdout is None:
            raise RuntimeError("load process not started")
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"load process died: {self.log_path.read_text()[-2000:]}")
        return json.loads(line)  # type: ignore[no-any-return]

    async def wait_ready(self, timeout: float) -> dict[str, Any]:
        self.ready = await self._receive(timeout)
        return self.ready

    def window(self, start: float, end: float) -> None:
        self._send({"cmd": "window", "start": start, "end": end})

    async def result(self, timeout: float) -> dict[str, Any]:
        return await self._receive(timeout)

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(Exception):
            self._send({"cmd": "exit"})
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


class LoadFleet:
    """``processes`` load processes sharing ``spec.connections`` connections between them."""

    def __init__(self, spec: FleetSpec, processes: int, log_dir: Path,
                 name: str = "loadgen") -> None:
        self.processes: list[_LoadProcess] = []
        share, rest = divmod(spec.connections, processes)
        offset = 0
        for index in range(processes):
            count = share + (1 if index < rest else 0)
            # Rotate the targets so connection i of the whole fleet still uses target i % n.
            targets = spec.targets[offset % len(spec.targets):] + \
                spec.targets[:offset % len(spec.targets)]
            part = FleetSpec(**{**asdict(spec), "connections": count, "targets": targets})
            self.processes.append(_LoadProcess(part, log_dir, f"{name}-{index}"))
            offset += count

    @property
    def pids(self) -> list[int]:
        return [p.proc.pid for p in self.processes if p.proc is not None]

    async def __aenter__(self) -> LoadFleet:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def open(self, timeout: float = 120.0) -> dict[str, Any]:
        """Start every process and wait until all their connections are open (or failed)."""
        for process in self.processes:
            await process.start()
        readies = await asyncio.gather(*(p.wait_ready(timeout) for p in self.processes))
        errors = [e for r in readies for e in r["errors"]]
        return {"connected": sum(r["connected"] for r in readies),
                "failed": sum(r["failed"] for r in readies), "errors": errors[:5]}

    async def measure(self, start: float, end: float) -> list[dict[str, Any]]:
        """Count frames arriving in ``[start, end)`` in every process."""
        for process in self.processes:
            process.window(start, end)
        timeout = max(0.0, end - time.monotonic()) + 30
        return list(await asyncio.gather(*(p.result(timeout) for p in self.processes)))

    async def stop(self) -> None:
        await asyncio.gather(*(p.stop() for p in self.processes), return_exceptions=True)
