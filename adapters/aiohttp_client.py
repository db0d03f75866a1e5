"""The upstream client in production: aiohttp's pool behind the few httpx.AsyncClient calls the adapters make.

httpx.AsyncClient on the aiohttp transport cost ~300 us a request on top of aiohttp itself (URL merging, header and
cookie models, the auth and redirect layers; BENCHMARKS.md), which halved the gateway's requests/s. This client keeps
the adapters' code unchanged (`post`, `get`, `build_request` + `send(stream=True)`, a response with `status_code`,
`content`, `headers`, `aiter_raw`, `aread`, `aclose`) and raises the same httpx exceptions, mapped from aiohttp's
by httpx-aiohttp, so the error mapping in adapters/http.py holds for both. Tests that inject an httpx transport
(respx) still get a real httpx.AsyncClient (see make_client).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import NoReturn

import aiohttp
from httpx_aiohttp.transport import map_aiohttp_exceptions
from yarl import URL


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    method: str
    url: URL
    content: bytes | None
    headers: Mapping[str, str] | None


def _raise_as_httpx(exc: Exception) -> NoReturn:
    """Re-raise an aiohttp failure as the httpx exception httpx-aiohttp maps it to (others unchanged)."""
    with map_aiohttp_exceptions():
        raise exc
    raise AssertionError("unreachable")  # map_aiohttp_exceptions always raises


class UpstreamResponse:
    """An answer: read whole (`content`), or open as a stream until `aclose()`."""

    __slots__ = ("_response", "content", "headers", "status_code")

    def __init__(self, response: aiohttp.ClientResponse, content: bytes = b"") -> None:
        self.status_code = response.status
        self.headers = response.headers  # case-insensitive, like httpx.Headers
        self.content = content
        self._response = response

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive, still encoded: the session never inflates (adapters/http_read does,
        within bounds)."""
        with map_aiohttp_exceptions():
            async for piece in self._response.content.iter_any():
                yield piece

    aiter_bytes = aiter_raw  # the gateway asks for identity encoding; what is not identity is inflated by the reader

    async def aread(self) -> bytes:
        with map_aiohttp_exceptions():
            self.content = await self._response.read()
        return self.content

    async def aclose(self) -> None:
        # back to the pool when the body was read to the end; a half-read stream (client gone) closes its connection
        self._response.release()


class AiohttpClient:
    """One per provider, created at startup; its session is opened on the first request, inside the event loop."""

    def __init__(self, base_url: str, *, headers: Mapping[str, str], connect: float, read: float,
                 max_connections: int) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = dict(headers)
        # as httpx.Timeout(connect, read, pool=connect) was: a connection (pool wait included) within `connect`,
        # then each read within `read`; the total per request is the adapters' asyncio.timeout
        self._timeout = aiohttp.ClientTimeout(total=None, connect=connect, sock_connect=connect, sock_read=read)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, URL] = {}

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0),
                cookie_jar=aiohttp.DummyCookieJar(),  # one client serves every caller: no cookie carries over
                trust_env=False,
                auto_decompress=False,  # a gzip bomb is inflated in bounded steps by the reader, never here
            )
        return self._session

    def _url(self, path: str) -> URL:
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = URL(self.base_url + path)
        return url

    def build_request(self, method: str, path: str, *, content: bytes | None = None,
                      headers: Mapping[str, str] | None = None) -> UpstreamRequest:
        return UpstreamRequest(method, self._url(path), content, headers)

    async def send(self, request: UpstreamRequest, *, stream: bool = False) -> UpstreamResponse:
        try:
            response = await self._open().request(
                request.method, request.url, data=request.content, headers=request.headers, allow_redirects=False,
            )
            if stream:
                return UpstreamResponse(response)
            try:
                return UpstreamResponse(response, await response.read())
            finally:
                response.release()
        except Exception as exc:  # noqa: BLE001 - re-raised, mapped; a `with` around the happy path cost ~1 us
            _raise_as_httpx(exc)

    async def post(self, path: str, *, content: bytes, headers: Mapping[str, str] | None = None) -> UpstreamResponse:
        return await self.send(self.build_request("POST", path, content=content, headers=headers))

    async def get(self, path: str, *, headers: Mapping[str, str] | None = None) -> UpstreamResponse:
        return await self.send(self.build_request("GET", path, headers=headers))

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def __repr__(self) -> str:
        return f"AiohttpClient({self.base_url!r})"
