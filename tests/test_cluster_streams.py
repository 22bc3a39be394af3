"""Event streams across real nodes: WebSocket and SSE followers see every committed event once.

Writers on two nodes patch a few documents of one tenant concurrently (and take and release
locks, for other event types) while a WebSocket stream subscriber and an SSE client follow the
audit log with ``since``. Both reconnect mid-run, resuming from the last ``seq`` they received
(the WebSocket one with ``since``, the SSE one with ``Last-Event-ID``), sometimes on another
node. When the writers are done, what each follower received must equal, event for event, the
committed log read with ``GET /api/events`` (paged with its cursor) past the starting ``seq``.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import websockets

import tests.test_cluster as cluster_tests
from tests.redis_server import RedisServer
from tests.support import TIMEOUT, WsClient
from tests.test_cluster import Cluster

# The fixtures of the cluster tests, registered here under the same names: ``cluster`` (three
# nodes on the shared Redis, then on a Redis Cluster, which ``redis_cluster_url`` names) and
# ``redis_cluster`` (two nodes on a Redis of the test's own).
cluster = cluster_tests.cluster
redis_cluster = cluster_tests.redis_cluster
redis_cluster_url = cluster_tests.redis_cluster_url_fixture

DOCS = 3
LOCK_EVERY = 5  # every fifth patch of a writer is made inside a lock it takes and releases
CATCH_UP_TIMEOUT = 15.0
QUIET = 0.5  # how long to keep listening after catching up, for anything extra


class Interrupted(Exception):
    """The follower lost its stream for a reason a client retries (a close, a 503)."""


@dataclass(frozen=True)
class Ack:
    doc: str
    version: int
    at: float  # time.monotonic() when the reply arrived


# -- followers ------------------------------------------------------------------------------


class Follower(abc.ABC):
    """Follows one stream, reconnecting when planned and resuming from the last seq.

    The follower drops its stream and opens a new one on the next node of ``nodes`` when it
    has received a count listed in ``reconnect_after``, or when :meth:`reconnect` is called.
    A stream the server ends, or a refusal a client retries (``unavailable``, HTTP 503), is
    an *interruption*: the follower resumes the same way and notes it.
    """

    def __init__(self, cluster: Cluster, token: str, nodes: list[int], since: int,
                 reconnect_after: list[int]) -> None:
        self.cluster = cluster
        self.token = token
        self.nodes = nodes
        self.since = since
        self.reconnect_after = reconnect_after
        self.received: list[dict[str, Any]] = []
        self.connects: list[tuple[int, float]] = []  # (node, when) of every stream opened
        self.interruptions: list[str] = []
        self.task: asyncio.Task[None] | None = None
        self._stream: asyncio.Task[None] | None = None
        self._asked = False

    @property
    def last_seq(self) -> int:
        return int(self.received[-1]["seq"]) if self.received else self.since

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    def reconnect(self) -> None:
        """Drop the current stream now; resume on the next node after a short pause."""
        if self._stream is not None and not self._stream.done():
            self._asked = True
            self._stream.cancel()

    async def _run(self) -> None:
        while True:
            limit = next((n for n in self.reconnect_after if n > len(self.received)), None)
            node = self.nodes[len(self.connects) % len(self.nodes)]
            self.connects.append((node, time.monotonic()))
            self._asked = False
            self._stream = asyncio.create_task(self._follow(node, limit))
            try:
                await self._stream
            except asyncio.CancelledError:
                me = asyncio.current_task()
                if not self._asked or (me is not None and me.cancelling()):
                    raise  # the follower itself is being stopped, maybe mid-reconnect
                self._asked = False
                # Like a client that backs off before reconnecting: by then the node has
                # also dropped the stream this follower left.
                await asyncio.sleep(0.3)
            except (TimeoutError, httpx.TimeoutException):
                raise  # a stream that stalls is a failure, not an interruption
            except (Interrupted, OSError, websockets.ConnectionClosed,
                    websockets.InvalidStatus, httpx.TransportError) as exc:
                self.interruptions.append(f"node{node}: {exc!r}")
                await asyncio.sleep(0.2)

    @abc.abstractmethod
    async def _follow(self, node: int, limit: int | None) -> None:
        """Open one stream on ``node`` resuming after :attr:`last_seq`; return at ``limit``."""

    async def caught_up(self, seq: int, timeout: float = CATCH_UP_TIMEOUT) -> None:
        """Wait until an event with ``seq`` or later has arrived (re-raising a crash)."""
        assert self.task is not None
        deadline = time.monotonic() + timeout
        while self.last_seq < seq:
            if self.task.done():
                self.task.result()
                raise AssertionError(f"{type(self).__name__} stopped before seq {seq}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{type(self).__name__} reached seq {self.last_seq}, not {seq}, within "
                    f"{timeout}s; interruptions: {self.interruptions}")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """Cancel the follower; a crash it had meanwhile is raised here."""
        if self.task is None or self.task.cancelled():
            return
        if self.task.done():
            self.task.result()
            return
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self.task, TIMEOUT)


class WsFollower(Follower):
    """``{"type":"subscribe","stream":spec,"since":last}`` on a fresh connection each time."""

    def __init__(self, cluster: Cluster, token: str, nodes: list[int], since: int,
                 reconnect_after: list[int], spec: dict[str, list[str]] | None = None) -> None:
        super().__init__(cluster, token, nodes, since, reconnect_after)
        self.spec = spec or {}

    async def _follow(self, node: int, limit: int | None) -> None:
        client = await self.cluster.connect(node, self.token)
        try:
            reply = await client.request("subscribe", stream=self.spec, since=self.last_seq)
            if reply["type"] != "ok":
                if reply.get("code") == "unavailable":
                    raise Interrupted(f"subscribe refused: {reply}")
                raise AssertionError(f"stream subscribe on node{node} refused: {reply}")
            assert isinstance(reply["seq"], int), reply
            stream = reply["stream"]
            while limit is None or len(self.received) < limit:
                message = await _next_event(client)
                if message["stream"] != stream:
                    raise AssertionError(f"event of stream {message['stream']}, not {stream}")
                self.received.append(message["event"])
        finally:
            await client.close()


async def _next_event(client: WsClient) -> dict[str, Any]:
    """The next ``event`` message: from what arrived before the reply, else from the wire."""
    for index, message in enumerate(client.pushes):
        if message.get("type") == "event":
            return client.pushes.pop(index)
    while True:
        message = await client.recv(timeout=TIMEOUT)
        if message.get("type") == "event":
            return message
        if message.get("type") == "error":
            raise AssertionError(f"stream follower got an error: {message}")


class SseFollower(Follower):
    """``GET /api/events/stream?since=S`` with ``Last-Event-ID`` once it has seen an event.

    Like a browser's EventSource it keeps the URL (with its ``since``) on every reconnect and
    lets the header say where to resume.
    """

    def __init__(self, cluster: Cluster, token: str, nodes: list[int], since: int,
                 reconnect_after: list[int], params: dict[str, str] | None = None) -> None:
        super().__init__(cluster, token, nodes, since, reconnect_after)
        self.params = params or {}
        self.with_last_event_id = 0

    async def _follow(self, node: int, limit: int | None) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        if self.received:
            headers["Last-Event-ID"] = str(self.received[-1]["seq"])
            self.with_last_event_id += 1
        params = {**self.params, "since": str(self.since)}
        url = f"{self.cluster.nodes[node].url}/api/events/stream"
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(TIMEOUT)) as http,
            http.stream("GET", url, params=params, headers=headers) as response,
        ):
            if response.status_code == 503:
                raise Interrupted(f"503: {(await response.aread())!r}")
            if response.status_code != 200:
                raise AssertionError(f"SSE on node{node} refused: {response.status_code} "
                                     f"{(await response.aread())!r}")
            assert response.headers["content-type"].startswith("text/event-stream")
            event_id: str | None = None
            async for line in response.aiter_lines():
                if line.startswith("id:"):
                    event_id = line[3:].strip()
                elif line.startswith("data:"):
                    event = json.loads(line[5:].strip())
                    if event_id != str(event["seq"]):
                        raise AssertionError(f"SSE id {event_id!r} for event {event['seq']}")
                    event_id = None
                    self.received.append(event)
                    if limit is not None and len(self.received) >= limit:
                        return
        raise Interrupted("the server ended the SSE stream")


# -- writers and the committed log --------------------------------------------------------


async def _writers(cluster: Cluster) -> list[WsClient]:
    """Two writers on node 0 (ann) and two on node 1 (bob)."""
    ann, bob = cluster.token("ann"), cluster.token("bob")
    return [await cluster.connect(0, ann), await cluster.connect(0, ann),
            await cluster.connect(1, bob), await cluster.connect(1, bob)]


async def _prepare(writer: WsClient, writers: int) -> list[str]:
    """Create the documents and patch each once (to version 2).

    Followers start after the last ``document.created``, so each catches up on these first
    patches before it goes live.
    """
    docs = []
    for n in range(DOCS):
        reply = await writer.ok("create", kind="memo", title=f"Stream memo {n}",
                                state={f"w{i}": 0 for i in range(writers)})
        docs.append(str(reply["document"]["id"]))
    for doc in docs:
        await writer.ok("patch", doc=doc, base=1,
                        ops=[{"op": "add", "path": "/setup", "value": True}])
    return docs


async def _write(client: WsClient, index: int, doc: str, count: int, pace: float,
                 acks: list[Ack]) -> None:
    """``count`` patches of ``/w{index}``; every fifth inside a lock of that path."""
    path = f"/w{index}"
    base = 2
    for n in range(count):
        locked = n % LOCK_EVERY == LOCK_EVERY - 1
        if locked:
            await client.ok("lock", doc=doc, path=path)
        reply = await client.ok("patch", doc=doc, base=base,
                                ops=[{"op": "replace", "path": path, "value": n + 1}])
        base = reply["version"]
        acks.append(Ack(doc, base, time.monotonic()))
        if locked:
            await client.ok("unlock", doc=doc, path=path)
        await asyncio.sleep(pace)


async def _write_all(writers: list[WsClient], docs: list[str], count: int, pace: float,
                     during: Callable[[], Awaitable[None]] | None = None) -> list[Ack]:
    """Run every writer (writer ``i`` on document ``i % 3``) and ``during`` concurrently."""
    acks: list[Ack] = []
    jobs: list[Awaitable[None]] = [_write(c, i, docs[i % len(docs)], count, pace, acks)
                                   for i, c in enumerate(writers)]
    if during is not None:
        jobs.append(during())
    await asyncio.wait_for(asyncio.gather(*jobs), 60)
    return acks


async def _committed(cluster: Cluster, node: int, token: str,
                     **params: str) -> list[dict[str, Any]]:
    """Every event of the tenant (matching ``params``), paged to the end with the cursor."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=cluster.nodes[node].url, headers=headers,
                                 timeout=TIMEOUT) as http:
        while True:
            query = {**params, "limit": "37", **({"cursor": cursor} if cursor else {})}
            response = await http.get("/api/events", params=query)
            assert response.status_code == 200, response.text
            page = response.json()
            found += page["events"]
            cursor = page["next"]
            if cursor is None:
                return found


