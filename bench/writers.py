"""The writing side of the scenarios: three ways of sending patches, each for a reason.

* :class:`PacedWriter` (fan-out): one document, patches pipelined, paced by *pacer*
  subscribers on every node. The server's outboxes cut a subscriber that falls 1,024 frames
  behind, so a writer limited only by acknowledgements (which come back long before the
  fan-out finished) would measure how fast coedit closes slow consumers. Keeping at most
  ``window`` versions ahead of the slowest pacer writes as fast as the fan-out delivers.
* :class:`AckWriter` (commits/s): closed loop, one patch in flight per writer, like a client
  that waits for ``ok`` before its next edit. On one hot document each writer writes its
  own field and bases its patch on the last version it knows, so the server rebases; with
  ``splice`` they all type into one string instead, so the server carries every splice past
  the ones committed since its base.
* :class:`RateWriter` (latency): open loop at a fixed rate, every patch carrying the
  monotonic time it was sent (``t=<ns>``) so subscribers in other processes can time it.
  Open loop means a slow server shows up as latency, not as a lower send rate.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from bench.coedit_client import CoeditClient

__all__ = ["AckWriter", "PacedWriter", "RateWriter", "WriteStats"]


@dataclass
class WriteStats:
    sent: int = 0
    acked: int = 0
    errors: int = 0
    rebased: int = 0
    first_error: str = ""
    ack_times: list[float] = field(default_factory=list)

    def count_reply(self, reply: dict[str, Any], now: float) -> None:
        if reply.get("type") == "ok":
            self.acked += 1
            self.ack_times.append(now)
            if reply.get("rebased"):
                self.rebased += 1
        else:
            self.errors += 1
            if not self.first_error:
                self.first_error = str(reply)[:300]

    def acked_between(self, start: float, end: float) -> int:
        return sum(1 for t in self.ack_times if start <= t < end)


def patch(doc: str, base: int, path: str, value: str) -> dict[str, Any]:
    return {"type": "patch", "doc": doc, "base": base,
            "ops": [{"op": "replace", "path": path, "value": value}]}


def splice(doc: str, base: int, path: str, text: str) -> dict[str, Any]:
    """Type ``text`` at the start of the string at ``path`` (valid from any base)."""
    return {"type": "patch", "doc": doc, "base": base,
            "ops": [{"op": "splice", "path": path, "at": 0, "remove": 0, "insert": text}]}


class PacedWriter:
    """Patches ``doc`` as fast as the slowest pacer receives the deltas."""

    def __init__(self, writer: CoeditClient, pacers: list[CoeditClient], doc: str,
                 version: int, value: str, *, window: int = 8, stamped: bool = False) -> None:
        self.writer = writer
        self.pacers = pacers
        self.doc = doc
        self.version = version
        self.value = value
        self.window = window
        # Each patch's value starts with the monotonic time it was sent (same length), so
        # subscribers can time the delivery, as RateWriter's do.
        self.stamped = stamped
        self.stats = WriteStats()
        writer.on_reply = self.stats.count_reply
        # One event for all pacers: any delta anywhere may be the one the writer waits for.
        self.progress = asyncio.Event()
        for pacer in pacers:
            pacer.progress = self.progress

    def _delivered(self) -> int:
        return min(p.latest.get(self.doc, 0) for p in self.pacers)

    async def run(self) -> None:
        while True:
            while self.version - self._delivered() >= self.window:
                self.progress.clear()
                await self.progress.wait()
            value = self.value
            if self.stamped:
                stamp = f"t={time.monotonic_ns()}"
                value = stamp + value[len(stamp):]
            self.writer.send(patch(self.doc, self.version, "/text", value))
            self.version += 1
            self.stats.sent += 1


class AckWriter:
    """One patch in flight; the next goes when the ``ok`` came back.

    With several documents the writer takes them in turn, each patch based on the version
    that document's last reply gave: how writes spread over many documents behave.
    """

    def __init__(self, client: CoeditClient, docs: list[str], version: int, path: str,
                 value: str, *, splices: bool = False) -> None:
        self.client = client
        self.make = splice if splices else patch
        self.docs = docs
        self.versions = dict.fromkeys(docs, version)
        self.path = path
        self.value = value
        self.stats = WriteStats()
        # Python 3.11's wait_for() can swallow a cancellation that races with its result
        # (CPython gh-86296), so cancelling alone may leave this loop running: stop by flag.
        self.stopped = False

    async def run(self) -> None:
        turn = 0
        while not self.stopped:
            doc = self.docs[turn % len(self.docs)]
            turn += 1
            self.stats.sent += 1
            try:
                reply = await self.client.request(self.make(doc, self.versions[doc], self.path,
                                                            self.value))
            except Exception as exc:
                self.stats.errors += 1
                self.stats.first_error = self.stats.first_error or str(exc)[:300]
                await asyncio.sleep(0.01)
                continue
            self.stats.count_reply(reply, time.monotonic())
            if "version" in reply:
                self.versions[doc] = int(reply["version"])


class RateWriter:
    """``rate`` patches a second on ``doc``, whatever the replies do."""

    def __init__(self, client: CoeditClient, doc: str, version: int, rate: float,
                 *, phase: float = 0.0, pad: int = 120) -> None:
        self.client = client
        self.doc = doc
        self.version = version
        self.interval = 1.0 / rate
        self.phase = phase  # 0..1 of an interval: writers of one run must not send in step
        self.pad = pad
        self.stats = WriteStats()
        # When each request went out, so the reply's round trip can be reported beside the
        # delta's latency: it tells node A's share (read, write, commit, reply) apart.
        self.sent_at: dict[int, float] = {}
        self.ack_ms: list[tuple[float, float]] = []  # (reply time, round trip in ms)
        client.on_reply = self._reply

    def _reply(self, reply: dict[str, Any], now: float) -> None:
        self.stats.count_reply(reply, now)
        sent = self.sent_at.pop(reply.get("re", -1), None)
        if sent is not None:
            self.ack_ms.append((now, (now - sent) * 1e3))

    def ack_ms_between(self, start: float, end: float) -> list[float]:
        return [ms for at, ms in self.ack_ms if start <= at < end]

    async def run(self) -> None:
        next_at = time.monotonic() + self.phase * self.interval
        await asyncio.sleep(self.phase * self.interval)
        while True:
            sent = time.monotonic_ns()
            stamp = f"t={sent}"
            rid = self.client.send(patch(self.doc, self.version, "/text",
                                         stamp + "." * max(0, self.pad - len(stamp))))
            self.sent_at[rid] = sent / 1e9
            self.version += 1
            self.stats.sent += 1
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
