"""Applying the ops of a delta to the replica: RFC 6902 JSON Patch plus ``splice``.

The replica applies only what the server already applied (deltas carry ops as applied), so
an op that does not fit means the replica has drifted; that raises :class:`PatchError` and the
document resynchronises instead of guessing.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from coedit_client.splice import Splice, apply_splices

__all__ = ["PatchError", "apply_ops", "parse_pointer", "write_unit_overlaps", "write_units"]


class PatchError(ValueError):
    """An op that does not apply to the replica's state."""


def parse_pointer(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"{pointer!r} is not a JSON pointer")
    return [part.replace("~1", "/").replace("~0", "~") for part in pointer[1:].split("/")]


def _index(container: list[Any], token: str, *, for_add: bool) -> int:
    if token == "-" and for_add:
        return len(container)
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise PatchError(f"{token!r} is not an array index")
    index = int(token)
    if index > len(container) or (index == len(container) and not for_add):
        raise PatchError(f"index {index} is out of range")
    return index


def _parent(document: Any, parts: list[str]) -> Any:
    node = document
    for token in parts[:-1]:
        if isinstance(node, dict):
            if token not in node:
                raise PatchError(f"no member {token!r}")
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, for_add=False)]
        else:
            raise PatchError(f"cannot descend into {type(node).__name__} at {token!r}")
    return node


def _get(document: Any, pointer: str) -> Any:
    parts = parse_pointer(pointer)
    if not parts:
        return document
    parent = _parent(document, parts)
    token = parts[-1]
    if isinstance(parent, dict):
        if token not in parent:
            raise PatchError(f"{pointer!r} does not exist")
        return parent[token]
    if isinstance(parent, list):
        return parent[_index(parent, token, for_add=False)]
    raise PatchError(f"{pointer!r} does not exist")


def _add(document: Any, pointer: str, value: Any) -> Any:
    parts = parse_pointer(pointer)
    if not parts:
        return value
    parent = _parent(document, parts)
    token = parts[-1]
    if isinstance(parent, dict):
        parent[token] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, token, for_add=True), value)
    else:
        raise PatchError(f"cannot add at {pointer!r}")
    return document


def _remove(document: Any, pointer: str) -> tuple[Any, Any]:
    parts = parse_pointer(pointer)
    if not parts:
        raise PatchError("cannot remove the root")
    parent = _parent(document, parts)
    token = parts[-1]
    if isinstance(parent, dict):
        if token not in parent:
            raise PatchError(f"{pointer!r} does not exist")
        return document, parent.pop(token)
    if isinstance(parent, list):
        return document, parent.pop(_index(parent, token, for_add=False))
    raise PatchError(f"cannot remove {pointer!r}")


def _replace(document: Any, pointer: str, value: Any) -> Any:
    parts = parse_pointer(pointer)
    if not parts:
        return value
    parent = _parent(document, parts)
    token = parts[-1]
    if isinstance(parent, dict):
        if token not in parent:
            raise PatchError(f"{pointer!r} does not exist")
        parent[token] = value
    elif isinstance(parent, list):
        parent[_index(parent, token, for_add=False)] = value
    else:
        raise PatchError(f"cannot replace {pointer!r}")
    return document


def _splice(document: Any, pointer: str, op: dict[str, Any]) -> Any:
    text = _get(document, pointer)
    if not isinstance(text, str):
        raise PatchError(f"splice: {pointer!r} is not a string")
    try:
        return _replace(document, pointer, apply_splices(text, [Splice.from_op(op)]))
    except ValueError as exc:
        raise PatchError(str(exc)) from None


def apply_ops(state: Any, ops: Sequence[dict[str, Any]], *, in_place: bool = False) -> Any:
    """``state`` after ``ops`` (a deep copy unless ``in_place``); raises :class:`PatchError`."""
    document = state if in_place else copy.deepcopy(state)
    for op in ops:
        kind, path = op.get("op"), op.get("path")
        if not isinstance(path, str):
            raise PatchError(f"op without a path: {op!r}")
        if kind == "add":
            document = _add(document, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            document, _ = _remove(document, path)
        elif kind == "replace":
            document = _replace(document, path, copy.deepcopy(op["value"]))
        elif kind == "move":
            document, value = _remove(document, str(op["from"]))
            document = _add(document, path, value)
        elif kind == "copy":
            document = _add(document, path, copy.deepcopy(_get(document, str(op["from"]))))
        elif kind == "test":
            if _get(document, path) != op.get("value"):
                raise PatchError(f"test failed at {path!r}")
        elif kind == "splice":
            document = _splice(document, path, op)
        else:
            raise PatchError(f"unknown op {kind!r}")
    return document


def write_unit_overlaps(a: str, b: str) -> bool:
    """Whether two JSON pointers overlap: one is a prefix of the other, segment by segment."""
    pa, pb = parse_pointer(a), parse_pointer(b)
    shorter = min(len(pa), len(pb))
    return pa[:shorter] == pb[:shorter]


def _cut(state: Any, pointer: str) -> str:
    """``pointer`` cut just before its first segment that addresses an array element."""
    parts = parse_pointer(pointer)
    node = state
    for depth, token in enumerate(parts):
        if isinstance(node, list):
            return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts[:depth])
        if isinstance(node, dict) and token in node:
            node = node[token]
        else:
            break
    return pointer


def write_units(state: Any, op: dict[str, Any]) -> list[str]:
    """The write units of ``op`` on ``state`` (the state it applies to), as the server
    computes them: its path, and ``from`` for a move; a ``test`` writes nothing."""
    kind = op.get("op")
    if kind == "test":
        return []
    units = [_cut(state, str(op.get("path", "")))]
    if kind == "move":
        units.append(_cut(state, str(op.get("from", ""))))
    return units
