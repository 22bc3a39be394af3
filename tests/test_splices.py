"""Text that merges: the ``splice`` op (docs/protocol.md section 4).

The transform on its own (shared vectors, and the convergence property on random splices),
then the op over real connections: validation, stale splices of one string merging, every
other overlap still a conflict, redaction, replay, and several clients typing into one string
at once converging to the server's text.
"""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from persistence.splices import Splice, transform
from tests.conftest import make_settings
from tests.support import TIMEOUT, RunningServer, WsClient, start_server

VECTORS = json.loads((Path(__file__).parent / "vectors" / "splice.json").read_text())


def _apply(text: str, splices: list[Splice]) -> str:
    for s in splices:
        assert s.at + s.remove <= len(text), (text, s)
        text = text[:s.at] + s.insert + text[s.at + s.remove:]
    return text


def _splices(items: list[dict[str, Any]]) -> list[Splice]:
    return [Splice(i["at"], i["remove"], i["insert"]) for i in items]


def splice(path: str, at: int, remove: int, insert: str) -> dict[str, Any]:
    return {"op": "splice", "path": path, "at": at, "remove": remove, "insert": insert}


# -- the transform ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", VECTORS["cases"], ids=[c["name"] for c in VECTORS["cases"]])
def test_shared_vectors(case: dict[str, Any]) -> None:
    """Each vector's splices carry to the listed form and give the listed text."""
    ours, theirs = _splices(case["ours"]), _splices(case["theirs"])
    carried, _ = transform(ours, theirs)
    assert carried == _splices(case["ours_after"])
    assert _apply(_apply(case["text"], theirs), carried) == case["result"]


@st.composite
def _edit_pair(draw: st.DrawFn) -> tuple[str, list[Splice], list[Splice]]:
    text = draw(st.text(alphabet="abcdef\U0001F600", max_size=12))

    def sequence() -> list[Splice]:
        length, ops = len(text), []
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, length))
            remove = draw(st.integers(0, length - at))
            insert = draw(st.text(alphabet="XYZ", max_size=3))
            ops.append(Splice(at, remove, insert))
            length += len(insert) - remove
        return ops

    return text, sequence(), sequence()


@given(_edit_pair())
@settings(max_examples=400, deadline=None)
def test_both_orders_give_one_text(pair: tuple[str, list[Splice], list[Splice]]) -> None:
    """Theirs then ours carried equals ours then theirs carried, for any two sequences."""
    text, ours, theirs = pair
    ours_after, theirs_after = transform(ours, theirs)
    assert _apply(_apply(text, theirs), ours_after) == _apply(_apply(text, ours), theirs_after)


# -- over real connections -------------------------------------------------------------------


async def _doc(server: RunningServer, token: str, state: dict[str, Any]) -> str:
    return str((await server.create(token, state=state))["id"])


async def test_a_splice_edits_a_string_and_its_delta_carries_it(server: RunningServer) -> None:
    """A current splice applies; the delta and the event carry it, with the string before
    and after."""
    token = server.token()
    doc = await _doc(server, token, {"memo": {"body": "Strong buy"}})
    async with await server.connect(token) as client:
        await client.ok("subscribe", doc=doc)
        ops = [splice("/memo/body", 7, 3, "hold")]
        reply = await client.ok("patch", doc=doc, base=1, ops=ops)
        assert reply["version"] == 2 and "rebased" not in reply
        (delta,) = await client.deltas(doc, 1)
        assert delta["ops"] == ops
    async with server.http(token) as http:
        document = (await http.get(f"/api/documents/{doc}")).json()
        events = (await http.get(f"/api/documents/{doc}/history")).json()["events"]
    assert document["state"] == {"memo": {"body": "Strong hold"}}
    data = events[-1]["data"]
    assert data["ops"] == ops
    assert data["before"] == {"/memo/body": "Strong buy"}
    assert data["after"] == {"/memo/body": "Strong hold"}