def _matches(event: dict[str, Any], *, types: tuple[str, ...] = (),
             docs: tuple[str, ...] = (), actors: tuple[str, ...] = ()) -> bool:
    """The stream filter of docs/protocol.md section 8, computed on the client's side."""
    if docs and event["doc"] not in docs:
        return False
    if actors and event["actor"]["id"] not in actors:
        return False
    return not types or any(
        event["type"].startswith(t[:-1]) if t.endswith(".*") else event["type"] == t
        for t in types)


def _assert_exactly(follower: Follower, expected: list[dict[str, Any]]) -> None:
    """The follower received ``expected``: every event, in strictly increasing seq, once."""
    name = type(follower).__name__
    seqs = [int(e["seq"]) for e in follower.received]
    want = [int(e["seq"]) for e in expected]
    twice = sorted({s for s in seqs if seqs.count(s) > 1})
    out_of_order = [(a, b) for a, b in itertools.pairwise(seqs) if b <= a]
    missing = sorted(set(want) - set(seqs))
    extra = sorted(set(seqs) - set(want))
    assert not (twice or out_of_order or missing or extra), (
        f"{name}: twice {twice}, out of order {out_of_order[:5]}, missing {missing}, "
        f"not committed or not matching {extra}; connects {follower.connects}, "
        f"interruptions {follower.interruptions}")
    assert follower.received == expected, f"{name} received events that differ from the log"


