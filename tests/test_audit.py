"""The audit log (docs/protocol.md section 8): what every mutation appends, append-only storage,
the hash chain, redaction, and the per-document history."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from persistence.audit import Actor, AuditContext, event_hash
from persistence.database import Database
from persistence.documents import DocumentStore
from persistence.schema import revisions
from tests.support import TIMEOUT, RunningServer

EVENT_FIELDS = {
    "seq", "id", "tenant", "type", "doc", "kind", "idea", "version", "actor", "source",
    "correlation_id", "ts", "data", "prev_hash", "hash",
}
HEX64 = re.compile(r"[0-9a-f]{64}")
REDACTED = "[redacted]"
# A state bigger than this module's max_state_bytes, yet well below the 1 MiB frame limit.
MAX_STATE_BYTES = 16 * 1024


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Every server of this module masks ``email`` and ``ssn`` and keeps states small."""
    return {"redact": frozenset({"email", "ssn"}), "max_state_bytes": MAX_STATE_BYTES}


# -- helpers ----------------------------------------------------------------------------------


async def all_history(server: RunningServer, token: str, doc: str) -> list[dict[str, Any]]:
    """Every event of ``doc``, following ``next`` cursors to the end."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    async with server.http(token) as http:
        for _ in range(1000):
            params: dict[str, Any] = {"limit": 1000}
            if cursor:
                params["cursor"] = cursor
            response = await http.get(f"/api/documents/{doc}/history", params=params)
            assert response.status_code == 200, response.text
            page = response.json()
            found.extend(page["events"])
            cursor = page["next"]
            if cursor is None:
                return found
    raise AssertionError("history never ended")


async def run_sql(engine: AsyncEngine, statement: str, **params: Any) -> Any:
    """Run one statement in its own transaction on a raw connection; returns its rows."""
    async def go() -> Any:
        async with engine.begin() as conn:
            result = await conn.execute(text(statement), params)
            return result.all() if result.returns_rows else None

    return await asyncio.wait_for(go(), TIMEOUT)


def parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def check_event_shape(event: dict[str, Any]) -> None:
    """Assert the fields of section 8 are all present and well formed."""
    assert set(event) >= EVENT_FIELDS, f"missing {EVENT_FIELDS - set(event)} in {event}"
    assert isinstance(event["seq"], int) and event["seq"] > 0
    assert isinstance(event["id"], str) and event["id"]
    assert set(event["actor"]) >= {"id", "name", "kind"}
    assert event["actor"]["kind"] in ("user", "bot", "system")
    assert event["source"] in ("ws", "http", "bulk", "system")
    assert isinstance(event["correlation_id"], str) and event["correlation_id"]
    assert abs(parse_ts(event["ts"]) - datetime.now(UTC)) < timedelta(minutes=5)
    assert isinstance(event["data"], dict)
    assert HEX64.fullmatch(event["hash"])
    assert event["prev_hash"] is None or HEX64.fullmatch(event["prev_hash"])


# -- what each mutation appends ---------------------------------------------------------------


async def test_create_appends_document_created(server: RunningServer) -> None:
    """Creating a document appends one complete document.created event at version 1."""
    token = server.token(user="ann", name="Ann", tenant="acme")
    async with server.http(token, **{"X-Correlation-ID": "create-42"}) as http:
        response = await http.post("/api/documents", json={
            "kind": "memo", "title": "Audit me", "state": {"a": 1, "list": [1, 2]}})
    assert response.status_code == 201, response.text
    assert response.headers["X-Correlation-ID"] == "create-42"
    doc = response.json()

    (event,) = await all_history(server, token, doc["id"])
    check_event_shape(event)
    assert event["type"] == "document.created"
    assert (event["doc"], event["kind"], event["version"], event["tenant"]) == (
        doc["id"], "memo", 1, "acme")
    assert event["actor"] == {"id": "ann", "name": "Ann", "kind": "user"}
    assert event["source"] == "http"
    assert event["correlation_id"] == "create-42"
    assert event["data"]["state"] == {"a": 1, "list": [1, 2]}
    assert event["prev_hash"] is None


async def test_each_accepted_patch_appends_one_patch_applied(server: RunningServer) -> None:
    """Every accepted patch appends exactly one patch.applied event carrying its ops and the
    before and after values at each written path; rejected patches append nothing."""
    token = server.token()
    doc = await server.create(token, state={"a": 1, "obj": {"x": 1}, "list": [10, 20]})
    doc_id = doc["id"]
    first_ops = [
        {"op": "replace", "path": "/a", "value": 2},
        {"op": "add", "path": "/obj/y", "value": {"deep": [1]}},
        {"op": "remove", "path": "/list/0"},
    ]
    async with await server.connect(token) as ws:
        assert (await ws.ok("patch", doc=doc_id, base=1, ops=first_ops))["version"] == 2
        second_ops = [{"op": "add", "path": "/b", "value": "new"}]
        reply = await ws.ok("patch", doc=doc_id, base=1, ops=second_ops)  # stale, disjoint
        assert reply["version"] == 3 and reply.get("rebased") is True

        rejected: list[tuple[dict[str, Any], str]] = [
            ({"base": 1, "ops": [{"op": "replace", "path": "/a", "value": 9}]}, "conflict"),
            ({"base": 3, "ops": [{"op": "test", "path": "/a", "value": 999}]}, "conflict"),
            ({"base": 3, "ops": [{"op": "remove", "path": "/missing"}]}, "bad_request"),
            ({"base": 3, "ops": [{"op": "frobnicate", "path": "/a"}]}, "bad_request"),
            ({"base": 3, "ops": []}, "bad_request"),
            ({"base": 9, "ops": [{"op": "add", "path": "/c", "value": 1}]}, "bad_request"),
            ({"base": 3, "ops": [{"op": "add", "path": "/big",
                                  "value": "x" * (MAX_STATE_BYTES + 1)}]}, "too_large"),
        ]
        for fields, code in rejected:
            reply = await ws.request("patch", doc=doc_id, **fields)
            assert reply["type"] == "error" and reply["code"] == code, (fields, reply)

    events = await all_history(server, token, doc_id)
    assert [e["type"] for e in events] == ["document.created", "patch.applied", "patch.applied"]
    assert [e["version"] for e in events] == [1, 2, 3]
    for event in events:
        check_event_shape(event)
    first, second = events[1]["data"], events[2]["data"]
    assert first["ops"] == first_ops
    assert first["before"] == {"/a": 1, "/list/0": 10}  # /obj/y did not exist before
    assert first["after"] == {"/a": 2, "/obj/y": {"deep": [1]}, "/list/0": 20}
    assert second["ops"] == second_ops
    assert second["before"] == {}
    assert second["after"] == {"/b": "new"}

    async with server.http(token) as http:
        current = (await http.get(f"/api/documents/{doc_id}")).json()
    assert current["version"] == 3
    assert current["state"] == {"a": 2, "obj": {"x": 1, "y": {"deep": [1]}}, "list": [20],
                                "b": "new"}


async def test_event_is_visible_as_soon_as_the_write_is_acknowledged(
    server: RunningServer,
) -> None:
    """A write's patch.applied event is readable the moment the write is acknowledged."""
    token = server.token()
    doc = await server.create(token, state={"n": 0})
    async with await server.connect(token) as ws:
        for version in range(2, 7):
            reply = await ws.ok("patch", doc=doc["id"], base=version - 1,
                                ops=[{"op": "replace", "path": "/n", "value": version}])
            assert reply["version"] == version
            events = await all_history(server, token, doc["id"])
            assert events[-1]["type"] == "patch.applied"
            assert events[-1]["version"] == version
            assert events[-1]["data"]["after"] == {"/n": version}


