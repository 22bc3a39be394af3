"""Retention: moving old events to compressed files, and verifying chains across both.

``archive`` writes one gzip-compressed JSON Lines file per tenant and month (whole months
only, all older than the cut-off) plus a manifest, reads the file back and checks every line
and hash, and only then, in one transaction, records the archive and marks its events. With
``purge`` it also deletes the marked events; the database trigger allows deleting an event only
once it is marked, so nothing can leave the database without a verified copy. Revisions and
snapshots are never archived, so every version stays replayable.

``verify`` recomputes every document's hash chain over archived and live events together.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.audit import event_from_row, event_hash
from persistence.database import Database
from persistence.jsonutil import canonical_json
from persistence.schema import archived_events, event_archives, events, purged_heads
from persistence.timeutil import utcnow

__all__ = ["ArchiveError", "ArchiveResult", "Archiver", "ChainReport", "chain_key"]

PAGE = 5000


class ArchiveError(RuntimeError):
    """An archive file is missing, unreadable or does not match its record."""


@dataclass(slots=True)
class ArchiveResult:
    tenant: str
    month: str
    file: Path
    count: int
    last_hash: str
    purged: bool


@dataclass(slots=True)
class ChainReport:
    tenant: str
    events: int = 0
    archived: int = 0
    broken: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.broken


def _month_start(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_month(value: datetime) -> datetime:
    return (value.replace(day=28) + timedelta(days=4)).replace(day=1)


def _tenant_dir(tenant: str) -> str:
    return urllib.parse.quote(tenant, safe="")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_archive(path: Path) -> Iterator[dict[str, Any]]:
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                try:
                    yield json.loads(line)
                except ValueError as exc:
                    raise ArchiveError(f"{path}: line {number} is not JSON") from exc
    except (OSError, EOFError) as exc:
        raise ArchiveError(f"{path}: cannot be read: {exc}") from exc


def _load_archive(path: Path, sha256: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The events of one archive file and what is wrong with it (missing, altered)."""
    if not path.exists():
        return [], [{"archive": str(path), "reason": "file missing"}]
    problems = []
    if _sha256(path) != sha256:
        problems.append({"archive": str(path), "reason": "file differs from its recorded sha256"})
    try:
        return list(read_archive(path)), problems
    except ArchiveError as exc:
        return [], [*problems, {"archive": str(path), "reason": str(exc)}]


def chain_key(tenant: str, doc: str | None) -> str:
    """The name of the hash chain an event belongs to: its document's, else its tenant's."""
    return doc or f"tenant:{tenant}"


async def _record_purged_heads(
    conn: AsyncConnection, tenant: str, heads: dict[str, tuple[int, str]]
) -> None:
    """Months are purged oldest first, so a later month's head replaces an earlier one's."""
    for chain, (seq, digest) in heads.items():
        await conn.execute(delete(purged_heads).where(purged_heads.c.chain == chain))
        await conn.execute(insert(purged_heads).values(chain=chain, tenant=tenant, seq=seq,
                                                       hash=digest))


