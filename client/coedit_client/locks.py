"""Edit locks held by a block of code (PROTOCOL.md section 7).

``async with doc.lock("/valuation/wacc", ttl_ms=10_000) as lock:`` takes the lock, renews it
every third of its ttl while the block runs (the node renews it too while the connection
heartbeats; the client's own renewal also notices a lock that was taken away), exposes the
fencing ``lock.token``, and releases it at the end.

A lock belongs to one WebSocket session, so it ends when the connection drops, and an admin
may take it (``unlocked`` with reason ``stolen``). Either way the block is interrupted, like
``asyncio.timeout`` interrupts one: the task running it is cancelled and the ``async with``
raises :class:`~coedit_client.errors.LockStolen` or :class:`~coedit_client.errors.LockLost`,
so code that needed the lock never goes on believing it holds it. With
``cancel_on_loss=False`` the block runs on and the exception comes at its end; ``lock.is_lost``
and :meth:`Lock.check` tell it sooner.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import TYPE_CHECKING, Any

from coedit_client.backoff import Backoff
from coedit_client.errors import (
    ClientClosed,
    CoeditError,
    ConnectionLost,
    Locked,
    LockLost,
    LockStolen,
    Unauthorized,
)

if TYPE_CHECKING:
    from coedit_client.documents import Document

__all__ = ["Lock"]


class Lock:
    def __init__(self, doc: Document, path: str, *, ttl_ms: int, force: bool,
                 cancel_on_loss: bool) -> None:
        self.doc = doc
        self.path = path
        self.ttl_ms = ttl_ms
        self.force = force
        self.cancel_on_loss = cancel_on_loss
        self.info: dict[str, Any] = {}
        self.renewals = 0
        self.reason: str | None = None  # why it was lost
        self._session: str | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._task: asyncio.Task[Any] | None = None
        self._cancelled = False

    @property
    def token(self) -> int:
        """The fencing token: greater than every token granted before on this document."""
        return int(self.info["token"])

    @property
    def expires_at(self) -> str | None:
        value = self.info.get("expires_at")
        return value if isinstance(value, str) else None

    @property
    def is_lost(self) -> bool:
        return self.reason is not None

    def check(self) -> None:
        """Raise if the lock is no longer held."""
        if self.reason is not None:
            raise self._error()

    def _error(self) -> LockLost:
        message = f"lock on {self.doc.id}{self.path or ' (whole document)'} {self.reason}"
        cls = LockStolen if self.reason == "stolen" else LockLost
        return cls(message, {"path": self.path, "reason": self.reason, "lock": self.info})

    async def acquire(self) -> Lock:
        """Take the lock. One still held by an earlier session of this client (its
        connection dropped, and the server has not noticed yet) is waited for, at most its
        ttl: it ends when the server sees the old connection gone, or expires."""
        fields: dict[str, Any] = {"doc": self.doc.id, "path": self.path, "ttl_ms": self.ttl_ms}
        if self.force:
            fields["force"] = True
        client = self.doc.client
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ttl_ms / 1000 + 5
        backoff = Backoff(initial=0.05, maximum=1.0)
        while True:
            try:
                reply = await client.request("lock", retry=True, **fields)
                break
            except Locked as exc:
                holder = (exc.lock or {}).get("holder") or {}
                if holder.get("session") not in client.past_sessions or loop.time() > deadline:
                    raise
            await asyncio.sleep(backoff.next_delay())
        self.info = reply["lock"]
        self._session = self.doc.client.session
        self.reason = None
        self.doc._hold(self)
        self._renewer = asyncio.create_task(self._renew(), name=f"lock-renewal {self.path}")
        return self

    async def release(self) -> None:
        self.doc._release(self)
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        if self.reason is None:
            self.reason = "released"
            if self.doc.client.session == self._session:
                with contextlib.suppress(CoeditError):
                    await self.doc.client.request("unlock", doc=self.doc.id, path=self.path)

    async def _renew(self) -> None:
        """Lock again every third of the ttl: the server renews what one holds and keeps the
        token; a refusal or another token means it was taken."""
        while self.reason is None:
            await asyncio.sleep(self.ttl_ms / 3000)
            if self.reason is not None:
                return
            try:
                reply = await self.doc.client.request(
                    "lock", doc=self.doc.id, path=self.path, ttl_ms=self.ttl_ms)
            except Locked:
                self.mark_lost("stolen")
                return
            except ConnectionLost:
                self.mark_lost("disconnected")
                return
            except (ClientClosed, Unauthorized):
                self.mark_lost("closed")
                return
            except CoeditError:
                continue  # unavailable, rate limited: the node's own renewal carries it
            if int(reply["lock"]["token"]) != self.token:
                self.mark_lost("expired")
                return
            self.info = reply["lock"]
            self.renewals += 1

    def mark_lost(self, reason: str) -> None:
        """Called when the lock ended under us (a steal, the connection, an expiry)."""
        if self.reason is not None:
            return
        self.reason = reason
        self.doc._release(self)
        renewer = self._renewer
        if renewer is not None and renewer is not asyncio.current_task():
            renewer.cancel()
        if self.cancel_on_loss and self._task is not None and not self._task.done():
            self._cancelled = True
            self._task.cancel()

    async def __aenter__(self) -> Lock:
        await self.acquire()
        self._task = asyncio.current_task()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self._task = None
        lost = self.reason is not None
        await self.release()
        if lost:
            if self._cancelled and exc_type is asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.uncancel() > 0:
                    return  # cancelled from elsewhere as well: let that through
                raise self._error() from None
            if exc is None:
                raise self._error()
