"""Identity over real connections (docs/protocol.md section 2): tokens, dev login, the anonymous
viewer, the role table with its audit trail, tenant isolation and the ``coedit token`` CLI."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from server.auth import TokenIssuer
from tests.support import TIMEOUT, RunningServer, WsClient

# Token mode: no dev login and no anonymous viewer, so a request without a token is refused.
token_mode = pytest.mark.parametrize(
    "settings_overrides", [{"dev_auth": False}], ids=["token-auth"]
)

OPS = [{"op": "replace", "path": "/a", "value": 2}]


def _bad_tokens(server: RunningServer) -> dict[str, str]:
    """Tokens that must all be refused, by what is wrong with them."""
    good = server.token(user="mallory", roles=["admin"])
    header, payload, signature = good.split(".")
    now = int(time.time())
    claims = {"sub": "mallory", "name": "Mallory", "roles": ["admin"], "tenant": "acme",
              "iat": now, "exp": now + 3600}
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return {
        "garbage": "not-a-jwt-at-all",
        "forged signature": f"{header}.{payload}.{flipped}",
        "other key": TokenIssuer("another-secret-that-is-also-long-enough-for-hs256",
                                 dev_auth=False).mint(user="mallory", name="Mallory",
                                                      roles=["admin"], tenant="acme"),
        "alg none": jwt.encode(claims, None, algorithm="none"),
        "expired": server.token(user="mallory", roles=["admin"], ttl=-120),
    }


async def _refused_status(server: RunningServer, **kwargs: Any) -> int:
    """The HTTP status with which the WebSocket handshake was refused."""
    with pytest.raises(InvalidStatus) as refused:
        conn = await asyncio.wait_for(websockets.connect(server.ws_url, **kwargs), TIMEOUT)
        await conn.close()
    return refused.value.response.status_code


async def _history(server: RunningServer, admin: str, doc: str) -> list[dict[str, Any]]:
    async with server.http(admin) as http:
        response = await http.get(f"/api/documents/{doc}/history", params={"limit": 500})
    assert response.status_code == 200, response.text
    return response.json()["events"]  # type: ignore[no-any-return]


async def _http_patch(server: RunningServer, token: str, doc: str, base: int) -> Any:
    async with server.http(token) as http:
        return await http.patch(f"/api/documents/{doc}", json=OPS,
                                headers={"If-Match": f'"{base}"'})


async def _ws_create(client: WsClient, **fields: Any) -> dict[str, Any]:
    """A ``create`` request (``WsClient.request`` cannot carry a field named ``kind``)."""
    rid = f"create-{uuid.uuid4().hex}"
    await client.send({"type": "create", "id": rid, **fields})
    async with asyncio.timeout(TIMEOUT):
        while True:
            message = await client.recv()
            if message.get("re") == rid:
                return message
            client.pushes.append(message)


# -- no token, bad tokens -------------------------------------------------------------------


@token_mode
async def test_http_without_token_is_unauthorized(server: RunningServer) -> None:
    """Without dev auth, an HTTP request carrying no token answers 401 unauthorized."""
    async with server.http() as http:
        for method, path in (("GET", "/api/me"), ("GET", "/api/documents"),
                             ("POST", "/api/documents")):
            response = await http.request(method, path, json={"kind": "memo", "title": "x"})
            assert response.status_code == 401, (method, path, response.text)
            error = response.json()["error"]
            assert error["code"] == "unauthorized" and isinstance(error["message"], str)
            assert "coedit_anon" not in response.cookies


@token_mode
async def test_ws_handshake_without_token_is_refused_with_401(server: RunningServer) -> None:
    """Without dev auth, a WebSocket handshake carrying no token is refused with HTTP 401."""
    assert await _refused_status(server) == 401


@token_mode
async def test_invalid_tokens_are_refused_on_http_and_ws(server: RunningServer) -> None:
    """Forged, foreign-key, unsigned and expired tokens get 401 on HTTP and on the handshake."""
    for what, token in _bad_tokens(server).items():
        async with server.http(token) as http:
            response = await http.get("/api/me")
        assert response.status_code == 401, (what, response.text)
        assert response.json()["error"]["code"] == "unauthorized", what
        async with server.http(Cookie=f"coedit_session={token}") as http:
            response = await http.get("/api/me")
        assert response.status_code == 401, (what, "cookie", response.text)
        assert await _refused_status(server, additional_headers={
            "Authorization": f"Bearer {token}"}) == 401, what
        with pytest.raises(InvalidStatus) as refused:
            await server.connect(token)
        assert refused.value.response.status_code == 401, (what, "query")


async def test_invalid_token_is_refused_even_in_dev_mode(server: RunningServer) -> None:
    """In dev mode a bad token is still refused (401) rather than downgraded to anonymous."""
    expired = server.token(ttl=-120)
    async with server.http(expired) as http:
        response = await http.get("/api/me")
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
    with pytest.raises(InvalidStatus) as refused:
        await server.connect(expired)
    assert refused.value.response.status_code == 401


# -- where a token may travel ---------------------------------------------------------------


@token_mode
async def test_token_is_accepted_as_bearer_cookie_and_query(server: RunningServer) -> None:
    """A valid token works as a Bearer header or session cookie on HTTP, and also as ?token=
    on the WebSocket."""
    token = server.token(user="ada", name="Ada", roles=["analyst"], tenant="acme")
    expected = {"id": "ada", "name": "Ada", "roles": ["analyst"], "tenant": "acme"}
    async with server.http(token) as http:
        response = await http.get("/api/me")
    assert response.status_code == 200, response.text
    assert response.json()["user"] == expected
    async with server.http(Cookie=f"coedit_session={token}") as http:
        response = await http.get("/api/me")
    assert response.status_code == 200, response.text
    assert response.json()["user"] == expected

    async with await server.connect(token) as client:
        assert client.welcome["user"] == expected
    async with await server.connect(
        additional_headers={"Authorization": f"Bearer {token}"}
    ) as client:
        assert client.welcome["user"] == expected
    async with await server.connect(
        additional_headers={"Cookie": f"coedit_session={token}"}
    ) as client:
        assert client.welcome["user"] == expected


# -- dev login ------------------------------------------------------------------------------


async def test_dev_login_returns_a_working_token_and_sets_the_cookie(
    server: RunningServer,
) -> None:
    """In dev mode POST /api/dev/login answers {token, user}, sets coedit_session, and the
    token works on HTTP and WebSocket."""
    async with server.http() as http:
        response = await http.post("/api/dev/login",
                                   json={"name": "Grace", "role": "analyst", "tenant": "labs"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) >= {"token", "user"}
        user = body["user"]
        assert user["name"] == "Grace" and user["roles"] == ["analyst"]
        assert user["tenant"] == "labs" and isinstance(user["id"], str) and user["id"]
        assert response.cookies.get("coedit_session") == body["token"]
        # The client kept the cookie: the next request is Grace, not an anonymous viewer.
        me = await http.get("/api/me")
        assert me.status_code == 200 and me.json()["user"] == user
        created = await http.post("/api/documents", json={"kind": "memo", "title": "by cookie"})
        assert created.status_code == 201, created.text

    async with server.http(body["token"]) as http:
        me = await http.get("/api/me")
    assert me.status_code == 200 and me.json()["user"] == user
    async with await server.connect(body["token"]) as client:
        assert client.welcome["user"] == user
        reply = await client.ok("subscribe", doc=created.json()["id"])
        assert reply["version"] == 1


async def test_dev_login_rejects_an_unknown_role(server: RunningServer) -> None:
    """Dev login with a role outside the role table answers 400 bad_request and no cookie."""
    async with server.http() as http:
        response = await http.post("/api/dev/login",
                                   json={"name": "Eve", "role": "superuser", "tenant": "acme"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "bad_request"
    assert "coedit_session" not in response.cookies


@token_mode
async def test_dev_login_is_not_available_without_dev_auth(server: RunningServer) -> None:
    """Without dev auth, POST /api/dev/login answers 404 and mints nothing."""
    async with server.http() as http:
        response = await http.post("/api/dev/login",
                                   json={"name": "Eve", "role": "admin", "tenant": "acme"})
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"
    assert "coedit_session" not in response.cookies


# -- the anonymous viewer -------------------------------------------------------------------


async def test_anonymous_viewer_keeps_a_stable_id_in_a_signed_cookie(
    server: RunningServer,
) -> None:
    """In dev mode a caller without a cookie becomes a viewer whose id survives in the signed
    coedit_anon cookie, on HTTP and WebSocket alike."""
    async with server.http() as http:
        first = await http.get("/api/me")
    assert first.status_code == 200, first.text
    anon = first.json()["user"]
    assert anon["roles"] == ["viewer"] and first.json()["anonymous"] is True
    cookie = first.cookies.get("coedit_anon")
    assert cookie and anon["id"] in cookie

    async with server.http(Cookie=f"coedit_anon={cookie}") as http:
        again = await http.get("/api/me")
    assert again.status_code == 200 and again.json()["user"]["id"] == anon["id"]
    assert "coedit_anon" not in again.cookies  # nothing new to keep

    async with await server.connect(additional_headers={"Cookie": f"coedit_anon={cookie}"}) as ws:
        assert ws.welcome["user"]["id"] == anon["id"]
        assert ws.welcome["user"]["roles"] == ["viewer"]

    async with await server.connect() as ws:  # a new browser: new id, cookie on the handshake
        assert ws.welcome["user"]["id"] != anon["id"]
        assert ws.welcome["user"]["roles"] == ["viewer"]
        set_cookie = ws.conn.response.headers.get("Set-Cookie", "") if ws.conn.response else ""
        assert set_cookie.startswith("coedit_anon=")
        assert ws.welcome["user"]["id"] in set_cookie


async def test_tampered_anonymous_cookie_gets_a_new_id(server: RunningServer) -> None:
    """A coedit_anon cookie whose id or signature was altered is ignored and replaced."""
    async with server.http() as http:
        first = await http.get("/api/me")
    cookie = first.cookies["coedit_anon"]
    anon_id = first.json()["user"]["id"]
    value, _, mac = cookie.rpartition(".")
    other_id = ("0" if value[0] != "0" else "1") + value[1:]
    tampered = [
        f"{other_id}.{mac}",  # someone else's id under this signature
        f"{value}.{'0' * len(mac)}",  # a made-up signature
        value,  # no signature at all
    ]
    for bad in tampered:
        async with server.http(Cookie=f"coedit_anon={bad}") as http:
            response = await http.get("/api/me")
        assert response.status_code == 200, (bad, response.text)
        new_id = response.json()["user"]["id"]
        assert new_id not in (anon_id, other_id), bad
        fresh = response.cookies.get("coedit_anon")
        assert fresh and fresh != bad and new_id in fresh, bad


# -- the role table -------------------------------------------------------------------------


async def test_viewer_reads_and_subscribes_but_cannot_write(server: RunningServer) -> None:
    """A viewer may read and subscribe; patch, lock and create answer forbidden (403 over
    HTTP) and each refusal about the document appends an access.denied event to its history."""
    admin = server.token(user="root", roles=["admin"])
    viewer = server.token(user="vic", name="Vic", roles=["viewer"])
    doc = (await server.create(admin, state={"a": 1}))["id"]

    async with server.http(viewer) as http:
        read = await http.get(f"/api/documents/{doc}")
        assert read.status_code == 200 and read.json()["state"] == {"a": 1}
        listed = await http.get("/api/documents")
        assert listed.status_code == 200 and doc in [d["id"] for d in listed.json()["items"]]
        created = await http.post("/api/documents", json={"kind": "memo", "title": "nope"})
        assert created.status_code == 403, created.text
        assert created.json()["error"]["code"] == "forbidden"
    patched = await _http_patch(server, viewer, doc, 1)
    assert patched.status_code == 403, patched.text
    assert patched.json()["error"]["code"] == "forbidden"

    async with await server.connect(viewer) as client:
        reply = await client.ok("subscribe", doc=doc)
        assert reply["version"] == 1 and reply["state"] == {"a": 1}
        refused = await client.request("patch", doc=doc, base=1, ops=OPS)
        assert refused["type"] == "error" and refused["code"] == "forbidden", refused
        refused = await _ws_create(client, kind="memo", title="nope")
        assert refused["type"] == "error" and refused["code"] == "forbidden", refused
        refused = await client.request("lock", doc=doc, path="/a")
        assert refused["type"] == "error" and refused["code"] == "forbidden", refused
        assert [m for m in await client.nothing_more(0.2) if m.get("type") == "delta"] == []
    async with server.http(viewer) as http:
        locked = await http.post(f"/api/documents/{doc}/locks", json={"path": "/a"})
    assert locked.status_code == 403 and locked.json()["error"]["code"] == "forbidden"

    async with server.http(admin) as http:
        current = (await http.get(f"/api/documents/{doc}")).json()
    assert current["version"] == 1 and current["state"] == {"a": 1}
    denied = [e for e in await _history(server, admin, doc) if e["type"] == "access.denied"]
    assert len(denied) == 4, denied  # patch and lock, each over HTTP and WebSocket
    assert {e["source"] for e in denied} == {"http", "ws"}
    for event in denied:
        assert event["actor"]["id"] == "vic" and event["actor"]["kind"] == "user"
        assert event["doc"] == doc and event["tenant"] == "acme"


async def test_reviewer_cannot_patch(server: RunningServer) -> None:
    """A reviewer may read and subscribe but a patch or lock answers forbidden and is
    audited."""
    admin = server.token(user="root", roles=["admin"])
    reviewer = server.token(user="rita", roles=["reviewer"])
    doc = (await server.create(admin, state={"a": 1}))["id"]

    patched = await _http_patch(server, reviewer, doc, 1)
    assert patched.status_code == 403 and patched.json()["error"]["code"] == "forbidden"
    async with await server.connect(reviewer) as client:
        await client.ok("subscribe", doc=doc)
        refused = await client.request("patch", doc=doc, base=1, ops=OPS)
        assert refused["type"] == "error" and refused["code"] == "forbidden", refused
        refused = await client.request("lock", doc=doc, path="")
        assert refused["type"] == "error" and refused["code"] == "forbidden", refused

    events = await _history(server, admin, doc)
    denied = [e for e in events if e["type"] == "access.denied"]
    assert len(denied) == 3 and all(e["actor"]["id"] == "rita" for e in denied), denied
    assert not [e for e in events if e["type"] == "patch.applied"]


@pytest.mark.parametrize("roles", [["analyst"], ["bot"], ["admin"]], ids=lambda r: r[0])
async def test_writers_can_create_and_patch(server: RunningServer, roles: list[str]) -> None:
    """Analysts, bots and admins create documents, patch them over HTTP and WebSocket, and
    lock them."""
    token = server.token(roles=roles)
    doc = (await server.create(token, state={"a": 1}))["id"]
    patched = await _http_patch(server, token, doc, 1)
    assert patched.status_code == 200, patched.text
    assert patched.json()["version"] == 2
    async with await server.connect(token) as client:
        reply = await client.ok("patch", doc=doc, base=2,
                                ops=[{"op": "add", "path": "/b", "value": 3}])
        assert reply["version"] == 3
        lock = await client.ok("lock", doc=doc, path="/a")
        assert lock["lock"]["path"] == "/a"
        await client.ok("unlock", doc=doc, path="/a")
        created = await _ws_create(client, kind="memo", title="over ws", state={"x": 1})
        assert created["type"] == "ok", created
        assert created["document"]["version"] == 1
    events = await _history(server, server.token(roles=["admin"]), doc)
    assert not [e for e in events if e["type"] == "access.denied"]
    assert [e["version"] for e in events if e["type"] == "patch.applied"] == [2, 3]


async def test_actor_kind_is_bot_for_bot_tokens_and_user_otherwise(
    server: RunningServer,
) -> None:
    """Writes by a token whose roles include bot are recorded with actor.kind bot; others
    with actor.kind user."""
    human = server.token(user="hal", roles=["analyst"])
    bot = server.token(user="robo", roles=["bot"])
    mixed = server.token(user="cyborg", roles=["analyst", "bot"])
    doc = (await server.create(human, state={"a": 1}))["id"]
    assert (await _http_patch(server, bot, doc, 1)).status_code == 200
    async with await server.connect(mixed) as client:
        await client.ok("patch", doc=doc, base=2, ops=[{"op": "add", "path": "/m", "value": 1}])

    events = await _history(server, server.token(roles=["admin"]), doc)
    kinds = {(e["type"], e["actor"]["id"]): e["actor"]["kind"] for e in events}
    assert kinds[("document.created", "hal")] == "user"
    assert kinds[("patch.applied", "robo")] == "bot"
    assert kinds[("patch.applied", "cyborg")] == "bot"
    bot_doc = (await server.create(bot))["id"]
    (created,) = await _history(server, server.token(roles=["admin"]), bot_doc)
    assert created["type"] == "document.created" and created["actor"]["kind"] == "bot"


# -- tenants --------------------------------------------------------------------------------


async def test_other_tenant_cannot_see_or_touch_a_document(server: RunningServer) -> None:
    """Tenant B gets not_found for tenant A's document on every HTTP call, never sees it in a
    list, and its attempts leave nothing in A's history."""
    owner = server.token(user="alice", roles=["admin"], tenant="acme")
    doc = (await server.create(owner, title="secret plan", state={"a": 1}))["id"]
    for roles in (["admin"], ["viewer"]):
        outsider = server.token(user="bob", roles=roles, tenant="globex")
        async with server.http(outsider) as http:
            for response in (
                await http.get(f"/api/documents/{doc}"),
                await http.get(f"/api/documents/{doc}", params={"version": 1}),
                await http.get(f"/api/documents/{doc}/history"),
                await http.get(f"/api/documents/{doc}/verify"),
                await http.patch(f"/api/documents/{doc}", json=OPS, headers={"If-Match": '"1"'}),
                await http.post(f"/api/documents/{doc}/locks", json={"path": ""}),
            ):
                assert response.status_code == 404, (roles, response.request.url, response.text)
                assert response.json()["error"]["code"] == "not_found"
                assert "secret plan" not in response.text
            listed = await http.get("/api/documents")
            assert listed.status_code == 200
            assert doc not in [d["id"] for d in listed.json()["items"]]
            searched = await http.get("/api/documents", params={"q": "secret"})
            assert searched.json()["items"] == []

    events = await _history(server, owner, doc)
    assert [e["actor"]["id"] for e in events] == ["alice"], events
    async with server.http(owner) as http:
        assert (await http.get(f"/api/documents/{doc}")).json()["version"] == 1