def _assert_patches_are_the_acks(committed: list[dict[str, Any]], acks: list[Ack],
                                 docs: list[str]) -> None:
    """Every acknowledged write is one ``patch.applied`` in the log, and nothing else is."""
    applied = sorted((e["doc"], e["version"]) for e in committed
                     if e["type"] == "patch.applied")
    setup = [(doc, 2) for doc in docs]
    assert applied == sorted([(a.doc, a.version) for a in acks] + setup)


async def _finish(targets: list[tuple[Follower, list[dict[str, Any]]]]) -> None:
    """Wait for each follower to reach the last seq it expects, listen a little, stop them."""
    try:
        await asyncio.gather(*(f.caught_up(expected[-1]["seq"]) for f, expected in targets))
        await asyncio.sleep(QUIET)  # a duplicate or a stray event would arrive now
    finally:
        for follower, _ in targets:
            await follower.stop()


async def _start_seq(cluster: Cluster, token: str) -> int:
    """The seq of the last ``document.created``: followers start right after it."""
    created = await _committed(cluster, 1, token, type="document.created")
    assert len(created) == DOCS
    return int(created[-1]["seq"])


# -- tests --------------------------------------------------------------------------------


async def test_ws_and_sse_followers_see_every_committed_event_once_in_order(
    cluster: Cluster,
) -> None:
    """Through reconnects on other nodes, WS and SSE followers get exactly the committed log."""
    reader = cluster.token("vera", roles=["viewer"])
    writers = await _writers(cluster)
    followers: list[Follower] = []
    try:
        docs = await _prepare(writers[0], len(writers))
        since = await _start_seq(cluster, reader)
        ws = WsFollower(cluster, reader, [0, 1, 2], since, reconnect_after=[35, 80])
        sse = SseFollower(cluster, reader, [1, 0], since, reconnect_after=[45, 95])
        followers = [ws, sse]
        for follower in followers:
            follower.start()
        acks = await _write_all(writers, docs, count=25, pace=0.01)
        writes_done = time.monotonic()
        committed = await _committed(cluster, 2, reader)
        expected = [e for e in committed if e["seq"] > since]
        await _finish([(f, expected) for f in followers])
        assert {e["type"] for e in expected} == {"patch.applied", "lock.acquired",
                                                 "lock.released"}
        _assert_patches_are_the_acks(committed, acks, docs)
        for follower in followers:
            _assert_exactly(follower, expected)
            assert follower.interruptions == [], follower.interruptions
        assert [node for node, _ in ws.connects] == [0, 1, 2]
        assert [node for node, _ in sse.connects] == [1, 0, 1]
        assert sse.with_last_event_id == 2
        for follower in followers:  # the reconnects happened while writes were going on
            assert all(at < writes_done for _, at in follower.connects), follower.connects
    finally:
        for follower in followers:
            with contextlib.suppress(Exception):
                await follower.stop()
        for client in writers:
            await client.close()