async def test_event_and_write_commit_or_roll_back_together(database_url: str) -> None:
    """When a write fails after its event was inserted, the event rolls back with it."""
    db = Database(database_url)
    store = DocumentStore(db)
    ctx = AuditContext(Actor("robot", "Robot", "bot"), "acme", "system")
    try:
        document, _ = await asyncio.wait_for(
            store.create(ctx, kind="memo", title="Atomic", state={"n": 0}), TIMEOUT)
        doc_id = document["id"]
        await asyncio.wait_for(store.apply_patch(
            ctx, doc_id, base=1, ops=[{"op": "replace", "path": "/n", "value": 1}]), TIMEOUT)
        # A stray revision at version 3 makes the next write fail on its revision insert,
        # which runs after that write has inserted its patch.applied event.
        async def insert_stray_revision() -> None:
            async with db.transaction() as conn:
                await conn.execute(revisions.insert().values(
                    doc=doc_id, version=3, tenant="acme", ops="[]", units="[]", actor_id="x",
                    actor_name="X", ts=datetime.now(UTC), event_seq=0))

        await asyncio.wait_for(insert_stray_revision(), TIMEOUT)
        with pytest.raises((IntegrityError, asyncpg.UniqueViolationError)):
            await asyncio.wait_for(store.apply_patch(
                ctx, doc_id, base=2, ops=[{"op": "replace", "path": "/n", "value": 2}]), TIMEOUT)

        history = await asyncio.wait_for(store.history("acme", doc_id), TIMEOUT)
        assert [(e["type"], e["version"]) for e in history["events"]] == [
            ("document.created", 1), ("patch.applied", 2)]
        current = await asyncio.wait_for(store.get("acme", doc_id), TIMEOUT)
        assert current["version"] == 2 and current["state"] == {"n": 1}
        assert await asyncio.wait_for(store.verify("acme", doc_id), TIMEOUT) == {
            "ok": True, "events": 2}
    finally:
        await asyncio.wait_for(db.dispose(), TIMEOUT)


