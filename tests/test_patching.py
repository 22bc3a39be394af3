"""The pure rules of the versioned write: pointers, write units, overlap, application, redaction."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import jsonpointer
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from persistence.errors import BadRequest, Conflict
from persistence.patching import (
    REDACTED,
    apply_ops,
    parse_pointer,
    redact_at_paths,
    redact_ops,
    redact_value,
    units_overlap,
    validate_ops,
    values_at,
    write_units,
)

STATE: dict[str, Any] = {
    "items": [{"x": 1}, {"x": 2}],
    "a": {"b": 1, "c": 2},
    "ab": 3,
    "m/n": {"~k": 1},
}


@pytest.mark.parametrize(
    ("pointer", "segments"),
    [("", []), ("/a", ["a"]), ("/a/0", ["a", "0"]), ("/m~1n/~0k", ["m/n", "~k"]), ("/", [""])],
)
def test_pointers_unescape_per_rfc_6901(pointer: str, segments: list[str]) -> None:
    """``~1`` becomes ``/`` and ``~0`` becomes ``~``; the empty pointer is the whole document."""
    assert parse_pointer(pointer) == segments


@pytest.mark.parametrize("pointer", ["a", "/a~2", "/~"])
def test_malformed_pointers_are_bad_requests(pointer: str) -> None:
    """A pointer without a leading slash or with a bad escape is refused."""
    with pytest.raises(BadRequest):
        parse_pointer(pointer)


@pytest.mark.parametrize(
    ("op", "units"),
    [
        ({"op": "replace", "path": "/items/1/x", "value": 5}, ["/items"]),
        ({"op": "add", "path": "/items/-", "value": 5}, ["/items"]),
        ({"op": "remove", "path": "/items/0"}, ["/items"]),
        ({"op": "replace", "path": "/a/b", "value": 5}, ["/a/b"]),
        ({"op": "add", "path": "/new/deep", "value": 5}, ["/new/deep"]),
        ({"op": "move", "from": "/a/b", "path": "/a/z"}, ["/a/b", "/a/z"]),
        ({"op": "copy", "from": "/a/b", "path": "/a/z"}, ["/a/z"]),
        ({"op": "test", "path": "/a/b", "value": 1}, []),
        ({"op": "replace", "path": "", "value": {}}, [""]),
        ({"op": "replace", "path": "/m~1n/~0k", "value": 2}, ["/m~1n/~0k"]),
    ],
)
def test_write_units_cut_before_the_first_array_element(
    op: dict[str, Any], units: list[str]
) -> None:
    """An op's unit is its path cut before an array index; move adds its source, test none."""
    assert write_units([op], STATE) == units


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        ("/items", "/items", True),
        ("/a", "/a/b", True),
        ("/a/b", "/a/c", False),
        ("/a", "/ab", False),
        ("", "/anything", True),
        ("/x/y/z", "/x/y", True),
    ],
)
def test_units_overlap_segment_by_segment(a: str, b: str, overlap: bool) -> None:
    """One unit overlaps another only when it is a prefix of it segment by segment."""
    assert units_overlap(a, b) is overlap
    assert units_overlap(b, a) is overlap


@pytest.mark.parametrize(
    "ops",
    [
        "not a list",
        [],
        [{"op": "add", "path": "/a", "value": 1}] * 1001,
        [{"op": "frobnicate", "path": "/a"}],
        [{"op": "add", "path": "/a"}],
        [{"op": "move", "path": "/a"}],
        [{"op": "add", "path": 5, "value": 1}],
        [{"op": "add", "path": "a", "value": 1}],
        ["add"],
    ],
)
def test_invalid_patches_are_refused_before_anything_is_read(ops: Any) -> None:
    """Shape errors are bad requests: not a list, 0 or 1001 ops, unknown op, missing fields."""
    with pytest.raises(BadRequest):
        validate_ops(ops)


def test_a_patch_applies_completely_or_not_at_all() -> None:
    """When a later op fails the error is a bad request (the caller discards the copy)."""
    with pytest.raises(BadRequest):
        apply_ops({"a": 1}, [{"op": "replace", "path": "/a", "value": 2},
                             {"op": "remove", "path": "/missing"}])


def test_failed_test_op_is_a_conflict() -> None:
    """A ``test`` that does not hold means the client's view was stale: a conflict."""
    with pytest.raises(Conflict):
        apply_ops({"a": 1}, [{"op": "test", "path": "/a", "value": 2}])


