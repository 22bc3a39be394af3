"""Search (docs/protocol.md section 16) over real sockets, on both databases."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from alembic import command
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from persistence.database import Database
from persistence.migrate import _config
from persistence.schema import documents
from persistence.search import DocumentSearch, SearchQuery
from persistence.search_index import deletion_keys, document_words, one_edit_apart
from persistence.timeutil import utcnow
from tests.support import TIMEOUT, RunningServer, replace

LISTED_FIELDS = {"id", "kind", "title", "idea", "version", "created_at", "updated_at",
                 "updated_by"}


async def _search(http: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await http.get("/api/search", params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    assert set(page) == {"items", "next"}
    return page


async def _found(http: httpx.AsyncClient, q: str, **params: Any) -> list[str]:
    """The titles found for ``q``, best first."""
    page = await _search(http, q=q, **params)
    return [item["document"]["title"] for item in page["items"]]


# -- the rules, without a server ----------------------------------------------------------


@pytest.mark.parametrize(("a", "b", "near"), [
    ("revenue", "revenues", True),  # insert
    ("revenue", "revnue", True),  # delete
    ("revenue", "revanue", True),  # substitute
    ("revenue", "reveneu", True),  # swap of neighbours
    ("revenue", "revenue", False),  # the same word is exact, not one edit
    ("revenue", "rveenue", True),
    ("revenue", "evenuer", False),  # two edits
    ("margin", "mraign", False),  # a swap of non-neighbours is two edits
    ("margin", "margins", True),
])
def test_one_edit_apart(a: str, b: str, near: bool) -> None:
    """One insert, delete, substitution or neighbour swap is one edit; anything more is not."""
    assert one_edit_apart(a, b) is near
    assert one_edit_apart(b, a) is near
    if near:
        assert deletion_keys(a) & deletion_keys(b), "one-edit neighbours must share a key"


def test_document_words_know_title_and_state() -> None:
    """Words are case-folded runs of letters and digits, from the title and every state string."""
    words = document_words("Acme Q3", {"a": ["acme rises", {"b": "Q3-2026"}], "n": 7})
    assert words == {"acme": 3, "q3": 3, "rises": 2, "2026": 2}


# -- matching -------------------------------------------------------------------------------


async def test_every_word_must_match(server: RunningServer) -> None:
    """A document is found only when each query word matches its title or a state string."""
    token = server.token()
    await server.create(token, title="Harbor Freight", state={"thesis": "margins expand"})
    await server.create(token, title="Harbor Lights", state={"thesis": "revenue shrinks"})
    async with server.http(token) as http:
        assert await _found(http, "harbor margins") == ["Harbor Freight"]
        assert sorted(await _found(http, "HARBOR")) == ["Harbor Freight", "Harbor Lights"]
        assert await _found(http, "harbor dividends") == []


async def test_one_edit_kinds_match_words_of_five_letters_or_more(server: RunningServer) -> None:
    """Insert, delete, substitute and swap each find a word of five or more letters."""
    token = server.token()
    await server.create(token, title="Memo", state={"body": "Gross margin outlook improves"})
    async with server.http(token) as http:
        for typo in ("outlooks", "outlok", "outlaok", "otulook", "imrpoves", "margni"):
            assert await _found(http, typo) == ["Memo"], typo
        # Two edits are too many.
        assert await _found(http, "otulok") == []


async def test_short_words_need_an_exact_match(server: RunningServer) -> None:
    """Query words under five letters match only exactly (a one-edit word is not enough)."""
    token = server.token()
    await server.create(token, title="Memo", state={"body": "the moat is wide"})
    async with server.http(token) as http:
        assert await _found(http, "moat") == ["Memo"]
        assert await _found(http, "boat") == []
        assert await _found(http, "mota") == []
        assert await _found(http, "wid") == []


async def test_title_ranks_above_state_and_exact_above_one_edit(server: RunningServer) -> None:
    """Title matches come first, then exact matches before one-edit ones; scores fall."""
    token = server.token()
    await server.create(token, title="Notes", state={"body": "pipeline review"})
    await server.create(token, title="Pipeline notes", state={})
    await server.create(token, title="Notes", state={"body": "pipelines review"})
    await server.create(token, title="Pipelines memo", state={})
    async with server.http(token) as http:
        page = await _search(http, q="pipeline")
        found = [(item["document"]["title"], item["matches"][0]["path"])
                 for item in page["items"]]
        assert found == [("Pipeline notes", "/title"), ("Pipelines memo", "/title"),
                         ("Notes", "/body"), ("Notes", "/body")]
        bodies = [item["matches"][0]["snippet"] for item in page["items"][2:]]
        assert bodies == ["pipeline review", "pipelines review"]
        scores = [item["score"] for item in page["items"]]
        assert scores == sorted(scores, reverse=True) and len(set(scores)) == 4
        assert scores[0] == 1.0


async def test_matches_name_paths_and_snippets(server: RunningServer) -> None:
    """Each matching string is named by its JSON pointer with a snippet around the word."""
    token = server.token()
    long_text = "word " * 30 + "Contango appears here " + "tail " * 30
    await server.create(token, title="Futures", state={
        "a/b": {"list": ["nothing", "contango in a list"]}, "long": long_text, "n": 3})
    async with server.http(token) as http:
        page = await _search(http, q="contango")
    item = page["items"][0]
    assert set(item) == {"document", "score", "matches"}
    assert set(item["document"]) == LISTED_FIELDS
    matches = {m["path"]: m["snippet"] for m in item["matches"]}
    assert set(matches) == {"/a~1b/list/1", "/long"}
    assert matches["/a~1b/list/1"] == "contango in a list"
    snippet = matches["/long"]
    assert "Contango appears here" in snippet and snippet.startswith("…")
    assert snippet.endswith("…") and len(snippet) < 120


async def test_kind_and_idea_filter(server: RunningServer) -> None:
    """``kind`` and ``idea`` keep only the documents of that kind or idea."""
    token = server.token()
    async with server.http(token) as http:
        idea = (await http.post("/api/ideas", json={"title": "Acme", "ticker": "ACME"})).json()
        made = await http.post("/api/documents", json={
            "kind": "valuation", "title": "Acme valuation", "idea": idea["id"]})
        assert made.status_code == 201, made.text
        await server.create(token, kind="memo", title="Acme memo")
        assert await _found(http, "acme", kind="memo") == ["Acme memo"]
        assert await _found(http, "acme", idea=idea["id"]) == ["Acme valuation"]
        assert await _found(http, "acme", kind="memo", idea=idea["id"]) == []
        page = await _search(http, q="acme", idea=idea["id"])
        assert page["items"][0]["document"]["idea"] == idea["id"]


async def test_pages_follow_the_cursor(server: RunningServer) -> None:
    """``limit`` and ``cursor`` walk every match exactly once, in rank order."""
    token = server.token()
    for i in range(7):
        await server.create(token, title=f"Ledger {i}" if i % 2 else f"Memo {i}",
                            state={"body": "ledger entry"})
    seen: list[tuple[float, str]] = []
    async with server.http(token) as http:
        cursor = None
        for _ in range(10):
            params: dict[str, Any] = {"q": "ledger", "limit": 3}
            if cursor:
                params["cursor"] = cursor
            page = await _search(http, **params)
            assert len(page["items"]) <= 3
            seen += [(item["score"], item["document"]["id"]) for item in page["items"]]
            cursor = page["next"]
            if cursor is None:
                break
    assert len(seen) == 7 and len({doc for _, doc in seen}) == 7
    assert [s for s, _ in seen] == sorted((s for s, _ in seen), reverse=True)


async def test_another_tenants_text_is_never_found(server: RunningServer) -> None:
    """Only the caller's tenant is searched, even for identical text."""
    ours, theirs = server.token(tenant="acme"), server.token(tenant="globex")
    await server.create(theirs, title="Zanzibar holdings", state={"body": "zanzibar"})
    async with server.http(ours) as http:
        assert await _found(http, "zanzibar") == []
        assert await _found(http, "zanzibra") == []
    await server.create(ours, title="Zanzibar holdings", state={"body": "zanzibar"})
    async with server.http(ours) as http:
        page = await _search(http, q="zanzibar")
    assert len(page["items"]) == 1
    async with server.http(theirs) as http:
        other = await _search(http, q="zanzibar")
    assert len(other["items"]) == 1
    assert other["items"][0]["document"]["id"] != page["items"][0]["document"]["id"]


