"""``coedit-client``, the remote CLI, run as a process against a real server: tail (resumable
with --since, over WebSocket or SSE), replay, verify, export as JSON Lines; quiet and
machine-readable when piped; clear errors."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from coedit_client.cli import _read_ids

from tests.support import TIMEOUT, RunningServer, replace

# The CLI only talks HTTP and WebSocket: one storage backend is enough behind it.
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


async def _cli(server: RunningServer, token: str, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "coedit_client", "--url", server.http_url, *args,
        env={"COEDIT_TOKEN": token, "PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), TIMEOUT * 3)
    return process.returncode or 0, out.decode(), err.decode()


async def _document_with_writes(server: RunningServer, token: str, count: int) -> str:
    doc = (await server.create(token, state={"n": 0}))["id"]
    async with server.http(token) as http:
        for n in range(count):
            response = await http.patch(f"/api/documents/{doc}", json=replace("/n", n + 1),
                                        headers={"If-Match": f'"{n + 1}"'})
            assert response.status_code == 200, response.text
    return str(doc)


async def _history(server: RunningServer, token: str, doc: str) -> list[dict[str, Any]]:
    async with server.http(token) as http:
        response = await http.get(f"/api/documents/{doc}/history", params={"limit": 1000})
    return response.json()["events"]  # type: ignore[no-any-return]


@sqlite_only
@pytest.mark.parametrize("transport", [[], ["--sse"]], ids=["ws", "sse"])
async def test_tail_follows_events_and_resumes_with_since(
    server: RunningServer, transport: list[str]
) -> None:
    """``tail --json --since`` prints the events after that seq, one JSON object per line;
    a second run from the last seq it printed continues without a gap or a repeat."""
    token = server.token()
    doc = await _document_with_writes(server, token, 5)
    history = await _history(server, token, doc)
    start = history[0]["seq"]
    code, out, err = await _cli(server, token, "tail", *transport, "--json", "--doc", doc,
                                "--since", str(start), "--count", "3")
    assert code == 0, err
    first = [json.loads(line) for line in out.splitlines()]
    code, out, err = await _cli(server, token, "tail", *transport, "--json", "--doc", doc,
                                "--since", str(first[-1]["seq"]), "--count", "2")
    assert code == 0, err
    second = [json.loads(line) for line in out.splitlines()]
    assert [e["seq"] for e in first + second] == [e["seq"] for e in history[1:]]


@sqlite_only
async def test_replay_verify_and_export(server: RunningServer, tmp_path: Path) -> None:
    """replay prints a past state, verify one JSON line per document and exit 0 when the
    chain holds, export the whole trail as JSON Lines; piped, nothing goes to stderr."""
    token = server.token()
    doc = await _document_with_writes(server, token, 4)
    code, out, err = await _cli(server, token, "replay", doc, "--version", "3", "--state-only")
    assert (code, json.loads(out), err) == (0, {"n": 2}, "")
    code, out, err = await _cli(server, token, "verify", doc)
    assert (code, err) == (0, "") and json.loads(out) == {"doc": doc, "ok": True, "events": 5}
    code, out, err = await _cli(server, token, "export", doc)
    assert (code, err) == (0, "")
    exported = [json.loads(line) for line in out.splitlines()]
    assert exported == await _history(server, token, doc)
    target = tmp_path / "trail.jsonl"
    code, out, err = await _cli(server, token, "export", doc, "-o", str(target))
    assert (code, out, err) == (0, "", "")
    assert [json.loads(x) for x in target.read_text().splitlines()] == exported


@sqlite_only
async def test_errors_are_clear_and_exit_2(server: RunningServer) -> None:
    """An unknown document and a missing URL say what is wrong on stderr and exit 2; a bad
    token is unauthorized."""
    token = server.token()
    code, out, err = await _cli(server, token, "replay",
                                "00000000-0000-0000-0000-000000000000", "--version", "1")
    assert code == 2 and out == "" and "not_found" in err
    code, _, err = await _cli(server, "not-a-token", "verify", "x")
    assert code == 2 and "unauthorized" in err


def test_bulk_reads_ids_in_three_shapes(tmp_path: Path) -> None:
    """Ids come one per line (with comments), as a JSON list, or as JSON Lines objects.
    (The bulk endpoint itself lands with issue 11.)"""
    plain = tmp_path / "ids.txt"
    plain.write_text("# reviews\na\n\nb\n")
    listed = tmp_path / "ids.json"
    listed.write_text('["a", {"id": "b"}]')
    lines = tmp_path / "ids.jsonl"
    lines.write_text('{"id": "a"}\n{"id": "b", "x": 1}\n')
    assert _read_ids(str(plain)) == _read_ids(str(listed)) == _read_ids(str(lines)) == ["a", "b"]


@sqlite_only
async def test_bulk_from_a_file_dry_run_then_for_real(server: RunningServer,
                                                      tmp_path: Path) -> None:
    """``bulk`` reads ids from a file and prints the server's answer per chunk as JSON; a dry
    run changes nothing; a failing item makes the exit status 1."""
    token = server.token(user="ann")
    docs = [(await server.create(token, title=f"M{i}"))["id"] for i in range(5)]
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(docs) + "\n")
    params = json.dumps({"reviewer": {"id": "rita", "name": "Rita"}})
    code, out, err = await _cli(server, token, "bulk", "review.assign", str(ids),
                                "--params", params, "--dry-run", "--chunk", "2")
    assert code == 0, err
    answers = [json.loads(line) for line in out.splitlines()]
    assert [a["total"] for a in answers] == [2, 2, 1]
    assert all(a["dry_run"] and a["succeeded"] == a["total"] for a in answers)
    async with server.http(token) as http:
        assert (await http.get("/api/reviews")).json()["items"] == []
    code, out, err = await _cli(server, token, "bulk", "review.assign", str(ids),
                                "--params", params)
    assert code == 0, err
    assert json.loads(out)["succeeded"] == 5
    code, out, _ = await _cli(server, token, "bulk", "review.assign", str(ids),
                              "--params", params)
    assert code == 1 and json.loads(out)["rolled_back"] is True
