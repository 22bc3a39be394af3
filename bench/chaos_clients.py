"""The chaos run's clients: each does what a real client does and writes down what it saw.

Writers send patches with idempotency keys and retry the same key (on another node when
theirs is gone) until they hold an acknowledgement. Subscribers and stream followers stay on
their node and, after any disconnection, resume with ``since`` from the last version or
``seq`` they received. Lock holders take an HTTP lock and write with its fencing token, and
sometimes sleep past its ttl first, as a holder stuck in a long pause would. Sentinels hold
a presence entry and a lock on one document, so that the controller can tell when every node
agrees again on who is present and who holds what.

Every record is plain data the checker compares with the database afterwards; nothing here
decides whether the run passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

__all__ = [
    "LockHolder",
    "Sentinel",
    "StreamFollower",
    "Subscriber",
    "Writer",
    "WsSession",
]

REQUEST_TIMEOUT = 6.0
RETRY_PAUSE = 0.3
Transient = (OSError, TimeoutError, websockets.ConnectionClosed, websockets.InvalidHandshake)


class RequestLost(Exception):
    """A request got no reply: the connection closed or the node did not answer in time."""


class WsSession:
    """One WebSocket connection: the welcome, requests matched to replies, heartbeats."""

    def __init__(self, conn: ClientConnection, welcome: dict[str, Any],
                 on_message: Callable[[dict[str, Any]], None], heartbeat_s: float) -> None:
        self.conn = conn
        self.welcome = welcome
        self.session_id = str(welcome.get("session"))
        self._on_message = on_message
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._tasks = [asyncio.create_task(self._read()),
                       asyncio.create_task(self._beat(heartbeat_s))]

    @classmethod
    async def open(cls, url: str, on_message: Callable[[dict[str, Any]], None],
                   heartbeat_s: float) -> WsSession:
        conn = await websockets.connect(url, subprotocols=["coedit.v1.json"],  # type: ignore[list-item]
                                        open_timeout=5, ping_interval=None, close_timeout=1,
                                        max_size=None)
        try:
            welcome = json.loads(await asyncio.wait_for(conn.recv(), 5))
        except BaseException:
            await conn.close()
            raise
        return cls(conn, welcome, on_message, heartbeat_s)

    @property
    def closed(self) -> bool:
        return self._tasks[0].done()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._tasks[0])

    async def _read(self) -> None:
        try:
            async for raw in self.conn:
                message = json.loads(raw)
                if message.get("type") in ("ok", "error"):
                    future = self._waiting.pop(message.get("re"), None)
                    if future is not None and not future.done():
                        future.set_result(message)
                        continue
                self._on_message(message)
        except Transient:
            pass
        finally:
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(RequestLost("connection closed"))
            self._waiting.clear()

    async def _beat(self, every: float) -> None:
        with contextlib.suppress(*Transient):
            while True:
                await asyncio.sleep(every)
                await asyncio.wait_for(self.conn.send(json.dumps(
                    {"type": "heartbeat", "id": next(self._ids)})), 5)

    async def request(self, kind: str, timeout: float = REQUEST_TIMEOUT,
                      **fields: Any) -> dict[str, Any]:
        rid = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = future
        try:
            await asyncio.wait_for(self.conn.send(json.dumps({"type": kind, "id": rid,
                                                              **fields})), timeout)
            return await asyncio.wait_for(future, timeout)
        except (TimeoutError, OSError, websockets.ConnectionClosed) as exc:
            raise RequestLost(f"{kind}: {type(exc).__name__}") from exc
        finally:
            self._waiting.pop(rid, None)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            self.conn.transport.abort()


@dataclass
class ClientContext:
    """What every client needs to reach the nodes."""

    ws_urls: list[str]          # per node, without the token
    http_urls: list[str]
    tokens: dict[str, str]      # user -> token
    heartbeat_s: float
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def ws(self, node: int, user: str) -> str:
        return f"{self.ws_urls[node]}?token={self.tokens[user]}"


async def _pause(ctx: ClientContext, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(ctx.stopping.wait(), seconds)


class Writer:
    """Patches with idempotency keys; a write is retried with its key until acknowledged."""

    def __init__(self, ctx: ClientContext, name: str, node: int, docs: list[str],
                 interval_s: float) -> None:
        self.ctx, self.name, self.node, self.docs = ctx, name, node, docs
        self.interval_s = interval_s
        self.acks: list[dict[str, Any]] = []       # key, doc, path, version, duplicate
        self.refused: list[dict[str, Any]] = []    # final refusals (not retried)
        self.unacked: list[dict[str, Any]] = []    # still being retried when the run ended
        self.retries: Counter[str] = Counter()     # why a write was sent again
        self.base = dict.fromkeys(docs, 1)
        self._session: WsSession | None = None

    async def run(self) -> None:
        try:
            for n in itertools.count():
                if self.ctx.stopping.is_set():
                    return
                await self._write(n)
                await _pause(self.ctx, self.interval_s)
        finally:
            if self._session is not None:
                await self._session.close()

    async def _write(self, n: int) -> None:
        doc = self.docs[n % len(self.docs)]
        key = f"{self.name}-{n}"
        path = f"/w/{key}"
        ops = [{"op": "add", "path": path, "value": n}]
        while True:
            if self.ctx.stopping.is_set():
                self.unacked.append({"key": key, "doc": doc, "path": path})
                return
            try:
                session = await self._connected()
                reply = await session.request("patch", doc=doc, base=self.base[doc],
                                              ops=ops, key=key)
            except (RequestLost, *Transient) as exc:
                self.retries[f"lost:{type(exc).__name__}"] += 1
                await self._drop()
                self.node = (self.node + 1) % len(self.ctx.ws_urls)
                await _pause(self.ctx, RETRY_PAUSE)
                continue
            if reply["type"] == "ok":
                self.base[doc] = max(self.base[doc], int(reply["version"]))
                self.acks.append({"key": key, "doc": doc, "path": path,
                                  "version": reply["version"],
                                  "duplicate": bool(reply.get("duplicate"))})
                return
            code = str(reply.get("code"))
            if code in ("unavailable", "internal", "rate_limited"):
                self.retries[code] += 1
                await _pause(self.ctx, RETRY_PAUSE)
                continue
            self.refused.append({"key": key, "doc": doc, "code": code,
                                 "message": reply.get("message")})
            return

    async def _connected(self) -> WsSession:
        if self._session is None or self._session.closed:
            await self._drop()
            self._session = await WsSession.open(self.ctx.ws(self.node, self.name),
                                                 lambda message: None, self.ctx.heartbeat_s)
        return self._session

    async def _drop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _Resuming(ABC):
    """A client that stays on one node and reconnects to it after any disconnection."""

    def __init__(self, ctx: ClientContext, name: str, node: int) -> None:
        self.ctx, self.name, self.node = ctx, name, node
        self.connections = 0
        self.failures: Counter[str] = Counter()
        self.session: WsSession | None = None

    async def run(self) -> None:
        while not self.ctx.stopping.is_set():
            try:
                self.session = await WsSession.open(self.ctx.ws(self.node, self.name),
                                                    self.on_message, self.ctx.heartbeat_s)
                self.connections += 1
                await self.setup(self.session)
                waits = [asyncio.create_task(self.ctx.stopping.wait()),
                         asyncio.create_task(self.session.wait_closed()),
                         asyncio.create_task(self.maintain(self.session))]
                done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for task in waits:
                    task.cancel()
                await asyncio.gather(*waits, return_exceptions=True)
                for task in done:
                    if not task.cancelled() and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
            except (RequestLost, SetupRefused, *Transient) as exc:
                self.failures[type(exc).__name__] += 1
            finally:
                self.down()
                if self.session is not None:
                    await self.session.close()
                    self.session = None
            await _pause(self.ctx, RETRY_PAUSE)

    @abstractmethod
    async def setup(self, session: WsSession) -> None:
        """Subscribe (and lock) on a fresh connection, resuming where the last one ended."""

    async def maintain(self, session: WsSession) -> None:
        """What the client does while connected, besides receiving (nothing by default)."""
        await asyncio.Event().wait()

    def on_message(self, message: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """A message that is not a reply (deltas, events, lock news); ignored by default."""

    def down(self) -> None:  # noqa: B027 - optional hook
        """The connection ended: forget what only held while it was open."""


class SetupRefused(Exception):
    """A subscribe or lock during setup was answered with an error (retried later)."""


def _ok(reply: dict[str, Any]) -> dict[str, Any]:
    if reply.get("type") != "ok":
        raise SetupRefused(str(reply.get("code")))
    return reply


class Subscriber(_Resuming):
    """Deltas of several documents; resumes each with ``since`` = the last version seen."""

    def __init__(self, ctx: ClientContext, name: str, node: int, docs: list[str]) -> None:
        super().__init__(ctx, name, node)
        self.docs = docs
        self.last = dict.fromkeys(docs, 1)   # the documents start at version 1
        self.gaps: list[dict[str, Any]] = []
        self.duplicates: list[dict[str, Any]] = []
        self.resets: list[dict[str, Any]] = []
        self.deltas = 0
        self.resumes = 0
        self.event_of: dict[tuple[str, int], int] = {}  # (doc, version) -> the delta's event seq

    async def setup(self, session: WsSession) -> None:
        for doc in self.docs:
            _ok(await session.request("subscribe", doc=doc, since=self.last[doc]))
        self.resumes += 1

    def on_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        doc = message.get("doc")
        if doc not in self.last:
            return
        if kind == "delta":
            version = int(message["version"])
            last = self.last[doc]
            self.deltas += 1
            if version <= last:
                self.duplicates.append({"doc": doc, "version": version, "after": last})
                return
            if version > last + 1:
                self.gaps.append({"doc": doc, "missing": [last + 1, version - 1]})
            self.last[doc] = version
            if isinstance(message.get("event"), int):
                self.event_of[(doc, version)] = message["event"]
        elif kind == "reset":
            self.resets.append({"doc": doc, "from": self.last[doc],
                                "to": int(message["version"])})
            self.last[doc] = int(message["version"])


class StreamFollower(_Resuming):
    """The event stream of some documents; resumes with ``since`` = the last ``seq`` seen."""

    def __init__(self, ctx: ClientContext, name: str, node: int, docs: list[str]) -> None:
        super().__init__(ctx, name, node)
        self.docs = docs
        self.last = 0
        self.seqs: list[int] = []
        self.duplicates: list[int] = []

    async def setup(self, session: WsSession) -> None:
        _ok(await session.request("subscribe", stream={"docs": self.docs}, since=self.last))

    def on_message(self, message: dict[str, Any]) -> None:
        if message.get("type") != "event":
            return
        seq = int(message["event"]["seq"])
        if seq <= self.last:
            self.duplicates.append(seq)
            return
        self.seqs.append(seq)
        self.last = seq


class Sentinel(_Resuming):
    """Present on one document and holding a lock on ``/s<node>`` of it while connected."""

    def __init__(self, ctx: ClientContext, name: str, node: int, doc: str,
                 ttl_ms: int) -> None:
        super().__init__(ctx, name, node)
        self.doc, self.ttl_ms = doc, ttl_ms
        self.path = f"/s{node}"
        self.present_session: str | None = None  # set once subscribed (present)
        self.ready_session: str | None = None   # set once present and holding the lock
        self.lost = asyncio.Event()
        self.relocks = 0

    async def setup(self, session: WsSession) -> None:
        self.lost = asyncio.Event()
        _ok(await session.request("subscribe", doc=self.doc))
        self.present_session = session.session_id
        await self._lock(session)

    async def _lock(self, session: WsSession) -> None:
        while not self.ctx.stopping.is_set():
            reply = await session.request("lock", doc=self.doc, path=self.path,
                                          ttl_ms=self.ttl_ms)
            if reply["type"] == "ok":
                self.ready_session = session.session_id
                return
            if reply.get("code") not in ("locked", "unavailable"):
                raise SetupRefused(str(reply.get("code")))
            await _pause(self.ctx, RETRY_PAUSE)

    async def maintain(self, session: WsSession) -> None:
        """Take the lock again whenever the server says this session lost it."""
        while True:
            await self.lost.wait()
            self.lost.clear()
            self.ready_session = None
            self.relocks += 1
            await self._lock(session)

    def on_message(self, message: dict[str, Any]) -> None:
        if (message.get("type") == "unlocked" and message.get("path") == self.path
                and self.session is not None
                and (message.get("holder") or {}).get("session") == self.session.session_id):
            self.lost.set()

    def down(self) -> None:
        self.present_session = self.ready_session = None


def _error_code(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return str(response.status_code)


class LockHolder:
    """Takes the lock on ``/fenced`` over HTTP and writes inside it with its fencing token.

    With probability ``stale_p`` it sleeps past the lock's ttl before a write, so that
    another holder may be granted a newer token meanwhile; the server must then refuse the
    write, which the holder answers by taking the lock again.
    """

    path = "/fenced"

    def __init__(self, ctx: ClientContext, name: str, node: int, doc: str, *,
                 ttl_ms: int, stale_p: float, seed: int) -> None:
        self.ctx, self.name, self.node, self.doc = ctx, name, node, doc
        self.ttl_ms, self.stale_p = ttl_ms, stale_p
        self.random = random.Random(seed)
        self.grants: list[int] = []
        self.acks: list[dict[str, Any]] = []
        self.refused: list[dict[str, Any]] = []
        self.unacked: list[dict[str, Any]] = []
        self.retries: Counter[str] = Counter()
        self.stale_attempts = 0
        self.base = 1
        self._n = itertools.count()

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT, headers={
                "Authorization": f"Bearer {self.ctx.tokens[self.name]}"}) as http:
            while not self.ctx.stopping.is_set():
                token = await self._acquire(http)
                if token is None:
                    continue
                for _ in range(3):
                    stale = self.random.random() < self.stale_p
                    if stale:
                        self.stale_attempts += 1
                        await _pause(self.ctx, self.ttl_ms / 1000 + 0.8)
                    if not await self._write(http, token):
                        break
                    await _pause(self.ctx, 0.15)
                with contextlib.suppress(httpx.HTTPError):
                    await http.delete(f"{self._url()}/api/documents/{self.doc}/locks",
                                      params={"path": self.path})
                await _pause(self.ctx, 0.1 + self.random.random() * 0.3)

    def _url(self) -> str:
        return self.ctx.http_urls[self.node]

    def _next_node(self) -> None:
        self.node = (self.node + 1) % len(self.ctx.http_urls)

    async def _acquire(self, http: httpx.AsyncClient) -> int | None:
        while not self.ctx.stopping.is_set():
            try:
                response = await http.post(f"{self._url()}/api/documents/{self.doc}/locks",
                                           json={"path": self.path, "ttl_ms": self.ttl_ms})
            except httpx.HTTPError:
                self._next_node()
                await _pause(self.ctx, RETRY_PAUSE)
                continue
            if response.status_code == 201:
                token = int(response.json()["lock"]["token"])
                self.grants.append(token)
                return token
            if response.status_code == 503:
                self._next_node()
            await _pause(self.ctx, 0.1 + self.random.random() * 0.2)
        return None

    async def _write(self, http: httpx.AsyncClient, token: int) -> bool:
        """One fenced write, retried with its key through outages; False once refused."""
        n = next(self._n)
        key = f"{self.name}-{n}"
        path = f"{self.path}/{key}"
        body = [{"op": "add", "path": path, "value": {"token": token, "holder": self.name}}]
        while True:
            if self.ctx.stopping.is_set():
                self.unacked.append({"key": key, "token": token, "path": path})
                return False
            try:
                response = await http.patch(
                    f"{self._url()}/api/documents/{self.doc}", json=body,
                    headers={"If-Match": f'"{self.base}"', "Idempotency-Key": key,
                             "Lock-Token": str(token)})
            except httpx.HTTPError as exc:
                self.retries[f"lost:{type(exc).__name__}"] += 1
                self._next_node()
                await _pause(self.ctx, RETRY_PAUSE)
                continue
            if response.status_code == 200:
                reply = response.json()
                self.base = max(self.base, int(reply["version"]))
                self.acks.append({"key": key, "token": token, "path": path,
                                  "version": reply["version"],
                                  "duplicate": bool(reply.get("duplicate"))})
                return True
            code = _error_code(response)
            if response.status_code in (500, 503, 429):
                self.retries[code] += 1
                if response.status_code == 503:
                    self._next_node()
                await _pause(self.ctx, RETRY_PAUSE)
                continue
            self.refused.append({"key": key, "token": token, "code": code})
            return False
