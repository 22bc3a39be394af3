"""The edges an attacker tries first: forged and incomplete tokens, oversized request heads and
paths that climb out of ``/web/``. Each is refused with a clear 4xx and changes nothing."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import jwt
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from server.app import WEB_DIR
from tests.support import TIMEOUT, RunningServer

# A file beside web/, and its first bytes: what a traversal would leak.
OUTSIDE_WEB = Path(__file__).resolve().parent.parent / "server" / "auth.py"
MARKER = OUTSIDE_WEB.read_bytes()[:60]

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
token_mode = pytest.mark.parametrize("settings_overrides", [{"dev_auth": False}],
                                     ids=["token-auth"])


def _b64(part: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"sub": "mallory", "name": "Mallory", "roles": ["admin"], "tenant": "acme",
              "iat": now, "exp": now + 3600}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _hs(claims: dict[str, Any], key: str, alg: str = "HS256", **header: Any) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return jwt.encode(claims, key, algorithm=alg, headers=header or None)


def _resigned(claims: dict[str, Any], key: str, header: dict[str, Any]) -> str:
    """A token whose header names any algorithm but whose signature is HMAC-SHA256 with
    ``key``: what an attacker makes when a server trusts the header to pick the check."""
    import hashlib
    import hmac
    signing_input = f"{_b64(header)}.{_b64(claims)}"
    mac = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def _refused_tokens(secret: str) -> dict[str, str]:
    claims = _claims()
    return {
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
        "alg None, signature kept": f"{_b64({'alg': 'None'})}.{_b64(claims)}.c2ln",
        "HS512 with the secret": _hs(claims, secret, "HS512"),
        "HS384 with the secret": _hs(claims, secret, "HS384"),
        "RS256 header, HMAC with the secret as public key": _resigned(
            claims, secret, {"alg": "RS256", "typ": "JWT"}),
        "ES256 header, HMAC with the secret": _resigned(claims, secret, {"alg": "ES256"}),
        "lowercase hs256 header": _resigned(claims, secret, {"alg": "hs256"}),
        "no exp": _hs(_claims(exp=None), secret),
        "exp not a number": _hs(_claims(exp="tomorrow"), secret),
        "no tenant": _hs(_claims(tenant=None), secret),
        "empty tenant": _hs(_claims(tenant=""), secret),
        "no name": _hs(_claims(name=None), secret),
        "no roles": _hs(_claims(roles=None), secret),
        "unknown role": _hs(_claims(roles=["root"]), secret),
        "no sub": _hs(_claims(sub=None), secret),
        "not yet valid": _hs(_claims(nbf=int(time.time()) + 3600), secret),
    }


@sqlite_only
@token_mode
async def test_forged_and_incomplete_tokens_are_refused_on_http_and_websocket(
    server: RunningServer,
) -> None:
    """Every algorithm but HS256 (``none`` included) and every token missing a contract claim
    (``exp``, ``tenant``, ``name``, ``roles``, ``sub``) is 401 on HTTP and on the handshake."""
    secret = server.settings.secret
    good = _hs(_claims(), secret)
    async with server.http() as http:
        accepted = await http.get("/api/me", headers={"Authorization": f"Bearer {good}"})
        assert accepted.status_code == 200, accepted.text
        for why, token in _refused_tokens(secret).items():
            for headers in ({"Authorization": f"Bearer {token}"},
                            {"Cookie": f"coedit_session={token}"}):
                answer = await http.get("/api/me", headers=headers)
                assert answer.status_code == 401, (why, answer.status_code, answer.text)
                assert answer.json()["error"]["code"] == "unauthorized", why
            with pytest.raises(InvalidStatus) as refused:
                conn = await asyncio.wait_for(
                    websockets.connect(f"{server.ws_url}?token={token}"), TIMEOUT)
                await conn.close()
            assert refused.value.response.status_code == 401, why


async def _raw(server: RunningServer, request: bytes) -> bytes:
    """Send raw bytes, read the answer until the server closes or stops talking."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", server.port), TIMEOUT)
    try:
        writer.write(request)
        await writer.drain()
        chunks = []
        try:
            async with asyncio.timeout(2.0):
                while chunk := await reader.read(65536):
                    chunks.append(chunk)
        except TimeoutError:
            pass  # keep-alive: the answer is in, the connection stays open
        return b"".join(chunks)
    finally:
        writer.close()


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def _body(answer: bytes) -> dict[str, Any]:
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])  # type: ignore[no-any-return]