async def test_followers_get_every_committed_event_through_a_redis_restart(
    redis_cluster: tuple[Cluster, RedisServer],
) -> None:
    """Redis restarts mid-run: writes succeed, followers resubscribe, each gets exactly the log."""
    cluster, redis = redis_cluster
    reader = cluster.token("vera", roles=["viewer"])
    writers = await _writers(cluster)
    followers: list[Follower] = []
    outage: list[float] = []
    try:
        docs = await _prepare(writers[0], len(writers))
        since = await _start_seq(cluster, reader)
        # Each follower is the only stream reader of its node. While Redis is down it
        # reconnects to the same node (which by then follows no stream), later to the other.
        ws = WsFollower(cluster, reader, [0, 0, 1], since, reconnect_after=[150])
        sse = SseFollower(cluster, reader, [1, 1, 0], since, reconnect_after=[155])
        followers = [ws, sse]
        for follower in followers:
            follower.start()

        async def restart_redis() -> None:
            await asyncio.sleep(0.6)
            await redis.astop()
            outage.append(time.monotonic())
            await asyncio.sleep(0.2)
            for follower in followers:
                follower.reconnect()
            await asyncio.sleep(1.3)
            outage.append(time.monotonic())
            await redis.astart()

        acks = await _write_all(writers, docs, count=30, pace=0.08, during=restart_redis)
        stopped, restarted = outage
        during_outage = [a for a in acks if stopped < a.at < restarted]
        assert len(during_outage) >= 8, "writes did not go on while Redis was down"
        assert max(a.at for a in acks) > restarted + 0.3, "no writes after the restart"
        committed = await _committed(cluster, 0, reader)
        expected = [e for e in committed if e["seq"] > since]
        await _finish([(f, expected) for f in followers])
        _assert_patches_are_the_acks(committed, acks, docs)
        for follower in followers:
            _assert_exactly(follower, expected)
            assert len(follower.connects) >= 3, follower.connects
            assert stopped < follower.connects[1][1] < restarted, (outage, follower.connects)
    finally:
        for follower in followers:
            with contextlib.suppress(Exception):
                await follower.stop()
        for client in writers:
            await client.close()


