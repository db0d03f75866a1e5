"""The production upstream client: httpx's surface and exceptions, aiohttp's pool, against a real loopback server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from llm_gateway.adapters.aiohttp_client import AiohttpClient
from llm_gateway.adapters.http import HttpUpstream, make_client, transport_error
from llm_gateway.vocab.errors import UpstreamUnavailable
from tests.support.server import free_port, running

seen: list[dict[str, str]] = []


async def echo(request: Request) -> Response:
    seen.append(dict(request.headers))
    body = await request.body()
    return Response(
        b'{"got": ' + body + b"}",
        status_code=int(request.query_params.get("status", 200)),
        media_type="application/json",
        headers={"set-cookie": "sticky=1", "retry-after": "3"},
    )


async def events(request: Request) -> Response:
    async def frames():
        for i in range(3):
            yield f"data: {i}\n\n".encode()
        await asyncio.sleep(30)  # then hang: the client must be able to walk away

    return StreamingResponse(frames(), media_type="text/event-stream")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    app = Starlette(
        routes=[Route("/v1/echo", echo, methods=["GET", "POST"]), Route("/v1/events", events, methods=["POST"])]
    )
    with running(app) as url:
        yield url


def _client(url: str, read: float = 5) -> AiohttpClient:
    upstream = HttpUpstream(name="up", base_url=url + "/v1/", connect_timeout=2, read_timeout=read, max_connections=10)
    client = make_client(upstream, {"authorization": "Bearer sk-provider"})
    assert isinstance(client, AiohttpClient)  # without an injected transport, production's client
    return client


async def test_post_reads_the_whole_answer_with_default_and_request_headers(server: str) -> None:
    client = _client(server)
    response = await client.post("/echo", content=b'{"a": 1}', headers={"content-type": "application/json"})
    await client.aclose()
    assert response.status_code == 200
    assert response.content == b'{"got": {"a": 1}}'
    assert response.headers.get("Retry-After") == "3"  # case-insensitive, as httpx.Headers
    assert seen[-1]["authorization"] == "Bearer sk-provider"
    assert seen[-1]["content-type"] == "application/json"


async def test_error_statuses_are_answers_not_exceptions_and_no_cookie_carries_over(server: str) -> None:
    client = _client(server)
    first = await client.post("/echo?status=429", content=b"1")
    await client.get("/echo")
    await client.aclose()
    assert first.status_code == 429
    assert "cookie" not in seen[-1]  # one client serves every caller: an upstream cookie must not stick


async def test_a_stream_yields_bytes_as_they_come_and_closing_it_early_frees_the_client(server: str) -> None:
    client = _client(server)
    request = client.build_request("POST", "/events", content=b"{}")
    response = await client.send(request, stream=True)
    received = b""
    async for piece in response.aiter_bytes():
        received += piece
        if received.count(b"\n\n") == 3:
            break
    await response.aclose()  # mid-stream: the connection is dropped, not handed back half-read
    again = await client.post("/echo", content=b"2")
    await client.aclose()
    assert received == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
    assert again.status_code == 200


async def test_a_silent_stream_raises_httpx_read_timeout(server: str) -> None:
    client = _client(server, read=0.3)
    response = await client.send(client.build_request("POST", "/events", content=b"{}"), stream=True)
    with pytest.raises(httpx.ReadTimeout):
        async for _ in response.aiter_bytes():
            pass
    await response.aclose()
    await client.aclose()


async def test_a_refused_connection_raises_an_httpx_error_that_maps_to_unavailable() -> None:
    client = _client(f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(httpx.HTTPError) as raised:
            await client.post("/echo", content=b"{}")
    finally:
        await client.aclose()
    assert type(raised.value.__cause__).__name__ == "ClientConnectorError"
    assert isinstance(transport_error(raised.value, "up"), UpstreamUnavailable)


def test_an_injected_transport_gets_a_real_httpx_client() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    client = make_client(HttpUpstream("up", "http://up/v1", max_connections=1), {}, transport)
    assert isinstance(client, httpx.AsyncClient)