@sqlite_only
async def test_oversized_heads_are_refused_with_431_before_the_app(
    server: RunningServer,
) -> None:
    """A header, a cookie, a query string or a crowd of headers past COEDIT_MAX_HEADER_BYTES
    (32 KiB) answers 431 with a ``too_large`` body and the connection closes; heads under
    the limit, several on one keep-alive connection, are served."""
    token = server.token()
    big = 40 * 1024
    heads = {
        "header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * big + b"\r\n\r\n",
        "cookie": b"GET /api/me HTTP/1.1\r\nHost: x\r\nCookie: coedit_session=" + b"a" * big
                  + b"\r\n\r\n",
        "query": b"GET /api/documents?q=" + b"a" * big + b" HTTP/1.1\r\nHost: x\r\n"
                 b"Authorization: Bearer " + token.encode() + b"\r\n\r\n",
        "many headers": b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                        + b"".join(b"X-N%d: v\r\n" % n for n in range(5000)) + b"\r\n",
        "no end in sight": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * big,
        "websocket handshake": b"GET /ws?token=" + b"a" * big + b" HTTP/1.1\r\nHost: x\r\n"
                               b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                               b"Sec-WebSocket-Version: 13\r\n"
                               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    }
    for what, head in heads.items():
        answer = await _raw(server, head)
        assert _status(answer) == 431, (what, answer[:200])
        assert _body(answer)["error"]["code"] == "too_large", what
    # Under the limit, on one connection: the count starts again for every request.
    medium = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * (20 * 1024) + b"\r\n\r\n"
    last = medium.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n")
    answer = await _raw(server, medium + last)
    assert answer.count(b"HTTP/1.1 200") == 2, answer[:300]


@sqlite_only
async def test_paths_under_web_never_leave_the_web_directory(
    server: RunningServer,
) -> None:
    """Encoded and plain ``..``, backslashes, absolute paths and a symlink placed in web/
    pointing outside it all answer 404 and never the file's bytes."""
    outside = OUTSIDE_WEB
    marker = MARKER
    link = WEB_DIR / f"escape-{uuid.uuid4().hex[:8]}.py"
    link.symlink_to(outside)
    try:
        paths = [
            "/web/../server/auth.py", "/web/%2e%2e/server/auth.py", "/web/%2E%2E/server/auth.py",
            "/web/..%2fserver%2fauth.py", "/web/%2e%2e%2fserver%2fauth.py",
            "/web/..\\server\\auth.py", "/web/..%5cserver%5cauth.py",
            "/web/%252e%252e/server/auth.py", "/web/.%2e/server/auth.py",
            "/web//etc/passwd", "/web/%2fetc%2fpasswd", "/web/../../../../../etc/passwd",
            f"/web/{link.name}", "/web/" + str(outside),
        ]
        for path in paths:
            answer = await _raw(server, _get(path))
            assert _status(answer) in (400, 404), (path, answer[:200])
            assert marker not in answer and b"root:" not in answer, path
        served = await _raw(server, _get("/web/index.html"))
        assert _status(served) == 200
    finally:
        link.unlink()


async def test_integers_beyond_64_bits_are_bad_requests(server: RunningServer) -> None:
    """A ``since``, ``version`` or ``Last-Event-ID`` past the 64-bit range answers 400
    ``bad_request`` on HTTP, SSE and WebSocket (PostgreSQL's driver answered 500 before)."""
    token = server.token()
    doc = (await server.create(token))["id"]
    huge = str(2**63)
    async with server.http(token) as http:
        for path in (f"/api/events?since={huge}", f"/api/documents/{doc}/history?since={huge}",
                     f"/api/events/stream?since={huge}"):
            answer = await http.get(path)
            assert answer.status_code == 400, (path, answer.status_code, answer.text)
            assert answer.json()["error"]["code"] == "bad_request"
        answer = await http.get("/api/events/stream", headers={"Last-Event-ID": huge})
        assert answer.status_code == 400, answer.text
        fits = await http.get(f"/api/documents/{doc}/history?since={2**63 - 1}")
        assert fits.status_code == 200 and fits.json()["events"] == []
    async with await server.connect(token) as client:
        for request in ({"stream": {}, "since": 2**63}, {"doc": doc, "since": 2**63}):
            reply = await client.request("subscribe", **request)
            assert reply["type"] == "error" and reply["code"] == "bad_request", reply