async def test_refused_patch_appends_access_denied(server: RunningServer) -> None:
    """A viewer's patch answers forbidden, changes nothing and appends access.denied."""
    owner = server.token()
    viewer = server.token(user="vic", name="Vic", roles=["viewer"])
    doc = await server.create(owner, state={"a": 1})
    async with await server.connect(viewer) as ws:
        reply = await ws.request("patch", doc=doc["id"], base=1,
                                 ops=[{"op": "replace", "path": "/a", "value": 2}])
    assert reply["type"] == "error" and reply["code"] == "forbidden"
    async with server.http(viewer, **{"X-Correlation-ID": "denied-http"}) as http:
        response = await http.patch(f"/api/documents/{doc['id']}", headers={"If-Match": '"1"'},
                                    json=[{"op": "replace", "path": "/a", "value": 3}])
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"
        current = (await http.get(f"/api/documents/{doc['id']}")).json()
    assert current["version"] == 1 and current["state"] == {"a": 1}

    events = await all_history(server, owner, doc["id"])
    assert [e["type"] for e in events] == ["document.created", "access.denied", "access.denied"]
    for event, source in zip(events[1:], ("ws", "http"), strict=True):
        check_event_shape(event)
        assert event["doc"] == doc["id"] and event["kind"] == "memo"
        assert event["actor"] == {"id": "vic", "name": "Vic", "kind": "user"}
        assert event["source"] == source
    assert events[2]["correlation_id"] == "denied-http"


async def test_events_record_source_actor_kind_and_correlation_id(
    server: RunningServer,
) -> None:
    """WebSocket writes record source ws, HTTP writes source http with the X-Correlation-ID
    they sent (echoed back), and a bot token acts as actor kind bot."""
    person = server.token(user="pat", name="Pat")
    bot = server.token(user="bot-1", name="Bot One", roles=["bot"])
    doc = await server.create(person, state={"a": 0, "b": 0, "c": 0})
    async with await server.connect(bot) as ws:
        await ws.ok("patch", doc=doc["id"], base=1,
                    ops=[{"op": "replace", "path": "/a", "value": 1}])
    async with server.http(person, **{"X-Correlation-ID": "corr-7f3a"}) as http:
        response = await http.patch(f"/api/documents/{doc['id']}", headers={"If-Match": '"2"'},
                                    json=[{"op": "replace", "path": "/b", "value": 1}])
        assert response.status_code == 200, response.text
        assert response.json()["version"] == 3
        assert response.headers["X-Correlation-ID"] == "corr-7f3a"
    async with server.http(person) as http:
        response = await http.patch(f"/api/documents/{doc['id']}", headers={"If-Match": '"3"'},
                                    json=[{"op": "replace", "path": "/c", "value": 1}])
        assert response.status_code == 200, response.text
        generated = response.headers["X-Correlation-ID"]
        assert generated

    events = await all_history(server, person, doc["id"])
    assert [e["version"] for e in events] == [1, 2, 3, 4]
    for event in events:
        check_event_shape(event)
        assert event["tenant"] == "acme"
    by_ws, by_http, by_http_plain = events[1:]
    assert by_ws["source"] == "ws"
    assert by_ws["actor"] == {"id": "bot-1", "name": "Bot One", "kind": "bot"}
    assert by_http["source"] == "http"
    assert by_http["actor"] == {"id": "pat", "name": "Pat", "kind": "user"}
    assert by_http["correlation_id"] == "corr-7f3a"
    assert by_http_plain["correlation_id"] == generated
    assert len({e["id"] for e in events}) == len(events)