@pytest.mark.parametrize(("op", "why"), [
    (splice("/n", 0, 0, "x"), "not a string"),
    (splice("/text", 5, 2, ""), "past the end"),
    (splice("/text", 0, 0, 5), "insert not a string"),
    (splice("/text", -1, 0, "x"), "negative position"),
    (splice("/text", True, 0, "x"), "a boolean position"),
    (splice("/missing", 0, 0, "x"), "no such string"),
    (splice("", 0, 0, "x"), "the whole document"),
    ({"op": "splice", "path": "/text", "at": 0, "insert": "x"}, "remove missing"),
])
async def test_bad_splices_are_refused_and_change_nothing(
    server: RunningServer, op: dict[str, Any], why: str
) -> None:
    """A splice on anything but an existing string, past its end or with wrong field types
    is a bad_request, and the document stays as it was."""
    token = server.token()
    doc = await _doc(server, token, {"text": "abcd", "n": 1})
    async with await server.connect(token) as client:
        reply = await client.request("patch", doc=doc, base=1,
                                     ops=[splice("/text", 0, 0, "ok"), op])
        assert (reply["type"], reply.get("code")) == ("error", "bad_request"), (why, reply)
    async with server.http(token) as http:
        document = (await http.get(f"/api/documents/{doc}")).json()
    assert document["version"] == 1 and document["state"] == {"text": "abcd", "n": 1}


async def test_stale_splices_of_one_string_merge(server: RunningServer) -> None:
    """Two analysts splice the same sentence from the same version: both land, the second
    carried past the first, and a subscriber applying the deltas holds the server's text."""
    ann, bob = server.token(user="ann"), server.token(user="bob")
    doc = await _doc(server, ann, {"s": "The margin is thin."})
    async with await server.connect(ann) as a, await server.connect(bob) as b:
        await a.ok("subscribe", doc=doc)
        first = await a.ok("patch", doc=doc, base=1, ops=[splice("/s", 14, 4, "widening")])
        second = await b.ok("patch", doc=doc, base=1, ops=[splice("/s", 4, 0, "gross ")])
        assert first["version"] == 2 and second == {"type": "ok", "re": second["re"],
                                                     "version": 3, "rebased": True}
        deltas = await a.deltas(doc, 2)
    assert deltas[1]["ops"] == [splice("/s", 4, 0, "gross ")]
    text = "The margin is thin."
    for delta in deltas:
        for op in delta["ops"]:
            text = text[:op["at"]] + op["insert"] + text[op["at"] + op["remove"]:]
    async with server.http(ann) as http:
        state = (await http.get(f"/api/documents/{doc}")).json()["state"]
    assert text == state["s"] == "The gross margin is widening."


async def test_a_splice_carried_past_a_later_one_shifts(server: RunningServer) -> None:
    """A stale insert after text another analyst changed lands where its author meant it."""
    token = server.token()
    doc = await _doc(server, token, {"s": "EBITDA 12"})
    async with await server.connect(token) as client:
        await client.ok("patch", doc=doc, base=1, ops=[splice("/s", 0, 6, "Adjusted EBITDA")])
        reply = await client.ok("patch", doc=doc, base=1, ops=[splice("/s", 9, 0, "m")])
        assert reply["rebased"] is True
    async with server.http(token) as http:
        state = (await http.get(f"/api/documents/{doc}")).json()["state"]
    assert state["s"] == "Adjusted EBITDA 12m"


