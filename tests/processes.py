"""Real ``coedit serve`` processes for CLI and cluster tests.

A node is started exactly as a user would start it (the console script, environment
variables, a port), and stopped with SIGTERM (graceful) or SIGKILL (a crash).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from pathlib import Path

import httpx

__all__ = ["COEDIT", "NodeProcess", "clean_env", "free_port"]

COEDIT = str(Path(sys.executable).parent / "coedit")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**values: str) -> dict[str, str]:
    """The test process's environment without any COEDIT_ setting, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COEDIT_")}
    env.update(values)
    return env


class NodeProcess:
    def __init__(self, env: dict[str, str], cwd: Path, *, port: int | None = None) -> None:
        self.env = env
        self.cwd = cwd
        self.port = port or free_port()
        self.proc: asyncio.subprocess.Process | None = None
        self.log_path = cwd / f"node-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text()[-chars:]
        except OSError:
            return ""

    async def start(self, *, wait: bool = True) -> None:
        with self.log_path.open("ab") as log:  # a local file: opening it does not block
            self.proc = await asyncio.create_subprocess_exec(
                COEDIT, "serve", "--host", "127.0.0.1", "--port", str(self.port),
                "--log-level", "warning", env=self.env, cwd=self.cwd,
                stdout=log, stderr=asyncio.subprocess.STDOUT,
            )
        if wait:
            await self.wait_ready()

    async def wait_ready(self, timeout: float = 30.0) -> None:
        async with httpx.AsyncClient(timeout=2) as http:
            async with asyncio.timeout(timeout):
                while True:
                    if self.proc is None or self.proc.returncode is not None:
                        raise AssertionError(f"coedit serve exited:\n{self.log_tail()}")
                    with contextlib.suppress(httpx.TransportError):
                        if (await http.get(f"{self.url}/readyz")).status_code == 200:
                            return
                    await asyncio.sleep(0.1)

    async def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait: the graceful path."""
        if self.proc is None or self.proc.returncode is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            return await asyncio.wait_for(self.proc.wait(), 5)

    async def kill(self) -> None:
        """SIGKILL: the node vanishes without releasing anything."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await asyncio.wait_for(self.proc.wait(), 5)
