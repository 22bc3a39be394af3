"""The ``splice`` op: text that merges (docs/protocol.md section 4).

``{"op":"splice","path":P,"at":N,"remove":K,"insert":S}`` removes ``K`` characters of the
string at ``P`` from position ``N`` and inserts ``S`` there. Positions count Unicode code
points, which is what a Python ``str`` indexes.

A stale patch whose only overlaps with later versions are splices on the same strings is not
refused: each of its splices is *transformed* past the later versions' splices on that string,
in version order, so that it does to the current text what its author meant to do to the text
they saw. The rules, for a splice ``a`` carried past an earlier-committed splice ``b``:

* a position shifts by what ``b`` inserted and removed before it;
* characters ``b`` removed already are not removed again; characters ``b`` inserted inside the
  range ``a`` removes are kept (``a``'s author never saw them), so ``a`` may become two
  splices;
* where both insert at the same position, the earlier-committed text comes first.

The transform is pure and deterministic: the same vectors (tests/vectors/splice.json) check
this implementation and the clients' ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from persistence.errors import BadRequest

__all__ = [
    "Splice",
    "apply_splice",
    "check_splice_fields",
    "rebase_splices",
    "transform",
]


@dataclass(frozen=True, slots=True)
class Splice:
    """One splice on one string: remove ``remove`` code points at ``at``, insert ``insert``."""

    at: int
    remove: int
    insert: str

    @classmethod
    def of(cls, op: dict[str, Any]) -> Splice:
        return cls(op["at"], op["remove"], op["insert"])

    def op(self, path: str) -> dict[str, Any]:
        return {"op": "splice", "path": path, "at": self.at, "remove": self.remove,
                "insert": self.insert}

    @property
    def growth(self) -> int:
        """How much longer the text is after this splice."""
        return len(self.insert) - self.remove


def check_splice_fields(index: int, op: dict[str, Any]) -> None:
    """The field types of a splice, checked before anything is read from storage."""
    for field in ("at", "remove"):
        value = op[field]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise BadRequest(f"op {index} (splice): {field!r} must be a whole number >= 0")
    if not isinstance(op["insert"], str):
        raise BadRequest(f"op {index} (splice): 'insert' must be a string")


def apply_splice(text: Any, splice: Splice, path: str) -> str:
    """``text`` after ``splice``; ``bad_request`` unless it is a string the splice fits."""
    if not isinstance(text, str):
        raise BadRequest(f"splice: {path!r} does not address a string")
    if splice.at + splice.remove > len(text):
        raise BadRequest(f"splice: at {splice.at} + remove {splice.remove} passes the end of "
                         f"{path!r} ({len(text)} characters)")
    return text[:splice.at] + splice.insert + text[splice.at + splice.remove:]


def _carry(a: Splice, b: Splice, *, a_first: bool) -> list[Splice]:
    """``a`` rewritten to apply after ``b`` (both were made on the same text).

    ``a_first`` breaks the tie of two inserts at one position: ``a``'s text goes before
    ``b``'s. The result is one splice, or two when ``b`` inserted inside the range ``a``
    removes; two are listed right to left, so each position holds when it is applied.
    """
    b_end = b.at + b.remove
    grown = len(b.insert)

    def point(x: int) -> int:  # an insertion point, carried past b
        if x < b.at or (x == b.at and a_first):
            return x
        return max(b.at, x - b.remove) + grown

    a_end = a.at + a.remove
    # What a removes and b left in place: a left part before b's range, a right part after.
    left = (a.at, min(a_end, b.at))
    right_from = max(a.at, b_end)
    right = (right_from - b.remove + grown, a_end - b.remove + grown)
    at = point(a.at)
    pieces: list[Splice] = []
    insert_placed = False
    if right[1] > right[0]:
        merge = at == right[0] and left[1] <= left[0]
        pieces.append(Splice(right[0], right[1] - right[0], a.insert if merge else ""))
        insert_placed = merge
    if left[1] > left[0]:
        merge = at == left[0]
        pieces.append(Splice(left[0], left[1] - left[0], a.insert if merge else ""))
        insert_placed = insert_placed or merge
    if not insert_placed and (a.insert or not pieces):
        pieces.append(Splice(at, 0, a.insert))
    return sorted(pieces, key=lambda s: s.at, reverse=True)


def transform(
    ours: Sequence[Splice], theirs: Sequence[Splice]
) -> tuple[list[Splice], list[Splice]]:
    """Carry two sequences made on the same text past each other.

    Returns ``ours`` as it applies after ``theirs``, and ``theirs`` as it applies after
    ``ours``; ``theirs`` committed first, so its inserts win ties. Applying either sequence and
    then the other's carried form gives the same text.
    """
    if not ours or not theirs:
        return list(ours), list(theirs)
    if len(ours) == 1 and len(theirs) == 1:
        return (_carry(ours[0], theirs[0], a_first=False),
                _carry(theirs[0], ours[0], a_first=True))
    if len(ours) > 1:
        head, theirs_after_head = transform(ours[:1], theirs)
        rest, theirs_after_all = transform(ours[1:], theirs_after_head)
        return head + rest, theirs_after_all
    ours_after_first, first = transform(ours, theirs[:1])
    ours_after_all, rest = transform(ours_after_first, theirs[1:])
    return ours_after_all, first + rest


def rebase_splices(
    ours: Sequence[Splice], theirs: Sequence[Splice], current_length: int, path: str
) -> list[list[Splice]]:
    """Each of ``ours`` (made at an old version) carried past ``theirs`` (every later
    version's splices on the same string, in version order), as a list per splice.

    ``current_length`` is the string's length now; the length the author saw is worked back
    from it, so a splice that did not fit the author's text is ``bad_request`` even where it
    would happen to fit the current one.
    """
    length = current_length - sum(s.growth for s in theirs)
    for splice in ours:
        if splice.at + splice.remove > length:
            raise BadRequest(f"splice: at {splice.at} + remove {splice.remove} passes the end "
                             f"of {path!r} ({length} characters at the patch's base)")
        length += splice.growth
    carried: list[list[Splice]] = []
    remaining = list(theirs)
    for splice in ours:
        pieces, remaining = transform([splice], remaining)
        carried.append(pieces)
    return carried
