"""Scenario ``search``: query latency over 100,000 memos, and what the index costs the writes.

1. **Load.** Memos (``bench/memos.py``, fixed seed) go straight into ``documents`` with
   COPY; their index rows are made by the functions every write uses
   (``persistence.search_index``: ``document_words``, ``IndexChanges``, ``deletion_keys``)
   and copied in beside them. Then ``VACUUM ANALYZE``, as autovacuum would after a load.
2. **Queries.** ``GET /api/search`` over HTTP on one node, one request at a time: two words
   of five or more letters from a random memo, one of them with a typo (an insert, a delete,
   a substitution or a swap, in turn). p50 and p99 of the round trip.
3. **Write cost.** Sixteen closed-loop writers on sixteen memos, each patch replacing a
   paragraph with new prose (so the index really changes): acknowledged writes a second on a
   node that keeps the index current, and on one started with ``COEDIT_SEARCH_INDEX=off``,
   alternately, best window of each.
4. **pg_trgm, for comparison** (the alternative the issue named): a trigram GIN index over
   each document's lowercased title and state; the same queries as substring candidates
   (the typo word as its one-edit ``LIKE`` patterns) timed in SQL alone, and the writes
   again with that index present instead of ours.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

from bench.cluster import TENANT, BenchCluster, Node
from bench.coedit_client import CoeditClient
from bench.measure import RunContext, percentile
from bench.memos import memo, paragraph
from persistence.jsonutil import dumps
from persistence.search_index import (
    FUZZY_MIN,
    IndexChanges,
    deletion_keys,
    document_words,
)

__all__ = ["load_memos", "pg_trgm_queries", "query_latency", "write_rate"]

SEED = 11
WRITERS = 16
_INSERT = "etaoinshrdlu"


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def load_memos(database_url: str, count: int) -> dict[str, Any]:
    """COPY ``count`` memos and their index rows into the run's database."""
    started = time.monotonic()
    now = datetime.now(UTC)
    docs: list[tuple[Any, ...]] = []
    terms: list[tuple[str, str, str, int]] = []
    vocabulary: list[tuple[str, str]] = []
    known: set[str] = set()
    conn = await asyncpg.connect(_asyncpg_dsn(database_url))
    try:
        for index in range(count):
            m = memo(SEED, index)
            doc = str(uuid.UUID(int=random.Random(index).getrandbits(128), version=4))
            docs.append((doc, TENANT, m.kind, m.title, 1, dumps(m.state), now, "loader", now,
                         "loader", 0))
            changes = IndexChanges()
            changes.extend(TENANT, doc, {}, document_words(m.title, m.state))
            terms += changes.added
            # The writes insert a new word's keys each time (a no-op when stored): here each
            # word's keys are made once, the rows are the same.
            for word in {t[1] for t in changes.added} - known:
                known.add(word)
                if len(word) >= FUZZY_MIN - 1:
                    vocabulary += [(key, word) for key in deletion_keys(word)]
            if len(docs) >= 10_000 or index == count - 1:
                await conn.copy_records_to_table(
                    "documents", records=docs,
                    columns=["id", "tenant", "kind", "title", "version", "state",
                             "created_at", "created_by", "updated_at", "updated_by",
                             "lock_seq"])
                await conn.copy_records_to_table("search_terms", records=terms,
                                                 columns=["tenant", "word", "doc", "place"])
                docs, terms = [], []
        # Through a scratch table: the scenarios before this one wrote words of their own
        # into the run's database, and a plain COPY of one already there fails the load.
        await conn.execute("CREATE TEMP TABLE loaded_words (key text, word text)")
        await conn.copy_records_to_table("loaded_words", records=vocabulary,
                                         columns=["key", "word"])
        await conn.execute("INSERT INTO search_words (key, word) SELECT key, word "
                           "FROM loaded_words ON CONFLICT DO NOTHING")
        await conn.execute("VACUUM ANALYZE documents")
        await conn.execute("VACUUM ANALYZE search_terms")
        await conn.execute("VACUUM ANALYZE search_words")
        sizes = await conn.fetchrow(
            "SELECT pg_total_relation_size('search_terms') AS terms, "
            "pg_total_relation_size('search_words') AS words, "
            "pg_total_relation_size('documents') AS documents, "
            "(SELECT count(*) FROM search_terms) AS term_rows, "
            "(SELECT count(*) FROM search_words) AS word_rows")
    finally:
        await conn.close()
    return {"documents": count, "seconds": round(time.monotonic() - started, 1),
            "terms_mb": sizes["terms"] / 2**20, "words_mb": sizes["words"] / 2**20,
            "documents_mb": sizes["documents"] / 2**20, "term_rows": sizes["term_rows"],
            "word_rows": sizes["word_rows"]}


def _typo(word: str, kind: int, rng: random.Random) -> str:
    i = rng.randrange(1, len(word) - 1)
    if kind == 0:
        return word[:i] + rng.choice(_INSERT) + word[i:]
    if kind == 1:
        return word[:i] + word[i + 1:]
    if kind == 2:
        return word[:i] + rng.choice([c for c in _INSERT if c != word[i]]) + word[i + 1:]
    return word[:i] + word[i + 1] + word[i] + word[i + 2:]


