"""Group commit of versioned writes (persistence/batching.py, persistence/writes.py).

Patches submitted while a write transaction is in flight share the next one. These tests run
``DocumentStore`` over both real databases and check that batching is invisible to writers:
every patch gets the reply it would have got alone, sees the patches submitted before it,
fails alone, and keeps its place in line. ``submit_patch`` queues without waiting, so
patches submitted in a row before the test next awaits form one batch; commits are counted
by the database object's own counters of write transactions.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg
import pytest
from sqlalchemy import event, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from persistence.audit import Actor, AuditContext
from persistence.batch_commit import write_transaction
from persistence.database import Database
from persistence.document_archival import DocumentArchival
from persistence.documents import DocumentStore
from persistence.errors import BadRequest, Conflict, Locked, NotFound, TooLarge, Unavailable
from persistence.facts import Delta
from persistence.locks import Holder, LockStore
from persistence.schema import idempotency_keys, revisions, snapshots
from persistence.write_failures import CommitFailed, HeadMoved
from persistence.write_sql_pg import DriverWriteStatements
from persistence.write_statements import BatchRows
from persistence.writes import PatchRequest, WriteResult, WriteRules, write_patches
from server.config import ConfigError, Settings
from tests.support import TIMEOUT, replace

# The driver's own connection handling is what is under test: PostgreSQL only.
postgres_only = pytest.mark.parametrize("backend", ["postgres"], indirect=True)
ANN = AuditContext(Actor("ann", "Ann"), "acme")
BOB = AuditContext(Actor("bob", "Bob"), "acme")
T = TypeVar("T")


class Transactions:
    """Counts the write transactions a database commits and rolls back from now on."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.start = (db.commits, db.rollbacks)

    @classmethod
    def of(cls, db: Database) -> Transactions:
        return cls(db)

    @property
    def commits(self) -> int:
        return self.db.commits - self.start[0]

    @property
    def rollbacks(self) -> int:
        return self.db.rollbacks - self.start[1]


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    try:
        yield database
    finally:
        await asyncio.wait_for(database.dispose(), TIMEOUT)


@pytest.fixture
def store(db: Database) -> DocumentStore:
    return DocumentStore(db, snapshot_every=50)


async def bounded(awaitable: Awaitable[T]) -> T:
    return await asyncio.wait_for(awaitable, TIMEOUT)


async def settle(futures: list[asyncio.Future[WriteResult]]) -> list[WriteResult | BaseException]:
    """Every future's result or exception, in submission order."""
    return await bounded(asyncio.gather(*futures, return_exceptions=True))


async def create(store: DocumentStore, state: dict[str, Any], ctx: AuditContext = ANN) -> str:
    document, _ = await bounded(store.create(ctx, kind="memo", title="t", state=state))
    return str(document["id"])


def ok(outcome: WriteResult | BaseException) -> WriteResult:
    assert isinstance(outcome, WriteResult), outcome
    return outcome


async def check_log(store: DocumentStore, doc: str, version: int) -> list[Delta]:
    """The chain verifies, and events and revisions of versions 1..version line up."""
    assert await bounded(store.verify("acme", doc)) == {"ok": True, "events": version}
    history = (await bounded(store.history("acme", doc, limit=1000)))["events"]
    assert [e["version"] for e in history] == list(range(1, version + 1))
    assert [e["prev_hash"] for e in history[1:]] == [e["hash"] for e in history[:-1]]
    deltas = await bounded(store.deltas_since("acme", doc, 0))
    assert deltas is not None
    assert [d.version for d in deltas] == list(range(1, version + 1))
    assert [d.event for d in deltas] == [e["seq"] for e in history]
    return deltas


async def test_concurrent_writes_to_many_documents_commit_in_shared_transactions(
    db: Database, store: DocumentStore
) -> None:
    """Sixteen concurrent writers on sixteen documents all commit with dense versions, in
    fewer transactions than writes, and every chain verifies."""
    writers, rounds = 16, 5
    docs = [await create(store, {"n": 0}) for _ in range(writers)]
    counter = Transactions.of(db)

    async def writer(doc: str) -> list[int]:
        versions = []
        for n in range(1, rounds + 1):
            result = await store.apply_patch(ANN, doc, base=n, ops=replace("/n", n))
            assert result.reply == {"version": n + 1}
            assert result.delta is not None and result.document is not None
            assert result.document["version"] == n + 1 and result.document["state"] == {"n": n}
            versions.append(result.reply["version"])
        return versions

    results = await bounded(asyncio.gather(*(writer(doc) for doc in docs)))
    assert results == [list(range(2, rounds + 2))] * writers
    assert counter.commits < writers * rounds  # writes shared transactions
    for doc in docs:
        current = await bounded(store.get("acme", doc))
        assert current["version"] == rounds + 1 and current["state"] == {"n": rounds}
        await check_log(store, doc, rounds + 1)


