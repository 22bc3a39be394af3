"""HTTP rate limits (docs/protocol.md section 9): headers, 429 with nothing changed, per
caller, across the nodes of a cluster, off at 0, and no effect on WebSocket sessions."""

from __future__ import annotations

import asyncio
import math
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.auth import TokenIssuer
from server.config import ConfigError, Settings
from tests.conftest import make_settings
from tests.processes import NodeProcess, clean_env
from tests.redis_server import RedisServer, private_redis_fixture, redis_url_fixture
from tests.support import TIMEOUT, RunningServer, replace, start_server

__all__ = ["private_redis_fixture", "redis_url_fixture"]

SECRET = "rate-limit-test-secret-long-enough-for-hs256-keys"


def _limits(response: httpx.Response) -> tuple[int, int, int]:
    headers = response.headers
    return (int(headers["X-RateLimit-Limit"]), int(headers["X-RateLimit-Remaining"]),
            int(headers["X-RateLimit-Reset"]))


def _assert_refused(response: httpx.Response, limit: int) -> int:
    """A 429 as the protocol shapes it; returns its ``retry_after_ms``."""
    assert response.status_code == 429, (response.status_code, response.text)
    error = response.json()["error"]
    assert error["code"] == "rate_limited" and error["message"], error
    retry_ms = error["retry_after_ms"]
    assert isinstance(retry_ms, int) and 0 < retry_ms <= 60_000, error
    assert response.headers["Retry-After"] == str(math.ceil(retry_ms / 1000))
    assert _limits(response)[:2] == (limit, 0)
    return int(retry_ms)


def _server(database_url: str, limit: int, **overrides: Any) -> Any:
    """A real server of the test's own whose HTTP limit is ``limit`` a minute."""
    return start_server(make_settings(database_url, http_rate_limit=limit, **overrides))


async def test_every_api_response_carries_limits_that_count_down(database_url: str) -> None:
    """/api/ answers (success, 404, 401) carry the limit, a falling remainder and the seconds
    to the window's end; /healthz and /metrics carry none."""
    async with _server(database_url, 5) as server:
        token = server.token(user="counter")
        async with server.http(token) as http:
            seen = []
            for path in ("/api/me", "/api/documents", "/api/no-such-route"):
                response = await http.get(path)
                seen.append(_limits(response))
            assert response.status_code == 404
            unauthorized = await http.get("/api/me", headers={"Authorization": "Bearer junk"})
            assert unauthorized.status_code == 401
            assert _limits(unauthorized)[:2] == (5, 4)  # counted for the address, not "counter"
            for path in ("/healthz", "/metrics"):
                plain = await http.get(path)
                assert plain.status_code == 200
                assert "X-RateLimit-Limit" not in plain.headers
        assert [(limit, remaining) for limit, remaining, _ in seen] == [(5, 4), (5, 3), (5, 2)]
        assert all(0 < reset <= 60 for _, _, reset in seen)


async def test_past_the_limit_a_patch_is_refused_and_changes_nothing(database_url: str) -> None:
    """The request over the limit answers 429 with Retry-After and retry_after_ms, and the
    document keeps its version, state and events; a subscriber hears no delta."""
    async with _server(database_url, 3) as server:
        writer = server.token(user="writer")
        reader = server.token(user="reader")
        doc = (await server.create(writer, state={"n": 0}))["id"]  # the writer's first
        watcher = await server.connect(reader)
        try:
            await watcher.ok("subscribe", doc=doc)
            async with server.http(writer) as http:
                for _ in range(2):
                    assert (await http.get(f"/api/documents/{doc}")).status_code == 200
                refused = await http.patch(f"/api/documents/{doc}", json=replace("/n", 1),
                                           headers={"If-Match": '"1"'})
                _assert_refused(refused, 3)
                assert (await http.get(f"/api/documents/{doc}")).status_code == 429
            assert await watcher.nothing_more(0.5) == []
        finally:
            await watcher.close()
        async with server.http(reader) as http:
            document = (await http.get(f"/api/documents/{doc}")).json()
            history = (await http.get(f"/api/documents/{doc}/history")).json()
        assert (document["version"], document["state"]) == (1, {"n": 0})
        assert [event["type"] for event in history["events"]] == ["document.created"]
        metrics = server.coedit.metrics
        assert metrics.registry.get_sample_value("coedit_http_rate_limited_total") == 2


async def test_each_caller_has_an_allowance_of_its_own(database_url: str) -> None:
    """Users, the same user id in another tenant, and anonymous callers at different
    addresses each count alone; anonymous callers at one address, dev logins included,
    share."""
    async with _server(database_url, 2) as server:
        spent = server.token(user="same-id", tenant="acme")
        async with server.http(spent) as http:
            for _ in range(2):
                assert (await http.get("/api/me")).status_code == 200
            _assert_refused(await http.get("/api/me"), 2)
        for other in (server.token(user="someone-else", tenant="acme"),
                      server.token(user="same-id", tenant="globex")):
            async with server.http(other) as http:
                response = await http.get("/api/me")
                assert response.status_code == 200 and _limits(response)[1] == 1

        async with server.http(**{"X-Forwarded-For": "203.0.113.7"}) as anon:
            assert (await anon.get("/api/me")).json()["anonymous"] is True
            login = await anon.post("/api/dev/login", json={"name": "Dev", "role": "viewer"})
            assert login.status_code == 200 and _limits(login)[1] == 0
            # A fresh browser (no cookie) at the same address draws on the same allowance.
            async with server.http(**{"X-Forwarded-For": "203.0.113.7"}) as fresh:
                _assert_refused(await fresh.get("/api/me"), 2)
        async with server.http(**{"X-Forwarded-For": "203.0.113.8"}) as elsewhere:
            response = await elsewhere.get("/api/me")
            assert response.status_code == 200 and _limits(response)[1] == 1


