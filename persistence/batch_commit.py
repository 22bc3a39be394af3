"""One batch of patches against the database: which statements, which transaction, how many
tries, and what a failure means.

This is the write path between the group commit (:mod:`persistence.batching`), which forms
the batches, and the rules (:mod:`persistence.writes`), which decide what each patch does.

Where the database takes writes through the driver (PostgreSQL), a batch first goes
*optimistically*:

1. :func:`write_transaction` hands out :class:`DriverWriteStatements` on a plain asyncpg
   connection outside any transaction block (``Database.driver_connection``);
2. :func:`write_patches` reads the documents without locking them and applies every patch;
3. the write is one statement that moves each document row only if it is still at the
   version, chain head and lock counter the batch read, and commits by itself. Otherwise
   ``coedit_check_moved`` (migration 0007) undoes it whole and the statements raise
   :class:`HeadMoved`: another node wrote one of the documents in between;
4. :class:`BatchCommitter` then runs the batch again from its reads, and after
   ``OPTIMISTIC_ATTEMPTS`` tries it reads with ``SELECT ... FOR UPDATE`` in a transaction
   (``Database.driver_transaction``), which nobody can overtake.

A failure while committing, including the optimistic statement's connection failing under
it, is :class:`CommitFailed`: nobody knows whether the batch committed, so it is never run
again (the group commit answers each of its writes with the cause). Any other error means
nothing was written, and the group commit runs each write of the batch alone.

Where the database has one writer at a time (SQLite), a batch is SQLAlchemy Core in a
transaction that holds the write lock from its first read: it cannot be overtaken, and the
first try is the only one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from persistence.database import Database
from persistence.errors import CoeditError
from persistence.head_cache import HeadCache, KeptHeads
from persistence.write_failures import CommitFailed, HeadMoved
from persistence.write_sql import CoreWriteStatements
from persistence.write_sql_pg import DriverWriteStatements
from persistence.write_statements import WriteStatements
from persistence.writes import PatchRequest, WriteResult, WriteRules, write_patches

__all__ = ["OPTIMISTIC_ATTEMPTS", "BatchCommitter", "write_transaction"]

# Optimistic tries of a batch on PostgreSQL before it takes row locks: another node writing the
# same documents can overtake a batch between its read and its write, but not forever.
OPTIMISTIC_ATTEMPTS = 3


@asynccontextmanager
async def write_transaction(db: Database, *, optimistic: bool) -> AsyncIterator[WriteStatements]:
    """A batch's statements as they suit ``db``.

    SQLite: SQLAlchemy Core in a transaction that holds the database's write lock. PostgreSQL:
    asyncpg; ``optimistic`` reads without locks and writes with one self-checking statement
    outside any transaction block (it commits by itself, or raises :class:`HeadMoved`),
    otherwise a transaction that locks the rows first. An error while committing escapes
    the ``async with`` itself.
    """
    if not db.traits.driver_writes:
        async with db.transaction() as conn:
            yield CoreWriteStatements(
                conn, counts_multi_row_updates=db.traits.counts_multi_row_updates)
    elif optimistic:
        async with db.driver_connection() as raw:
            yield DriverWriteStatements(raw, optimistic=True)
    else:
        async with db.driver_transaction() as raw:
            yield DriverWriteStatements(raw, optimistic=False)


class BatchCommitter:
    """Commits batches of patches to one database, optimistically first where it can."""

    def __init__(self, db: Database, rules: WriteRules) -> None:
        self.db = db
        self.rules = rules
        # Optimistic batches tried again because a document moved under them (PostgreSQL).
        self.moved_retries = 0
        # Rows this node's optimistic writes left, for the next batch (PostgreSQL).
        self.heads = HeadCache() if db.traits.driver_writes else None

    async def commit(
        self, requests: list[PatchRequest], *, clock: Callable[[], datetime]
    ) -> list[WriteResult | CoeditError]:
        """One transaction for a batch of patches (see :func:`write_patches`): each patch's
        result or its own refusal. Raises :class:`CommitFailed` when the commit's outcome is
        unknown, and any other database error when nothing was written."""
        attempt = 0
        while True:
            attempt += 1
            optimistic = attempt <= OPTIMISTIC_ATTEMPTS
            committing = False
            try:
                async with write_transaction(self.db, optimistic=optimistic) as sql:
                    kept = None
                    if self.heads is not None:
                        # Optimistic statements check the rows they were given, so they may
                        # take kept ones; a locking transaction reads and locks every row.
                        if optimistic:
                            kept = KeptHeads(sql, self.heads, requests)
                        else:
                            self.heads.forget({r.doc_id for r in requests})
                    outcomes = await write_patches(kept or sql, requests, rules=self.rules,
                                                   clock=clock)
                    if kept is not None:
                        kept.check_refusals()
                    committing = True
            except HeadMoved:
                if not optimistic:
                    raise
                self.moved_retries += 1
                continue
            except Exception as exc:
                if committing:
                    raise CommitFailed(exc) from exc
                raise
            return outcomes