# -- found as soon as a write is acknowledged ------------------------------------------------


async def test_found_right_after_a_websocket_patch(server: RunningServer) -> None:
    """The new text is found once the patch's ok arrives; the old text no longer is."""
    token = server.token()
    doc = await server.create(token, title="Memo", state={"body": "initial words"})
    async with await server.connect(token) as ws, server.http(token) as http:
        await ws.ok("patch", doc=doc["id"], base=1, ops=replace("/body", "quarterly guidance"))
        assert await _found(http, "guidance") == ["Memo"]
        assert await _found(http, "initial") == []
        # A splice typed into the string turns "guidance" into "guidebook" (two edits away).
        await ws.ok("patch", doc=doc["id"], base=2, ops=[
            {"op": "splice", "path": "/body", "at": 14, "remove": 4, "insert": "ebook"}])
        assert await _found(http, "quarterly guidebook") == ["Memo"]
        assert await _found(http, "guidance") == []
        # A write that leaves no word where words were still takes them out of the index.
        await ws.ok("patch", doc=doc["id"], base=3, ops=replace("/body", "-- ..."))
        assert await _found(http, "quarterly") == []


async def test_found_after_group_committed_batches(server: RunningServer) -> None:
    """Patches sent back to back (sharing transactions) are all found once acknowledged."""
    token = server.token()
    docs = [await server.create(token, title=f"Doc {i}", state={"body": ""}) for i in range(6)]
    async with await server.connect(token) as ws, server.http(token) as http:
        for i, doc in enumerate(docs):
            await ws.send({"type": "patch", "id": f"p{i}", "doc": doc["id"], "base": 1,
                           "ops": [{"op": "splice", "path": "/body", "at": 0, "remove": 0,
                                    "insert": f"tranche{i} accrual"}]})
        for i, doc in enumerate(docs):
            await ws.send({"type": "patch", "id": f"q{i}", "doc": doc["id"], "base": 2,
                           "ops": [{"op": "add", "path": "/extra", "value": f"covenant{i}"}]})
        replies = {}
        async with asyncio.timeout(TIMEOUT):
            while len(replies) < 2 * len(docs):
                message = await ws.recv()
                if message.get("type") in ("ok", "error"):
                    replies[message["re"]] = message
        assert all(r["type"] == "ok" for r in replies.values()), replies
        assert len(await _found(http, "accrual")) == len(docs)
        for i in range(len(docs)):
            # tranche1 is one edit from tranche0: every document matches, the exact one first.
            found = await _found(http, f"tranche{i} covenant{i}")
            assert found[0] == f"Doc {i}" and len(found) == len(docs)


