"""A page of another origin cannot ride a user's session cookie into a WebSocket.

Browsers send cookies with every WebSocket handshake and CORS does not apply to it, so the
server checks ``Origin`` whenever a cookie is what authenticates the handshake: its own origin
and those in ``COEDIT_ALLOWED_ORIGINS`` may, others are refused with 403 and the refusal is
recorded. A client that presents its token itself (header or ``?token=``) is not affected.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from server.config import ConfigError, Settings
from tests.support import TIMEOUT, RunningServer

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

FOREIGN = "https://reports.example.net"


def _cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"coedit_session={token}"}


async def _opens(server: RunningServer, *, query: str = "", **headers: str) -> bool:
    """True when the handshake is accepted (the welcome arrives), False on HTTP 403."""
    try:
        conn = await asyncio.wait_for(websockets.connect(
            server.ws_url + query, additional_headers=headers), TIMEOUT)
    except InvalidStatus as refused:
        assert refused.response.status_code == 403, refused.response.status_code
        return False
    async with conn:
        assert '"welcome"' in str(await asyncio.wait_for(conn.recv(), TIMEOUT))
    return True


@sqlite_only
async def test_a_cookie_from_a_foreign_page_is_refused_and_recorded(
    server: RunningServer,
) -> None:
    """A session cookie with a foreign Origin is refused with 403 and an access.denied event;
    the same cookie from the server's own origin, or with no Origin at all, is accepted."""
    user = server.token(user="ann", roles=["analyst"])
    assert not await _opens(server, Origin=FOREIGN, **_cookie(user))
    assert await _opens(server, Origin=server.http_url, **_cookie(user))
    assert await _opens(server, **_cookie(user))
    admin = server.token(user="root", roles=["admin"])
    async with server.http(admin) as http:
        events = (await http.get("/api/events", params={"type": "access.denied"})).json()
    denied = [e for e in events["events"] if e["actor"]["id"] == "ann"]
    assert len(denied) == 1
    assert denied[0]["data"]["action"] == "open a WebSocket from another origin"


@sqlite_only
async def test_a_token_the_client_presents_is_not_checked_against_origin(
    server: RunningServer,
) -> None:
    """A bearer header or ``?token=`` works from any page: no page can send it unasked."""
    user = server.token()
    assert await _opens(server, Origin=FOREIGN, Authorization=f"Bearer {user}")
    assert await _opens(server, query=f"?token={user}", Origin=FOREIGN)


@sqlite_only
class TestAllowedOrigins:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"allowed_origins": frozenset({FOREIGN})}

    async def test_listed_origins_may_use_the_cookie(self, server: RunningServer) -> None:
        """An origin in COEDIT_ALLOWED_ORIGINS may open a cookie-authenticated socket; an
        unlisted one still may not."""
        user = server.token()
        assert await _opens(server, Origin=FOREIGN + "/", **_cookie(user))
        assert not await _opens(server, Origin="https://evil.example.net", **_cookie(user))


def test_allowed_origins_are_checked_at_start_up() -> None:
    """A malformed COEDIT_ALLOWED_ORIGINS stops the process with a message naming it."""
    good = Settings.from_env({"COEDIT_ALLOWED_ORIGINS": " https://A.example.com/, "
                                                        "http://localhost:8000"})
    assert good.allowed_origins == {"https://a.example.com", "http://localhost:8000"}
    for bad in ("example.com", "ftp://x.example", "https://x.example/path"):
        with pytest.raises(ConfigError, match="COEDIT_ALLOWED_ORIGINS"):
            Settings.from_env({"COEDIT_ALLOWED_ORIGINS": bad})
