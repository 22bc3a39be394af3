"""A live replica of one document: its state, its version, every delta exactly once, writes
that apply exactly once, and text that merges.

**Exactly once, in order.** Deltas are applied only when their version is the replica's
plus one; an older one (a resume overlaps what was already seen) is dropped, a gap makes the
replica resubscribe for a fresh state. After a reconnect the document resubscribes with
``since`` = its version, so iterators continue where they were.

**Writes never apply twice.** Every write carries an idempotency key. A write not yet
answered when the connection drops stays queued and is sent again, with the same key, base and
ops, before the resubscribe on the next connection: the server answers ``duplicate`` if the
first attempt had committed, and applies it otherwise. Sending it *before* the resubscribe
means its reply (with its version) always arrives before the deltas the resubscribe replays.

**Splices.** ``splice`` edits show in :attr:`Document.state` at once. One batch is in flight at
a time, the rest wait in a buffer (the classic client side of operational transformation):
each incoming delta carries both past its splices with the same rules as the server
(:mod:`coedit_client.splice`); the delta whose version the in-flight batch was given is
recognised as our own and needs no transform.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coedit_client.backoff import Backoff
from coedit_client.errors import (
    BadRequest,
    ClientClosed,
    CoeditError,
    Conflict,
    ConnectionLost,
    RateLimited,
    Unavailable,
    error_from,
)
from coedit_client.patching import PatchError, apply_ops, parse_pointer, write_unit_overlaps
from coedit_client.patching import write_units as units_of
from coedit_client.splice import Splice, transform

if TYPE_CHECKING:
    from coedit_client.connection import Client
    from coedit_client.locks import Lock

__all__ = ["Change", "Delta", "Document", "Reset", "RetryPolicy"]

log = logging.getLogger("coedit_client")

Ops = list[dict[str, Any]]
RetryPolicy = Callable[[dict[str, Any]], Ops | None]
"""Given the fresh state after a conflict, the ops to try again (None: give up)."""

WRITE_RETRIES = 8  # unavailable / rate_limited answers to one write before it gives up


@dataclass(frozen=True, slots=True)
class Delta:
    """One accepted write, as every subscriber receives it."""

    doc: str
    version: int
    ops: Ops
    actor: dict[str, Any]
    ts: str | None
    event: int | None  # the seq of its audit event
    own: bool = False  # written through this client


@dataclass(frozen=True, slots=True)
class Reset:
    """The server could not replay the missing versions: the state is replaced."""

    doc: str
    version: int
    state: dict[str, Any]


Change = Delta | Reset


@dataclass(eq=False)
class _Write:
    ops: Ops
    base: int
    key: str
    outcome: asyncio.Future[dict[str, Any]]
    sent_on: int = -1  # the connection number it was last sent on
    splices: _SpliceBatch | None = None


@dataclass(eq=False)
class _SpliceBatch:
    """Splices in flight: ``entries`` as they apply to the replica's current state."""

    entries: list[tuple[str, Splice]]
    waiters: list[asyncio.Future[int]]
    acked: int | None = None