@pytest.mark.parametrize(("later", "stale"), [
    ([{"op": "replace", "path": "/s", "value": "new"}], [splice("/s", 0, 0, "x")]),
    ([splice("/s", 0, 0, "x")], [{"op": "replace", "path": "/s", "value": "new"}]),
    ([{"op": "replace", "path": "/m", "value": {"s": "y"}}], [splice("/m/s", 0, 0, "x")]),
    ([splice("/s", 0, 0, "x")], [splice("/s", 0, 0, "y"),
                                 {"op": "replace", "path": "/s", "value": "z"}]),
])
async def test_other_overlaps_with_a_splice_still_conflict(
    server: RunningServer, later: list[dict[str, Any]], stale: list[dict[str, Any]]
) -> None:
    """A splice meeting anything but a splice of the same string (a replace of it, a write
    to its parent) is a conflict, and nothing of the stale patch applies."""
    token = server.token()
    doc = await _doc(server, token, {"s": "abc", "m": {"s": "abc"}})
    async with await server.connect(token) as client:
        await client.ok("patch", doc=doc, base=1, ops=later)
        reply = await client.request("patch", doc=doc, base=1, ops=stale)
        assert (reply["type"], reply.get("code")) == ("error", "conflict"), reply
        assert reply["current_version"] == 2 and reply["deltas"][0]["ops"] == later
    async with server.http(token) as http:
        assert (await http.get(f"/api/documents/{doc}")).json()["version"] == 2


async def test_a_splice_in_a_patch_with_other_paths_rebases_them_too(
    server: RunningServer,
) -> None:
    """A stale patch that splices one string and sets a field nobody touched applies whole."""
    token = server.token()
    doc = await _doc(server, token, {"s": "ab", "k": 0})
    async with await server.connect(token) as client:
        await client.ok("patch", doc=doc, base=1, ops=[splice("/s", 2, 0, "c")])
        reply = await client.ok("patch", doc=doc, base=1, ops=[
            splice("/s", 0, 0, "<"), {"op": "replace", "path": "/k", "value": 1}])
        assert reply["rebased"] is True
    async with server.http(token) as http:
        state = (await http.get(f"/api/documents/{doc}")).json()["state"]
    assert state == {"s": "<abc", "k": 1}


class TestRedactedSplices:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"redact": frozenset({"ssn"})}

    async def test_inserted_text_under_a_redacted_name_is_masked_in_the_log(
        self, server: RunningServer
    ) -> None:
        """The audit event masks a splice's inserted text and the string before and after
        when the string's name is redacted; the document keeps the real text."""
        token = server.token()
        doc = await _doc(server, token, {"ssn": "123-45"})
        async with await server.connect(token) as client:
            await client.ok("patch", doc=doc, base=1, ops=[splice("/ssn", 6, 0, "-6789")])
        async with server.http(token) as http:
            state = (await http.get(f"/api/documents/{doc}")).json()["state"]
            events = (await http.get(f"/api/documents/{doc}/history")).json()["events"]
        assert state == {"ssn": "123-45-6789"}
        data = events[-1]["data"]
        assert data["ops"][0]["insert"] == "[redacted]"
        assert data["before"] == {"/ssn": "[redacted]"} == data["after"]


async def test_replay_reproduces_the_text_at_every_version(server: RunningServer) -> None:
    """Time travel rebuilds each version's text exactly from merged splices."""
    token = server.token()
    doc = await _doc(server, token, {"s": "x"})
    texts = ["x"]
    async with await server.connect(token) as client:
        for version, (at, insert) in enumerate([(1, "yz"), (0, "w"), (2, "\U0001F600")], 1):
            await client.ok("patch", doc=doc, base=version, ops=[splice("/s", at, 0, insert)])
            texts.append(texts[-1][:at] + insert + texts[-1][at:])
        # a stale one, carried past the last two
        await client.ok("patch", doc=doc, base=2, ops=[splice("/s", 3, 0, "!")])
    async with server.http(token) as http:
        now = (await http.get(f"/api/documents/{doc}")).json()
        past = [(await http.get(f"/api/documents/{doc}", params={"version": v})).json()["state"]
                for v in range(1, 5)]
        verify = (await http.get(f"/api/documents/{doc}/verify")).json()
    assert [p["s"] for p in past] == texts
    assert now["state"]["s"] == "wx\U0001F600yz!"
    assert verify == {"ok": True, "events": 5}


