"""A WebSocket frame fuzzer: hypothesis makes frames that are wrong in every way a client can
get one wrong, a live server must answer each with a contract error and change nothing.

Every frame is malformed by construction (a type that does not exist, an id of the wrong
kind, a field of a request that cannot be valid, bytes that are not JSON or MessagePack,
truncated MessagePack, invalid UTF-8, lone surrogates, deep nesting, huge integers), so the
one right answer to each is exactly one ``error`` frame with a contract code other than
``internal``, and the connection stays open. ``python -m bench fuzz`` runs it at volume;
tests/test_fuzz_frames.py runs a sample in the suite.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

__all__ = ["CONTRACT_CODES", "FuzzReport", "aim", "batches", "fuzz"]

CONTRACT_CODES = frozenset({
    "bad_request", "unauthorized", "forbidden", "not_found", "conflict", "invalid_transition",
    "locked", "too_large", "precondition_required", "rate_limited", "unavailable"})
"""The codes a malformed frame may get: every code of the contract but ``internal``."""
SUBPROTOCOLS = ("coedit.v1.json", "coedit.v1.msgpack")
REPLY_TIMEOUT = 10.0

PLACEHOLDERS = tuple(f"00000000-0000-4000-8000-{n:012d}" for n in range(3))
"""Document ids the frames are made with, swapped for real ones by :func:`aim`: a UUID for a
UUID, the same length, so MessagePack's length prefixes stay right."""

Frame = tuple[str, str | bytes]
"""An encoding's name and what goes on the wire (text frame for str, binary for bytes)."""

_ints64 = st.integers(min_value=-(2**63), max_value=2**64 - 1)
_text = st.text(max_size=40)
_leaf = st.none() | st.booleans() | _ints64 | st.floats(allow_nan=False) | _text
_json = st.recursive(_leaf, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(_text, inner, max_size=4), max_leaves=5)
_not_string = st.none() | st.booleans() | _ints64 | st.lists(_leaf, max_size=3) \
    | st.dictionaries(_text, _leaf, max_size=3)
_bad_id = st.booleans() | st.floats() | st.lists(_leaf, max_size=2) | st.just("") \
    | st.text(min_size=129, max_size=300)
_good_id = st.integers(min_value=-(2**63), max_value=2**63) | st.text(min_size=1, max_size=128)


def _unknown_type() -> st.SearchStrategy[Any]:
    known = {"heartbeat", "subscribe", "unsubscribe", "patch", "create", "presence", "lock",
             "unlock"}
    return _text.filter(lambda t: t not in known) | _not_string


