"""The runnable examples of docs/client.md (client/examples/) run against a real server, as
a user would run them: a bot fills a valuation while a dashboard feed follows it."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tests.support import TIMEOUT, RunningServer

EXAMPLES = Path(__file__).resolve().parent.parent / "client" / "examples"

# The examples only talk HTTP and WebSocket: one storage backend is enough behind them.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


async def _start(server: RunningServer, token: str, script: str,
                 *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLES / script), *args,
        env={"COEDIT_URL": server.http_url, "COEDIT_TOKEN": token, "PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def _finish(process: asyncio.subprocess.Process) -> str:
    out, err = await asyncio.wait_for(process.communicate(), TIMEOUT * 3)
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_bot_fills_a_valuation_while_the_dashboard_follows(server: RunningServer) -> None:
    """The bot's writes land (inputs under its lock, then the value) and the dashboard feed
    prints each of its events once, in order, with running totals."""
    token = server.token(user="valbot", roles=["bot"])
    doc = (await server.create(token, kind="valuation", title="ACME", state={}))["id"]
    async with server.http(token) as http:
        start = (await http.get(f"/api/documents/{doc}/history")).json()["events"][0]["seq"]
    # The bot writes 3 patches and takes and releases one lock: 5 events after the creation.
    dashboard = await _start(server, token, "dashboard_feed.py", "--since", str(start),
                             "--count", "5")
    bot = await _start(server, token, "valuation_bot.py", doc)
    assert "filled at version 4" in await _finish(bot)
    feed = (await _finish(dashboard)).splitlines()
    types = [line.split()[1] for line in feed]
    assert types == ["patch.applied", "lock.acquired", "patch.applied", "lock.released",
                     "patch.applied"]
    assert "totals={'patch.applied': 3, 'lock.acquired': 1, 'lock.released': 1}" in feed[-1]
    async with server.http(token) as http:
        state = (await http.get(f"/api/documents/{doc}")).json()["state"]
    inputs = state["valuation"]["inputs"]
    assert inputs["wacc"] == 0.082 and state["valuation"]["value"] == pytest.approx(
        1250 * 0.21 * 1.04 / (0.082 - 0.04), abs=0.01)


async def test_bulk_review_assigns_every_valuation_after_a_dry_run(
        server: RunningServer) -> None:
    """The third example: one dry run, then one bulk request for every valuation."""
    token = server.token(user="ann", roles=["analyst"])
    docs = [(await server.create(token, kind="valuation", title=f"V{i}", state={}))["id"]
            for i in range(3)]
    await server.create(token, kind="memo", title="not a valuation", state={})
    script = await _start(server, token, "bulk_review.py", "rita", "Rita")
    out = await _finish(script)
    assert out.startswith("assigned 3 of 3")
    async with server.http(token) as http:
        reviews = (await http.get("/api/reviews")).json()["items"]
        bulk_events = (await http.get("/api/events", params={"type": "bulk.completed"})).json()
    assert sorted(r["doc"] for r in reviews) == sorted(docs)
    assert all(r["reviewer"] == {"id": "rita", "name": "Rita"} for r in reviews)
    assert len(bulk_events["events"]) == 1  # the dry run appended nothing
    again = await _start(server, token, "bulk_review.py", "rita", "Rita")
    _, err = await asyncio.wait_for(again.communicate(), TIMEOUT * 3)
    assert again.returncode != 0 and b"invalid_transition" in err
