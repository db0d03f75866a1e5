"""Anthropic adapter against respx: OpenAI chat -> Messages, answers and event streams back, errors mapped."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai.types as oat
import openai.types.chat as oa
import orjson
import pytest
import respx

from llm_gateway.adapters.anthropic import AnthropicAdapter
from llm_gateway.adapters.http import HttpUpstream
from llm_gateway.vocab.errors import (
    InvalidRequest,
    UpstreamError,
    UpstreamMalformed,
    UpstreamRateLimited,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from llm_gateway.vocab.types import Call

BASE = "https://anthropic.test"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "Weather now",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.fixture()
def upstream() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture()
def adapter(upstream: respx.MockRouter) -> AnthropicAdapter:
    upstream_settings = HttpUpstream(name="anth", base_url=BASE, api_key="sk-ant-1")
    return AnthropicAdapter(
        upstream_settings, default_max_tokens=321, transport=httpx.MockTransport(upstream.async_handler)
    )


def chat_call(stream: bool = False, **body: Any) -> Call:
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return Call(
        kind="chat", alias="claude", body={"model": "claude", **body}, stream=stream, model="claude-x", provider="anth"
    )


def message(*blocks: dict[str, Any], stop: str = "end_turn") -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": list(blocks),
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 10,
            "output_tokens": 4,
            "cache_read_input_tokens": 2,
            "cache_creation_input_tokens": 0,
        },
    }


def sent(upstream: respx.MockRouter) -> dict[str, Any]:
    return orjson.loads(upstream.calls.last.request.content)


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events)


# requests


async def test_request_translation(adapter: AnthropicAdapter, upstream: respx.MockRouter) -> None:
    upstream.post("/v1/messages").respond(json=message({"type": "text", "text": "ok"}))
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Use metric."}]},
        {"role": "user", "content": "What's the weather?"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "In Paris."},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://img.test/a.jpg"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "toolu_9", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_9", "content": "sunny"},
    ]
    await adapter.chat(
        chat_call(
            messages=messages,
            stop="END",
            temperature=1.5,
            top_p=0.9,
            tools=TOOLS,
            tool_choice="required",
            parallel_tool_calls=False,
            user="u1",
        )
    )
    body = sent(upstream)
    assert body["model"] == "claude-x" and body["max_tokens"] == 321
    assert body["system"] == "Be brief.\n\nUse metric."
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]  # consecutive users merged
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "What's the weather?"},
        {"type": "text", "text": "In Paris."},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://img.test/a.jpg"}},
    ]
    assert body["messages"][1]["content"] == [
        {"type": "tool_use", "id": "toolu_9", "name": "weather", "input": {"city": "Paris"}}
    ]
    assert body["messages"][2]["content"] == [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "sunny"}]
    assert body["stop_sequences"] == ["END"] and body["temperature"] == 1.0 and body["top_p"] == 0.9
    assert body["tools"] == [
        {
            "name": "weather",
            "description": "Weather now",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert body["metadata"] == {"user_id": "u1"} and "stream" not in body
    headers = upstream.calls.last.request.headers
    assert headers["x-api-key"] == "sk-ant-1" and headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in headers


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ({"type": "function", "function": {"name": "weather"}}, {"type": "tool", "name": "weather"}),
    ],
)
async def test_tool_choice(adapter: AnthropicAdapter, upstream: respx.MockRouter, choice: Any, expected: Any) -> None:
    upstream.post("/v1/messages").respond(json=message({"type": "text", "text": "ok"}))
    await adapter.chat(chat_call(tools=TOOLS, tool_choice=choice, max_completion_tokens=7))
    assert sent(upstream)["tool_choice"] == expected and sent(upstream)["max_tokens"] == 7


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"n": 2}, "n"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]},
            "messages[0].content[0].image_url.url",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
            "messages[0].content[0].type",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{broken"}}
                        ],
                    }
                ]
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
    ],
)
async def test_untranslatable_input_is_a_precise_400(
    adapter: AnthropicAdapter, body: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequest) as info:
        await adapter.chat(chat_call(**body))
    assert info.value.status == 400 and info.value.param == param


# answers


async def test_answer_translation_with_text_and_tool_use(adapter: AnthropicAdapter, upstream: respx.MockRouter) -> None:
    upstream.post("/v1/messages").respond(
        json=message(
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
            stop="tool_use",
        )
    )
    answer = await adapter.chat(chat_call(tools=TOOLS))
    parsed = oa.ChatCompletion.model_validate(answer)
    choice = parsed.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Checking."
    assert choice.message.tool_calls[0].id == "toolu_1"
    assert orjson.loads(choice.message.tool_calls[0].function.arguments) == {"city": "Paris"}
    assert parsed.usage.prompt_tokens == 12 and parsed.usage.completion_tokens == 4 and parsed.usage.total_tokens == 16


@pytest.mark.parametrize(
    ("stop", "finish"),
    [("end_turn", "stop"), ("max_tokens", "length"), ("stop_sequence", "stop"), ("tool_use", "tool_calls")],
)
async def test_stop_reasons(adapter: AnthropicAdapter, upstream: respx.MockRouter, stop: str, finish: str) -> None:
    upstream.post("/v1/messages").respond(json=message({"type": "text", "text": "x"}, stop=stop))
    assert (await adapter.chat(chat_call()))["choices"][0]["finish_reason"] == finish


async def test_legacy_completion_is_served_as_one_user_turn(
    adapter: AnthropicAdapter, upstream: respx.MockRouter
) -> None:
    upstream.post("/v1/messages").respond(json=message({"type": "text", "text": " there"}))
    call = Call(kind="completion", alias="claude", body={"model": "claude", "prompt": "hello"}, model="claude-x")
    answer = await adapter.complete(call)
    assert answer["object"] == "text_completion" and answer["choices"][0]["text"] == " there"
    assert sent(upstream)["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]


# streams

STREAM = [
    {
        "type": "message_start",
        "message": {**message(), "content": [], "stop_reason": None, "usage": {"input_tokens": 10, "output_tokens": 1}},
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "ping"},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {}},
    },
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"city"'}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ': "Oslo"}'}},
    {"type": "content_block_stop", "index": 1},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"output_tokens": 15},
    },
    {"type": "message_stop"},
]


async def test_stream_translation(adapter: AnthropicAdapter, upstream: respx.MockRouter) -> None:
    upstream.post("/v1/messages").respond(content=sse(*STREAM), headers={"content-type": "text/event-stream"})
    chunks = [
        c
        async for c in adapter.stream_chat(chat_call(stream=True, tools=TOOLS, stream_options={"include_usage": True}))
    ]
    parsed = [oa.ChatCompletionChunk.model_validate(c) for c in chunks]
    assert sent(upstream)["stream"] is True
    assert parsed[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in parsed if c.choices) == "Hello"
    calls = [tc for c in parsed if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert calls[0].id == "toolu_2" and calls[0].function.name == "weather" and calls[0].index == 0
    assert orjson.loads("".join(tc.function.arguments or "" for tc in calls)) == {"city": "Oslo"}
    assert parsed[-2].choices[0].finish_reason == "tool_calls"
    assert (
        parsed[-1].choices == [] and parsed[-1].usage.prompt_tokens == 10 and parsed[-1].usage.completion_tokens == 15
    )


async def test_stream_without_include_usage_has_no_usage_chunk(
    adapter: AnthropicAdapter, upstream: respx.MockRouter
) -> None:
    upstream.post("/v1/messages").respond(content=sse(*STREAM), headers={"content-type": "text/event-stream"})
    chunks = [c async for c in adapter.stream_chat(chat_call(stream=True))]
    assert all(c["choices"] for c in chunks) and "usage" not in chunks[0]


async def test_stream_error_event_mid_stream(adapter: AnthropicAdapter, upstream: respx.MockRouter) -> None:
    events = [*STREAM[:4], {"type": "error", "error": {"type": "api_error", "message": "Internal"}}]
    upstream.post("/v1/messages").respond(content=sse(*events), headers={"content-type": "text/event-stream"})
    chunks: list[dict[str, Any]] = []
    with pytest.raises(UpstreamStatusError, match="failed mid-stream: Internal"):
        async for c in adapter.stream_chat(chat_call(stream=True)):
            chunks.append(c)
    assert len(chunks) == 2


async def test_stream_overloaded_event_is_a_503(adapter: AnthropicAdapter, upstream: respx.MockRouter) -> None:
    events = [STREAM[0], {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}]
    upstream.post("/v1/messages").respond(content=sse(*events), headers={"content-type": "text/event-stream"})
    with pytest.raises(UpstreamUnavailable) as info:
        _ = [c async for c in adapter.stream_chat(chat_call(stream=True))]
    assert info.value.status == 503


async def test_malformed_sse_line(adapter: AnthropicAdapter, upstream: respx.MockRouter) -> None:
    body = sse(STREAM[0]) + b"event: content_block_delta\ndata: {nope\n\n"
    upstream.post("/v1/messages").respond(content=body, headers={"content-type": "text/event-stream"})
    with pytest.raises(UpstreamMalformed, match="malformed stream line"):
        _ = [c async for c in adapter.stream_chat(chat_call(stream=True))]


async def test_well_formed_json_of_the_wrong_shape_is_a_malformed_upstream(
    adapter: AnthropicAdapter, upstream: respx.MockRouter
) -> None:
    upstream.post("/v1/messages").respond(json={**message(), "content": ["not a block"]})
    with pytest.raises(UpstreamMalformed, match="malformed message") as info:
        await adapter.chat(chat_call())
    assert info.value.status == 502 and info.value.retryable
    bad_delta = {"type": "content_block_delta", "index": 0, "delta": "text"}
    upstream.post("/v1/messages").respond(
        content=sse(STREAM[0], bad_delta), headers={"content-type": "text/event-stream"}
    )
    with pytest.raises(UpstreamMalformed, match="'content_block_delta' event"):
        [c async for c in adapter.stream_chat(chat_call(stream=True))]


async def test_stream_cut_before_message_stop(adapter: AnthropicAdapter, upstream: respx.MockRouter) -> None:
    upstream.post("/v1/messages").respond(content=sse(*STREAM[:5]), headers={"content-type": "text/event-stream"})
    with pytest.raises(UpstreamError, match="before message_stop"):
        _ = [c async for c in adapter.stream_chat(chat_call(stream=True))]


# errors


def anthropic_error(status: int, etype: str, text: str, **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"type": "error", "error": {"type": etype, "message": text}}, headers=headers)


@pytest.mark.parametrize(
    ("response", "error", "status", "code"),
    [
        (anthropic_error(529, "overloaded_error", "Overloaded"), UpstreamUnavailable, 503, "overloaded"),
        (
            anthropic_error(429, "rate_limit_error", "Slow", **{"retry-after": "7"}),
            UpstreamRateLimited,
            429,
            "rate_limit_exceeded",
        ),
        (
            anthropic_error(400, "invalid_request_error", "prompt is too long: 300000 tokens > 200000 maximum"),
            UpstreamStatusError,
            400,
            "context_length_exceeded",
        ),
        (
            anthropic_error(401, "authentication_error", "invalid x-api-key"),
            UpstreamStatusError,
            502,
            "upstream_authentication_failed",
        ),
        (
            anthropic_error(403, "permission_error", "no access"),
            UpstreamStatusError,
            502,
            "upstream_authentication_failed",
        ),
        (anthropic_error(404, "not_found_error", "model: claude-x"), UpstreamStatusError, 404, "not_found_error"),
        (anthropic_error(500, "api_error", "Internal"), UpstreamStatusError, 502, "api_error"),
        (
            httpx.Response(200, json={"type": "error", "error": {"type": "api_error", "message": "quota"}}),
            UpstreamStatusError,
            502,
            "api_error",
        ),
        (
            httpx.Response(200, content=b'{"id": "msg", "content": ['),
            UpstreamMalformed,
            502,
            "upstream_malformed_response",
        ),
    ],
)
async def test_error_mapping(
    adapter: AnthropicAdapter,
    upstream: respx.MockRouter,
    response: httpx.Response,
    error: type,
    status: int,
    code: str | None,
) -> None:
    upstream.post("/v1/messages").mock(return_value=response)
    with pytest.raises(error) as info:
        await adapter.chat(chat_call())
    assert info.value.status == status and info.value.code == code
    body = info.value.to_body()["error"]
    assert body["message"] and set(body) == {"message", "type", "param", "code"}


async def test_error_types_follow_openai(adapter: AnthropicAdapter, upstream: respx.MockRouter) -> None:
    upstream.post("/v1/messages").mock(return_value=anthropic_error(400, "invalid_request_error", "bad temperature"))
    with pytest.raises(UpstreamStatusError) as info:
        await adapter.chat(chat_call())
    assert info.value.type == "invalid_request_error" and info.value.message == "bad temperature"
    assert info.value.status == 400 and not info.value.retryable
    # the provider refusing the gateway's key is the gateway's failure: a 502 the router may fail over, not a 401
    # that would make the client's SDK blame the client's own key
    upstream.post("/v1/messages").mock(return_value=anthropic_error(401, "authentication_error", "bad key"))
    with pytest.raises(UpstreamStatusError) as refused:
        await adapter.chat(chat_call())
    assert refused.value.status == 502 and refused.value.type == "api_error" and refused.value.retryable
    assert "bad key" in refused.value.message and "api key" in refused.value.message
    upstream.post("/v1/messages").mock(
        return_value=anthropic_error(429, "rate_limit_error", "Slow", **{"retry-after": "7"})
    )
    with pytest.raises(UpstreamRateLimited) as limited:
        await adapter.chat(chat_call())
    assert limited.value.retry_after == 7.0 and limited.value.headers["retry-after"] == "7"


@pytest.mark.parametrize(
    ("exc", "error"),
    [(httpx.ConnectError("refused"), UpstreamUnavailable), (httpx.ReadTimeout("slow"), UpstreamTimeout)],
)
async def test_transport_failures(
    adapter: AnthropicAdapter, upstream: respx.MockRouter, exc: Exception, error: type
) -> None:
    upstream.post("/v1/messages").mock(side_effect=exc)
    with pytest.raises(error):
        await adapter.chat(chat_call())
    with pytest.raises(error):
        _ = [c async for c in adapter.stream_chat(chat_call(stream=True))]


async def test_embeddings_are_refused_and_models_listed(adapter: AnthropicAdapter, upstream: respx.MockRouter) -> None:
    with pytest.raises(InvalidRequest, match="does not serve embeddings"):
        await adapter.embed(Call(kind="embedding", alias="claude", body={"model": "claude", "input": "x"}))
    upstream.get("/v1/models").respond(
        json={
            "data": [{"type": "model", "id": "claude-x", "display_name": "X", "created_at": "2025-01-01T00:00:00Z"}],
            "has_more": False,
        }
    )
    assert await adapter.list_models() == [{"id": "claude-x", "object": "model", "created": 0, "owned_by": "anthropic"}]
    await adapter.aclose()


async def test_an_error_right_after_message_start_comes_before_any_chunk(
    adapter: AnthropicAdapter, upstream: respx.MockRouter
) -> None:
    events = [
        STREAM[0],
        {"type": "ping"},
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    ]
    upstream.post("/v1/messages").respond(content=sse(*events), headers={"content-type": "text/event-stream"})
    stream = adapter.stream_chat(chat_call(stream=True))
    with pytest.raises(UpstreamUnavailable):
        await anext(stream)  # the router's priming step sees the failure, so it can still fail over


async def test_streamed_legacy_completion(adapter: AnthropicAdapter, upstream: respx.MockRouter) -> None:
    text_only = [e for e in STREAM if e.get("index") != 1]
    upstream.post("/v1/messages").respond(content=sse(*text_only), headers={"content-type": "text/event-stream"})
    call = Call(
        kind="completion", alias="claude", body={"model": "claude", "prompt": ["hello"]}, stream=True, model="claude-x"
    )
    chunks = [c async for c in adapter.stream_complete(call)]
    assert "".join(c["choices"][0]["text"] for c in chunks) == "Hello"
    assert all(c["object"] == "text_completion" for c in chunks)
    assert oat.Completion.model_validate(chunks[-1]).choices[0].finish_reason == "stop"


# a client's own Messages request (Call.native), sent as it came


def native_call(body: dict[str, Any], stream: bool = False, **chat: Any) -> Call:
    from llm_gateway.vocab.types import NativeRequest

    messages = [{"role": "user", "content": "hi"}]
    call = Call(kind="chat", alias="claude", body={"model": "claude", "messages": messages, "max_tokens": 100, **chat},
                stream=stream, model="claude-x", provider="anth")
    call.native = NativeRequest("anthropic.messages", body, {"anthropic-beta": "b1"}, messages)
    return call


NATIVE_BODY = {"model": "claude", "max_tokens": 100, "thinking": {"type": "enabled", "budget_tokens": 1024},
               "messages": [{"role": "user", "content": [{"type": "text", "text": "hi",
                                                          "cache_control": {"type": "ephemeral"}}]}]}


async def test_a_native_body_goes_as_it_came_with_the_upstream_model_and_beta_header(
    adapter: AnthropicAdapter, upstream: respx.MockRouter
) -> None:
    thinking = {"type": "thinking", "thinking": "t", "signature": "sig"}
    upstream.post("/v1/messages").respond(json=message(thinking, {"type": "text", "text": "ok"}))
    result = await adapter.chat(native_call(NATIVE_BODY))
    assert sent(upstream) == {**NATIVE_BODY, "model": "claude-x"}
    assert upstream.calls.last.request.headers["anthropic-beta"] == "b1"
    assert result["choices"][0]["message"]["content"] == "ok"
    assert result["anthropic"]["content"][0] == thinking  # the upstream's message rides along for /v1/messages
    assert result["usage"]["cache_read_input_tokens"] == 2 and result["usage"]["prompt_tokens"] == 12


async def test_a_policy_clamp_of_max_tokens_reaches_the_native_body(adapter: AnthropicAdapter,
                                                                    upstream: respx.MockRouter) -> None:
    upstream.post("/v1/messages").respond(json=message({"type": "text", "text": "ok"}))
    call = native_call(NATIVE_BODY)
    call.body = {**call.body, "max_tokens": 50}  # what RequestLimitsPolicy does: same messages, lower limit
    await adapter.chat(call)
    assert sent(upstream)["max_tokens"] == 50 and "thinking" in sent(upstream)


async def test_rewritten_messages_are_translated_so_a_redaction_is_never_bypassed(adapter: AnthropicAdapter,
                                                                                  upstream: respx.MockRouter) -> None:
    upstream.post("/v1/messages").respond(json=message({"type": "text", "text": "ok"}))
    call = native_call(NATIVE_BODY)
    call.body = {**call.body, "messages": [{"role": "user", "content": "<EMAIL_1>"}]}  # a new list: PII redacted
    result = await adapter.chat(call)
    assert sent(upstream)["messages"] == [{"role": "user", "content": [{"type": "text", "text": "<EMAIL_1>"}]}]
    assert "anthropic" not in result
    assert "anthropic-beta" not in upstream.calls.last.request.headers


async def test_a_native_stream_carries_the_events_chat_has_no_room_for(adapter: AnthropicAdapter,
                                                                      upstream: respx.MockRouter) -> None:
    start = {"type": "message_start", "message": {**message(), "usage": {"input_tokens": 5, "output_tokens": 1}}}
    think = {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}
    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hm"}}
    text = {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}
    words = {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hi"}}
    end = {"type": "message_delta", "delta": {"stop_reason": "stop_sequence", "stop_sequence": "END"},
           "usage": {"output_tokens": 3, "cache_read_input_tokens": 7}}
    events = [start, think, delta, {"type": "content_block_stop", "index": 0}, text, words,
              {"type": "content_block_stop", "index": 1}, end, {"type": "message_stop"}]
    upstream.post("/v1/messages").respond(content=sse(*events), headers={"content-type": "text/event-stream"})
    chunks = [c async for c in adapter.stream_chat(native_call(NATIVE_BODY, stream=True,
                                                               stream_options={"include_usage": True}))]
    carried = [c["choices"][0]["delta"]["anthropic"]["type"] for c in chunks
               if c["choices"] and "anthropic" in c["choices"][0]["delta"]]
    assert carried == ["content_block_start", "content_block_delta", "content_block_stop"]
    assert sent(upstream)["stream"] is True
    finish = next(c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"])
    assert finish["anthropic"] == {"stop_reason": "stop_sequence", "stop_sequence": "END"}
    assert chunks[-1]["usage"]["cache_read_input_tokens"] == 7


async def test_count_tokens_asks_the_upstream_and_says_none_when_it_cannot(adapter: AnthropicAdapter,
                                                                          upstream: respx.MockRouter) -> None:
    route = upstream.post("/v1/messages/count_tokens")
    route.respond(json={"input_tokens": 17})
    assert await adapter.count_tokens(native_call(NATIVE_BODY)) == 17
    assert "max_tokens" not in sent(upstream) and sent(upstream)["thinking"] == NATIVE_BODY["thinking"]
    route.respond(status_code=404, json={"type": "error", "error": {"type": "not_found_error", "message": "no"}})
    assert await adapter.count_tokens(native_call(NATIVE_BODY)) is None
