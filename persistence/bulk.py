"""Bulk operations: many items in one transaction, each checked exactly as its single call.

Each item runs inside a savepoint, so an item that is refused leaves no trace while the
ones before it stand. Then one of three endings: a dry run rolls everything back (every
item was checked against the state the earlier items left, nothing is stored, no event is
appended); all-or-nothing with a failed item rolls everything back and reports which items
failed and why; otherwise the transaction commits with one ``bulk.completed`` event beside
the items' own events, which carry ``source: "bulk"`` and the request's correlation id.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.audit import AuditContext, EventDraft, append_event
from persistence.database import Database
from persistence.errors import BadRequest, CoeditError, TooLarge
from persistence.facts import Appended, Committed, Fact
from persistence.timeutil import utcnow

__all__ = ["MAX_ITEMS", "BulkRequest", "ItemRun", "run_bulk"]

MAX_ITEMS = 1000

# One item, in the bulk's transaction: what its single call would commit.
ItemRun = Callable[[AsyncConnection, str], Awaitable[Committed[Any]]]


@dataclass(frozen=True, slots=True)
class BulkRequest:
    operation: str
    ids: tuple[str, ...]
    params: dict[str, Any]
    dry_run: bool
    all_or_nothing: bool

    @classmethod
    def parse(cls, body: Any, operations: Sequence[str]) -> BulkRequest:
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        unknown = set(body) - {"operation", "ids", "params", "dry_run", "all_or_nothing"}
        if unknown:
            raise BadRequest(f"unknown fields: {', '.join(sorted(unknown))}")
        operation = body.get("operation")
        if operation not in operations:
            raise BadRequest(f"operation must be one of {', '.join(operations)}")
        ids = body.get("ids")
        if not isinstance(ids, list) or not ids:
            raise BadRequest("ids must be a non-empty list of ids")
        if len(ids) > MAX_ITEMS:
            raise TooLarge(f"at most {MAX_ITEMS} ids in one request", limit=MAX_ITEMS)
        if not all(isinstance(i, str) and 0 < len(i) <= 64 for i in ids):
            raise BadRequest("every id must be a non-empty string of at most 64 characters")
        params = body.get("params", {})
        if not isinstance(params, dict):
            raise BadRequest("params must be a JSON object")
        dry_run, all_or_nothing = body.get("dry_run", False), body.get("all_or_nothing", True)
        if not isinstance(dry_run, bool) or not isinstance(all_or_nothing, bool):
            raise BadRequest("dry_run and all_or_nothing must be true or false")
        return cls(str(operation), tuple(ids), params, dry_run, all_or_nothing)


class _Undo(Exception):
    """Raised inside the transaction to roll it back on purpose."""


async def run_bulk(db: Database, ctx: AuditContext, request: BulkRequest,
                   run_item: ItemRun) -> Committed[dict[str, Any]]:
    """Run every item and end as the module says; the answer of section 15 and the facts
    of what committed (none when nothing did)."""
    results: list[dict[str, Any]] = []
    facts: list[Fact] = []
    failed = 0
    rolled_back = False
    try:
        async with db.transaction() as conn:
            # Without all-or-nothing a refused item must leave no trace among the applied
            # ones: a savepoint each. With it, one refusal undoes everything anyway, and an
            # item's checks all come before its writes, so the savepoints would only cost
            # two round trips an item.
            for item in request.ids:
                try:
                    if request.all_or_nothing:
                        committed = await run_item(conn, item)
                    else:
                        async with conn.begin_nested():
                            committed = await run_item(conn, item)
                except CoeditError as exc:
                    failed += 1
                    results.append({"id": item, "ok": False, "error": exc.body()})
                    continue
                facts.extend(committed.facts)
                results.append({"id": item, "ok": True})
            if request.dry_run or (request.all_or_nothing and failed):
                raise _Undo
            succeeded = len(request.ids) - failed
            await append_event(conn, ctx, EventDraft("bulk.completed", None, None, None, {
                "operation": request.operation, "total": len(request.ids),
                "succeeded": succeeded, "failed": failed}), ts=utcnow())
            facts.append(Appended(ctx.tenant))
    except _Undo:
        rolled_back = not request.dry_run
        facts = []
    succeeded = 0 if rolled_back else len(request.ids) - failed
    return Committed({
        "operation": request.operation, "total": len(request.ids), "succeeded": succeeded,
        "failed": failed, "results": results, "dry_run": request.dry_run,
        "rolled_back": rolled_back, "correlation_id": ctx.correlation_id,
    }, tuple(facts))