# -- append-only storage ----------------------------------------------------------------------


async def test_database_refuses_to_change_or_remove_history(database_url: str) -> None:
    """The database itself refuses UPDATE and DELETE (and TRUNCATE on PostgreSQL) of rows
    in events and revisions, whoever connects."""
    db = Database(database_url)
    store = DocumentStore(db)
    ctx = AuditContext(Actor("ann", "Ann"), "acme", "system")
    try:
        document, _ = await asyncio.wait_for(
            store.create(ctx, kind="memo", title="Immutable", state={"n": 0}), TIMEOUT)
        for base in (1, 2):
            await asyncio.wait_for(store.apply_patch(
                ctx, document["id"], base=base,
                ops=[{"op": "replace", "path": "/n", "value": base}]), TIMEOUT)
    finally:
        await asyncio.wait_for(db.dispose(), TIMEOUT)

    engine = create_async_engine(database_url)
    try:
        before = {
            table: await run_sql(engine, f"SELECT * FROM {table} ORDER BY 1, 2")
            for table in ("events", "revisions")
        }
        assert len(before["events"]) == 3 and len(before["revisions"]) == 3
        attempts = [
            "UPDATE events SET data = '{}' WHERE doc = :doc",
            "UPDATE events SET hash = 'x'",
            "DELETE FROM events WHERE doc = :doc",
            "DELETE FROM events",
            "UPDATE revisions SET ops = '[]' WHERE doc = :doc",
            "DELETE FROM revisions WHERE doc = :doc",
            "DELETE FROM revisions",
        ]
        if engine.dialect.name == "postgresql":
            attempts += ["TRUNCATE events", "TRUNCATE revisions", "TRUNCATE events, revisions"]
        for statement in attempts:
            with pytest.raises(DBAPIError) as refused:
                await run_sql(engine, statement, doc=document["id"])
            assert "append-only" in str(refused.value), statement
        for table, rows in before.items():
            assert await run_sql(engine, f"SELECT * FROM {table} ORDER BY 1, 2") == rows
    finally:
        await asyncio.wait_for(engine.dispose(), TIMEOUT)


# -- the hash chain ---------------------------------------------------------------------------


async def tamper_with_event(engine: AsyncEngine, seq: int, data: dict[str, Any]) -> None:
    """Rewrite one event's data behind the server's back, as an attacker with DDL rights."""
    async def go() -> None:
        async with engine.begin() as conn:
            await disable_append_only(conn)
            await conn.execute(text("UPDATE events SET data = :data WHERE seq = :seq"),
                               {"data": json.dumps(data), "seq": seq})

    await asyncio.wait_for(go(), TIMEOUT)


async def disable_append_only(conn: AsyncConnection) -> None:
    if conn.dialect.name == "postgresql":
        await conn.execute(text("ALTER TABLE events DISABLE TRIGGER events_append_only"))
    else:
        await conn.execute(text("DROP TRIGGER events_no_update"))