class Archiver:
    def __init__(self, db: Database, directory: Path) -> None:
        self.db = db
        self.directory = directory

    # -- archiving ------------------------------------------------------------------------

    async def archive(
        self, *, older_than: timedelta, purge: bool = False, now: datetime | None = None
    ) -> list[ArchiveResult]:
        """Archive every whole month of events that ended before ``now - older_than``."""
        boundary = _month_start((now or utcnow()) - older_than)
        async with self.db.reader() as conn:
            pending = (await conn.execute(
                select(events.c.tenant, func.min(events.c.ts))
                .where(events.c.ts < boundary,
                       ~events.c.seq.in_(select(archived_events.c.seq)))
                .group_by(events.c.tenant)
            )).all()
        results = []
        for tenant, oldest in pending:
            month = _month_start(oldest)
            while month < boundary:
                result = await self._archive_month(tenant, month, purge)
                if result is not None:
                    results.append(result)
                month = _next_month(month)
        return results

    async def _month_events(self, tenant: str, start: datetime) -> AsyncIterator[Any]:
        end = _next_month(start)
        after = -1
        while True:
            async with self.db.reader() as conn:
                rows = (await conn.execute(
                    select(events)
                    .where(events.c.tenant == tenant, events.c.ts >= start, events.c.ts < end,
                           events.c.seq > after,
                           ~events.c.seq.in_(select(archived_events.c.seq)))
                    .order_by(events.c.seq).limit(PAGE)
                )).all()
            for row in rows:
                yield row
            if len(rows) < PAGE:
                return
            after = rows[-1].seq

    async def _archive_month(
        self, tenant: str, start: datetime, purge: bool
    ) -> ArchiveResult | None:
        month = start.strftime("%Y-%m")
        folder = self.directory / _tenant_dir(tenant)
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{month}.jsonl.gz"
        partial = folder / f".{month}.jsonl.gz.partial"
        seqs: list[int] = []
        last_hash = ""
        first_seq = 0
        # The last event of each chain in this month: where the chain goes on once purged.
        heads: dict[str, tuple[int, str]] = {}
        with gzip.open(partial, "wt", encoding="utf-8") as handle:
            async for row in self._month_events(tenant, start):
                event = event_from_row(row)
                handle.write(canonical_json(event) + "\n")
                seqs.append(int(row.seq))
                last_hash = event["hash"]
                first_seq = first_seq or int(row.seq)
                heads[chain_key(tenant, row.doc)] = (int(row.seq), event["hash"])
        if not seqs:
            partial.unlink()
            return None
        with partial.open("rb") as handle:
            os.fsync(handle.fileno())
        if final.exists():
            partial.unlink()
            raise ArchiveError(f"{final} exists already; refusing to overwrite an archive")
        os.replace(partial, final)
        digest = self._verify_written(final, seqs, last_hash)
        manifest = {
            "tenant": tenant, "month": month, "file": final.name, "sha256": digest,
            "count": len(seqs), "first_seq": first_seq, "last_seq": seqs[-1],
            "last_hash": last_hash, "created_at": utcnow().isoformat(),
        }
        manifest_path = folder / f"{month}.manifest.json"
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
        async with self.db.transaction() as conn:
            archive_id = (await conn.execute(
                insert(event_archives).values(
                    tenant=tenant, month=month, file=str(final), sha256=digest,
                    count=len(seqs), first_seq=first_seq, last_seq=seqs[-1],
                    last_hash=last_hash, created_at=utcnow(),
                ).returning(event_archives.c.id)
            )).scalar_one()
            for index in range(0, len(seqs), PAGE):
                chunk = seqs[index:index + PAGE]
                await conn.execute(insert(archived_events),
                                   [{"seq": seq, "archive_id": archive_id} for seq in chunk])
                if purge:
                    await conn.execute(delete(events).where(events.c.seq.in_(chunk)))
            if purge:
                await _record_purged_heads(conn, tenant, heads)
        return ArchiveResult(tenant, month, final, len(seqs), last_hash, purge)

    @staticmethod
    def _verify_written(path: Path, seqs: list[int], last_hash: str) -> str:
        """Read the file back: every line parses, hashes recompute, seqs match."""
        count = 0
        for count, event in enumerate(read_archive(path), 1):
            if event["seq"] != seqs[count - 1] or event_hash(event, event["prev_hash"]) != \
                    event["hash"]:
                raise ArchiveError(f"{path}: line {count} does not match the database")
        if count != len(seqs) or (count and event["hash"] != last_hash):
            raise ArchiveError(f"{path}: holds {count} events, expected {len(seqs)}")
        return _sha256(path)

    # -- verification ---------------------------------------------------------------------

    async def verify(self, tenant: str | None = None) -> list[ChainReport]:
        """Recompute every chain over archived files and live rows, in seq order."""
        async with self.db.reader() as conn:
            query = select(event_archives).order_by(event_archives.c.id)
            if tenant is not None:
                query = query.where(event_archives.c.tenant == tenant)
            archives = (await conn.execute(query)).all()
            tenants_query = select(events.c.tenant).distinct()
            if tenant is not None:
                tenants_query = tenants_query.where(events.c.tenant == tenant)
            tenants = {t for (t,) in (await conn.execute(tenants_query)).all()}
        tenants |= {a.tenant for a in archives}
        reports = []
        for name in sorted(tenants):
            reports.append(await self._verify_tenant(
                name, [a for a in archives if a.tenant == name]))
        return reports

    async def _verify_tenant(self, tenant: str, archives: list[Any]) -> ChainReport:
        report = ChainReport(tenant)
        found: dict[int, dict[str, Any]] = {}
        for archive in archives:
            archived, problems = _load_archive(Path(archive.file), archive.sha256)
            report.broken += problems
            for event in archived:
                found[int(event["seq"])] = event
            report.archived += len(archived)
        after = -1
        while True:
            async with self.db.reader() as conn:
                rows = (await conn.execute(
                    select(events).where(events.c.tenant == tenant, events.c.seq > after)
                    .order_by(events.c.seq).limit(PAGE))).all()
            for row in rows:
                live = event_from_row(row)
                copy = found.get(live["seq"])
                if copy is not None and copy != live:
                    report.broken.append({"seq": live["seq"],
                                          "reason": "archived copy differs from the database"})
                found[live["seq"]] = live
            if len(rows) < PAGE:
                break
            after = rows[-1].seq
        heads: dict[str, str | None] = {}
        for seq in sorted(found):
            event = found[seq]
            chain = chain_key(tenant, event["doc"])
            expected = heads.get(chain)
            if event["prev_hash"] != expected or event_hash(event, expected) != event["hash"]:
                report.broken.append({"seq": seq, "doc": event["doc"],
                                      "reason": "hash chain broken"})
            heads[chain] = event["hash"]
            report.events += 1
        return report
