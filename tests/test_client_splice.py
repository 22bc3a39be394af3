"""The Python client's splice transform (client/coedit_client/splice.py) against the shared
vectors and against the server's own transform on random cases: the client may not import
the server, so the two implementations must agree by test."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from coedit_client.splice import Splice, apply_splices, splice_from_edit, transform

from persistence import splices as server_splices

VECTORS = json.loads((Path(__file__).parent / "vectors" / "splice.json").read_text())


def _splices(items: list[dict[str, Any]]) -> list[Splice]:
    return [Splice(s["at"], s["remove"], s["insert"]) for s in items]


def _dicts(items: list[Any]) -> list[dict[str, Any]]:
    return [{"at": s.at, "remove": s.remove, "insert": s.insert} for s in items]


def test_shared_vectors() -> None:
    """Each shared vector's splices carry to the listed form and give the listed text."""
    assert len(VECTORS["cases"]) >= 10
    for case in VECTORS["cases"]:
        theirs = _splices(case["theirs"])
        ours_after, _ = transform(_splices(case["ours"]), theirs)
        assert _dicts(ours_after) == case["ours_after"], case["name"]
        text = apply_splices(apply_splices(case["text"], theirs), ours_after)
        assert text == case["result"], case["name"]


def _random_sequence(rng: random.Random, length: int) -> list[Splice]:
    splices = []
    for _ in range(rng.randint(1, 4)):
        at = rng.randint(0, length)
        insert = "".join(rng.choice("XY\U0001F600") for _ in range(rng.randint(0, 3)))
        splice = Splice(at, rng.randint(0, length - at), insert)
        splices.append(splice)
        length += len(splice.insert) - splice.remove
    return splices


def test_same_results_as_the_server_and_both_orders_meet() -> None:
    """On 2,000 random cases with astral characters the client's transform gives exactly the
    server's splices, and theirs-then-ours equals ours-then-theirs."""
    rng = random.Random(20261202)
    for _ in range(2000):
        text = "".join(rng.choice("abc\U0001F600") for _ in range(rng.randint(0, 12)))
        ours, theirs = _random_sequence(rng, len(text)), _random_sequence(rng, len(text))
        ours_after, theirs_after = transform(ours, theirs)
        server_ours, server_theirs = server_splices.transform(
            [server_splices.Splice(s.at, s.remove, s.insert) for s in ours],
            [server_splices.Splice(s.at, s.remove, s.insert) for s in theirs])
        assert (_dicts(ours_after), _dicts(theirs_after)) == (
            _dicts(server_ours), _dicts(server_theirs)), (text, ours, theirs)
        assert apply_splices(apply_splices(text, theirs), ours_after) == apply_splices(
            apply_splices(text, ours), theirs_after)


def test_an_edit_becomes_one_splice() -> None:
    """The splice between two texts lies between their common prefix and suffix, counted in
    code points."""
    assert splice_from_edit("abc", "abc") is None
    assert splice_from_edit("abc", "aXbc") == Splice(1, 0, "X")
    assert splice_from_edit("a\U0001F600b", "a\U0001F601b") == Splice(1, 1, "\U0001F601")
    assert splice_from_edit("ab\U0001F600", "\U0001F600") == Splice(0, 2, "")
