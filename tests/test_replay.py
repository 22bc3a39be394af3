"""Time travel (docs/protocol.md section 9): ``GET /api/documents/{id}?version=N`` and ``?at=T``
replay a document from its nearest snapshot and the revisions after it."""

from __future__ import annotations

import asyncio
import copy
import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import jsonpatch
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.support import TIMEOUT, RunningServer

SNAPSHOT_EVERY = 5
# Keys the random histories use; "x/y" and "t~n" exercise JSON pointer escaping.
KEYS = ("a", "b", "c", "d", "e", "x/y", "t~n")
MARKER = "__from_snapshot__"  # never one of KEYS, so no random op touches it


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Snapshot every few versions so long histories cross many snapshots."""
    return {"snapshot_every": SNAPSHOT_EVERY}


# -- random histories -------------------------------------------------------------------------


def pointer(segments: tuple[Any, ...]) -> str:
    return "".join("/" + str(s).replace("~", "~0").replace("/", "~1") for s in segments)


def nodes(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    """Every (path, value) of a JSON value, the root included."""
    found = [(path, value)]
    if isinstance(value, dict):
        for key, child in value.items():
            found += nodes(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += nodes(child, (*path, index))
    return found


def random_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth >= 2 or roll < 0.5:
        return rng.choice([rng.randint(-1000, 1000), f"s{rng.randint(0, 99)}", True, None, 2.5])
    if roll < 0.75:
        return {rng.choice(KEYS): random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]


def random_op(rng: random.Random, state: dict[str, Any]) -> dict[str, Any]:
    """One add, replace or remove that applies to ``state``, on nested objects and arrays."""
    everything = nodes(state)
    inner = [(path, value) for path, value in everything if path]
    roll = rng.random()
    crowded = len(everything) > 80
    if inner and ((crowded and roll < 0.6) or 0.5 <= roll < 0.7):
        path, _ = rng.choice(inner)
        return {"op": "remove", "path": pointer(path)}
    if inner and roll >= 0.7:
        path, _ = rng.choice(inner)
        return {"op": "replace", "path": pointer(path), "value": random_value(rng)}
    containers = [(p, v) for p, v in everything if isinstance(v, dict | list)]
    path, container = rng.choice(containers)
    if isinstance(container, dict):
        segment: Any = rng.choice(KEYS)
    else:
        segment = rng.choice([rng.randint(0, len(container)), "-"])
    return {"op": "add", "path": pointer((*path, segment)), "value": random_value(rng)}


def random_patch(rng: random.Random, state: dict[str, Any]) -> tuple[list[dict[str, Any]],
                                                                      dict[str, Any]]:
    """1 to 3 ops, each made against the state the previous ones left; and that state."""
    ops = []
    for _ in range(rng.randint(1, 3)):
        op = random_op(rng, state)
        state = jsonpatch.apply_patch(state, [op])
        ops.append(op)
    return ops, state


@dataclass
class History:
    doc: str
    token: str
    states: dict[int, dict[str, Any]] = field(default_factory=dict)
    deltas: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def head(self) -> int:
        return max(self.states)


async def build_history(server: RunningServer, seed: int, versions: int) -> History:
    """A document written ``versions`` times with random patches; the state after each
    version and each version's delta (as a late subscriber reads it from the log)."""
    rng = random.Random(seed)
    token = server.token()
    state: dict[str, Any] = {"a": {"b": [1, {"c": 2}]}, "list": [], "n": 0}
    doc = await server.create(token, state=state)
    history = History(doc["id"], token, {1: copy.deepcopy(state)})
    async with await server.connect(token) as ws:
        for version in range(2, versions + 1):
            ops, state = random_patch(rng, state)
            reply = await ws.request("patch", doc=doc["id"], base=version - 1, ops=ops)
            assert reply == {"type": "ok", "re": reply["re"], "version": version}, (ops, reply)
            history.states[version] = copy.deepcopy(state)
        await ws.ok("subscribe", doc=doc["id"], since=0)
        for delta in await ws.deltas(doc["id"], versions, timeout=2 * TIMEOUT):
            history.deltas[delta["version"]] = delta
    assert sorted(history.deltas) == list(range(1, versions + 1))
    return history


def parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def format_ts(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def run_sql(engine: AsyncEngine, statement: str, **params: Any) -> Any:
    async def go() -> Any:
        async with engine.begin() as conn:
            result = await conn.execute(text(statement), params)
            return result.all() if result.returns_rows else None

    return await asyncio.wait_for(go(), TIMEOUT)


# -- tests ------------------------------------------------------------------------------------


async def test_every_version_replays_to_the_state_written_then(server: RunningServer) -> None:
    """For every version v of a long random history, ?version=v answers exactly the state
    that was current right after v was written, and ?at=<v's timestamp> answers version v."""
    versions = 121
    history = await build_history(server, seed=20261122, versions=versions)
    times = {v: parse_ts(delta["ts"]) for v, delta in history.deltas.items()}
    url = f"/api/documents/{history.doc}"
    async with server.http(history.token) as http:
        head = (await http.get(url)).json()
        assert head["version"] == versions
        assert head["state"] == history.states[versions]
        for version in range(1, versions + 1):
            response = await http.get(url, params={"version": version})
            assert response.status_code == 200, response.text
            document = response.json()
            assert document["version"] == version
            assert document["state"] == history.states[version], f"version {version}"
            assert document["id"] == history.doc and document["kind"] == "memo"
            assert response.headers["ETag"] == f'"{version}"'
            assert document["updated_at"] == history.deltas[version]["ts"], version
            assert document["updated_by"] == history.deltas[version]["actor"]["id"]

        for version in range(1, versions + 1):
            # The newest version written at or before the time is the one that answers.
            expected = max(v for v, ts in times.items() if ts <= times[version])
            document = (await http.get(url, params={"at": history.deltas[version]["ts"]})).json()
            assert document["version"] == expected, f"at the time of version {version}"
            assert document["state"] == history.states[expected]
            if version < versions and times[version + 1] - times[version] > timedelta(
                    microseconds=1):
                between = times[version] + (times[version + 1] - times[version]) / 2
                document = (await http.get(url, params={"at": format_ts(between)})).json()
                assert document["version"] == version, f"between {version} and {version + 1}"
        later = format_ts(times[versions] + timedelta(days=1))
        assert (await http.get(url, params={"at": later})).json()["version"] == versions


async def test_replay_starts_from_the_nearest_snapshot(
    server: RunningServer, database_url: str
) -> None:
    """A snapshot is stored every snapshot_every versions, and replay to v starts from the
    nearest snapshot at or below v instead of from version 1."""
    versions = 42
    history = await build_history(server, seed=7, versions=versions)
    engine = create_async_engine(database_url)
    try:
        rows = await run_sql(engine, "SELECT version, state FROM snapshots WHERE doc = :doc "
                             "ORDER BY version", doc=history.doc)
        stored = {row.version: json.loads(row.state) for row in rows}
        multiples = list(range(SNAPSHOT_EVERY, versions + 1, SNAPSHOT_EVERY))
        assert [v for v in stored if v != 1] == multiples
        for version, state in stored.items():
            assert state == history.states[version]
        # Mark the snapshot of version 35: only a replay that starts there can show the mark.
        marked = {**history.states[35], MARKER: True}
        await run_sql(engine, "UPDATE snapshots SET state = :state WHERE doc = :doc "
                      "AND version = 35", state=json.dumps(marked), doc=history.doc)
    finally:
        await asyncio.wait_for(engine.dispose(), TIMEOUT)

    url = f"/api/documents/{history.doc}"
    async with server.http(history.token) as http:
        for version in range(30, versions + 1):
            document = (await http.get(url, params={"version": version})).json()
            from_marked = 35 <= version < 40
            expected = history.states[version] | ({MARKER: True} if from_marked else {})
            assert document["state"] == expected, f"version {version}"
        document = (await http.get(url, params={"at": history.deltas[37]["ts"]})).json()
        assert document["state"] == history.states[37] | {MARKER: True}
        head = (await http.get(url)).json()
        assert head["state"] == history.states[versions]


async def test_versions_and_times_outside_the_history_are_not_found(
    server: RunningServer,
) -> None:
    """?version=0, a version after the current one and ?at before creation answer 404
    not_found; version and at together, or a malformed at, answer 400 bad_request."""
    history = await build_history(server, seed=3, versions=6)
    created = parse_ts(history.deltas[1]["ts"])
    url = f"/api/documents/{history.doc}"
    not_found: list[dict[str, Any]] = [
        {"version": 0},
        {"version": 7},
        {"version": 10_000},
        {"at": format_ts(created - timedelta(microseconds=1))},
        {"at": "2001-01-01T00:00:00Z"},
    ]
    bad: list[dict[str, Any]] = [
        {"version": 2, "at": history.deltas[2]["ts"]},
        {"at": "yesterday"},
        {"version": "two"},
    ]
    wrong: list[tuple[dict[str, Any], int, str]] = []
    async with server.http(history.token) as http:
        for cases, status, code in ((not_found, 404, "not_found"), (bad, 400, "bad_request")):
            for params in cases:
                response = await http.get(url, params=params)
                answer = response.json().get("error", {}).get("code", "")
                if (response.status_code, answer) != (status, code):
                    wrong.append((params, response.status_code, answer))
        document = (await http.get(url, params={"at": history.deltas[1]["ts"]})).json()
        assert document["version"] == 1 and document["state"] == history.states[1]
    assert wrong == [], f"answered with the wrong status or code: {wrong}"
    async with server.http(server.token(tenant="globex")) as http:
        response = await http.get(url, params={"version": 1})
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