def queries(count: int, documents: int) -> list[tuple[str, str]]:
    """``count`` two-word queries (exact word, typo word) drawn from the memos."""
    rng = random.Random(SEED)
    out = []
    for n in range(count):
        m = memo(SEED, rng.randrange(documents))
        words = sorted(w for w in document_words(m.title, m.state)
                       if len(w) >= FUZZY_MIN and w.isalpha())
        first, second = rng.sample(words, 2)
        out.append((first, _typo(second, n % 4, rng)))
    return out


async def query_latency(cluster: BenchCluster, node: Node,
                        asked: list[tuple[str, str]]) -> dict[str, Any]:
    """Round trips of ``GET /api/search`` one at a time (after a short warm-up)."""
    headers = {"Authorization": f"Bearer {cluster.token('searcher')}"}
    times: list[float] = []
    found: list[int] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.port}", headers=headers,
                                 timeout=30) as http:
        for first, second in asked[:20]:
            await http.get("/api/search", params={"q": f"{first} {second}"})
        for first, second in asked:
            start = time.perf_counter()
            response = await http.get("/api/search", params={"q": f"{first} {second}"})
            times.append((time.perf_counter() - start) * 1e3)
            response.raise_for_status()
            found.append(len(response.json()["items"]))
    return {"queries": len(times), "p50_ms": percentile(times, 50),
            "p99_ms": percentile(times, 99), "max_ms": max(times),
            "with_results": sum(1 for f in found if f) / len(found)}


def _one_edit_patterns(word: str) -> list[str]:
    """``LIKE`` patterns that together hold every word one edit from ``word``."""
    patterns = {word}
    for i in range(len(word) + 1):
        patterns.add(word[:i] + "_" + word[i:])
    for i in range(len(word)):
        patterns.add(word[:i] + "_" + word[i + 1:])
        patterns.add(word[:i] + word[i + 1:])
    for i in range(len(word) - 1):
        patterns.add(word[:i] + word[i + 1] + word[i] + word[i + 2:])
    return [f"%{p}%" for p in sorted(patterns)]


async def pg_trgm_queries(database_url: str,
                          asked: list[tuple[str, str]]) -> dict[str, Any]:
    """The trigram alternative: build its index, then time the candidate query in SQL (on
    the first 40 queries: each reads seconds' worth of states)."""
    asked = asked[:40]
    conn = await asyncpg.connect(_asyncpg_dsn(database_url))
    try:
        started = time.monotonic()
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        await conn.execute("SET maintenance_work_mem = '512MB'")
        await conn.execute("CREATE INDEX bench_trgm ON documents USING gin "
                           "(lower(title || ' ' || state) gin_trgm_ops)")
        await conn.execute("ANALYZE documents")
        built = time.monotonic() - started
        size = await conn.fetchval("SELECT pg_relation_size('bench_trgm')")
        statement = await conn.prepare(
            "SELECT count(*) FROM documents WHERE tenant = $1 "
            "AND lower(title || ' ' || state) LIKE $2 "
            "AND lower(title || ' ' || state) LIKE ANY($3::text[])")
        times: list[float] = []
        for first, second in asked[:3]:
            await statement.fetchval(TENANT, f"%{first}%", _one_edit_patterns(second))
        for first, second in asked:
            start = time.perf_counter()
            await statement.fetchval(TENANT, f"%{first}%", _one_edit_patterns(second))
            times.append((time.perf_counter() - start) * 1e3)
    finally:
        await conn.close()
    return {"index_build_s": round(built, 1), "index_mb": size / 2**20,
            "p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99)}


async def drop_pg_trgm(database_url: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(database_url))
    try:
        await conn.execute("DROP INDEX IF EXISTS bench_trgm")
    finally:
        await conn.close()


async def write_rate(ctx: RunContext, cluster: BenchCluster, node: Node) -> list[float]:
    """Acknowledged writes a second of 16 closed-loop writers replacing memo paragraphs, one
    figure per window."""
    clients = [await CoeditClient.open(node.ws_url(cluster.token(f"editor{i}")))
               for i in range(WRITERS)]
    acked: list[list[float]] = [[] for _ in range(WRITERS)]
    stopped = False

    async def edit(i: int, client: CoeditClient) -> None:
        rng = random.Random(1000 + i)
        m = memo(SEED + 1, i)
        doc = await client.create(m.state, title=m.title)
        version = 1
        fields = ("thesis", "financials", "risks", "catalysts")
        while not stopped:
            text = paragraph(rng, "Quorvel Systems", "QRV", 2)
            reply = await client.request({"type": "patch", "doc": doc, "base": version,
                                          "ops": [{"op": "replace",
                                                   "path": f"/{rng.choice(fields)}",
                                                   "value": text}]})
            version = int(reply["version"])
            acked[i].append(time.monotonic())

    tasks = [asyncio.create_task(edit(i, c)) for i, c in enumerate(clients)]
    try:
        await asyncio.sleep(ctx.warmup + 0.5)
        rates = []
        for _ in range(ctx.windows):
            start = time.monotonic()
            await asyncio.sleep(ctx.window)
            end = time.monotonic()
            rates.append(sum(1 for times in acked for t in times if start <= t < end)
                         / (end - start))
        failed = [task for task in tasks if task.done()]
        if failed:
            failed[0].result()  # a writer that stopped early raises its error here
        return rates
    finally:
        stopped = True
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks, timeout=5)
        for client in clients:
            client.close()