async def test_patches_in_one_batch_see_the_earlier_ones(
    db: Database, store: DocumentStore
) -> None:
    """In one batch, a patch on the previous patch's version applies without a rebase, a stale
    overlapping one conflicts listing the batch's deltas, and a stale disjoint one rebases."""
    doc = await create(store, {"a": 0, "b": 0})
    counter = Transactions.of(db)
    futures = [
        store.submit_patch(ANN, doc, base=1, ops=replace("/a", 1)),
        store.submit_patch(ANN, doc, base=2, ops=replace("/a", 2)),
        store.submit_patch(BOB, doc, base=1, ops=replace("/a", 3)),
        store.submit_patch(BOB, doc, base=1, ops=replace("/b", 1)),
    ]
    first, second, stale, disjoint = await settle(futures)
    assert counter.commits == 1
    assert ok(first).reply == {"version": 2}
    assert ok(second).reply == {"version": 3}
    assert ok(disjoint).reply == {"version": 4, "rebased": True}
    assert ok(disjoint).document == await bounded(store.get("acme", doc))
    assert isinstance(stale, Conflict)
    deltas = await check_log(store, doc, 4)
    # The same payload a lone write would get: the committed deltas of versions 2 and 3.
    assert stale.extra == {"current_version": 3, "your_version": 1, "paths": ["/a"],
                           "deltas": deltas[1:3]}
    assert [ok(first).delta, ok(second).delta] == deltas[1:3]
    current = await bounded(store.get("acme", doc))
    assert current["state"] == {"a": 2, "b": 1} and current["updated_by"] == "bob"


async def test_refused_patch_in_a_batch_fails_alone(db: Database) -> None:
    """Patches refused in the middle of a batch get their own error and change nothing,
    while the patches around them commit."""
    store = DocumentStore(db, max_state_bytes=4096)
    doc, big, locked, archived = [await create(store, {"a": 0}) for _ in range(4)]
    foreign = await create(store, {"a": 0}, AuditContext(Actor("eve", "Eve"), "globex"))
    holder = Holder(session="other-session", user_id="bob", user_name="Bob", node="n")
    lock, _ = await bounded(LockStore(db).acquire(BOB, locked, "/a", holder))
    await bounded(DocumentArchival(db).set_archived(ANN, archived, True))
    futures = [
        store.submit_patch(ANN, doc, base=1, ops=replace("/a", 1)),
        store.submit_patch(ANN, doc, base=2, ops=[{"op": "remove", "path": "/missing"}]),
        store.submit_patch(ANN, big, base=1,
                           ops=[{"op": "add", "path": "/s", "value": "x" * 5000}]),
        store.submit_patch(ANN, foreign, base=1, ops=replace("/a", 1)),
        store.submit_patch(ANN, locked, base=1, ops=replace("/a", 1), session="mine"),
        store.submit_patch(ANN, archived, base=1, ops=replace("/a", 1)),
        store.submit_patch(ANN, doc, base=3, ops=replace("/a", 9)),
        store.submit_patch(ANN, doc, base=2, ops=[{"op": "test", "path": "/a", "value": 5},
                                                  {"op": "replace", "path": "/a", "value": 6}]),
        store.submit_patch(ANN, doc, base=2, ops=replace("/a", 2)),
        store.submit_patch(ANN, big, base=1, ops=replace("/a", 1)),
    ]
    outcomes = await settle(futures)
    assert ok(outcomes[0]).reply == {"version": 2}
    assert isinstance(outcomes[1], BadRequest)
    assert isinstance(outcomes[2], TooLarge) and outcomes[2].extra == {"limit": 4096}
    assert isinstance(outcomes[3], NotFound)
    assert isinstance(outcomes[4], Locked) and outcomes[4].extra == {"lock": lock}
    assert isinstance(outcomes[5], Conflict) and outcomes[5].extra == {"archived": True}
    assert isinstance(outcomes[6], BadRequest) and outcomes[6].extra == {"current_version": 2}
    assert isinstance(outcomes[7], Conflict) and outcomes[7].code == "conflict"
    assert ok(outcomes[8]).reply == {"version": 3}
    assert ok(outcomes[9]).reply == {"version": 2}
    expected = {doc: (3, {"a": 2}), big: (2, {"a": 1}), locked: (1, {"a": 0}),
                archived: (1, {"a": 0})}
    for document, (version, state) in expected.items():
        current = await bounded(store.get("acme", document))
        assert (current["version"], current["state"]) == (version, state)
    await check_log(store, doc, 3)
    await check_log(store, big, 2)