async def test_other_tenant_cannot_subscribe_or_patch_over_ws_and_sees_no_deltas(
    server: RunningServer,
) -> None:
    """Over the WebSocket tenant B's subscribe, patch and lock of A's document answer
    not_found and B receives nothing of A's later writes or presence."""
    owner = server.token(user="alice", roles=["admin"], tenant="acme")
    outsider = server.token(user="bob", roles=["admin"], tenant="globex")
    doc = (await server.create(owner, state={"a": 1}))["id"]
    async with await server.connect(outsider) as spy, await server.connect(owner) as writer:
        for request in (
            {"kind": "subscribe", "doc": doc},
            {"kind": "subscribe", "doc": doc, "since": 0},
            {"kind": "patch", "doc": doc, "base": 1, "ops": OPS},
            {"kind": "lock", "doc": doc, "path": ""},
        ):
            kind = request.pop("kind")
            reply = await spy.request(kind, **request)
            assert reply["type"] == "error" and reply["code"] == "not_found", (kind, reply)
            assert "state" not in reply and "version" not in reply
        await writer.ok("subscribe", doc=doc)
        await writer.ok("patch", doc=doc, base=1, ops=OPS)
        await writer.deltas(doc, 1)
        leaked = await spy.nothing_more(0.5)
        assert leaked == [], leaked
    async with server.http(owner) as http:
        assert (await http.get(f"/api/documents/{doc}")).json()["state"] == {"a": 2}


