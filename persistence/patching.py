"""JSON Patch rules of the versioned write: validation, write units, application, redaction.

Everything here is pure (no I/O) so the rules of docs/protocol.md section 4 can be tested on their
own and reused by the replay code. A *write unit* is the part of a document an op may change,
cut before the first array element it reaches: two concurrent patches that touch the same
array always overlap, so a rebase never has to shift array indices.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

import jsonpatch
import jsonpointer

from persistence.errors import BadRequest, Conflict
from persistence.splices import Splice, apply_splice, check_splice_fields

__all__ = [
    "MAX_OPS",
    "REDACTED",
    "apply_ops",
    "parse_pointer",
    "redact_at_paths",
    "redact_ops",
    "redact_value",
    "units_overlap",
    "validate_ops",
    "value_at",
    "values_at",
    "write_units",
    "written_paths",
]

MAX_OPS = 1000
REDACTED = "[redacted]"

_OP_FIELDS: dict[str, tuple[str, ...]] = {
    "add": ("path", "value"),
    "remove": ("path",),
    "replace": ("path", "value"),
    "move": ("from", "path"),
    "copy": ("from", "path"),
    "test": ("path", "value"),
    "splice": ("path", "at", "remove", "insert"),
}


def parse_pointer(pointer: str) -> list[str]:
    """Split an RFC 6901 pointer into unescaped segments; ``""`` is the whole document."""
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise BadRequest(f"JSON pointer must be empty or start with '/': {pointer!r}")
    segments = pointer[1:].split("/")
    for segment in segments:
        rest = segment.replace("~0", "").replace("~1", "")
        if "~" in rest:
            raise BadRequest(f"JSON pointer has an invalid escape: {pointer!r}")
    return [s.replace("~1", "/").replace("~0", "~") for s in segments]


def _join_pointer(segments: Sequence[str]) -> str:
    return "".join("/" + s.replace("~", "~0").replace("/", "~1") for s in segments)


def validate_ops(ops: Any) -> list[dict[str, Any]]:
    """Check the shape of a JSON Patch before anything is read from storage."""
    if not isinstance(ops, list):
        raise BadRequest("ops must be a list of JSON Patch operations")
    if not 1 <= len(ops) <= MAX_OPS:
        raise BadRequest(f"a patch holds 1 to {MAX_OPS} operations, got {len(ops)}")
    for index, op in enumerate(ops):
        if not isinstance(op, dict):
            raise BadRequest(f"op {index} is not an object")
        name = op.get("op")
        if name not in _OP_FIELDS:
            raise BadRequest(f"op {index} has an unknown op {name!r}")
        for field in _OP_FIELDS[name]:
            if field not in op:
                raise BadRequest(f"op {index} ({name}) lacks the field {field!r}")
        for field in ("path", "from"):
            if field in op:
                if not isinstance(op[field], str):
                    raise BadRequest(f"op {index}: {field!r} must be a string")
                parse_pointer(op[field])
        if name == "splice":
            check_splice_fields(index, op)
    return ops


def _unit_of(pointer: str, state: Any) -> list[str]:
    """Cut ``pointer`` just before the first segment that addresses an array element."""
    segments = parse_pointer(pointer)
    node = state
    for depth, segment in enumerate(segments):
        if isinstance(node, list):
            return segments[:depth]
        if isinstance(node, dict) and segment in node:
            node = node[segment]
            continue
        break
    return segments


def written_paths(ops: Iterable[dict[str, Any]]) -> list[str]:
    """Pointers an op sequence writes: every target but ``test``'s, and ``move``'s source."""
    paths: list[str] = []
    for op in ops:
        if op["op"] == "test":
            continue
        if op["op"] == "move":
            paths.append(op["from"])
        paths.append(op["path"])
    return list(dict.fromkeys(paths))


def write_units(ops: Iterable[dict[str, Any]], state: Any) -> list[str]:
    """The write units of ``ops`` against the state they are applied to, without repeats.

    A splice's unit is its path itself, array elements included: a later splice of the same
    string merges with it, and anything that moves the array still overlaps it.
    """
    units: list[str] = []
    for op in ops:
        if op["op"] == "splice":
            units.append(op["path"])
        else:
            units.extend(_join_pointer(_unit_of(path, state)) for path in written_paths([op]))
    return list(dict.fromkeys(units))


def units_overlap(a: str, b: str) -> bool:
    """True when one unit is a segment-wise prefix of the other (``/a`` and ``/ab`` do not)."""
    sa, sb = parse_pointer(a), parse_pointer(b)
    shorter = min(len(sa), len(sb))
    return sa[:shorter] == sb[:shorter]


def apply_ops(state: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """Apply all ops or none; ``state`` may be modified, callers pass a private copy.

    A failed ``test`` is a ``conflict`` (the client's view of the document was wrong);
    every other failure is a ``bad_request``.
    """
    result: Any = state
    start = 0
    for index, op in enumerate(ops):
        if op["op"] == "splice":
            result = _apply_standard(result, ops[start:index])
            result = _splice_at(result, op)
            start = index + 1
    result = _apply_standard(result, ops[start:])
    if not isinstance(result, dict):
        raise BadRequest("a document state must stay a JSON object")
    return result


def _apply_standard(state: Any, ops: list[dict[str, Any]]) -> Any:
    """RFC 6902 ops; failures as protocol errors.

    What editors send almost always is ``add``, ``replace`` or ``remove`` of an object's
    member: those are done here, and everything else, including every op that would fail,
    by jsonpatch, in order. jsonpatch builds a patch object, parses each pointer again and
    copies every value, which cost a write more than its event's hash.
    """
    for op in ops:
        if not _set_member(state, op):
            state = _apply_by_jsonpatch(state, [op])
    return state


def _set_member(state: Any, op: dict[str, Any]) -> bool:
    """Apply ``op`` if it is an add, replace or remove of a member of an object that exists
    (and, but for an add, of a member that exists): the cases in which RFC 6902 leaves
    nothing to decide. Returns False, having changed nothing, for any other op."""
    kind = op["op"]
    if kind not in ("add", "replace", "remove"):
        return False
    segments = parse_pointer(op["path"])
    if not segments:
        return False
    parent = state
    for segment in segments[:-1]:
        if not isinstance(parent, dict) or segment not in parent:
            return False
        parent = parent[segment]
    last = segments[-1]
    if not isinstance(parent, dict) or (kind != "add" and last not in parent):
        return False
    if kind == "remove":
        del parent[last]
    else:
        value = op["value"]
        # A copy, as jsonpatch makes: a later op of the patch must not change the patch.
        parent[last] = copy.deepcopy(value) if isinstance(value, (dict, list)) else value
    return True


def _apply_by_jsonpatch(state: Any, ops: list[dict[str, Any]]) -> Any:
    if not ops:
        return state
    try:
        return jsonpatch.apply_patch(state, ops, in_place=True)
    except jsonpatch.JsonPatchTestFailed as exc:
        raise Conflict(f"test failed: {exc}") from exc
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        raise BadRequest(f"patch cannot be applied: {exc}") from exc
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        raise BadRequest(f"patch cannot be applied: {exc}") from exc


def _splice_at(state: Any, op: dict[str, Any]) -> Any:
    """Apply one splice in place: the string at its path must exist."""
    path = op["path"]
    segments = parse_pointer(path)
    if not segments:
        raise BadRequest("splice: the path must address a string inside the document")
    parent = _value_at(state, _join_pointer(segments[:-1]), False)
    last = segments[-1]
    if isinstance(parent, dict) and last in parent:
        parent[last] = apply_splice(parent[last], Splice.of(op), path)
    elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        parent[int(last)] = apply_splice(parent[int(last)], Splice.of(op), path)
    else:
        raise BadRequest(f"splice: {path!r} does not address a string")
    return state


_MISSING = object()


def _value_at(state: Any, pointer: str, dash_is_last: bool) -> Any:
    node = state
    for segment in parse_pointer(pointer):
        if isinstance(node, dict):
            if segment not in node:
                return _MISSING
            node = node[segment]
        elif isinstance(node, list):
            if segment == "-" and dash_is_last and node:
                node = node[-1]
            elif segment.isdigit() and int(segment) < len(node):
                node = node[int(segment)]
            else:
                return _MISSING
        else:
            return _MISSING
    return node


def value_at(state: Any, pointer: str) -> Any:
    """The value at ``pointer``, or None where there is none."""
    value = _value_at(state, pointer, False)
    return None if value is _MISSING else value


def values_at(state: Any, paths: Iterable[str], *, dash_is_last: bool = False) -> dict[str, Any]:
    """Deep copies of the values at ``paths``; paths that do not exist are left out.

    ``dash_is_last`` reads an array's ``-`` as its last element, which is what an ``add`` to
    ``-`` wrote once the patch has been applied.
    """
    found: dict[str, Any] = {}
    for path in paths:
        value = _value_at(state, path, dash_is_last)
        if value is not _MISSING:
            found[path] = copy.deepcopy(value)
    return found


def redact_value(value: Any, names: frozenset[str]) -> Any:
    """A copy of ``value`` where every object key in ``names``, at any depth, is masked."""
    if not names:
        return value
    if isinstance(value, dict):
        return {k: REDACTED if k in names else redact_value(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_value(v, names) for v in value]
    return value


def _last_segment(pointer: str) -> str | None:
    try:
        segments = parse_pointer(pointer)
    except BadRequest:
        return None
    return segments[-1] if segments else None


def redact_at_paths(values: dict[str, Any], names: frozenset[str]) -> dict[str, Any]:
    """Mask a ``{pointer: value}`` map: whole values under a redacted name, else deep."""
    if not names:
        return values
    return {
        path: REDACTED if _last_segment(path) in names else redact_value(value, names)
        for path, value in values.items()
    }


def redact_ops(ops: list[dict[str, Any]], names: frozenset[str]) -> list[dict[str, Any]]:
    """Ops as stored in the audit log: values masked the same way as ``before``/``after``."""
    if not names:
        return ops
    masked = []
    for op in ops:
        copy_op = dict(op)
        if "value" in copy_op:
            if _last_segment(copy_op["path"]) in names:
                copy_op["value"] = REDACTED
            else:
                copy_op["value"] = redact_value(copy_op["value"], names)
        elif copy_op.get("op") == "splice" and _last_segment(copy_op["path"]) in names:
            copy_op["insert"] = REDACTED  # inserted text is a value like any other
        masked.append(copy_op)
    return masked