async def test_filtered_followers_see_exactly_the_matching_subset(cluster: Cluster) -> None:
    """A ``patch.*`` stream of one document (WS) and a ``lock.*`` stream of one actor (SSE)."""
    reader = cluster.token("vera", roles=["viewer"])
    writers = await _writers(cluster)
    followers: list[Follower] = []
    try:
        docs = await _prepare(writers[0], len(writers))
        since = await _start_seq(cluster, reader)
        # Writers 0 (ann) and 3 (bob) write docs[0]; bob's writers 2 and 3 take locks.
        ws = WsFollower(cluster, reader, [0, 1], since, reconnect_after=[15, 35],
                        spec={"types": ["patch.*"], "docs": [docs[0]]})
        sse = SseFollower(cluster, reader, [1, 0], since, reconnect_after=[6, 14],
                          params={"type": "lock.*", "actor": "bob"})
        followers = [ws, sse]
        for follower in followers:
            follower.start()
        await _write_all(writers, docs, count=25, pace=0.01)
        committed = await _committed(cluster, 2, reader)
        ws_expected = [e for e in committed if e["seq"] > since
                       and _matches(e, types=("patch.*",), docs=(docs[0],))]
        sse_expected = [e for e in committed if e["seq"] > since
                        and _matches(e, types=("lock.*",), actors=("bob",))]
        assert len(ws_expected) == 1 + 2 * 25  # the setup patch and two writers' patches
        assert len(sse_expected) == 2 * 2 * (25 // LOCK_EVERY)
        # The server's own filter agrees with the contract's reading of it.
        assert ws_expected == await _committed(cluster, 0, reader, type="patch.*",
                                               doc=docs[0], since=str(since))
        assert sse_expected == await _committed(cluster, 1, reader, type="lock.*",
                                                actor="bob", since=str(since))
        await _finish([(ws, ws_expected), (sse, sse_expected)])
        _assert_exactly(ws, ws_expected)
        _assert_exactly(sse, sse_expected)
        for follower in followers:
            assert follower.interruptions == [], follower.interruptions
            assert len(follower.connects) == 3, follower.connects
    finally:
        for follower in followers:
            with contextlib.suppress(Exception):
                await follower.stop()
        for client in writers:
            await client.close()
