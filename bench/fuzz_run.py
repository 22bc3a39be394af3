"""``python -m bench fuzz [--frames 100000]``: the frame fuzzer (bench/fuzz.py) at volume
against a ``coedit serve`` of its own, then the same checks as the suite's sample: every
answer a contract error, no ``internal``, no closed connection, nothing stored changed."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.fuzz import FuzzReport, aim, batches, fuzz
from server.auth import TokenIssuer

__all__ = ["run_fuzz"]

SECRET = "bench-fuzz-secret-long-enough-for-hs256-keys"
CHUNK = 100
"""Batches generated at a time (up to 50 frames each); each chunk has its own seed."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _stored(http: httpx.AsyncClient) -> tuple[Any, ...]:
    documents = (await http.get("/api/documents", params={"limit": 500})).json()["items"]
    events = (await http.get("/api/events", params={"limit": 1000})).json()["events"]
    return (sorted((d["id"], d["version"]) for d in documents), len(events),
            events[-1]["seq"] if events else None)


def run_fuzz(args: argparse.Namespace) -> int:
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="coedit-fuzz-") as scratch:
        database = args.database_url or f"sqlite+aiosqlite:///{Path(scratch) / 'fuzz.db'}"
        env = {**os.environ, "COEDIT_DATABASE_URL": database, "COEDIT_SECRET": SECRET,
               "COEDIT_AUTH": "token", "COEDIT_RATE_LIMIT": "1000000",
               "COEDIT_HTTP_RATE_LIMIT": "0"}
        env.pop("COEDIT_REDIS_URL", None)
        with open(Path(scratch) / "server.log", "w") as log:
            node = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--port",
                                     str(port), "--log-level", "warning"], env=env,
                                    stdout=log, stderr=subprocess.STDOUT)
            try:
                return asyncio.run(_against(port, args.frames, args.seed))
            finally:
                node.terminate()
                try:
                    node.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    node.kill()
                server_log = (Path(scratch) / "server.log").read_text(errors="replace")
                tracebacks = server_log.count("Traceback")
                print(f"server log: {len(server_log.splitlines())} lines, {tracebacks} "
                      "tracebacks")
                if tracebacks:
                    print(server_log[-4000:])


async def _against(port: int, frames: int, seed: int) -> int:
    token = TokenIssuer(SECRET, dev_auth=False).mint(user="fuzz", name="Fuzz", roles=["admin"],
                                                     tenant="fuzz")
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=10,
                                 headers={"Authorization": f"Bearer {token}"}) as http:
        deadline = time.monotonic() + 60
        while True:
            try:
                if (await http.get("/healthz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                print("bench fuzz: the server did not start", file=sys.stderr)
                return 1
            await asyncio.sleep(0.2)
        docs = []
        for n in range(3):
            made = await http.post("/api/documents", json={
                "kind": "memo", "title": f"Fuzz target {n}", "state": {"n": n, "text": "hi"}})
            docs.append(made.json()["id"])
        before = await _stored(http)
        report = FuzzReport()
        chunk = 0
        while report.frames < frames:
            await fuzz(f"ws://127.0.0.1:{port}/ws", token,
                       aim(batches(CHUNK, seed=seed + chunk), docs), report)
            chunk += 1
            print(f"bench fuzz: {report.summary()}", file=sys.stderr, flush=True)
        after = await _stored(http)
        healthy = (await http.get("/healthz")).status_code == 200
    print(report.summary())
    print("frames by encoding: " + ", ".join(
        f"{name} {n}" for name, n in report.encodings.most_common()))
    print(f"connections lost and reopened: {report.reconnects}")
    print(f"stored state unchanged: {before == after}; server healthy after: {healthy}")
    for failure in report.failures[:20]:
        print(f"FAILURE {failure}")
    return 0 if not report.failures and before == after and healthy else 1