def _broken_request(docs: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """A known request type with an id and a field that can never be valid."""
    doc = st.sampled_from(docs) | _text
    rid = _good_id
    return st.one_of(
        st.fixed_dictionaries({"type": st.just("patch"), "id": rid, "doc": doc,
                               "base": _ints64 | _not_string,
                               "ops": st.just([]) | _not_string.filter(
                                   lambda v: not isinstance(v, list))}),
        st.fixed_dictionaries({"type": st.just("create"), "id": rid,
                               "kind": st.from_regex(r"[A-Z0-9_ .-][a-z]{0,5}", fullmatch=True)
                               | _not_string, "title": _json, "state": _json}),
        st.fixed_dictionaries({"type": st.just("subscribe"), "id": rid,
                               "stream": _not_string.filter(
                                   lambda v: not isinstance(v, dict) and v is not None)}),
        st.fixed_dictionaries({"type": st.just("unsubscribe"), "id": rid,
                               "doc": _not_string}),
        st.fixed_dictionaries({"type": st.just("presence"), "id": rid, "doc": doc,
                               "state": _not_string.filter(lambda v: not isinstance(v, dict))}),
        st.fixed_dictionaries({"type": st.sampled_from(["lock", "unlock"]), "id": rid,
                               "doc": doc, "path": _not_string}),
    )


def _messages(docs: list[str]) -> st.SearchStrategy[Any]:
    """Decoded messages that are wrong: not a map, an unknown type, a bad id, a bad field."""
    extra = st.dictionaries(_text, _json, max_size=2)
    return st.one_of(
        _json.filter(lambda v: not isinstance(v, dict)),
        st.builds(lambda t, i, x: {**x, "type": t, "id": i}, _unknown_type(), _good_id, extra),
        st.builds(lambda t, i, x: {**x, "type": t, "id": i},
                  st.sampled_from(["subscribe", "patch", "create", "lock", "heartbeat"]),
                  _bad_id, extra),
        st.builds(lambda m, x: {**x, **m}, _broken_request(docs), extra),
    )


def _deep(depth: int, binary: bool) -> Frame:
    if binary:
        return "deep-msgpack", b"\x91" * depth + b"\xc0"
    return "deep-json", '{"type":"patch","id":1,"ops":' + "[" * depth + "]" * depth + "}"


def _frames(docs: list[str]) -> st.SearchStrategy[Frame]:
    message = _messages(docs)
    as_json = message.map(lambda m: ("json", json.dumps(m)))
    as_msgpack = message.map(lambda m: ("msgpack", msgpack.packb(m)))
    truncated = st.tuples(message.filter(lambda m: isinstance(m, dict) and m),
                          st.floats(0, 0.99)).map(
        lambda p: ("truncated", msgpack.packb(p[0])[:int(len(msgpack.packb(p[0])) * p[1])]))
    invalid_utf8 = st.binary(min_size=1, max_size=8).filter(_not_utf8).map(
        lambda raw: ("invalid-utf8", b"\x82\xa4type" + bytes([0xa0 | len(raw)]) + raw
                     + b"\xa2id\x01"))
    surrogate = st.sampled_from(["\\ud800", "\\udfff", "\\udbff\\u0041"]).map(
        lambda s: ("surrogate", '{"type":"' + s + '","id":"' + s + '"}'))
    huge = st.integers(min_value=2**64).map(
        lambda n: ("huge-int", json.dumps({"type": "subscribe", "id": n, "doc": n})))
    huge_id_unknown = st.integers(min_value=2**64).map(
        lambda n: ("huge-id", json.dumps({"type": "nothing", "id": n})))
    with_bytes = st.fixed_dictionaries({
        "type": st.sampled_from(["patch", "create", "subscribe", "lock", "presence"]),
        "id": _good_id, "doc": st.binary(max_size=40), "state": st.binary(max_size=40),
        "path": st.binary(max_size=10), "ops": st.binary(max_size=10),
        "kind": st.binary(max_size=10), "title": st.binary(max_size=10)}).map(
        lambda m: ("msgpack-bin", msgpack.packb(m, use_bin_type=True)))
    deep = st.tuples(st.integers(1, 200_000), st.booleans()).map(lambda p: _deep(*p))
    big = st.integers(1_000, 300_000).map(
        lambda n: ("big", json.dumps({"type": "create", "id": 1, "kind": "Bad kind",
                                      "title": "x" * n})))
    garbage = st.one_of(st.binary(max_size=200).map(lambda b: ("garbage-bytes", b)),
                        _text.map(lambda t: ("garbage-text", t)))
    return st.one_of(as_json, as_msgpack, truncated, invalid_utf8, surrogate, huge, with_bytes,
                     huge_id_unknown, deep, big, garbage)


def _not_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def batches(count: int, *, seed: int | None = None, batch: int = 50) -> list[list[Frame]]:
    """``count`` batches of ``batch // 2`` to ``batch`` frames, made by hypothesis (no I/O here: the
    frames are sent afterwards, on the caller's event loop)."""
    made: list[list[Frame]] = []

    @settings(max_examples=count, deadline=None, database=None, derandomize=seed is None,
              suppress_health_check=list(HealthCheck))
    @given(frames=st.lists(_frames(list(PLACEHOLDERS)), min_size=batch // 2, max_size=batch))
    def collect(frames: list[Frame]) -> None:
        made.append(frames)

    if seed is not None:
        from hypothesis import seed as with_seed

        with_seed(seed)(collect)()
    else:
        collect()
    return made


def aim(frame_batches: list[list[Frame]], docs: list[str]) -> list[list[Frame]]:
    """The batches with the placeholder ids replaced by ``docs`` (UUIDs of real documents),
    so that frames also reach documents that exist."""
    swaps = list(zip(PLACEHOLDERS, docs, strict=False))
    if any(len(fake) != len(real) for fake, real in swaps):
        raise ValueError("the documents' ids must be UUIDs")

    def swapped(payload: str | bytes) -> str | bytes:
        for fake, real in swaps:
            payload = (payload.replace(fake, real) if isinstance(payload, str)
                       else payload.replace(fake.encode(), real.encode()))
        return payload

    return [[(encoding, swapped(payload)) for encoding, payload in frames]
            for frames in frame_batches]


@dataclass
class FuzzReport:
    frames: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    encodings: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    """Wrong answers: an ``ok``, ``internal``, a code outside the contract, no answer, or
    the connection closed."""
    reconnects: int = 0
    seconds: float = 0.0
    """Time spent sending and reading, summed over the calls of :func:`fuzz` (making the
    frames is not counted)."""

    def summary(self) -> str:
        codes = ", ".join(f"{code} {n}" for code, n in self.codes.most_common())
        return (f"frames sent {self.frames} in {self.seconds:.1f} s; errors by code: {codes}; "
                f"crashes and wrong answers: {len(self.failures)}")


async def fuzz(ws_url: str, token: str, frame_batches: list[list[Frame]],
               report: FuzzReport | None = None,
               progress: Callable[[FuzzReport], None] | None = None) -> FuzzReport:
    """Send each batch on a connection (subprotocols alternating), then read one answer per
    frame; any wrong answer is recorded with the frame that caused it."""
    report = report or FuzzReport()
    started = time.monotonic()
    conns: dict[str, Any] = {}

    async def connection(protocol: str) -> Any:
        conn = conns.get(protocol)
        if conn is None:
            conn = await asyncio.wait_for(websockets.connect(
                f"{ws_url}?token={token}", subprotocols=[protocol],  # type: ignore[list-item]
                max_size=None), REPLY_TIMEOUT)
            welcome = json.loads(await asyncio.wait_for(conn.recv(), REPLY_TIMEOUT)) \
                if protocol.endswith("json") else msgpack.unpackb(
                    await asyncio.wait_for(conn.recv(), REPLY_TIMEOUT))
            if welcome.get("type") != "welcome":
                raise RuntimeError(f"no welcome: {welcome!r}")
            conns[protocol] = conn
        return conn

    try:
        for index, frames in enumerate(frame_batches):
            protocol = SUBPROTOCOLS[index % 2]
            conn = await connection(protocol)
            try:
                for _, payload in frames:
                    await conn.send(payload)
                for encoding, payload in frames:
                    raw = await asyncio.wait_for(conn.recv(), REPLY_TIMEOUT)
                    answer = json.loads(raw) if isinstance(raw, str) else msgpack.unpackb(raw)
                    report.frames += 1
                    report.encodings[encoding] += 1
                    code = answer.get("code") if answer.get("type") == "error" else None
                    report.codes[str(code or answer.get("type"))] += 1
                    if code not in CONTRACT_CODES:
                        report.failures.append(
                            f"{protocol} {encoding} {_shown(payload)} -> {_shown(answer)}")
            except (TimeoutError, websockets.ConnectionClosed) as exc:
                report.failures.append(f"{protocol}: {type(exc).__name__} {exc} after a batch "
                                       f"holding {[_shown(p) for _, p in frames][:5]}")
                report.reconnects += 1
                conns.pop(protocol, None)
                await conn.close()
            if progress is not None and index % 100 == 99:
                progress(report)
    finally:
        for conn in conns.values():
            await conn.close()
        report.seconds += time.monotonic() - started
    return report


def _shown(value: Any) -> str:
    return repr(value)[:300]
