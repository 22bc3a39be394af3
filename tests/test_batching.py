"""The group-commit scheduler on its own: when a second batch may start, and answer order.

Requests here are strings "<document>:<name>"; the scheduler's key is the document.

``GroupCommit`` knows nothing of databases: it calls a batch function and settles futures.
Its promises about overlap and order are about timing, which a real database makes hard to
pin down, so these tests drive it with a batch function whose progress each test controls
(the database behaviour itself is covered over real databases in test_group_commit.py).
"""

from __future__ import annotations

import asyncio

import pytest

from persistence.batching import GroupCommit

TIMEOUT = 5.0


class Gated:
    """A batch function that holds each batch until the test opens its gate."""

    def __init__(self) -> None:
        self.started: list[list[str]] = []
        self.running = 0
        self.most_running = 0
        self.end_gates: list[asyncio.Event] = []

    async def __call__(self, requests: list[str]) -> list[str]:
        index = len(self.started)
        self.started.append(list(requests))
        self.end_gates.append(asyncio.Event())
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self.end_gates[index].wait()
        finally:
            self.running -= 1
        return [f"done {r}" for r in requests]


def document(request: str) -> str:
    return request.split(":", 1)[0]


def scheduler(gated: Gated, **options: int) -> GroupCommit[str, str]:
    return GroupCommit(gated, key=document, max_batch=8, **options)


async def _turns(count: int = 5) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def test_a_batch_on_other_documents_starts_while_the_first_runs() -> None:
    """A second batch touching none of the first's documents starts before the first ends."""
    gated = Gated()
    group = scheduler(gated, max_in_flight=2)
    first = group.submit("a:1")
    await _turns()
    second = group.submit("b:1")
    await _turns()
    assert gated.started == [["a:1"], ["b:1"]]
    assert gated.running == 2
    gated.end_gates[0].set()
    gated.end_gates[1].set()
    assert await asyncio.wait_for(first, TIMEOUT) == "done a:1"
    assert await asyncio.wait_for(second, TIMEOUT) == "done b:1"


async def test_a_batch_sharing_a_document_starts_after_the_one_in_flight() -> None:
    """A batch that writes a document of a running batch starts only once that one ended, so
    it reads what the first wrote; requests arriving meanwhile join it."""
    gated = Gated()
    group = scheduler(gated, max_in_flight=2)
    first = group.submit("a:1")
    await _turns()
    later = [group.submit("b:1"), group.submit("a:2")]
    await _turns()
    assert gated.started == [["a:1"]]  # the waiting batch holds "a", which is in flight
    gated.end_gates[0].set()
    await _turns()
    assert gated.started == [["a:1"], ["b:1", "a:2"]]
    gated.end_gates[1].set()
    results = await asyncio.wait_for(asyncio.gather(first, *later), TIMEOUT)
    assert results == ["done a:1", "done b:1", "done a:2"]


async def test_answers_keep_submission_order_when_a_later_batch_ends_first() -> None:
    """If the later batch's transaction ends first, its futures still settle only after the
    earlier batch's."""
    gated = Gated()
    group = scheduler(gated, max_in_flight=2)
    settled: list[str] = []
    first = group.submit("a:1")
    first.add_done_callback(lambda f: settled.append(f.result()))
    await _turns()
    second = group.submit("b:1")
    second.add_done_callback(lambda f: settled.append(f.result()))
    await _turns()
    gated.end_gates[1].set()  # the later batch finishes first
    await _turns()
    assert settled == []
    gated.end_gates[0].set()
    await asyncio.wait_for(asyncio.gather(first, second), TIMEOUT)
    assert settled == ["done a:1", "done b:1"]


@pytest.mark.parametrize("limit", [1, 2])
async def test_no_more_than_the_allowed_batches_run_at_once(limit: int) -> None:
    """However many requests wait, at most ``max_in_flight`` batches run, and the requests
    that waited meanwhile ride together in the next batch."""
    gated = Gated()
    group = scheduler(gated, max_in_flight=limit)
    futures = [group.submit("d0:r0")]
    await _turns()
    futures += [group.submit(f"d{n}:r{n}") for n in range(1, 6)]
    await _turns()
    assert len(gated.started) == limit
    for _ in range(6):
        for gate in gated.end_gates:
            gate.set()
        await _turns()
    results = await asyncio.wait_for(asyncio.gather(*futures), TIMEOUT)
    assert results == [f"done d{n}:r{n}" for n in range(6)]
    assert gated.most_running <= limit
    assert [r for batch in gated.started for r in batch] == [f"d{n}:r{n}" for n in range(6)]
    assert len(gated.started) < 6  # the waiting requests were batched, not run one by one


async def test_callers_waiting_behind_a_batch_are_told_when_the_scheduler_stops() -> None:
    """If the scheduler's task is cancelled (the loop shutting down) while a batch waits for
    one on the same document, both batches' callers see their futures cancelled: none is
    left waiting forever."""
    gated = Gated()
    group = scheduler(gated, max_in_flight=2)
    first = group.submit("a:1")
    await _turns()
    second = group.submit("a:2")
    await _turns()
    assert gated.started == [["a:1"]]
    drain = group._task
    assert drain is not None
    drain.cancel()
    await asyncio.wait_for(asyncio.wait([drain]), TIMEOUT)
    await _turns()
    assert first.cancelled() and second.cancelled()
