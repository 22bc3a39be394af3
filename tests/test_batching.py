"""The group-commit scheduler on its own: when a second batch may start, and answer order.

``GroupCommit`` knows nothing of databases: it calls a batch function and settles futures.
Its promises about overlap and order are about timing, which a real database makes hard to
pin down, so these tests drive it with a batch function whose progress each test controls
(the database behaviour itself is covered over real databases in test_group_commit.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from persistence.batching import GroupCommit

TIMEOUT = 5.0


class Gated:
    """A batch function that holds each batch at two gates: before it reports its locks
    held, and before it returns."""

    def __init__(self) -> None:
        self.started: list[list[str]] = []
        self.running = 0
        self.most_running = 0
        self.lock_gates: list[asyncio.Event] = []
        self.end_gates: list[asyncio.Event] = []

    async def __call__(self, requests: list[str], ordered: Callable[[], None]) -> list[str]:
        index = len(self.started)
        self.started.append(list(requests))
        self.lock_gates.append(asyncio.Event())
        self.end_gates.append(asyncio.Event())
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self.lock_gates[index].wait()
            ordered()
            await self.end_gates[index].wait()
        finally:
            self.running -= 1
        return [f"done {r}" for r in requests]


async def _turns(count: int = 5) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def test_next_batch_starts_once_the_previous_holds_its_locks() -> None:
    """A second batch starts only after the first reported its locks held, and before the
    first has finished."""
    gated = Gated()
    group: GroupCommit[str, str] = GroupCommit(gated, max_batch=8)
    first = group.submit("a")
    await _turns()
    second = group.submit("b")
    await _turns()
    assert gated.started == [["a"]]  # the first has not locked yet: "b" waits
    gated.lock_gates[0].set()
    await _turns()
    assert gated.started == [["a"], ["b"]]
    assert gated.running == 2
    gated.lock_gates[1].set()
    gated.end_gates[0].set()
    gated.end_gates[1].set()
    assert await asyncio.wait_for(first, TIMEOUT) == "done a"
    assert await asyncio.wait_for(second, TIMEOUT) == "done b"


async def test_answers_keep_submission_order_when_a_later_batch_ends_first() -> None:
    """If the later batch's transaction ends first, its futures still settle only after the
    earlier batch's."""
    gated = Gated()
    group: GroupCommit[str, str] = GroupCommit(gated, max_batch=8)
    settled: list[str] = []
    first = group.submit("a")
    first.add_done_callback(lambda f: settled.append(f.result()))
    await _turns()
    gated.lock_gates[0].set()
    second = group.submit("b")
    second.add_done_callback(lambda f: settled.append(f.result()))
    await _turns()
    gated.lock_gates[1].set()
    gated.end_gates[1].set()  # the later batch finishes first
    await _turns()
    assert settled == []
    gated.end_gates[0].set()
    await asyncio.wait_for(asyncio.gather(first, second), TIMEOUT)
    assert settled == ["done a", "done b"]


@pytest.mark.parametrize("limit", [1, 2])
async def test_no_more_than_the_allowed_batches_run_at_once(limit: int) -> None:
    """However many requests wait, at most ``max_in_flight`` batches run, and the requests
    that waited meanwhile ride together in the next batch."""
    gated = Gated()
    group: GroupCommit[str, str] = GroupCommit(gated, max_batch=8, max_in_flight=limit)
    futures = [group.submit("r0")]
    await _turns()
    gated.lock_gates[0].set()
    await _turns()
    futures += [group.submit(f"r{n}") for n in range(1, 6)]
    await _turns()
    for gate in gated.lock_gates:
        gate.set()
    await _turns()
    assert len(gated.started) == limit
    for _ in range(6):
        for gate in gated.lock_gates + gated.end_gates:
            gate.set()
        await _turns()
    results = await asyncio.wait_for(asyncio.gather(*futures), TIMEOUT)
    assert results == [f"done r{n}" for n in range(6)]
    assert gated.most_running <= limit
    assert [r for batch in gated.started for r in batch] == [f"r{n}" for n in range(6)]
    assert len(gated.started) < 6  # the waiting requests were batched, not run one by one