# -- several analysts typing into one string at once --------------------------------------------


class _Typist:
    """A client that types random splices into ``/s`` from whatever version it holds, applies
    every delta in version order, and remembers which marker characters it meant to remove."""

    def __init__(self, client: WsClient, doc: str, rng: random.Random, marks: list[str]) -> None:
        self.client, self.doc, self.rng, self.marks = client, doc, rng, marks
        self.version, self.text = 1, ""
        self.removed: set[str] = set()
        self.accepted = 0

    def take_deltas(self) -> None:
        kept = []
        for message in self.client.pushes:
            if message.get("type") == "delta" and message.get("doc") == self.doc:
                assert message["version"] == self.version + 1, "a gap or a repeat"
                for op in message["ops"]:
                    t = self.text
                    self.text = t[:op["at"]] + op["insert"] + t[op["at"] + op["remove"]:]
                self.version = message["version"]
            else:
                kept.append(message)
        self.client.pushes = kept

    async def type(self, count: int) -> None:
        for _ in range(count):
            self.take_deltas()
            at = self.rng.randint(0, len(self.text))
            remove = self.rng.randint(0, min(3, len(self.text) - at))
            insert = self.marks.pop()
            seen = self.text[at:at + remove]
            reply = await self.client.request("patch", doc=self.doc, base=self.version,
                                              ops=[splice("/s", at, remove, insert)])
            assert reply["type"] == "ok", reply
            self.removed.update(seen)
            self.accepted += 1
            await asyncio.sleep(self.rng.random() * 0.01)


@given(clients=st.integers(3, 8), rounds=st.integers(2, 5), seed=st.integers(0, 2**32))
@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_typists_converge_with_no_character_lost_or_doubled(
    database_url: str, clients: int, rounds: int, seed: int
) -> None:
    """Three to eight clients splice one string from stale versions at once: every one of
    them ends with the server's text, the log holds each accepted splice once and replays to
    that text, and each marker character is there exactly once unless someone removed it."""
    asyncio.run(_typists(database_url, clients, rounds, seed))


async def _typists(database_url: str, clients: int, rounds: int, seed: int) -> None:
    rng = random.Random(seed)
    marks = [chr(0xE000 + i) for i in range(clients * rounds)]  # private-use: each unique
    async with start_server(make_settings(database_url)) as server:
        token = server.token()
        doc = await _doc(server, token, {"s": ""})
        typists = [_Typist(await server.connect(token), doc, random.Random(rng.random()), marks)
                   for _ in range(clients)]
        try:
            for typist in typists:
                await typist.client.ok("subscribe", doc=doc)
            async with asyncio.timeout(60):
                await asyncio.gather(*(t.type(rounds) for t in typists))
            total = sum(t.accepted for t in typists)
            async with server.http(token) as http:
                final = (await http.get(f"/api/documents/{doc}")).json()
                history = (await http.get(f"/api/documents/{doc}/history",
                                          params={"limit": 1000})).json()["events"]
                replayed = (await http.get(f"/api/documents/{doc}",
                                           params={"version": final["version"]})).json()
            for typist in typists:
                async with asyncio.timeout(TIMEOUT):
                    while typist.version < final["version"]:
                        typist.client.pushes.append(await typist.client.recv())
                        typist.take_deltas()
                assert typist.text == final["state"]["s"]
        finally:
            for typist in typists:
                await typist.client.close()
    assert final["version"] == 1 + total
    assert [e["type"] for e in history].count("patch.applied") == total
    assert replayed["state"] == final["state"]
    text = final["state"]["s"]
    inserted = {m for m in (chr(0xE000 + i) for i in range(clients * rounds)) if m not in marks}
    removed = set().union(*(t.removed for t in typists))
    assert len(text) == len(set(text)), "a character appears twice"
    assert set(text) == inserted - removed