async def test_hash_chain_links_events_and_verify_finds_tampering(
    server: RunningServer, database_url: str
) -> None:
    """Each event's prev_hash is the hash of its document's previous event, verify answers ok
    with the count, and after one event's data is rewritten verify names its seq."""
    token = server.token()
    viewer = server.token(roles=["viewer"])
    doc = await server.create(token, state={"n": 0})
    other = await server.create(token, state={"n": 0})  # interleaves seqs of another chain
    async with await server.connect(token) as ws, await server.connect(viewer) as denied:
        for version in range(2, 8):
            for doc_id in (doc["id"], other["id"]):
                await ws.ok("patch", doc=doc_id, base=version - 1,
                            ops=[{"op": "replace", "path": "/n", "value": version}])
            if version == 4:
                reply = await denied.request("patch", doc=doc["id"], base=4,
                                             ops=[{"op": "remove", "path": "/n"}])
                assert reply["code"] == "forbidden"

    events = await all_history(server, token, doc["id"])
    assert len(events) == 8
    assert "access.denied" in [e["type"] for e in events]
    previous: str | None = None
    for event in events:
        assert event["prev_hash"] == previous
        assert event_hash(event, event["prev_hash"]) == event["hash"]
        previous = event["hash"]
    assert len({e["hash"] for e in events}) == len(events)

    async with server.http(token) as http:
        for doc_id in (doc["id"], other["id"]):
            response = await http.get(f"/api/documents/{doc_id}/verify")
            assert response.status_code == 200
            assert response.json() == {"ok": True, "events": 7 + (doc_id == doc["id"])}

    target = events[3]
    assert target["type"] == "patch.applied"
    forged = json.loads(json.dumps(target["data"]))
    forged["after"] = {"/n": 1_000_000}
    engine = create_async_engine(database_url)
    try:
        await tamper_with_event(engine, target["seq"], forged)
    finally:
        await asyncio.wait_for(engine.dispose(), TIMEOUT)

    async with server.http(token) as http:
        result = (await http.get(f"/api/documents/{doc['id']}/verify")).json()
        untouched = (await http.get(f"/api/documents/{other['id']}/verify")).json()
    assert result["ok"] is False
    assert result["seq"] == target["seq"]
    assert untouched == {"ok": True, "events": 7}


# -- redaction --------------------------------------------------------------------------------


async def test_redacted_names_are_masked_in_stored_events_only(
    server: RunningServer, database_url: str
) -> None:
    """Values under COEDIT_REDACT names are stored as "[redacted]" in event data at any
    depth, while the document, its old versions and live deltas keep the real values."""
    writer_token = server.token()
    reader_token = server.token()
    secrets = ["alice@example.com", "111-22-3333", "bob@example.com", "alice2@example.com",
               "carol@example.com", "999-99-9999", "dave@example.com"]
    state = {"profile": {"email": "alice@example.com", "name": "Alice"}, "ssn": "111-22-3333",
             "contacts": [{"email": "bob@example.com", "phone": "555-0100"}], "note": "keep"}
    doc = await server.create(writer_token, state=state)
    doc_id = doc["id"]
    patches = [
        [{"op": "replace", "path": "/profile/email", "value": "alice2@example.com"}],
        [{"op": "add", "path": "/contacts/-",
          "value": {"email": "carol@example.com", "deep": {"ssn": "999-99-9999", "x": 1}}}],
        [{"op": "replace", "path": "/profile",
          "value": {"email": "dave@example.com", "name": "Dave"}}],
        [{"op": "remove", "path": "/ssn"}],
        [{"op": "test", "path": "/profile/email", "value": "dave@example.com"},
         {"op": "replace", "path": "/note", "value": "changed"}],
    ]
    async with await server.connect(writer_token) as writer, \
            await server.connect(reader_token) as reader:
        await reader.ok("subscribe", doc=doc_id)
        for base, ops in enumerate(patches, start=1):
            assert (await writer.ok("patch", doc=doc_id, base=base, ops=ops))["version"] == base + 1
        deltas = await reader.deltas(doc_id, len(patches))
    assert [d["ops"] for d in deltas] == patches  # live deltas keep the real values

    async with server.http(writer_token) as http:
        current = (await http.get(f"/api/documents/{doc_id}")).json()
        second = (await http.get(f"/api/documents/{doc_id}", params={"version": 2})).json()
    assert current["state"] == {
        "profile": {"email": "dave@example.com", "name": "Dave"},
        "contacts": [{"email": "bob@example.com", "phone": "555-0100"},
                     {"email": "carol@example.com", "deep": {"ssn": "999-99-9999", "x": 1}}],
        "note": "changed",
    }
    assert second["state"]["profile"]["email"] == "alice2@example.com"
    assert second["state"]["ssn"] == "111-22-3333"

    events = await all_history(server, writer_token, doc_id)
    created, *applied = events
    assert created["data"]["state"] == {
        "profile": {"email": REDACTED, "name": "Alice"}, "ssn": REDACTED,
        "contacts": [{"email": REDACTED, "phone": "555-0100"}], "note": "keep"}
    one, two, three, four, five = (e["data"] for e in applied)
    assert one["ops"] == [{"op": "replace", "path": "/profile/email", "value": REDACTED}]
    assert one["before"] == {"/profile/email": REDACTED}
    assert one["after"] == {"/profile/email": REDACTED}
    masked_contact = {"email": REDACTED, "deep": {"ssn": REDACTED, "x": 1}}
    assert two["ops"] == [{"op": "add", "path": "/contacts/-", "value": masked_contact}]
    assert two["after"] == {"/contacts/-": masked_contact}
    assert three["ops"][0]["value"] == {"email": REDACTED, "name": "Dave"}
    assert three["before"] == {"/profile": {"email": REDACTED, "name": "Alice"}}
    assert three["after"] == {"/profile": {"email": REDACTED, "name": "Dave"}}
    assert four["before"] == {"/ssn": REDACTED}
    assert five["ops"] == [{"op": "test", "path": "/profile/email", "value": REDACTED},
                           {"op": "replace", "path": "/note", "value": "changed"}]
    assert five["after"] == {"/note": "changed"}

    served = json.dumps(events)
    engine = create_async_engine(database_url)
    try:
        stored = json.dumps([row.data for row in await run_sql(
            engine, "SELECT data FROM events WHERE doc = :doc", doc=doc_id)])
    finally:
        await asyncio.wait_for(engine.dispose(), TIMEOUT)
    for secret in secrets:
        assert secret not in served, secret
        assert secret not in stored, secret
    assert "555-0100" in stored and "Alice" in stored  # only the named keys are masked


