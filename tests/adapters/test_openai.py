"""OpenAI-compatible adapter against respx: pass-through, stream relay, error mapping, timeouts, broken upstreams."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import respx

from llm_gateway.adapters.http import HttpUpstream, upstream_request_id
from llm_gateway.adapters.openai import OpenAIAdapter
from llm_gateway.vocab.errors import (
    UpstreamError,
    UpstreamMalformed,
    UpstreamRateLimited,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from llm_gateway.vocab.types import Call

BASE = "https://openai.test/v1"
COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-x",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "logprobs": None, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


@pytest.fixture()
def upstream() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture()
def adapter(upstream: respx.MockRouter) -> OpenAIAdapter:
    settings = HttpUpstream(name="up", base_url=BASE, api_key="sk-provider", headers={"x-org": "o1"}, total_timeout=5)
    return OpenAIAdapter(settings, transport=httpx.MockTransport(upstream.async_handler))


def chat(stream: bool = False, **body: Any) -> Call:
    body = {"model": "alias", "messages": [{"role": "user", "content": "hi"}], **body}
    return Call(kind="chat", alias="alias", body=body, stream=stream, model="gpt-x", request_id="req_1")


def sse(*events: Any) -> bytes:
    return b"".join(b"data: " + (e if isinstance(e, bytes) else orjson.dumps(e)) + b"\n\n" for e in events)


def chunk(content: str, finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-x",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
    }


async def test_body_passes_through_with_the_upstream_model_and_provider_key(
    adapter: OpenAIAdapter, upstream: respx.MockRouter
) -> None:
    upstream.post("/chat/completions").respond(json=COMPLETION)
    call = chat(temperature=0.3, tools=[{"type": "function", "function": {"name": "f"}}], some_future_field={"a": 1})
    assert await adapter.chat(call) == COMPLETION
    request = upstream.calls.last.request
    body = orjson.loads(request.content)
    assert body["model"] == "gpt-x" and body["temperature"] == 0.3 and body["some_future_field"] == {"a": 1}
    assert call.body["model"] == "alias"  # the client's body is left alone
    assert request.headers["authorization"] == "Bearer sk-provider"
    assert request.headers["x-org"] == "o1" and request.headers["x-request-id"] == upstream_request_id("req_1")


async def test_stream_relays_chunks_until_done(adapter: OpenAIAdapter, upstream: respx.MockRouter) -> None:
    body = sse(chunk("Hel"), chunk("lo"), chunk("", "stop"), b"[DONE]", chunk("after done"))
    upstream.post("/chat/completions").respond(content=body, headers={"content-type": "text/event-stream"})
    chunks = [c async for c in adapter.stream_chat(chat(stream=True))]
    assert [c["choices"][0]["delta"]["content"] for c in chunks] == ["Hel", "lo", ""]
    assert upstream.calls.last.request.headers["accept"] == "text/event-stream"


async def test_include_usage_is_asked_upstream_and_the_usage_chunk_relayed(
    adapter: OpenAIAdapter, upstream: respx.MockRouter
) -> None:
    usage = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-x",
        "choices": [],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }
    body = sse(chunk("Hi"), chunk("", "stop"), usage, b"[DONE]")
    upstream.post("/chat/completions").respond(content=body, headers={"content-type": "text/event-stream"})
    chunks = [c async for c in adapter.stream_chat(chat(stream=True, stream_options={"include_usage": True}))]
    assert orjson.loads(upstream.calls.last.request.content)["stream_options"] == {"include_usage": True}
    assert chunks[-1] == usage and [c["choices"][0]["delta"]["content"] for c in chunks[:-1]] == ["Hi", ""]


async def test_sse_events_split_across_reads_and_crlf(adapter: OpenAIAdapter, upstream: respx.MockRouter) -> None:
    raw = sse(chunk("a"), chunk("b")).replace(b"\n", b"\r\n") + b": keep-alive\r\n\r\ndata: [DONE]\r\n\r\n"
    pieces = [raw[i : i + 7] for i in range(0, len(raw), 7)]
    upstream.post("/chat/completions").respond(
        stream=httpx.ByteStream(b"".join(pieces)), headers={"content-type": "text/event-stream"}
    )
    chunks = [c async for c in adapter.stream_chat(chat(stream=True))]
    assert [c["choices"][0]["delta"]["content"] for c in chunks] == ["a", "b"]


@pytest.mark.parametrize(
    ("response", "error", "status", "code"),
    [
        (
            httpx.Response(500, json={"error": {"message": "boom", "type": "server_error"}}),
            UpstreamStatusError,
            502,
            "bad_gateway",
        ),
        (
            httpx.Response(
                400,
                json={
                    "error": {
                        "message": "bad foo",
                        "type": "invalid_request_error",
                        "param": "foo",
                        "code": "invalid_value",
                    }
                },
            ),
            UpstreamStatusError,
            400,
            "invalid_value",
        ),
        (
            httpx.Response(
                400,
                json={
                    "error": {
                        "message": "This model's maximum context length is 10 tokens",
                        "type": "invalid_request_error",
                    }
                },
            ),
            UpstreamStatusError,
            400,
            "context_length_exceeded",
        ),
        (
            httpx.Response(
                429,
                json={"error": {"message": "slow", "code": "rate_limit_exceeded"}},
                headers={"retry-after-ms": "1500"},
            ),
            UpstreamRateLimited,
            429,
            "rate_limit_exceeded",
        ),
        (
            httpx.Response(200, json={"error": {"message": "quota gone", "type": "server_error"}}),
            UpstreamStatusError,
            502,
            "bad_gateway",
        ),
        (
            httpx.Response(200, content=b'{"id": "x", "choices": ['),
            UpstreamMalformed,
            502,
            "upstream_malformed_response",
        ),
        (httpx.Response(502, content=b"<html>Bad Gateway</html>"), UpstreamStatusError, 502, "bad_gateway"),
        # llama-cpp-python's server refusing a request: 400 with an empty body; a 400 that says so, never bad_gateway
        (httpx.Response(400, content=b""), UpstreamStatusError, 400, "upstream_http_400"),
        # the gateway's provider key refused: the gateway's failure (502), never a 401 blaming the client's key
        (
            httpx.Response(
                401,
                json={
                    "error": {
                        "message": "Incorrect API key provided",
                        "type": "invalid_request_error",
                        "code": "invalid_api_key",
                    }
                },
            ),
            UpstreamStatusError,
            502,
            "upstream_authentication_failed",
        ),
    ],
)
async def test_error_mapping(
    adapter: OpenAIAdapter, upstream: respx.MockRouter, response: httpx.Response, error: type, status: int, code: str
) -> None:
    upstream.post("/chat/completions").mock(return_value=response)
    with pytest.raises(error) as info:
        await adapter.chat(chat())
    assert info.value.status == status and info.value.code == code
    assert info.value.to_body()["error"]["message"]


async def test_kept_upstream_fields(adapter: OpenAIAdapter, upstream: respx.MockRouter) -> None:
    upstream.post("/chat/completions").respond(
        400,
        json={
            "error": {"message": "bad foo", "type": "invalid_request_error", "param": "foo", "code": "invalid_value"}
        },
    )
    with pytest.raises(UpstreamStatusError) as info:
        await adapter.chat(chat())
    assert info.value.to_body() == {
        "error": {"message": "bad foo", "type": "invalid_request_error", "param": "foo", "code": "invalid_value"}
    }
    assert info.value.retryable is False and info.value.upstream_status == 400
    upstream.post("/chat/completions").respond(
        429, json={"error": {"message": "slow"}}, headers={"retry-after-ms": "1500"}
    )
    with pytest.raises(UpstreamRateLimited) as limited:
        await adapter.chat(chat())
    assert limited.value.retry_after == 1.5 and limited.value.retryable


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (httpx.ConnectError("refused"), UpstreamUnavailable),
        (httpx.ConnectTimeout("connect"), UpstreamTimeout),
        (httpx.ReadTimeout("read"), UpstreamTimeout),
        (httpx.RemoteProtocolError("peer closed"), UpstreamError),
    ],
)
async def test_transport_failures(
    adapter: OpenAIAdapter, upstream: respx.MockRouter, exc: Exception, error: type
) -> None:
    upstream.post("/chat/completions").mock(side_effect=exc)
    with pytest.raises(error) as info:
        await adapter.chat(chat())
    assert info.value.retryable and "up" in info.value.message
    with pytest.raises(error):
        _ = [c async for c in adapter.stream_chat(chat(stream=True))]


async def test_total_timeout_bounds_a_hanging_upstream(upstream: respx.MockRouter) -> None:
    import asyncio

    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return httpx.Response(200, json=COMPLETION)

    upstream.post("/chat/completions").mock(side_effect=hang)
    settings = HttpUpstream(name="up", base_url=BASE, total_timeout=0.05)
    adapter = OpenAIAdapter(settings, transport=httpx.MockTransport(upstream.async_handler))
    with pytest.raises(UpstreamTimeout) as info:
        await adapter.chat(chat())
    assert info.value.status == 504


async def test_stream_faults(adapter: OpenAIAdapter, upstream: respx.MockRouter) -> None:
    stream_headers = {"content-type": "text/event-stream"}
    upstream.post("/chat/completions").respond(content=sse(chunk("a"), b"{not json"), headers=stream_headers)
    got: list[dict[str, Any]] = []
    with pytest.raises(UpstreamMalformed, match="malformed stream line"):
        async for c in adapter.stream_chat(chat(stream=True)):
            got.append(c)
    assert len(got) == 1
    upstream.post("/chat/completions").respond(
        content=sse({"error": {"message": "overloaded", "code": "server_busy"}}), headers=stream_headers
    )
    with pytest.raises(UpstreamStatusError, match="failed mid-stream: overloaded") as info:
        _ = [c async for c in adapter.stream_chat(chat(stream=True))]
    assert info.value.code == "server_busy"
    upstream.post("/chat/completions").respond(json={"error": {"message": "no streams today"}})
    with pytest.raises(UpstreamStatusError, match="no streams today"):
        _ = [c async for c in adapter.stream_chat(chat(stream=True))]
    upstream.post("/chat/completions").respond(json=COMPLETION)
    with pytest.raises(UpstreamMalformed, match="without an event stream"):
        _ = [c async for c in adapter.stream_chat(chat(stream=True))]
    upstream.post("/chat/completions").respond(503, json={"error": {"message": "busy"}})
    with pytest.raises(UpstreamStatusError) as busy:
        _ = [c async for c in adapter.stream_chat(chat(stream=True))]
    assert busy.value.status == 502 and busy.value.upstream_status == 503


async def test_other_endpoints(adapter: OpenAIAdapter, upstream: respx.MockRouter) -> None:
    upstream.post("/embeddings").respond(json={"object": "list", "data": [{"embedding": [0.1]}]})
    upstream.post("/completions").respond(json={"object": "text_completion", "choices": [{"text": "x"}]})
    upstream.get("/models").respond(json={"data": [{"id": "gpt-x"}]})
    embed = Call(kind="embedding", alias="e", body={"model": "e", "input": "x"}, model="emb-x")
    assert (await adapter.embed(embed))["data"][0]["embedding"] == [0.1]
    assert orjson.loads(upstream.calls.last.request.content)["model"] == "emb-x"
    complete = Call(kind="completion", alias="c", body={"model": "c", "prompt": "x"}, model="cmp-x")
    assert (await adapter.complete(complete))["choices"][0]["text"] == "x"
    assert await adapter.list_models() == [{"id": "gpt-x"}]
    await adapter.aclose()


def test_the_request_id_goes_upstream_as_a_uuid_in_the_configured_header() -> None:
    from llm_gateway.adapters.http import correlation_headers

    own = "req_0123456789ab4def8123456789abcdef"
    assert upstream_request_id(own) == "01234567-89ab-4def-8123-456789abcdef"  # the gateway's own id: its digits
    assert upstream_request_id("trace-7:abc") == upstream_request_id("trace-7:abc")  # stable, and a UUID
    assert len(upstream_request_id("trace-7:abc")) == 36
    uuid_id = "5f0c8a1e-2b3d-4c5e-8f70-0123456789ab"
    assert upstream_request_id(uuid_id) == uuid_id
    default = HttpUpstream(name="u", base_url="http://x")
    assert correlation_headers(default, own) == {"x-request-id": "01234567-89ab-4def-8123-456789abcdef"}
    named = HttpUpstream(
        name="u", base_url="http://x", request_id_header="x-correlation-id", request_id_format="verbatim"
    )
    assert correlation_headers(named, own) == {"x-correlation-id": own}
    assert correlation_headers(HttpUpstream(name="u", base_url="http://x", request_id_header=""), own) == {}


async def test_max_completion_tokens_also_goes_as_max_tokens_to_servers_other_than_openai() -> None:
    """Responses' max_output_tokens arrives as max_completion_tokens, which only OpenAI's own API reads."""
    limit = {"max_completion_tokens": 24}
    for base, expected in (("http://127.0.0.1:9/v1", {"max_completion_tokens": 24, "max_tokens": 24}),
                           ("https://api.openai.com/v1", {"max_completion_tokens": 24})):
        with respx.mock(base_url=base) as router:
            route = router.post("/chat/completions").respond(json={"id": "x", "choices": []})
            transport = httpx.MockTransport(router.async_handler)
            adapter = OpenAIAdapter(HttpUpstream(name="up", base_url=base), transport=transport)
            await adapter.chat(chat(**limit))
            sent = orjson.loads(route.calls.last.request.content)
            assert {k: sent[k] for k in ("max_completion_tokens", "max_tokens") if k in sent} == expected
    client_said = chat(max_completion_tokens=24, max_tokens=30)  # a client that sent both keeps both
    assert client_said.upstream_body()["max_tokens"] == 30