async def test_idempotency_keys_within_and_across_batches(store: DocumentStore) -> None:
    """A key repeated in the same batch or a later one replays the first reply with
    duplicate: true; another user's equal key writes; a refused write leaves its key free."""
    doc = await create(store, {"n": 0})
    outcomes = await settle([
        store.submit_patch(ANN, doc, base=1, ops=replace("/n", 1), key="k"),
        store.submit_patch(ANN, doc, base=1, ops=replace("/n", 1), key="k"),
        store.submit_patch(BOB, doc, base=2, ops=replace("/n", 2), key="k"),
        store.submit_patch(ANN, doc, base=3, ops=[{"op": "remove", "path": "/gone"}], key="f"),
        store.submit_patch(ANN, doc, base=3, ops=replace("/n", 3), key="f"),
        store.submit_patch(ANN, doc, base=4, ops=replace("/n", 4), key="f"),
    ])
    assert ok(outcomes[0]).reply == {"version": 2}
    assert ok(outcomes[1]).reply == {"version": 2, "duplicate": True}
    assert ok(outcomes[1]).delta is None and ok(outcomes[1]).document is None
    assert ok(outcomes[2]).reply == {"version": 3}
    assert isinstance(outcomes[3], BadRequest)
    assert ok(outcomes[4]).reply == {"version": 4}
    assert ok(outcomes[5]).reply == {"version": 4, "duplicate": True}
    later = await settle([
        store.submit_patch(ANN, doc, base=1, ops=replace("/n", 1), key="k"),
        store.submit_patch(BOB, doc, base=2, ops=replace("/n", 2), key="k"),
        store.submit_patch(ANN, doc, base=3, ops=replace("/n", 3), key="f"),
    ])
    assert [ok(o).reply for o in later] == [{"version": 2, "duplicate": True},
                                            {"version": 3, "duplicate": True},
                                            {"version": 4, "duplicate": True}]
    current = await bounded(store.get("acme", doc))
    assert current["version"] == 4 and current["state"] == {"n": 3}
    await check_log(store, doc, 4)


async def test_an_expired_idempotency_key_is_replaced_not_replayed(
    db: Database, store: DocumentStore
) -> None:
    """A key whose row is older than the 24-hour window writes again and takes the row over;
    repeating it afterwards replays the new reply."""
    doc = await create(store, {"n": 0})
    assert ok(await bounded(store.apply_patch(ANN, doc, base=1, ops=replace("/n", 1),
                                              key="k"))).reply == {"version": 2}
    async with db.transaction() as conn:  # as if that write had been a day and a bit ago
        await bounded(conn.execute(
            update(idempotency_keys).where(idempotency_keys.c.doc == doc)
            .values(created_at=datetime.now(UTC) - timedelta(hours=25))))
    again = await bounded(store.apply_patch(ANN, doc, base=2, ops=replace("/n", 2), key="k"))
    assert again.reply == {"version": 3} and again.delta is not None
    replay = await bounded(store.apply_patch(ANN, doc, base=2, ops=replace("/n", 2), key="k"))
    assert replay.reply == {"version": 3, "duplicate": True}
    async with db.reader() as conn:
        rows = (await bounded(conn.execute(
            select(idempotency_keys.c.reply, idempotency_keys.c.created_at)
            .where(idempotency_keys.c.doc == doc)))).all()
    assert len(rows) == 1 and rows[0].reply == '{"version":3}'
    assert rows[0].created_at > datetime.now(UTC) - timedelta(hours=1)
    await check_log(store, doc, 3)


