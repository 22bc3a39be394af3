"""The client's own JSON Patch applier and write units (client/coedit_client/patching.py):
the replica applies deltas with it, and the splice bookkeeping cuts units as the server does."""

from __future__ import annotations

import pytest
from coedit_client.patching import PatchError, apply_ops, write_unit_overlaps, write_units


def test_the_six_ops_and_splice_apply_as_rfc_6902_says() -> None:
    """add, remove, replace, move, copy, test and splice, with arrays, '-' and escaped keys."""
    state = {"a": {"b~c/d": 1}, "items": [1, 2], "s": "a\U0001F600c"}
    after = apply_ops(state, [
        {"op": "add", "path": "/items/-", "value": 3},
        {"op": "add", "path": "/items/0", "value": 0},
        {"op": "remove", "path": "/items/1"},
        {"op": "replace", "path": "/a/b~0c~1d", "value": 2},
        {"op": "move", "from": "/a", "path": "/moved"},
        {"op": "copy", "from": "/moved", "path": "/copied"},
        {"op": "test", "path": "/copied/b~0c~1d", "value": 2},
        {"op": "splice", "path": "/s", "at": 1, "remove": 1, "insert": "b"},
    ])
    assert after == {"items": [0, 2, 3], "moved": {"b~c/d": 2}, "copied": {"b~c/d": 2},
                     "s": "abc"}
    assert state["items"] == [1, 2]  # a copy unless in_place
    assert apply_ops({"x": 1}, [{"op": "replace", "path": "", "value": {"y": 2}}]) == {"y": 2}


@pytest.mark.parametrize("ops", [
    [{"op": "remove", "path": "/missing"}],
    [{"op": "replace", "path": "/items/5", "value": 1}],
    [{"op": "test", "path": "/n", "value": 2}],
    [{"op": "splice", "path": "/n", "at": 0, "remove": 0, "insert": "x"}],
    [{"op": "splice", "path": "/s", "at": 2, "remove": 5, "insert": ""}],
    [{"op": "bogus", "path": "/n"}],
])
def test_ops_that_do_not_fit_raise(ops: list[dict[str, object]]) -> None:
    """An op that does not apply raises PatchError (the replica then resynchronises)."""
    with pytest.raises(PatchError):
        apply_ops({"n": 1, "s": "ab", "items": []}, ops)


def test_write_units_are_cut_before_array_elements() -> None:
    """A unit stops before the first segment that addresses an array element; a move has
    two, a test none; units overlap segment by segment."""
    state = {"items": [{"x": 1}], "a": {"b": "t"}}
    assert write_units(state, {"op": "replace", "path": "/items/0/x"}) == ["/items"]
    assert write_units(state, {"op": "add", "path": "/items/-"}) == ["/items"]
    assert write_units(state, {"op": "move", "from": "/a/b", "path": "/c"}) == ["/c", "/a/b"]
    assert write_units(state, {"op": "test", "path": "/a"}) == []
    assert write_unit_overlaps("/a", "/a/b") and write_unit_overlaps("", "/x")
    assert not write_unit_overlaps("/a", "/ab")