# -- the CLI --------------------------------------------------------------------------------


async def _run_cli(*args: str, secret: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COEDIT_")}
    env["COEDIT_SECRET"] = secret
    executable = Path(sys.executable).parent / "coedit"
    process = await asyncio.create_subprocess_exec(
        str(executable), *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await asyncio.wait_for(process.wait(), 5)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@token_mode
async def test_cli_token_is_accepted_by_a_server_with_the_same_secret(
    server: RunningServer,
) -> None:
    """`coedit token --user U --name N --role R --tenant T` prints a token that a server with
    the same COEDIT_SECRET accepts as that identity, and one with another secret refuses."""
    code, out, err = await _run_cli("token", "--user", "u-42", "--name", "Nora", "--role",
                                    "reviewer", "--tenant", "initech",
                                    secret=server.settings.secret)
    assert code == 0, err
    token = out.strip()
    async with server.http(token) as http:
        response = await http.get("/api/me")
    assert response.status_code == 200, response.text
    assert response.json()["user"] == {"id": "u-42", "name": "Nora", "roles": ["reviewer"],
                                       "tenant": "initech"}
    async with await server.connect(token) as client:
        assert client.welcome["user"]["id"] == "u-42"

    code, out, err = await _run_cli("token", "--user", "u-42", "--name", "Nora", "--role",
                                    "admin", "--tenant", "initech",
                                    secret="a-different-secret-of-enough-length-for-hs256")
    assert code == 0, err
    async with server.http(out.strip()) as http:
        assert (await http.get("/api/me")).status_code == 401