@pytest.mark.parametrize("in_flight", [1, 2])
async def test_writes_commit_in_submission_order_across_batches(
    db: Database, in_flight: int
) -> None:
    """With batches capped at three, ten patches submitted in a row on one document commit
    one after another in submission order, each on the version the previous one made,
    however many batches may be in flight."""
    store = DocumentStore(db, max_batch=3, writes_in_flight=in_flight)
    doc = await create(store, {"n": 0})
    other = await create(store, {"n": 0})
    counter = Transactions.of(db)
    finished: list[int] = []
    futures = []
    for n in range(1, 11):
        future = store.submit_patch(ANN, doc, base=n, ops=replace("/n", n))
        future.add_done_callback(lambda _, n=n: finished.append(n))
        futures.append(future)
        if n % 4 == 0:  # a write elsewhere in between changes nothing for this document
            futures.append(store.submit_patch(ANN, other, base=n // 4, ops=replace("/n", n)))
    outcomes = await settle(futures)
    assert finished == list(range(1, 11))
    assert [ok(o).reply for o in outcomes] == [
        {"version": v} for v in (2, 3, 4, 5, 2, 6, 7, 8, 9, 3, 10, 11)]
    assert counter.commits == 4  # twelve writes, three a batch
    assert (await bounded(store.get("acme", doc)))["state"] == {"n": 10}
    await check_log(store, doc, 11)
    await check_log(store, other, 3)


async def test_database_error_in_a_batch_falls_back_to_single_writes(
    db: Database, store: DocumentStore
) -> None:
    """When the batch transaction fails, each of its writes runs alone: only the write that
    caused the database error gets it, the others commit."""
    first, broken, last = [await create(store, {"n": 0}) for _ in range(3)]
    # A stray revision at version 2 makes the write that creates version 2 of `broken` fail
    # on its revision insert: a real constraint violation, after its event was inserted.
    async with db.transaction() as conn:
        await bounded(conn.execute(revisions.insert().values(
            doc=broken, version=2, tenant="acme", ops="[]", units="[]", actor_id="x",
            actor_name="X", ts=datetime.now(UTC), event_seq=0)))
    counter = Transactions.of(db)
    outcomes = await settle([
        store.submit_patch(ANN, first, base=1, ops=replace("/n", 1)),
        store.submit_patch(ANN, broken, base=1, ops=replace("/n", 1)),
        store.submit_patch(ANN, last, base=1, ops=replace("/n", 1)),
    ])
    assert ok(outcomes[0]).reply == {"version": 2}
    assert isinstance(outcomes[1], IntegrityError | asyncpg.UniqueViolationError)
    assert ok(outcomes[2]).reply == {"version": 2}
    # The batch rolled back, then three single transactions: two commits, one rollback.
    assert (counter.commits, counter.rollbacks) == (2, 2)
    for doc in (first, last):
        await check_log(store, doc, 2)
    current = await bounded(store.get("acme", broken))
    assert current["version"] == 1 and current["state"] == {"n": 0}
    assert await bounded(store.verify("acme", broken)) == {"ok": True, "events": 1}


async def test_snapshots_and_replay_within_one_batch(db: Database) -> None:
    """Eight patches of one document in one batch store a snapshot at every third version,
    each of the same batch's state, and replay gives every version back."""
    store = DocumentStore(db, snapshot_every=3)
    doc = await create(store, {"items": []})
    outcomes = await settle([
        store.submit_patch(ANN, doc, base=n, ops=[{"op": "add", "path": "/items/-", "value": n}])
        for n in range(1, 9)
    ])
    assert [ok(o).reply["version"] for o in outcomes] == list(range(2, 10))
    async with db.reader() as conn:
        stored = (await bounded(conn.execute(
            select(snapshots.c.version).where(snapshots.c.doc == doc)
            .order_by(snapshots.c.version)))).scalars().all()
    assert stored == [1, 3, 6, 9]
    for version in range(1, 10):
        replayed = await bounded(store.state_at("acme", doc, version=version))
        assert replayed["state"] == {"items": list(range(1, version))}
    await check_log(store, doc, 9)


async def test_submit_patch_refuses_bad_arguments_before_queueing(store: DocumentStore) -> None:
    """Malformed base, key or ops raise bad_request from submit_patch itself, queueing
    nothing."""
    doc = await create(store, {"n": 0})
    with pytest.raises(BadRequest):
        store.submit_patch(ANN, doc, base=0, ops=replace("/n", 1))
    with pytest.raises(BadRequest):
        store.submit_patch(ANN, doc, base=1, ops=replace("/n", 1), key="k" * 129)
    with pytest.raises(BadRequest):
        store.submit_patch(ANN, doc, base=1, ops=[])
    assert (await bounded(store.get("acme", doc)))["version"] == 1


async def test_write_cancelled_before_its_batch_starts_is_dropped(store: DocumentStore) -> None:
    """A caller that gives up on a write before its batch started leaves no trace of it."""
    doc = await create(store, {"a": 0, "b": 0})
    kept = store.submit_patch(ANN, doc, base=1, ops=replace("/a", 1))
    dropped = store.submit_patch(ANN, doc, base=1, ops=replace("/b", 1))
    dropped.cancel()
    assert ok(await bounded(kept)).reply == {"version": 2}
    current = await bounded(store.get("acme", doc))
    assert current["version"] == 2 and current["state"] == {"a": 1, "b": 0}


async def test_two_nodes_batching_the_same_documents_all_commit(database_url: str) -> None:
    """Two stores on one database (two nodes) writing batches over the same documents in
    opposite orders commit every write; a batch that fails does so only because the other
    node moved one of its documents (and is tried again), never on a deadlock."""
    nodes = [Database(database_url), Database(database_url)]
    try:
        stores = [DocumentStore(node) for node in nodes]
        docs = [await create(stores[0], {"a": 0, "b": 0}) for _ in range(6)]
        counters = [Transactions.of(node) for node in nodes]

        async def node(store: DocumentStore, field: str, order: list[str]) -> None:
            for _ in range(5):
                futures = [store.submit_patch(ANN, doc, base=1, ops=replace(f"/{field}", 1))
                           for doc in order]
                for outcome in await settle(futures):
                    assert isinstance(outcome, WriteResult | Conflict), outcome

        await bounded(asyncio.gather(node(stores[0], "a", docs),
                                     node(stores[1], "b", docs[::-1])))
        # Every failed attempt was an optimistic batch overtaken by the other node.
        assert [c.rollbacks for c in counters] == [s.moved_retries for s in stores]
        for doc in docs:
            current = await bounded(stores[0].get("acme", doc))
            assert current["state"] == {"a": 1, "b": 1}
            await check_log(stores[0], doc, current["version"])
    finally:
        for node_db in nodes:
            await asyncio.wait_for(node_db.dispose(), TIMEOUT)


class Overtaken:
    """The real PostgreSQL statements of an optimistic batch, with another node's write
    committed between the batch's reads and its write: the race the write must detect."""

    def __init__(self, inner: DriverWriteStatements, meanwhile: Awaitable[Any]) -> None:
        self.inner = inner
        self.meanwhile = meanwhile

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def store(self, rows: BatchRows) -> int | None:
        await self.meanwhile
        return await self.inner.store(rows)


async def overtaken_batch(db: Database, request: PatchRequest,
                          meanwhile: Callable[[DriverWriteStatements], Awaitable[Any]]) -> None:
    """Run ``request`` as an optimistic batch with ``meanwhile`` between its reads and its
    write (``meanwhile`` gets the batch's statements, to reach its connection)."""
    rules = WriteRules(50, 1024 * 1024, frozenset())
    async with write_transaction(db, optimistic=True) as sql:
        assert isinstance(sql, DriverWriteStatements)
        await bounded(write_patches(Overtaken(sql, meanwhile(sql)), [request], rules=rules,
                                    clock=lambda: datetime.now(UTC)))


async def terminate_backends(database_url: str, where: str, *args: Any) -> int:
    """End the server processes of ``pg_stat_activity`` rows matching ``where``."""
    admin = await bounded(asyncpg.connect(
        make_url(database_url).set(drivername="postgresql", database="postgres")
        .render_as_string(hide_password=False)))
    try:
        return int(await bounded(admin.fetchval(
            f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE {where}",
            *args)))
    finally:
        await bounded(admin.close())


@postgres_only
async def test_an_optimistic_batch_overtaken_by_another_node_writes_nothing(
    db: Database, store: DocumentStore, database_url: str
) -> None:
    """When another node writes a document between an optimistic batch's read and its write,
    the write raises HeadMoved and leaves no event, revision or row change behind; the
    store then runs the batch again on top of the other node's version."""
    doc = await create(store, {"a": 0, "b": 0})
    other_db = Database(database_url)
    other = DocumentStore(other_db)
    try:
        request = PatchRequest(ANN, doc, 1, replace("/a", 1), None, None, None)
        with pytest.raises(HeadMoved):
            await overtaken_batch(db, request, lambda _: other.apply_patch(
                BOB, doc, base=1, ops=replace("/b", 7)))
        current = await bounded(store.get("acme", doc))
        assert current["version"] == 2 and current["state"] == {"a": 0, "b": 7}
        await check_log(store, doc, 2)
        # Through the store, the same patch (made on version 1) rebases onto version 2.
        again = await bounded(store.apply_patch(ANN, doc, base=1, ops=replace("/a", 1)))
        assert again.reply == {"version": 3, "rebased": True}
        await check_log(store, doc, 3)
    finally:
        await bounded(other_db.dispose())


@postgres_only
async def test_a_write_statement_whose_connection_dies_answers_unavailable(
    db: Database, store: DocumentStore, database_url: str
) -> None:
    """If the connection dies before the optimistic write statement's answer, nobody knows
    whether it committed: the batch fails with CommitFailed(unavailable), never retried,
    and the broken connection is not used again (the next write commits)."""
    doc = await create(store, {"a": 0})
    request = PatchRequest(ANN, doc, 1, replace("/a", 1), None, None, None)

    async def end_this_connection(sql: DriverWriteStatements) -> None:
        assert await terminate_backends(database_url, "pid = $1", sql.conn.get_server_pid())
        await asyncio.sleep(0.2)

    with pytest.raises(CommitFailed) as failed:
        await overtaken_batch(db, request, end_this_connection)
    assert isinstance(failed.value.cause, Unavailable)
    assert (await bounded(store.get("acme", doc)))["version"] == 1
    after = await bounded(store.apply_patch(ANN, doc, base=1, ops=replace("/a", 2)))
    assert after.reply == {"version": 2}
    await check_log(store, doc, 2)


@postgres_only
async def test_a_lock_taken_between_read_and_write_sends_the_batch_round_again(
    db: Database, store: DocumentStore
) -> None:
    """A lock taken on the document after an optimistic batch read it moves the document
    (its lock counter and chain head): the write does not happen and the retried batch
    answers ``locked``."""
    doc = await create(store, {"a": 0})
    locks = LockStore(db)
    holder = Holder("s-bob", "bob", "Bob", "node-1")
    request = PatchRequest(ANN, doc, 1, replace("/a", 1), None, "s-ann", None)
    with pytest.raises(HeadMoved):
        await overtaken_batch(db, request, lambda _: locks.acquire(
            BOB, doc, "/a", holder, ttl_ms=30_000))
    assert (await bounded(store.get("acme", doc)))["version"] == 1
    with pytest.raises(Locked):
        await bounded(store.apply_patch(ANN, doc, base=1, ops=replace("/a", 1),
                                        session="s-ann"))
    assert store.moved_retries == 0  # the read already saw the lock: no race this time


# -- the connections batches run on ---------------------------------------------------------


@pytest.mark.parametrize(("value", "error"), [("0", "between"), ("many", "integer")])
def test_db_pool_setting_is_checked_at_start_up(value: str, error: str) -> None:
    """COEDIT_DB_POOL must be a positive integer; a bad value names the variable."""
    assert Settings.from_env({}).db_pool == 20
    assert Settings.from_env({"COEDIT_DB_POOL": "32"}).db_pool == 32
    with pytest.raises(ConfigError, match=f"COEDIT_DB_POOL.*{error}"):
        Settings.from_env({"COEDIT_DB_POOL": value})


@pytest.mark.parametrize(("value", "error"), [("0", "between"), ("lots", "integer")])
def test_write_batch_setting_is_checked_at_start_up(value: str, error: str) -> None:
    """COEDIT_WRITE_BATCH must be a positive integer; a bad value names the variable."""
    assert Settings.from_env({}).write_batch == 64
    assert Settings.from_env({"COEDIT_WRITE_BATCH": "1"}).write_batch == 1
    with pytest.raises(ConfigError, match=f"COEDIT_WRITE_BATCH.*{error}"):
        Settings.from_env({"COEDIT_WRITE_BATCH": value})


@pytest.mark.parametrize(("value", "error"), [("0", "between"), ("17", "between"),
                                               ("two", "integer")])
def test_writes_in_flight_setting_is_checked_at_start_up(value: str, error: str) -> None:
    """COEDIT_WRITES_IN_FLIGHT must be an integer from 1 to 16; a bad value names it."""
    assert Settings.from_env({}).writes_in_flight == 1
    assert Settings.from_env({"COEDIT_WRITES_IN_FLIGHT": "2"}).writes_in_flight == 2
    with pytest.raises(ConfigError, match=f"COEDIT_WRITES_IN_FLIGHT.*{error}"):
        Settings.from_env({"COEDIT_WRITES_IN_FLIGHT": value})


@postgres_only
async def test_writes_to_an_unreachable_database_answer_unavailable(database_url: str) -> None:
    """With nothing listening where the database should be, a write fails with
    ``unavailable`` (retry later), not as an internal error."""
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    closed = port.getsockname()[1]
    port.close()
    nowhere = make_url(database_url).set(port=closed).render_as_string(hide_password=False)
    database = Database(nowhere)
    try:
        outcome = await settle([DocumentStore(database).submit_patch(
            ANN, "some-doc", base=1, ops=replace("/n", 1))])
        assert isinstance(outcome[0], Unavailable), outcome
    finally:
        await bounded(database.dispose())


@postgres_only
async def test_a_write_connection_killed_by_the_server_costs_one_write_at_most(
    database_url: str, db: Database, store: DocumentStore
) -> None:
    """After PostgreSQL ends the write path's connections (named coedit-writes in
    pg_stat_activity), the next write commits or
    answers ``unavailable`` with nothing written, and the one after it commits."""
    doc = await create(store, {"n": 0})
    assert ok(await bounded(store.apply_patch(ANN, doc, base=1, ops=replace("/n", 1)))).reply \
        == {"version": 2}
    ended = await terminate_backends(
        database_url, "datname = $1 AND application_name = 'coedit-writes'",
        make_url(database_url).database)
    assert ended >= 1
    await asyncio.sleep(0.2)  # the server's farewell reaches the idle connections first
    first = (await settle([store.submit_patch(ANN, doc, base=2, ops=replace("/n", 2))]))[0]
    if isinstance(first, WriteResult):
        assert first.reply == {"version": 3}
        expected = 3
    else:
        assert isinstance(first, Unavailable), first
        expected = 2
    current = await bounded(store.get("acme", doc))
    assert current["version"] == expected
    after = await bounded(store.apply_patch(ANN, doc, base=expected, ops=replace("/n", 9)))
    assert after.reply == {"version": expected + 1}
    await check_log(store, doc, expected + 1)


@pytest.mark.parametrize(("url", "tls_offered"), [
    ("postgresql+asyncpg://postgres@127.0.0.1:5432/x", False),
    ("postgresql+asyncpg://postgres@localhost/x", False),
    ("postgresql+asyncpg://postgres@[::1]:5432/x", False),
    ("postgresql+asyncpg://postgres@/x?host=/var/run/postgresql", False),
    ("postgresql+asyncpg://postgres@127.0.0.1/x?ssl=require", True),
    ("postgresql+asyncpg://postgres@db.example.invalid/x", True),
    ("postgresql+asyncpg://postgres@/x?host=127.0.0.1:5432&host=db.example.invalid:5432", True),
])
async def test_only_connections_beyond_this_machine_try_tls(url: str, tls_offered: bool) -> None:
    """A loopback or unix-socket URL that says nothing about TLS connects with ssl=False;
    any other keeps asyncpg's default (or the URL's own choice)."""
    database = Database(url)
    seen: dict[str, Any] = {}

    class Stop(Exception):
        pass

    def record(_dialect: Any, _record: Any, _args: Any, params: dict[str, Any]) -> None:
        seen.update(params)
        raise Stop  # connect nowhere: the arguments are what is under test

    event.listen(database.engine.sync_engine, "do_connect", record)
    try:
        with pytest.raises(Stop):
            await bounded(database.ping())
    finally:
        await bounded(database.dispose())
    assert (seen.get("ssl") is not False) is tls_offered
    assert seen["server_settings"] == {"plan_cache_mode": "force_custom_plan"}