async def test_zero_turns_the_limit_off(database_url: str) -> None:
    """COEDIT_HTTP_RATE_LIMIT=0: no limit headers, and no request is ever refused."""
    async with _server(database_url, 0) as server, server.http(server.token()) as http:
        for _ in range(30):
            response = await http.get("/api/me")
            assert response.status_code == 200
            assert "X-RateLimit-Limit" not in response.headers


async def test_websocket_sessions_neither_count_nor_are_limited(database_url: str) -> None:
    """Handshakes and requests over /ws spend nothing of the HTTP allowance, and a user with
    none left still connects and writes."""
    async with _server(database_url, 3) as server:
        token = server.token(user="both")
        async with server.http(token) as http:
            assert _limits(await http.get("/api/me"))[1] == 2
            clients = [await server.connect(token) for _ in range(3)]
            try:
                doc = (await clients[0].ok("create", kind="memo", title="t",
                                           state={"n": 0}))["document"]["id"]
                for base in range(1, 11):
                    await clients[base % 3].ok("patch", doc=doc, base=base,
                                               ops=replace("/n", base))
                assert _limits(await http.get("/api/me"))[1] == 1
                assert (await http.get("/api/me")).status_code == 200
                _assert_refused(await http.get("/api/me"), 3)
                for client in clients:
                    await client.ok("heartbeat")
                reply = await clients[1].ok("subscribe", doc=doc)
                assert reply["version"] == 11
            finally:
                await asyncio.gather(*(client.close() for client in clients))


async def test_an_unreachable_redis_leaves_each_node_counting_alone(
    database_url: str, private_redis: RedisServer
) -> None:
    """With Redis gone the API keeps answering, each node counting its callers itself (429
    still comes), and the fallback is counted in a metric."""
    async with _server(database_url, 3, redis_url=private_redis.url) as server:
        async with server.http(server.token(user="steady")) as http:
            assert _limits(await http.get("/api/me"))[1] == 2
            await private_redis.astop()
            answers = [await http.get("/api/me") for _ in range(4)]
            assert [a.status_code for a in answers] == [200, 200, 200, 429]
            assert [_limits(a)[1] for a in answers[:3]] == [2, 1, 0]
        fallbacks = server.coedit.metrics.registry.get_sample_value(
            "coedit_rate_limit_fallbacks_total")
        assert fallbacks is not None and fallbacks >= 1


@pytest.fixture
async def two_nodes(
    database_url: str, redis_url: str, tmp_path: Path
) -> Any:
    prefix = f"coedit-limits-{uuid.uuid4().hex[:8]}"
    env = clean_env(COEDIT_DATABASE_URL=database_url, COEDIT_REDIS_URL=redis_url,
                    COEDIT_SECRET=SECRET, COEDIT_AUTH="token", COEDIT_KEY_PREFIX=prefix,
                    COEDIT_HTTP_RATE_LIMIT="4")
    nodes = [NodeProcess(env, tmp_path) for _ in range(2)]
    try:
        for node in nodes:  # one after the other: the first migrates a fresh SQLite file
            await node.start()
        yield nodes
    finally:
        await asyncio.gather(*(node.stop() for node in nodes), return_exceptions=True)


async def test_the_limit_holds_across_the_nodes_of_a_cluster(
    two_nodes: list[NodeProcess]
) -> None:
    """Requests of one user spread over two `coedit serve` processes on one Redis draw on one
    allowance: the fifth is refused on either node, while another user still passes."""
    issuer = TokenIssuer(SECRET, dev_auth=False)
    token = issuer.mint(user="roamer", name="Roamer", roles=["analyst"], tenant="acme")
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=TIMEOUT, headers=headers) as http:
        remaining = []
        for index in range(4):
            response = await http.get(f"{two_nodes[index % 2].url}/api/me")
            assert response.status_code == 200, response.text
            remaining.append(_limits(response)[1])
        assert remaining == [3, 2, 1, 0]
        for node in two_nodes:
            _assert_refused(await http.get(f"{node.url}/api/me"), 4)
    other = issuer.mint(user="stayer", name="Stayer", roles=["analyst"], tenant="acme")
    async with httpx.AsyncClient(timeout=TIMEOUT,
                                 headers={"Authorization": f"Bearer {other}"}) as http:
        assert (await http.get(f"{two_nodes[1].url}/api/me")).status_code == 200


async def test_the_server_fixture_default_allows_ordinary_use(server: RunningServer) -> None:
    """The default limit (1200 a minute) is advertised on every /api/ answer."""
    async with server.http(server.token()) as http:
        response = await http.get("/api/me")
    assert response.status_code == 200
    limit, remaining, reset = _limits(response)
    assert (limit, remaining) == (1200, 1199) and 0 < reset <= 60


def test_the_setting_is_read_and_checked_at_start_up() -> None:
    """COEDIT_HTTP_RATE_LIMIT defaults to 1200; a bad value names the variable."""
    assert Settings.from_env({}).http_rate_limit == 1200
    assert Settings.from_env({"COEDIT_HTTP_RATE_LIMIT": "0"}).http_rate_limit == 0
    for bad in ("-1", "many"):
        with pytest.raises(ConfigError, match="COEDIT_HTTP_RATE_LIMIT"):
            Settings.from_env({"COEDIT_HTTP_RATE_LIMIT": bad})
