"""The upstream client in production: pyreqwest (Rust's reqwest and hyper) behind the few httpx.AsyncClient calls
the adapters make.

Measured side by side against nginx on one pinned core (BENCHMARKS.md, "Upstream client"): aiohttp cost ~71 us of
CPU a request and ~71 us a 200-chunk stream, pyreqwest ~33 us and ~40 us, so it replaced aiohttp, which replaced
httpx.AsyncClient (~300 us more) before it. This client keeps the adapters' code unchanged (`post`, `get`,
`build_request` + `send(stream=True)`, a response with `status_code`, `content`, `headers`, `aiter_raw`, `aread`,
`aclose`) and raises httpx's exceptions, so the error mapping in adapters/http.py holds for both clients. Tests
that inject an httpx transport (respx) still get a real httpx.AsyncClient (see make_client).

Every answer is requested as a stream, so nothing is read that the caller did not ask for: a whole answer is read
by adapters/http_read.py within its caps, never by the client. The client never inflates (a gzip bomb is inflated
in bounded steps by the reader), never follows a redirect, keeps no cookies and ignores proxy variables. It is built
on the first request, inside the serving process and its event loop (never before a fork).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn

import httpx
from pyreqwest import exceptions as rq
from pyreqwest.client import Client, ClientBuilder

# most specific first: pyreqwest's timeouts are also builtins.TimeoutError, which asyncio.timeout would mistake
# for its own; every one leaves here as httpx's
_AS_HTTPX: tuple[tuple[type[Exception], type[httpx.HTTPError]], ...] = (
    (rq.ConnectTimeoutError, httpx.ConnectTimeout),
    (rq.PoolTimeoutError, httpx.PoolTimeout),
    (rq.ReadTimeoutError, httpx.ReadTimeout),
    (rq.WriteTimeoutError, httpx.WriteTimeout),
    (rq.RequestTimeoutError, httpx.ReadTimeout),
    (rq.ConnectError, httpx.ConnectError),
    (rq.ReadError, httpx.ReadError),
    (rq.WriteError, httpx.WriteError),
    (rq.PyreqwestError, httpx.RemoteProtocolError),
)


def _raise_as_httpx(exc: BaseException) -> NoReturn:
    for theirs, ours in _AS_HTTPX:
        if isinstance(exc, theirs):
            raise ours(str(exc) or type(exc).__name__) from exc
    raise exc


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    method: str
    url: str
    content: bytes | None
    headers: Mapping[str, str] | None


class UpstreamResponse:
    """An answer open as a stream until `aclose()`; `content` once read (whole answers are read by `send`)."""

    __slots__ = ("_opened", "_request", "content", "headers", "status_code")

    def __init__(self, request: Any, response: Any) -> None:
        self.status_code: int = response.status
        self.headers = response.headers  # case-insensitive, like httpx.Headers
        self.content = b""
        self._request = request  # the open StreamRequest: its __aexit__ ends the answer
        self._opened = response

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive, still encoded."""
        reader = self._opened.body_reader
        try:
            while (piece := await reader.read_chunk()) is not None:
                yield piece.to_bytes()
        except rq.PyreqwestError as exc:
            _raise_as_httpx(exc)

    aiter_bytes = aiter_raw  # the gateway asks for identity encoding; what is not identity is inflated by the reader

    async def aread(self) -> bytes:
        try:
            self.content = (await self._opened.bytes()).to_bytes()
        except rq.PyreqwestError as exc:
            _raise_as_httpx(exc)
        return self.content

    async def aclose(self) -> None:
        # back to the pool when the body was read to the end; a half-read stream (client gone) drops its connection
        request, self._request = self._request, None
        if request is not None:
            await request.__aexit__(None, None, None)


class ReqwestClient:
    """One per provider, created at startup; the Rust client is built on the first request."""

    def __init__(self, base_url: str, *, headers: Mapping[str, str], connect: float, read: float,
                 max_connections: int) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = dict(headers)
        self._connect = connect
        self._read = read
        self._max_connections = max_connections
        self._client: Client | None = None

    def _open(self) -> Client:
        if self._client is None:
            # as httpx.Timeout(connect, read, pool=connect) was: a connection (pool wait included) within `connect`,
            # then each read within `read`; the total per request is the adapters' asyncio.timeout
            self._client = (
                ClientBuilder()
                .default_headers(self._headers)
                .connect_timeout(timedelta(seconds=self._connect))
                .pool_timeout(timedelta(seconds=self._connect))
                .read_timeout(timedelta(seconds=self._read))
                .max_connections(self._max_connections)
                .gzip(False).brotli(False).zstd(False).deflate(False)
                .follow_redirects(False)
                .default_cookie_store(False)
                .no_proxy()
                .error_for_status(False)
                .build()
            )
        return self._client

    def build_request(self, method: str, path: str, *, content: bytes | None = None,
                      headers: Mapping[str, str] | None = None) -> UpstreamRequest:
        return UpstreamRequest(method, self.base_url + path, content, headers)

    async def send(self, request: UpstreamRequest, *, stream: bool = False) -> UpstreamResponse:
        builder = self._open().request(request.method, request.url)
        if request.headers:
            builder = builder.headers(request.headers)
        if request.content is not None:
            builder = builder.body_bytes(request.content)
        # no read-ahead: with any buffer, the answer is held until the buffer fills (a stream's first events too)
        streamed = builder.streamed_read_buffer_limit(0).build_streamed()
        try:
            response = UpstreamResponse(streamed, await streamed.__aenter__())
        except rq.PyreqwestError as exc:
            _raise_as_httpx(exc)
        if stream:
            return response
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    async def post(self, path: str, *, content: bytes, headers: Mapping[str, str] | None = None) -> UpstreamResponse:
        return await self.send(self.build_request("POST", path, content=content, headers=headers))

    async def get(self, path: str, *, headers: Mapping[str, str] | None = None) -> UpstreamResponse:
        return await self.send(self.build_request("GET", path, headers=headers))

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def __repr__(self) -> str:
        return f"ReqwestClient({self.base_url!r})"