@dataclass(eq=False)
class _Feed:
    queue: deque[Change] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class Document:
    """Build with ``await client.open(doc_id)``."""

    def __init__(self, client: Client, doc: str) -> None:
        self.client = client
        self.id = doc
        self.version = 0
        self._confirmed: dict[str, Any] = {}
        self._view: dict[str, Any] | None = None
        self.presence: dict[str, dict[str, Any]] = {}  # session -> entry (others only)
        self.locks: list[dict[str, Any]] = []
        self._ready = asyncio.Event()
        self._writes: list[_Write] = []
        self._feeds: list[_Feed] = []
        self._version_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._presence_state: dict[str, Any] | None = None
        self._held: list[Lock] = []
        self._failure: BaseException | None = None
        self._inflight: _SpliceBatch | None = None
        self._buffer: list[tuple[str, Splice]] = []
        self._buffer_waiters: list[tuple[str, asyncio.Future[int]]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        self.resyncs = 0  # fresh states fetched after a gap or a reset
        self._own_versions: set[int] = set()  # versions our writes made, not yet seen

    def __repr__(self) -> str:
        return f"<Document {self.id} v{self.version}>"

    # -- state ----------------------------------------------------------------------------

    @property
    def state(self) -> dict[str, Any]:
        """The state at :attr:`version`, plus this client's splices not yet confirmed.

        A live view, changed in place as deltas arrive (a delta costs what its ops touch,
        not a copy of the document): treat it as read-only, and copy it to keep a snapshot.
        """
        if self._inflight is None and not self._buffer:
            return self._confirmed
        if self._view is None:
            view = copy.deepcopy(self._confirmed)
            pending = (self._inflight.entries if self._inflight else []) + self._buffer
            for path, splice in pending:
                with contextlib.suppress(PatchError):
                    view = apply_ops(view, [splice.to_op(path)], in_place=True)
            self._view = view
        return self._view

    @property
    def confirmed_state(self) -> dict[str, Any]:
        """The server's state at :attr:`version`, without pending splices."""
        return self._confirmed

    async def wait_version(self, version: int) -> None:
        """Until the replica has reached ``version``."""
        if self.version >= version:
            return
        self._raise_if_failed()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._version_waiters.append((version, future))
        await future

    def on_message(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call ``listener`` with the document's other pushes (``review``, ``comment``...)."""
        self._listeners.append(listener)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self.client.register(self)
        try:
            await self.client.request("subscribe", doc=self.id, retry=True,
                                      on_reply=self._subscribed)
        except BaseException:
            self.client.unregister(self)
            raise
        self._ready.set()

    async def close(self) -> None:
        """Unsubscribe; iterators end, waiting writes fail with :class:`ClientClosed`."""
        self.client.unregister(self)
        self.client.documents.pop(self.id, None)
        with contextlib.suppress(CoeditError):
            if self.client.connected:
                await self.client.request("unsubscribe", doc=self.id)
        self.end(ClientClosed(f"document {self.id} was closed"))

    def end(self, exc: BaseException) -> None:
        self._failure = exc
        for task in list(self._tasks):
            task.cancel()
        for _, future in self._version_waiters:
            if not future.done():
                future.set_exception(exc)
        self._version_waiters = []
        for write in self._writes:
            if not write.outcome.done():
                write.outcome.set_exception(exc)
        for feed in self._feeds:
            feed.wake.set()
        for lock in list(self._held):
            lock.mark_lost("closed")
        splice_waiters = [f for _, f in self._buffer_waiters]
        if self._inflight is not None:
            splice_waiters += self._inflight.waiters
        for waiter in splice_waiters:
            if not waiter.done():
                waiter.set_exception(exc)

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _subscribed(self, reply: dict[str, Any]) -> None:
        """A subscribe reply, applied before any delta after it (see connection.py)."""
        if reply.get("type") != "ok":
            return
        self.presence = {e["session"]: e for e in reply.get("presence") or []}
        self.locks = list(reply.get("locks") or [])
        if "state" in reply:
            first = self.version == 0
            self._reset(int(reply["version"]), reply["state"], announce=not first)

    def disconnected(self) -> None:
        self._ready.clear()
        self.presence = {}
        for lock in list(self._held):
            lock.mark_lost("disconnected")

    async def resume(self) -> None:
        """On a new connection: unanswered writes first, then the subscription from our
        version, then our presence; new writes wait until this is done."""
        generation = self.client.connections
        await self._send_unsent(generation)
        await self.client.request("subscribe", doc=self.id, since=self.version, retry=True,
                                  within=300, on_reply=self._subscribed)
        if self._presence_state is not None:
            with contextlib.suppress(CoeditError):
                await self.client.request("presence", doc=self.id,
                                          state=self._presence_state)
        await self._send_unsent(generation)  # writes queued meanwhile
        self._ready.set()

    async def _send_unsent(self, generation: int) -> None:
        while unsent := [w for w in self._writes if w.sent_on != generation]:
            for write in unsent:
                if self.client.connections != generation or not self.client.connected:
                    raise ConnectionLost("the connection dropped while resuming")
                await self._send(write)

    # -- incoming -------------------------------------------------------------------------

    def deliver(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "delta":
            self._on_delta(message)
        elif kind == "reset":
            self._reset(int(message["version"]), message["state"])
        elif kind == "presence":
            for entry in (message.get("joins") or []) + (message.get("updates") or []):
                if entry.get("session") != self.client.session:
                    self.presence[entry["session"]] = entry
            for entry in message.get("leaves") or []:
                self.presence.pop(entry.get("session"), None)
        elif kind == "locked":
            lock = {k: v for k, v in message.items() if k != "type"}
            self.locks = [x for x in self.locks if x.get("path") != lock.get("path")] + [lock]
        elif kind == "unlocked":
            self.locks = [x for x in self.locks if not (
                x.get("path") == message.get("path")
                and x.get("holder") == message.get("holder"))]
            holder = message.get("holder") or {}
            if holder.get("session") == self.client.session:
                for held in list(self._held):
                    if held.path == message.get("path"):
                        held.mark_lost(str(message.get("reason") or "released"))
        for listener in list(self._listeners):
            listener(message)

    def _on_delta(self, message: dict[str, Any]) -> None:
        version = int(message["version"])
        if version <= self.version:
            return  # seen already: a resume replays from our version
        if version != self.version + 1:
            log.warning("document %s: delta %s after %s; fetching a fresh state",
                        self.id, version, self.version)
            self._resync()
            return
        ops: Ops = list(message.get("ops") or [])
        own = self._inflight is not None and self._inflight.acked == version
        try:
            state = self._apply_incoming(ops, carry_splices=not own)
        except PatchError as exc:
            log.warning("document %s: delta %s does not apply (%s); fetching a fresh state",
                        self.id, version, exc)
            self._resync()
            return
        self._confirmed = state
        self.version = version
        self._view = None
        if own and self._inflight is not None:
            self._splices_done(self._inflight, version)
        self._publish(Delta(self.id, version, ops, dict(message.get("actor") or {}),
                            message.get("ts"), message.get("event"), self._owns(version) or own))

    def _owns(self, version: int) -> bool:
        """Whether this client's write made ``version`` (each is asked once, in order)."""
        if version in self._own_versions:
            self._own_versions.discard(version)
            return True
        return False

    def _apply_incoming(self, ops: Ops, *, carry_splices: bool) -> dict[str, Any]:
        """The confirmed state after ``ops`` (changed in place); pending splices carried past
        them. An op that does not apply leaves the state half-changed, and the caller then
        replaces it with a fresh one from the server."""
        state: Any = self._confirmed
        for op in ops:
            if carry_splices and (self._inflight or self._buffer):
                self._carry_pending(state, op)
            state = apply_ops(state, [op], in_place=True)
        if not isinstance(state, dict):
            raise PatchError("the state is no longer an object")
        return state

    def _carry_pending(self, state: dict[str, Any], op: dict[str, Any]) -> None:
        if op.get("op") == "splice":
            path = str(op["path"])
            theirs = [Splice.from_op(op)]
            if self._inflight is not None:
                mine = [s for p, s in self._inflight.entries if p == path]
                if mine:
                    mine, theirs = transform(mine, theirs)
                    self._inflight.entries = [(p, s) for p, s in self._inflight.entries
                                              if p != path] + [(path, s) for s in mine]
            buffered = [s for p, s in self._buffer if p == path]
            if buffered:
                buffered, _ = transform(buffered, theirs)
                self._buffer = [(p, s) for p, s in self._buffer if p != path] + [
                    (path, s) for s in buffered]
            return
        for unit in units_of(state, op):
            pending = {p for p, _ in (self._inflight.entries if self._inflight else [])}
            pending |= {p for p, _ in self._buffer}
            for path in pending:
                if write_unit_overlaps(unit, path):
                    self._doom(path, op)

    def _doom(self, path: str, op: dict[str, Any]) -> None:
        """Another write replaced the text under our splices: the server will refuse the
        batch in flight; the buffered ones never go out."""
        if self._inflight is not None:
            self._inflight.entries = [(p, s) for p, s in self._inflight.entries if p != path]
        self._buffer = [(p, s) for p, s in self._buffer if p != path]
        error = Conflict(f"{path} was overwritten by another write ({op.get('op')} "
                         f"{op.get('path')}) before these splices were sent",
                         {"paths": [path]})
        keep = []
        for waiter_path, future in self._buffer_waiters:
            if waiter_path == path:
                if not future.done():
                    future.set_exception(error)
            else:
                keep.append((waiter_path, future))
        self._buffer_waiters = keep

    def _reset(self, version: int, state: dict[str, Any], *, announce: bool = True) -> None:
        self._confirmed = state
        self.version = version
        self._view = None
        if self._inflight is not None and self._inflight.acked is not None \
                and self._inflight.acked <= version:
            self._splices_done(self._inflight, self._inflight.acked)
        if announce:
            self.resyncs += 1
            self._publish(Reset(self.id, version, copy.deepcopy(state)))
        else:
            self._wake_waiters()

    def _resync(self) -> None:
        async def fetch() -> None:
            await self.client.request("subscribe", doc=self.id, retry=True, within=300,
                                      on_reply=self._subscribed)

        self._spawn(fetch())

    def _publish(self, change: Change) -> None:
        for feed in self._feeds:
            feed.queue.append(change)
            feed.wake.set()
        self._wake_waiters()

    def _wake_waiters(self) -> None:
        keep = []
        for version, future in self._version_waiters:
            if self.version >= version:
                if not future.done():
                    future.set_result(None)
            else:
                keep.append((version, future))
        self._version_waiters = keep

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- iteration ------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[Change]:
        return self.changes()

    async def changes(self) -> AsyncIterator[Change]:
        """Every change after the current version, exactly once, in version order: a
        :class:`Delta` per accepted write, a :class:`Reset` if the state was replaced."""
        feed = _Feed()
        self._feeds.append(feed)
        try:
            while True:
                while feed.queue:
                    yield feed.queue.popleft()
                if self._failure is not None:
                    if isinstance(self._failure, ClientClosed):
                        return
                    raise self._failure
                feed.wake.clear()
                await feed.wake.wait()
        finally:
            with contextlib.suppress(ValueError):
                self._feeds.remove(feed)

    # -- writes ---------------------------------------------------------------------------

    async def _send(self, write: _Write) -> None:
        generation = self.client.connections
        try:
            # Its reply goes to _answered, which settles the write's outcome.
            await self.client.send_request(
                {"type": "patch", "doc": self.id, "base": write.base, "ops": write.ops,
                 "key": write.key},
                on_reply=lambda reply: self._answered(write, reply))
        except ConnectionLost:
            return  # the resume of the next connection sends it
        write.sent_on = generation

    def _answered(self, write: _Write, reply: dict[str, Any]) -> None:
        with contextlib.suppress(ValueError):
            self._writes.remove(write)
        if reply.get("type") == "ok":
            version = int(reply["version"])
            if version > self.version:
                self._own_versions.add(version)
            if write.splices is not None:
                write.splices.acked = version
                if self.version >= version:
                    self._splices_done(write.splices, version)
        if not write.outcome.done():
            write.outcome.set_result(reply)

    async def _submit(self, write: _Write) -> dict[str, Any]:
        """Queue ``write`` (sent now if the connection is resumed, else by the resume) and
        return its reply; ``unavailable`` and ``rate_limited`` are retried with its key."""
        backoff = Backoff(initial=0.1, maximum=3.0)
        for _ in range(WRITE_RETRIES):
            self._raise_if_failed()
            write.outcome = asyncio.get_running_loop().create_future()
            self._writes.append(write)
            if self._ready.is_set() and self.client.connected:
                await self._send(write)
            reply = await write.outcome
            if reply.get("type") == "ok":
                return reply
            error = error_from(reply)
            if not isinstance(error, Unavailable | RateLimited):
                return reply
            delay = (error.retry_after_ms / 1000 if isinstance(error, RateLimited)
                     and error.retry_after_ms else backoff.next_delay())
            await asyncio.sleep(delay)
        return reply

    def _new_write(self, ops: Ops, base: int, key: str | None) -> _Write:
        if not isinstance(ops, list) or not ops:
            raise BadRequest("ops must be a non-empty list of JSON Patch operations")
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        return _Write(list(ops), base, key or uuid.uuid4().hex, future)

    async def patch(
        self, ops: Ops, *, base: int | None = None, key: str | None = None,
        retry: RetryPolicy | None = None, attempts: int = 5,
    ) -> int:
        """Apply ``ops`` (RFC 6902, plus ``splice``) written against ``base`` (default: the
        replica's version); returns the new version once the replica holds it.

        On ``conflict``, ``retry`` (if given) is called with the fresh state and returns the
        ops to try again, or None to give up; at most ``attempts`` tries in all. Every other
        refusal raises its :mod:`~coedit_client.errors` exception.
        """
        for attempt in range(attempts):
            write = self._new_write(ops, self.version if base is None else base, key)
            reply = await self._submit(write)
            if reply.get("type") == "ok":
                version = int(reply["version"])
                await self.wait_version(version)
                return version
            error = error_from(reply)
            if not isinstance(error, Conflict) or retry is None or attempt + 1 >= attempts:
                raise error
            await self.wait_version(error.current_version or self.version)
            again = retry(copy.deepcopy(self.state))
            if again is None:
                raise error
            ops, base, key = again, None, None
        raise AssertionError("unreachable")

    async def splice(self, path: str, at: int, remove: int, insert: str) -> int:
        """Edit the text at ``path`` as :attr:`state` shows it now (code points); shown in
        :attr:`state` at once, merged with concurrent edits, and returns the version that
        carried it. A conflicting overwrite of the text raises :class:`Conflict`."""
        parse_pointer(path)
        current = self._text_at(path)
        if not isinstance(current, str):
            raise BadRequest(f"splice: {path!r} does not address a string")
        if at < 0 or remove < 0 or at + remove > len(current):
            raise BadRequest(f"splice: at {at} + remove {remove} passes the end of {path!r} "
                             f"({len(current)} characters)")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._buffer.append((path, Splice(at, remove, insert)))
        self._buffer_waiters.append((path, future))
        self._view = None
        self._flush_splices()
        return await future

    def _text_at(self, path: str) -> Any:
        node: Any = self.state
        for token in parse_pointer(path):
            if isinstance(node, dict) and token in node:
                node = node[token]
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                return None
        return node

    def _flush_splices(self) -> None:
        if self._inflight is not None or not self._buffer:
            return
        batch = _SpliceBatch(self._buffer, [f for _, f in self._buffer_waiters])
        self._buffer, self._buffer_waiters = [], []
        write = self._new_write([s.to_op(p) for p, s in batch.entries], self.version, None)
        write.splices = batch
        self._inflight = batch

        async def send() -> None:
            try:
                reply = await self._submit(write)
            except BaseException as exc:
                self._splices_failed(batch, exc)
                raise
            if reply.get("type") != "ok":
                self._splices_failed(batch, error_from(reply))

        self._spawn(send())

    def _splices_done(self, batch: _SpliceBatch, version: int) -> None:
        if self._inflight is batch:
            self._inflight = None
            self._view = None
        for future in batch.waiters:
            if not future.done():
                future.set_result(version)
        self._flush_splices()

    def _splices_failed(self, batch: _SpliceBatch, exc: BaseException) -> None:
        """The batch was refused: its splices leave the view, and so do the buffered ones on
        the same texts, which were made on top of it."""
        if self._inflight is batch:
            self._inflight = None
        paths = {p for p, _ in batch.entries} | (
            {p for p, _ in self._buffer} if isinstance(exc, Conflict) else set())
        for future in batch.waiters:
            if not future.done():
                future.set_exception(exc)
        self._buffer = [(p, s) for p, s in self._buffer if p not in paths]
        keep = []
        for path, future in self._buffer_waiters:
            if path in paths:
                if not future.done():
                    future.set_exception(exc)
            else:
                keep.append((path, future))
        self._buffer_waiters = keep
        self._view = None
        self._flush_splices()

    # -- presence and locks ---------------------------------------------------------------

    async def set_presence(self, state: dict[str, Any]) -> None:
        """This connection's presence on the document (kept across reconnects)."""
        self._presence_state = dict(state)
        await self.client.request("presence", doc=self.id, state=self._presence_state,
                                  retry=True)

    def lock(self, path: str, *, ttl_ms: int = 30_000, force: bool = False,
             cancel_on_loss: bool = True) -> Lock:
        """``async with doc.lock(path) as lock:`` an edit lock, renewed while held and
        released at the end; see :class:`~coedit_client.locks.Lock`."""
        from coedit_client.locks import Lock

        return Lock(self, path, ttl_ms=ttl_ms, force=force, cancel_on_loss=cancel_on_loss)

    def _hold(self, lock: Lock) -> None:
        self._held.append(lock)

    def _release(self, lock: Lock) -> None:
        with contextlib.suppress(ValueError):
            self._held.remove(lock)