def test_state_must_stay_an_object() -> None:
    """Replacing the root with a non-object is refused."""
    with pytest.raises(BadRequest):
        apply_ops({"a": 1}, [{"op": "replace", "path": "", "value": [1, 2]}])


def test_values_at_reads_existing_paths_and_the_appended_element() -> None:
    """Missing paths are left out; after an append, ``-`` reads the new last element."""
    state = {"a": {"b": 1}, "items": [1, 2, 3]}
    assert values_at(state, ["/a/b", "/nope", "/items/1"]) == {"/a/b": 1, "/items/1": 2}
    assert values_at(state, ["/items/-"]) == {}
    assert values_at(state, ["/items/-"], dash_is_last=True) == {"/items/-": 3}


def test_redaction_masks_named_keys_at_any_depth() -> None:
    """Values of redacted keys become "[redacted]" wherever they sit, other values stay."""
    names = frozenset({"email"})
    value = {"email": "a@b", "people": [{"email": "c@d", "name": "C"}], "note": "email"}
    assert redact_value(value, names) == {
        "email": REDACTED, "people": [{"email": REDACTED, "name": "C"}], "note": "email"}
    assert redact_at_paths({"/user/email": "x", "/user": {"email": "y", "id": 1}}, names) == {
        "/user/email": REDACTED, "/user": {"email": REDACTED, "id": 1}}
    ops = [{"op": "add", "path": "/user/email", "value": "x"},
           {"op": "add", "path": "/user", "value": {"email": "y"}},
           {"op": "remove", "path": "/email"}]
    assert redact_ops(ops, names) == [
        {"op": "add", "path": "/user/email", "value": REDACTED},
        {"op": "add", "path": "/user", "value": {"email": REDACTED}},
        {"op": "remove", "path": "/email"}]
    assert ops[0]["value"] == "x", "redaction must not touch the live ops"


# -- the same results as jsonpatch (RFC 6902), fast path or not -------------------------------

_KEYS = st.sampled_from(["a", "b", "-", "0", "1", "x~y", "s/t"])
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["s", ""]))
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(_KEYS, inner, max_size=3)), max_leaves=8)
_STATES = st.dictionaries(_KEYS, _VALUES, min_size=1, max_size=4)


@st.composite
def _patches(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A state and ops whose paths mostly walk what the state holds (so most apply)."""
    state = draw(_STATES)

    def path() -> str:
        node: Any = state
        parts: list[str] = []
        for _ in range(draw(st.integers(1, 4))):
            if isinstance(node, dict) and node and draw(st.integers(0, 9)) < 8:
                key = draw(st.sampled_from(sorted(node)))
                node = node[key]
            elif isinstance(node, list) and draw(st.integers(0, 9)) < 8:
                key = draw(st.sampled_from([*map(str, range(len(node) + 1)), "-"]))
                node = node[int(key)] if key.isdigit() and int(key) < len(node) else None
            else:
                key, node = draw(_KEYS), None
            parts.append(key.replace("~", "~0").replace("/", "~1"))
        return "".join("/" + part for part in parts)

    ops = []
    for kind in draw(st.lists(st.sampled_from(
            ["add", "replace", "remove", "test", "move", "copy"]), min_size=1, max_size=4)):
        op: dict[str, Any] = {"op": kind, "path": path()}
        if kind in ("add", "replace", "test"):
            op["value"] = draw(_VALUES)
        if kind in ("move", "copy"):
            op["from"] = path()
        ops.append(op)
    return state, ops


@settings(max_examples=2000, deadline=None)
@given(_patches())
def test_patches_apply_exactly_as_jsonpatch_applies_them(
    patch: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    """Members of objects are set without jsonpatch (persistence/patching.py): the result,
    the kind of refusal, and the patch itself afterwards are what jsonpatch gives."""
    state, ops = patch
    sent = copy.deepcopy(ops)
    try:
        expected: Any = jsonpatch.apply_patch(copy.deepcopy(state), copy.deepcopy(ops))
        refusal: type[Exception] | None = None if isinstance(expected, dict) else BadRequest
    except jsonpatch.JsonPatchTestFailed:
        refusal = Conflict
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, TypeError,
            ValueError, KeyError, IndexError):
        refusal = BadRequest
    if refusal is None:
        assert apply_ops(copy.deepcopy(state), ops) == expected
    else:
        with pytest.raises(refusal):
            apply_ops(copy.deepcopy(state), ops)
    assert ops == sent