# -- input and roles -----------------------------------------------------------------------


@pytest.mark.parametrize("params", [
    {},
    {"q": ""},
    {"q": "  ,, "},
    {"q": "x" * 201},
    {"q": " ".join(f"w{i}" for i in range(9))},
    {"q": "a" * 41},
    {"q": "memo", "kind": "Not-A-Kind"},
    {"q": "memo", "idea": "i" * 37},
    {"q": "memo", "limit": "0"},
    {"q": "memo", "limit": "101"},
    {"q": "memo", "limit": "ten"},
    {"q": "memo", "cursor": "not-a-cursor"},
])
async def test_bad_params_answer_400(server: RunningServer, params: dict[str, Any]) -> None:
    """Bad or unbounded parameters answer 400 bad_request with a message."""
    async with server.http(server.token()) as http:
        response = await http.get("/api/search", params=params)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "bad_request" and error["message"]


async def test_a_viewer_may_search_and_strangers_may_not(server: RunningServer) -> None:
    """Searching needs the read action: a viewer may; no token is 401."""
    await server.create(server.token(), title="Viewer visible")
    async with server.http(server.token(roles=["viewer"])) as http:
        assert await _found(http, "visible") == ["Viewer visible"]
    async with httpx.AsyncClient(base_url=server.http_url, timeout=TIMEOUT) as anon:
        response = await anon.get("/api/search", params={"q": "visible"},
                                  headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 401, response.text


# -- the ranking, checked against a plain scoring of every document --------------------------


def _expected(docs: list[dict[str, Any]], words: list[str]) -> list[tuple[int, str]]:
    """(score, id) of every matching document, best first, scoring each one in Python."""
    ranked = []
    for doc in docs:
        held = document_words(doc["title"], doc["state"])
        total = 0
        for word in words:
            points = [1 + (16 if place & 1 else 0) + (w == word)
                      for w, place in held.items()
                      if w == word or (len(word) >= 5 and one_edit_apart(word, w))]
            if not points:
                break
            total += max(points)
        else:
            ranked.append((total, doc["id"]))
    return sorted(ranked, key=lambda item: (-item[0], item[1]))


async def test_pages_rank_like_scoring_every_document(server: RunningServer) -> None:
    """Walking the pages gives exactly the order of scoring every document in full."""
    token = server.token()
    texts = [("Copper outlook", "copper prices rise"), ("Memo", "copper prices fall"),
             ("Coppers", "prices of coper"), ("Prices memo", "copper"),
             ("Memo", "copper pricse"), ("Copper prices", "nothing"),
             ("Memo", "cooper price"), ("Memo", "copper, prices, copper"),
             ("Price list", "copper wire"), ("Memo", "prices")]
    docs = [await server.create(token, title=title, state={"body": body, "n": [body]})
            for title, body in texts]
    async with server.http(token) as http:
        for q in ("copper prices", "coper prices", "copper", "prices copper memo", "pricse"):
            seen: list[tuple[int, str]] = []
            cursor = None
            for _ in range(20):
                params: dict[str, Any] = {"q": q, "limit": 2}
                if cursor:
                    params["cursor"] = cursor
                page = await _search(http, **params)
                maximum = 18 * len(q.split())
                seen += [(round(item["score"] * maximum), item["document"]["id"])
                         for item in page["items"]]
                cursor = page["next"]
                if cursor is None:
                    break
            assert seen == _expected(docs, q.split()), q


@pytest.mark.parametrize("rare_postings", [0, 1, 3, 1000])
async def test_rarest_word_driven_and_tiered_pages_rank_alike(
        server: RunningServer, rare_postings: int) -> None:
    """Scoring only the rarest word's documents and filling pages by tiers give the same
    pages, in the order of scoring every document in full, whichever word is rare."""
    token = server.token()
    texts = [("Copper outlook", "copper prices rise"), ("Memo", "copper prices fall"),
             ("Coppers", "prices of coper"), ("Prices memo", "copper"),
             ("Memo", "copper pricse"), ("Copper prices", "nothing"),
             ("Memo", "cooper price zinc"), ("Memo", "copper, prices, copper"),
             ("Price list", "copper wire zinc"), ("Memo", "prices")]
    docs = [await server.create(token, title=title, state={"body": body})
            for title, body in texts]
    tenant = "acme"  # server.token()'s default
    db = Database(server.settings.database_url)
    try:
        finder = DocumentSearch(db, rare_postings=rare_postings)
        for q in ("copper prices", "coper prices", "zinc copper", "prices copper memo",
                  "wire zinc", "pricse", "copper prices outlook rise"):
            seen: list[tuple[int, str]] = []
            cursor = None
            for _ in range(20):
                page = await asyncio.wait_for(finder.search(
                    tenant, SearchQuery.parse(q), limit=2, cursor=cursor), TIMEOUT)
                maximum = 18 * len(q.split())
                seen += [(round(item["score"] * maximum), item["document"]["id"])
                         for item in page["items"]]
                cursor = page["next"]
                if cursor is None:
                    break
            assert seen == _expected(docs, q.split()), (q, rare_postings)
    finally:
        await db.dispose()


async def test_the_migration_indexes_documents_that_exist(database_url: str) -> None:
    """Upgrading to 0009 indexes the documents already stored, by the same rules."""
    engine = create_async_engine(database_url)

    def migrate(conn: Connection, to: str) -> None:
        if to == "head":
            command.upgrade(_config(conn), to)
        else:
            command.downgrade(_config(conn), to)

    try:
        async with engine.begin() as conn:
            await conn.run_sync(migrate, "0008")
            now = utcnow()
            await conn.execute(documents.insert().values(
                id="old-doc", tenant="acme", kind="memo", title="Older memo", version=1,
                state='{"body": "stored before search existed"}', created_at=now,
                created_by="u", updated_at=now, updated_by="u"))
            await conn.run_sync(migrate, "head")
    finally:
        await engine.dispose()
    db = Database(database_url)
    try:
        found = await asyncio.wait_for(DocumentSearch(db).search(
            "acme", SearchQuery.parse("existd older"), limit=None, cursor=None), TIMEOUT)
    finally:
        await db.dispose()
    assert [item["document"]["id"] for item in found["items"]] == ["old-doc"]
    assert found["items"][0]["matches"][0] == {"path": "/title", "snippet": "Older memo"}
