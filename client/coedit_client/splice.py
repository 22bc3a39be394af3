"""The splice transform on the client's side (PROTOCOL.md section 4, "Text that merges").

A client that edits text while other people's deltas arrive must carry its unacknowledged
splices past theirs, and theirs past its own, by exactly the rules the server uses when it
rebases a stale patch; otherwise the replica's text and the server's drift apart for good.
The shared vectors (tests/vectors/splice.json) hold this module, the server and the browser to
the same answers. Positions count Unicode code points, which is what a Python ``str`` indexes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Splice", "apply_splices", "splice_from_edit", "transform"]


@dataclass(frozen=True, slots=True)
class Splice:
    """Remove ``remove`` characters at ``at`` in one string, then insert ``insert`` there."""

    at: int
    remove: int
    insert: str

    @classmethod
    def from_op(cls, op: dict[str, Any]) -> Splice:
        return cls(int(op["at"]), int(op["remove"]), str(op["insert"]))

    def to_op(self, path: str) -> dict[str, Any]:
        return {"op": "splice", "path": path, "at": self.at, "remove": self.remove,
                "insert": self.insert}


def _carry(a: Splice, b: Splice, a_first: bool) -> list[Splice]:
    """``a`` rewritten to apply after ``b`` (both made on one text).

    ``a_first`` breaks the tie of two inserts at one position. When ``b`` inserted inside the
    range ``a`` removes, ``a``'s author never saw that text, so it stays and ``a`` splits in
    two; the pieces come right to left, so each position still holds when it applies.
    """
    b_end = b.at + b.remove
    grown = len(b.insert)

    def point(x: int) -> int:
        if x < b.at or (x == b.at and a_first):
            return x
        return max(b.at, x - b.remove) + grown

    a_end = a.at + a.remove
    left_from, left_to = a.at, min(a_end, b.at)  # what a removes before b's range
    right_from = max(a.at, b_end) - b.remove + grown  # ... and after it, in b's text
    right_to = a_end - b.remove + grown
    at = point(a.at)
    pieces: list[Splice] = []
    insert_placed = False
    if right_to > right_from:
        merge = at == right_from and left_to <= left_from
        pieces.append(Splice(right_from, right_to - right_from, a.insert if merge else ""))
        insert_placed = merge
    if left_to > left_from:
        merge = at == left_from
        pieces.append(Splice(left_from, left_to - left_from, a.insert if merge else ""))
        insert_placed = insert_placed or merge
    if not insert_placed and (a.insert or not pieces):
        pieces.append(Splice(at, 0, a.insert))
    return sorted(pieces, key=lambda s: s.at, reverse=True)


def transform(
    ours: Sequence[Splice], theirs: Sequence[Splice]
) -> tuple[list[Splice], list[Splice]]:
    """Carry two sequences made on one text past each other.

    Returns ``(ours as it applies after theirs, theirs as it applies after ours)``; ``theirs``
    committed first, so its inserts win ties. Either order then gives the same text.
    """
    if not ours or not theirs:
        return list(ours), list(theirs)
    if len(ours) == 1 and len(theirs) == 1:
        return _carry(ours[0], theirs[0], False), _carry(theirs[0], ours[0], True)
    if len(ours) > 1:
        head, theirs_after_head = transform(ours[:1], theirs)
        rest, theirs_after_all = transform(ours[1:], theirs_after_head)
        return head + rest, theirs_after_all
    ours_after_first, first = transform(ours, theirs[:1])
    ours_after_all, rest = transform(ours_after_first, theirs[1:])
    return ours_after_all, first + rest


def apply_splices(text: str, splices: Sequence[Splice]) -> str:
    """``text`` after ``splices`` in order. A splice that does not fit raises ``ValueError``:
    it means the text and the splices were made on different versions."""
    for splice in splices:
        if splice.at < 0 or splice.remove < 0 or splice.at + splice.remove > len(text):
            raise ValueError(f"splice at {splice.at} remove {splice.remove} does not fit a "
                             f"text of {len(text)} characters")
        text = text[:splice.at] + splice.insert + text[splice.at + splice.remove:]
    return text


def splice_from_edit(before: str, after: str) -> Splice | None:
    """The one splice that turns ``before`` into ``after`` (None when equal): what lies
    between their common prefix and common suffix. Handy for a bot that rewrites a text."""
    if before == after:
        return None
    prefix = 0
    limit = min(len(before), len(after))
    while prefix < limit and before[prefix] == after[prefix]:
        prefix += 1
    suffix = 0
    while (suffix < len(before) - prefix and suffix < len(after) - prefix
           and before[-1 - suffix] == after[-1 - suffix]):
        suffix += 1
    return Splice(prefix, len(before) - prefix - suffix, after[prefix:len(after) - suffix])
