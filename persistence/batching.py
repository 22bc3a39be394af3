"""Group commit: requests that arrive while a transaction is in flight share the next one.

A write transaction costs its round trips whether it carries one request or sixty-four, so
under load the node runs out of CPU on the round trips of one-request transactions long
before the database runs out of anything. Here a request submitted while no batch is open
starts at once (a lone writer waits for nobody), and requests submitted meanwhile wait and
then go together. Several batches may be in flight (``max_in_flight``), as long as they touch
different rows: each request names its rows (``key``, a document id), and a batch that shares
a row with one in flight starts only once that one has finished.

Guarantees:

- FIFO: requests on the same rows commit in submission order (a later batch reads a row only
  after the earlier batch that writes it has ended), and every future is settled in
  submission order, so a caller may submit several requests in a row and await their
  futures in order. One exception: when a batch fails in the database (below), its
  requests are retried alone, in order, while batches on other rows go on.
- Isolation of failures: the batch function reports each request's own refusal separately;
  when the batch *transaction* fails (a deadlock, a constraint, any database error), each of
  its requests is run again alone, in order, so one request's database error never fails
  another. A lone request's error reaches its caller as it is.
- A failure while committing is not retried: the batch may have committed, and running its
  requests again could apply them twice. The batch function says so by raising
  :class:`CommitFailed`; every request of the batch gets its cause, as a lone request would
  have.
- A request whose caller gave up (its future was cancelled) before its batch started is
  dropped; one that was already in flight may still commit, its result unread.

There is no backpressure beyond the callers themselves: each waits for its future, so the
queue holds at most what callers have submitted and not yet seen answered.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

from persistence.errors import CoeditError
from persistence.write_failures import CommitFailed

__all__ = ["GroupCommit"]

RequestT = TypeVar("RequestT")
ResultT = TypeVar("ResultT")

# One batch: the requests in submission order; it answers what became of each request, a
# result or the request's own refusal.
CommitBatch = Callable[[list[RequestT]], Awaitable[Sequence[ResultT | CoeditError]]]
Item = tuple[RequestT, "asyncio.Future[ResultT]"]


class GroupCommit(Generic[RequestT, ResultT]):
    """Runs submitted requests through ``commit`` in FIFO batches, several at a time.

    A batch's transaction spends most of its life waiting for the database's round trips and
    its commit's WAL flush; meanwhile the node can prepare and send another batch. Two
    batches in flight never share a row: a batch whose keys meet those of one in flight
    waits for it to end, so it reads what that one wrote, and futures are settled in
    submission order whatever order the transactions finish in. The batch task exists only
    while requests wait or run, so an idle instance holds no task.
    """

    def __init__(self, commit: CommitBatch[RequestT, ResultT], *,
                 key: Callable[[RequestT], Hashable], max_batch: int = 64,
                 max_in_flight: int = 1, name: str = "group-commit") -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self._commit = commit
        self._key = key
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._name = name
        self._waiting: deque[Item[RequestT, ResultT]] = deque()
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Future[None] | None = None

    def submit(self, request: RequestT) -> asyncio.Future[ResultT]:
        """Queue ``request``; the future resolves once its batch committed (or it failed)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ResultT] = loop.create_future()
        self._waiting.append((request, future))
        if self._task is None:
            # Started on the next loop turn: everything submitted before then (a caller
            # pipelining several requests) already rides in the first batch.
            self._task = loop.create_task(self._drain(), name=self._name)
        elif self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)
        return future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        in_flight: dict[asyncio.Task[None], frozenset[Hashable]] = {}
        try:
            while True:
                for task in [t for t in in_flight if t.done()]:
                    del in_flight[task]
                if self._waiting and len(in_flight) < self._max_in_flight:
                    batch = self._next_batch()
                    if not batch:
                        continue
                    keys = frozenset(self._key(request) for request, _ in batch)
                    overlapping = [t for t, held in in_flight.items() if held & keys]
                    if overlapping:  # it must read what they write: after them
                        try:
                            await asyncio.wait(overlapping)
                        except BaseException:
                            for _, future in batch:  # out of the queue, not yet in flight
                                future.cancel()
                            raise
                    previous = next(reversed(in_flight), None)
                    task = loop.create_task(self._run(batch, previous))
                    in_flight[task] = keys
                    # One loop turn for the batch to send its first statement before the
                    # next batch is formed from what arrived meanwhile.
                    await asyncio.sleep(0)
                elif in_flight:
                    # Wait for a batch to end, or for a request to arrive while one is open.
                    self._wakeup = loop.create_future()
                    waits: list[asyncio.Future[Any]] = [*in_flight]
                    if len(in_flight) < self._max_in_flight:
                        waits.append(self._wakeup)
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                    self._wakeup = None
                else:
                    return
        finally:
            # Normally nothing is left here. If this task was cancelled (the loop is shutting
            # down) or failed, nobody would ever answer these callers: tell them.
            for task in in_flight:
                task.cancel()
            abandoned = list(self._waiting)
            self._waiting.clear()
            self._task = None
            self._wakeup = None
            for _, future in abandoned:
                future.cancel()

    def _next_batch(self) -> list[Item[RequestT, ResultT]]:
        batch: list[Item[RequestT, ResultT]] = []
        while self._waiting and len(batch) < self._max_batch:
            request, future = self._waiting.popleft()
            if not future.cancelled():
                batch.append((request, future))
        return batch

    async def _run(self, batch: list[Item[RequestT, ResultT]],
                   previous: asyncio.Task[None] | None) -> None:
        try:
            try:
                outcomes = await self._commit([request for request, _ in batch])
            except CommitFailed as failed:
                await _after(previous)
                for _, future in batch:
                    _settle(future, failed.cause)
                return
            except Exception as exc:
                await _after(previous)
                if len(batch) == 1:
                    _settle(batch[0][1], exc)
                    return
                # The transaction rolled back as a whole: run each request alone, in order,
                # so the error stays with the request that caused it.
                for item in batch:
                    if not item[1].cancelled():
                        await self._run([item], None)
                return
            if len(outcomes) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} answered {len(outcomes)} outcomes")
            await _after(previous)
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                _settle(future, outcome)
        finally:
            for _, future in batch:
                if not future.done():  # cancelled mid-flight: the loop is going away
                    future.cancel()


async def _after(previous: asyncio.Task[None] | None) -> None:
    """Settle nothing before the batch submitted earlier has settled its own."""
    if previous is not None and not previous.done():
        await asyncio.wait([previous])

def _settle(future: asyncio.Future[ResultT], outcome: ResultT | Exception) -> None:
    if future.done():  # the caller gave up while its batch ran
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
