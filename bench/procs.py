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
    "JsonLinesProcess",
    "LoadFleet",
    "cpu_seconds",
    "free_port",
    "http_get",
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


async def http_get(host: str, port: int, path: str) -> tuple[int, str]:
    """``GET path`` on a plain HTTP/1.1 connection: the status and the body, headers and all
    (enough for ``/readyz`` and ``/metrics``; no client library in the controller)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
                     "Connection: close\r\n\r\n".encode())
        response = (await reader.read()).decode(errors="replace")
    finally:
        writer.close()
    parts = response.split(" ", 2)
    return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0), response


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
                    status, _ = await http_get(host, int(port), path)
                    if status == 200:
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


class JsonLinesProcess:
    """A child spoken to in JSON lines: commands on its stdin, replies on its stdout, its
    stderr to a log file. The load processes and the Node.js peers' drivers are such."""

    def __init__(self, name: str, argv: list[str], log_dir: Path, *, cwd: Path = ROOT,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = argv
        self.cwd = cwd
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.name} was not started")
        return self.proc.pid

    async def start(self, first: dict[str, Any]) -> None:
        """Start the child and send it its first line (what it is to do)."""
        with self.log_path.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, cwd=self.cwd, env=self.env, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=log, limit=64 * 1024 * 1024,
            )
        self.send(first)

    def send(self, message: dict[str, Any]) -> None:
        if self.proc is None or self.proc.stdin is None:
            raise RuntimeError(f"{self.name} was not started")
        self.proc.stdin.write((json.dumps(message) + "\n").encode())

    async def receive(self, timeout: float) -> dict[str, Any]:
        """The child's next line; an error with its log's tail if it exited instead."""
        if self.proc is None or self.proc.stdout is None:
            raise RuntimeError(f"{self.name} was not started")
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"{self.name} died: {self.log_path.read_text()[-2000:]}")
        return json.loads(line)  # type: ignore[no-any-return]

    async def stop(self) -> None:
        """Ask the child to exit (``{"cmd": "exit"}`` and end of input), then kill it."""
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(Exception):
            self.send({"cmd": "exit"})
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


class _LoadProcess(JsonLinesProcess):
    def __init__(self, spec: FleetSpec, log_dir: Path, name: str) -> None:
        super().__init__(name, [PYTHON, "-m", "bench.loadgen"], log_dir)
        self.spec = spec
        self.ready: dict[str, Any] = {}

    async def wait_ready(self, timeout: float) -> dict[str, Any]:
        self.ready = await self.receive(timeout)
        return self.ready

    def window(self, start: float, end: float) -> None:
        self.send({"cmd": "window", "start": start, "end": end})

    async def result(self, timeout: float) -> dict[str, Any]:
        return await self.receive(timeout)


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
            await process.start(asdict(process.spec))
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
