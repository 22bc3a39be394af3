"""Whether a stale patch may still apply, and in what form (docs/protocol.md section 4).

A patch made at version ``B`` meets every version committed after ``B``. Where its write
units do not overlap theirs it applies as it is (``rebased``). Where they overlap it is a
``conflict``, with one exception: a splice of the patch that meets only splices of the same
string is carried past them (``persistence.splices``) and applies in its carried form.

Pure: the caller reads the later versions (their ops as applied and their units) and the
state the patch will apply to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from persistence.jsonutil import loads
from persistence.patching import units_overlap, value_at, write_units, written_paths
from persistence.splices import Splice, rebase_splices

__all__ = ["LaterVersion", "Rebased", "rebase_patch"]


class LaterVersion:
    """A version committed after the patch's base: its write units, and its ops as applied,
    decoded only when a splice of the patch needs them (most stale patches have none)."""

    __slots__ = ("_ops", "_ops_text", "units")

    def __init__(self, ops_text: str, units: list[str]) -> None:
        self._ops_text = ops_text
        self._ops: list[dict[str, Any]] | None = None
        self.units = units

    @property
    def ops(self) -> list[dict[str, Any]]:
        if self._ops is None:
            self._ops = loads(self._ops_text)
        return self._ops


@dataclass(frozen=True, slots=True)
class Rebased:
    """The patch in the form it applies now, or the units by which it conflicts."""

    ops: list[dict[str, Any]]
    overlapping: list[str]


def rebase_patch(
    ops: list[dict[str, Any]], units: list[str], state: dict[str, Any],
    later: Sequence[LaterVersion],
) -> Rebased:
    """Check ``ops`` (made at an old version; ``units`` its write units) against the
    ``later`` versions, in version order, and carry its splices past theirs; ``state`` is
    the current state."""
    our_splices = {op["path"] for op in ops if op["op"] == "splice"}
    if not our_splices:
        # No splice: any overlap is a conflict, and the later versions' ops do not matter.
        return Rebased(ops, [unit for unit in units if any(
            units_overlap(unit, theirs) for version in later for theirs in version.units)])
    our_other = write_units([op for op in ops if op["op"] != "splice"], state)
    refused: set[str] = set()
    theirs: dict[str, list[Splice]] = {}  # a string we splice -> later splices of it, in order
    for version in later:
        their_splices = {op["path"] for op in version.ops if op["op"] == "splice"}
        their_written = written_paths([op for op in version.ops if op["op"] != "splice"])
        # A unit counts as a splice's only when no other op of that version wrote near it.
        their_other = [u for u in version.units if u not in their_splices
                       or any(units_overlap(u, path) for path in their_written)]
        for unit in our_other:
            if any(units_overlap(unit, theirs_unit) for theirs_unit in version.units):
                refused.add(unit)
        for path in our_splices:
            if any(units_overlap(path, u) for u in their_other) or any(
                    units_overlap(path, u) and u != path for u in their_splices):
                refused.add(path)
        for op in version.ops:
            if op["op"] == "splice" and op["path"] in our_splices:
                theirs.setdefault(op["path"], []).append(Splice.of(op))
    if refused:
        return Rebased(ops, [unit for unit in units if unit in refused])
    if not theirs:
        return Rebased(ops, [])
    carried = {path: iter(_carry_path(ops, path, later_splices, state))
               for path, later_splices in theirs.items()}
    result: list[dict[str, Any]] = []
    for op in ops:
        pieces = carried.get(op["path"]) if op["op"] == "splice" else None
        if pieces is None:
            result.append(op)
        else:
            result.extend(piece.op(op["path"]) for piece in next(pieces))
    return Rebased(result, [])


def _carry_path(
    ops: list[dict[str, Any]], path: str, later: list[Splice], state: dict[str, Any]
) -> list[list[Splice]]:
    """Our splices of the string at ``path``, each carried past ``later``."""
    current = value_at(state, path)
    length = len(current) if isinstance(current, str) else 0
    ours = [Splice.of(op) for op in ops if op["op"] == "splice" and op["path"] == path]
    return rebase_splices(ours, later, length, path)