# -- history pages ----------------------------------------------------------------------------


async def test_history_pages_in_seq_order_without_repeats_or_skips(
    server: RunningServer,
) -> None:
    """History pages with limit and cursor (and since) list one document's events in seq
    order, each exactly once."""
    token = server.token()
    doc = await server.create(token, state={"n": 0})
    noise = await server.create(token, state={"n": 0})
    async with await server.connect(token) as ws:
        for version in range(2, 26):
            for doc_id in (doc["id"], noise["id"]):
                await ws.ok("patch", doc=doc_id, base=version - 1,
                            ops=[{"op": "replace", "path": "/n", "value": version}])
    everything = await all_history(server, token, doc["id"])
    assert len(everything) == 25
    assert [e["version"] for e in everything] == list(range(1, 26))
    seqs = [e["seq"] for e in everything]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert {e["doc"] for e in everything} == {doc["id"]}

    url = f"/api/documents/{doc['id']}/history"
    async with server.http(token) as http:
        for limit in (1, 5, 7, 25, 100):
            pages: list[list[int]] = []
            cursor: str | None = None
            while True:
                params: dict[str, Any] = {"limit": limit}
                if cursor:
                    params["cursor"] = cursor
                page = (await http.get(url, params=params)).json()
                pages.append([e["seq"] for e in page["events"]])
                assert len(page["events"]) <= limit
                cursor = page["next"]
                if cursor is None:
                    break
                assert len(pages) <= 30, "pagination does not end"
            assert [seq for page_seqs in pages for seq in page_seqs] == seqs, limit
            assert all(pages), f"an empty page before the end with limit {limit}"

        since = seqs[9]
        page = (await http.get(url, params={"since": since})).json()
        assert [e["seq"] for e in page["events"]] == seqs[10:]
        assert page["next"] is None
        first = (await http.get(url, params={"since": since, "limit": 4})).json()
        rest = (await http.get(url, params={"since": since, "cursor": first["next"]})).json()
        assert [e["seq"] for e in first["events"] + rest["events"]] == seqs[10:]
        assert (await http.get(url, params={"since": seqs[-1]})).json() == {
            "events": [], "next": None}

        for params in ({"limit": 0}, {"cursor": "not-a-cursor"}):
            response = await http.get(url, params=params)
            assert response.status_code == 400, params
            assert response.json()["error"]["code"] == "bad_request"
        foreign = server.token(tenant="globex")
    async with server.http(foreign) as http:
        response = await http.get(url)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
