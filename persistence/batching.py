"""Group commit: requests that arrive while a transaction is in flight share the next one.

A write transaction costs its round trips (BEGIN, the statements, COMMIT and its WAL flush)
whether it carries one request or sixty-four, so under load the node runs out of CPU on the
round trips of one-request transactions long before the database runs out of anything. Here
at most one batch transaction is in flight: a request submitted while none is starts at once
(a lone writer waits for nobody), and requests submitted meanwhile wait and then go together.

Guarantees:

- FIFO: a request submitted before another commits no later than it, so a caller may submit
  several requests in a row and await their futures in order.
- Isolation of failures: the batch function reports each request's own refusal separately;
  when the batch *transaction* fails (a deadlock, a constraint, any database error), each of
  its requests is run again alone, in order, so one request's database error never fails
  another. A lone request's error reaches its caller as it is.
- A failure while committing is not retried: the batch may have committed, and running its
  requests again could apply them twice. Every request of the batch gets that error, as a
  lone request would have.
- A request whose caller gave up (its future was cancelled) before its batch started is
  dropped; one that was already in flight may still commit, its result unread.

There is no backpressure beyond the callers themselves: each waits for its future, so the
queue holds at most what callers have submitted and not yet seen answered.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from persistence.errors import CoeditError

__all__ = ["CommitFailed", "GroupCommit"]

RequestT = TypeVar("RequestT")
ResultT = TypeVar("ResultT")

# One batch: the requests in submission order and what became of each, a result or the
# request's own refusal.
CommitBatch = Callable[[list[RequestT]], Awaitable[Sequence[ResultT | CoeditError]]]


class CommitFailed(Exception):
    """Raised by a batch function when COMMIT itself failed: the outcome is unknown.

    ``cause`` is the database's error, which each request of the batch receives.
    """

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


class GroupCommit(Generic[RequestT, ResultT]):
    """Runs submitted requests through ``commit`` in FIFO batches, one batch at a time.

    The batch task exists only while requests wait or run, so there is nothing to start or
    stop: an idle instance holds no task.
    """

    def __init__(self, commit: CommitBatch[RequestT, ResultT], *, max_batch: int = 64,
                 name: str = "group-commit") -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._commit = commit
        self._max_batch = max_batch
        self._name = name
        self._waiting: deque[tuple[RequestT, asyncio.Future[ResultT]]] = deque()
        self._running: list[tuple[RequestT, asyncio.Future[ResultT]]] = []
        self._task: asyncio.Task[None] | None = None

    def submit(self, request: RequestT) -> asyncio.Future[ResultT]:
        """Queue ``request``; the future resolves once its batch committed (or it failed)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ResultT] = loop.create_future()
        self._waiting.append((request, future))
        if self._task is None:
            # Started on the next loop turn: everything submitted before then (a caller
            # pipelining several requests) already rides in the first batch.
            self._task = loop.create_task(self._drain(), name=self._name)
        return future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = self._next_batch()
                if batch:
                    self._running = batch
                    await self._run(batch)
                    self._running = []
        finally:
            # Normally both are empty here. If this task was cancelled (the loop is shutting
            # down) or failed, nobody would ever answer these callers: tell them.
            abandoned = self._running + list(self._waiting)
            self._running = []
            self._waiting.clear()
            self._task = None
            for _, future in abandoned:
                future.cancel()

    def _next_batch(self) -> list[tuple[RequestT, asyncio.Future[ResultT]]]:
        batch: list[tuple[RequestT, asyncio.Future[ResultT]]] = []
        while self._waiting and len(batch) < self._max_batch:
            request, future = self._waiting.popleft()
            if not future.cancelled():
                batch.append((request, future))
        return batch

    async def _run(self, batch: list[tuple[RequestT, asyncio.Future[ResultT]]]) -> None:
        try:
            outcomes = await self._commit([request for request, _ in batch])
        except CommitFailed as failed:
            for _, future in batch:
                _settle(future, failed.cause)
            return
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exc)
                return
            # The transaction rolled back as a whole: run each request alone, still in order,
            # so the error stays with the request that caused it.
            for item in batch:
                if not item[1].cancelled():
                    await self._run([item])
            return
        if len(outcomes) != len(batch):
            raise RuntimeError(f"a batch of {len(batch)} answered {len(outcomes)} outcomes")
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            _settle(future, outcome)


def _settle(future: asyncio.Future[ResultT], outcome: ResultT | Exception) -> None:
    if future.done():  # the caller gave up while its batch ran
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
