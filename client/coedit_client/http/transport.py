"""What every HTTP resource shares: the base URL, the bearer token, error bodies turned into
exceptions, and rate limits honoured.

A 429 answer is retried after its ``Retry-After`` (or ``retry_after_ms``), at most ``retries``
times and never for longer than ``max_wait`` in all; a 503 ``unavailable`` is retried the same
way for reads and for writes that carry an idempotency key. Everything else raises the
exception of its error code (:mod:`coedit_client.errors`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx

from coedit_client.errors import CoeditError, error_from

__all__ = ["Transport"]

Params = Mapping[str, str | int | list[str] | None]


def _clean(params: Params | None) -> dict[str, Any]:
    return {k: v for k, v in (params or {}).items() if v is not None and v != []}


class Transport:
    def __init__(
        self, base_url: str, *, token: str | None = None, retries: int = 3,
        max_wait: float = 30.0, timeout: float = 30.0, client: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.retries = retries
        self.max_wait = max_wait
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._own_client = client is None

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    @staticmethod
    def _retry_delay(response: httpx.Response, body: dict[str, Any]) -> float:
        header = response.headers.get("retry-after", "")
        if header.strip().replace(".", "", 1).isdigit():
            return float(header)
        millis = body.get("retry_after_ms")
        if isinstance(millis, int | float):
            return float(millis) / 1000
        return 1.0

    @staticmethod
    def error_of(response: httpx.Response) -> CoeditError:
        try:
            payload = response.json()
        except ValueError:
            payload = None
        body = payload.get("error") if isinstance(payload, dict) else None
        if not isinstance(body, dict):
            body = {"message": f"HTTP {response.status_code}: {response.text[:200]}"}
        return error_from(body, status=response.status_code)

    async def send(
        self, method: str, path: str, *, params: Params | None = None, json_body: Any = None,
        headers: Mapping[str, str] | None = None, retry_unavailable: bool | None = None,
    ) -> httpx.Response:
        """The response of a 2xx (or 304) answer; raises the error of any other."""
        if retry_unavailable is None:
            retry_unavailable = method == "GET" or bool(headers and "Idempotency-Key" in headers)
        waited = 0.0
        attempt = 0
        content = None if json_body is None else json.dumps(json_body).encode()
        request_headers = self.headers(headers)
        if content is not None:
            request_headers["Content-Type"] = "application/json"
        while True:
            response = await self._client.request(
                method, self.base_url + path, params=_clean(params), content=content,
                headers=request_headers)
            if response.status_code < 400:
                return response
            error = self.error_of(response)
            retryable = response.status_code == 429 or (
                response.status_code == 503 and retry_unavailable)
            if retryable and attempt < self.retries:
                delay = self._retry_delay(response, error.fields)
                if waited + delay <= self.max_wait:
                    attempt += 1
                    waited += delay
                    await asyncio.sleep(delay)
                    continue
            raise error

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return (await self.send(method, path, **kwargs)).json()

    @asynccontextmanager
    async def stream(
        self, path: str, *, params: Params | None = None,
        headers: Mapping[str, str] | None = None, limits: httpx.Timeout | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """A streaming GET (Server-Sent Events); an error status raises before the body."""
        async with self._client.stream(
            "GET", self.base_url + path, params=_clean(params), headers=self.headers(headers),
            timeout=limits or httpx.Timeout(10.0, read=None),
        ) as response:
            if response.status_code >= 400:
                await response.aread()
                raise self.error_of(response)
            yield response
