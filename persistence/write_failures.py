"""How a batch's write can fail besides refusing a patch, as the write path's modules tell
each other.

No client ever sees these: a refusal is a :class:`persistence.errors.CoeditError` of its own
patch, and what a client learns of these two is the error each carries or a retry that
succeeded. They live here, beside nothing else, so that the statements that raise them
(:mod:`persistence.write_sql_pg`), the retry policy (:mod:`persistence.batch_commit`) and the
group commit that settles a batch (:mod:`persistence.batching`) need not import each other.
"""

from __future__ import annotations

__all__ = ["CommitFailed", "HeadMoved"]


class HeadMoved(Exception):
    """An optimistic batch's write found a document changed since the batch read it: nothing
    was written, and the batch may be tried again from its reads."""


class CommitFailed(Exception):
    """Raised by a batch function when COMMIT itself failed: the outcome is unknown.

    ``cause`` is the database's error, which each request of the batch receives.
    """

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause
