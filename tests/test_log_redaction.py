"""Tokens never reach a log: uvicorn's lines for WebSocket handshakes and HTTP requests carry
the query string, and a token passed as ``?token=`` is masked there."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tests.support import RunningServer


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def uvicorn_lines() -> Iterator[_Lines]:
    """Every line uvicorn's loggers write at INFO while the test runs."""
    handler = _Lines()
    loggers = [logging.getLogger(name) for name in ("uvicorn.error", "uvicorn.access")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_token_in_the_url_is_masked_in_uvicorn_lines(
    server: RunningServer, uvicorn_lines: _Lines
) -> None:
    """A WebSocket handshake and an HTTP request with ``?token=`` are logged with the token
    replaced by ``[redacted]``, and the token appears in no line."""
    token = server.token()
    async with await server.connect(token) as client:
        await client.ok("heartbeat")
    async with server.http() as http:
        response = await http.get("/api/me", params={"token": token, "x": "1"})
    assert response.status_code in (200, 401)
    logged = "\n".join(uvicorn_lines.lines)
    assert "WebSocket /ws?token=[redacted]" in logged
    assert "/api/me?token=[redacted]&x=1" in logged
    assert token not in logged
