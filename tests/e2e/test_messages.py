"""POST /v1/messages through the real app, driven by the official anthropic SDK: on the mock, natively to a real
(fake) Anthropic upstream, and translated to a real OpenAI-compatible upstream, all on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import orjson
import pytest

from llm_gateway.composition.root import create_app
from tests.conftest import make_settings
from tests.support.anthropic_upstream import API_KEY, FakeAnthropic
from tests.support.server import running
from tests.support.upstream import FakeUpstream

WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
HELLO = [{"role": "user", "content": "hello there"}]
CACHE = {"type": "ephemeral"}
NATIVE_MODELS = ("claude-echo", "claude-tools", "claude-think", "claude-search", "overloaded", "stream-error",
                 "fail-500")


@pytest.fixture(scope="module")
def anthropic_upstream() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic()
    with running(fake.app) as url:
        fake.url = url  # type: ignore[attr-defined]
        yield fake


@pytest.fixture(scope="module")
def gateway(upstream: FakeUpstream, anthropic_upstream: FakeAnthropic) -> Iterator[str]:
    timeout = {"read": 5, "first_token": 5, "total": 10}
    anth = {"type": "anthropic", "base_url": anthropic_upstream.url, "api_key": API_KEY, "timeout": timeout}  # type: ignore[attr-defined]
    models = {f"a-{m}": {"provider": "anth", "model": m} for m in NATIVE_MODELS}
    settings = make_settings(upstream.url, providers={"anth": anth}, models=models)  # type: ignore[attr-defined]
    with running(create_app(settings)) as url:
        yield url


@pytest.fixture
def client(gateway: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway, api_key="anything", max_retries=0)


def sse_events(gateway: str, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The raw (event, data) pairs of a streamed /v1/messages answer."""
    with httpx.stream("POST", gateway + "/v1/messages", json={**body, "stream": True}, timeout=10,
                      headers={"anthropic-version": "2023-06-01"}) as response:
        text = response.read().decode()
    events = []
    for frame in text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in frame.splitlines() if ": " in line and not line.startswith(":"))
        if "event" in lines:
            events.append((lines["event"], orjson.loads(lines["data"])))
    return events


# the mock, with no keys set


def test_the_sdk_gets_a_message_from_the_mock(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model="mock", max_tokens=64, messages=HELLO)
    assert message.id.startswith("msg_")
    assert message.type == "message" and message.role == "assistant"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "Mock reply to: hello there"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


def test_the_async_sdk_streams_with_the_helpers(gateway: str) -> None:
    async def run() -> tuple[list[str], anthropic.types.Message, anthropic.types.Message]:
        async with anthropic.AsyncAnthropic(base_url=gateway, api_key="x", max_retries=0) as sdk:
            whole = await sdk.messages.create(model="mock", max_tokens=64, messages=HELLO)
            async with sdk.messages.stream(model="mock", max_tokens=64, messages=HELLO) as stream:
                pieces = [text async for text in stream.text_stream]
                final = await stream.get_final_message()
        return pieces, final, whole

    pieces, final, whole = asyncio.run(run())
    assert len(pieces) > 1  # the mock streams in several chunks, each a text_delta
    assert "".join(pieces) == final.content[0].text == whole.content[0].text  # type: ignore[union-attr]
    assert final.id == whole.id  # derived from the same deterministic answer
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == whole.usage.output_tokens > 0
    assert final.usage.input_tokens == whole.usage.input_tokens > 0


def test_a_stream_is_anthropics_event_sequence(gateway: str) -> None:
    events = sse_events(gateway, {"model": "mock", "max_tokens": 64, "messages": HELLO})
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    assert all(name == data["type"] for name, data in events)
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"
    assert events[-2][1]["usage"]["output_tokens"] > 0


def test_a_tool_round_trip_on_the_mock(client: anthropic.Anthropic) -> None:
    ask = [{"role": "user", "content": "Call get_weather for Paris"}]
    first = client.messages.create(model="mock", max_tokens=64, tools=[WEATHER], messages=ask)
    assert first.stop_reason == "tool_use"
    use = next(b for b in first.content if b.type == "tool_use")
    assert use.name == "get_weather" and isinstance(use.input, dict) and "city" in use.input  # type: ignore[union-attr]
    follow = [*ask, {"role": "assistant", "content": first.content},
              {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 21C"}]}]
    second = client.messages.create(model="mock", max_tokens=64, tools=[WEATHER], messages=follow)
    assert second.stop_reason == "end_turn"
    assert "sunny, 21C" in second.content[0].text  # type: ignore[union-attr]


def test_count_tokens_is_an_estimate_on_the_mock_and_says_so(client: anthropic.Anthropic) -> None:
    raw = client.messages.with_raw_response.count_tokens(model="mock", messages=HELLO, tools=[WEATHER])
    assert raw.headers["x-gateway-token-count"] == "estimate"
    short = client.messages.count_tokens(model="mock", messages=HELLO)
    assert raw.parse().input_tokens > short.input_tokens > 0  # the tools count too


# translated: a real OpenAI-compatible upstream


def test_a_translated_request_reaches_the_openai_upstream_as_chat(client: anthropic.Anthropic,
                                                                  upstream: FakeUpstream) -> None:
    message = client.messages.create(
        model="echo", max_tokens=32, system="Be brief.", stop_sequences=["END"], metadata={"user_id": "u-1"},
        extra_body={"temperature": 0.5, "top_k": 5},  # older SDKs' parameters, still the API's
        messages=[{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": CACHE}]}],
    )
    assert message.content[0].text == "echo: hi"  # type: ignore[union-attr]
    assert message.id == "msg_upstream-1" and message.model == "echo"
    assert message.usage.input_tokens == 11 and message.usage.output_tokens == 7
    sent = upstream.requests[-1]["body"]
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    assert sent["max_tokens"] == 32 and sent["stop"] == ["END"] and sent["temperature"] == 0.5
    assert sent["user"] == "u-1" and sent["top_k"] == 5
    assert "cache_control" not in orjson.dumps(sent).decode()  # advice: dropped for a backend without caching


def test_a_streamed_tool_round_trip_through_an_openai_upstream(client: anthropic.Anthropic,
                                                               upstream: FakeUpstream) -> None:
    ask = [{"role": "user", "content": "weather in Paris?"}]
    with client.messages.stream(model="tools", max_tokens=64, tools=[WEATHER], messages=ask) as stream:
        kinds = [event.type for event in stream]
        first = stream.get_final_message()
    assert "input_json" in kinds  # the SDK's event for the streamed tool-call JSON
    use = first.content[-1]
    assert use.type == "tool_use" and use.id == "call_up_1" and use.input == {"city": "Paris"}
    assert first.stop_reason == "tool_use"
    follow = [*ask, {"role": "assistant", "content": first.content},
              {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]}]
    second = client.messages.create(model="tools", max_tokens=64, tools=[WEATHER], messages=follow,
                                    tool_choice={"type": "auto", "disable_parallel_tool_use": True})
    assert second.content[0].text == "tool said: sunny"  # type: ignore[union-attr]
    sent = upstream.requests[-1]["body"]
    assert sent["messages"][1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert sent["messages"][2] == {"role": "tool", "tool_call_id": "call_up_1", "content": "sunny"}
    assert sent["tools"][0]["function"]["parameters"] == WEATHER["input_schema"]
    assert sent["tool_choice"] == "auto" and sent["parallel_tool_calls"] is False


def test_thinking_on_a_backend_that_does_not_reason_is_a_400_naming_it(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model="echo", max_tokens=2048, messages=HELLO,
                               thinking={"type": "enabled", "budget_tokens": 1024})
    assert info.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert info.value.body["error"]["message"].startswith("thinking: ")  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError, match="tools.0.type"):
        client.messages.create(model="mock", max_tokens=64, messages=HELLO,
                               tools=[{"type": "web_search_20250305", "name": "web_search"}])


def test_an_upstream_failure_is_the_sdks_error_class(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.InternalServerError) as info:
        client.messages.create(model="fail-500", max_tokens=16, messages=HELLO)
    assert info.value.status_code == 502
    assert info.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="no-such-alias", max_tokens=16, messages=HELLO)
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


# native: a real Anthropic Messages upstream


def test_native_requests_reach_anthropic_as_the_client_sent_them(client: anthropic.Anthropic,
                                                                 anthropic_upstream: FakeAnthropic) -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}]
    system = [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
    thinking = {"type": "enabled", "budget_tokens": 1024}
    message = client.messages.create(model="a-claude-think", max_tokens=2048, system=system, messages=messages,
                                     thinking=thinking, service_tier="auto",
                                     extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"})
    sent = anthropic_upstream.requests[-1]
    assert sent["body"] == {"model": "claude-think", "max_tokens": 2048, "system": system, "messages": messages,
                            "thinking": thinking, "service_tier": "auto"}
    assert sent["headers"]["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].signature == "sig-abc123"  # type: ignore[union-attr]
    assert message.content[0].thinking == "Let me think it over."  # type: ignore[union-attr]
    assert message.id == "msg_01fake" and message.model == "claude-think"
    usage = message.usage
    assert (usage.input_tokens, usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (21, 100, 2000)


def test_a_native_stream_keeps_thinking_deltas_and_signatures(client: anthropic.Anthropic) -> None:
    thinking = {"type": "enabled", "budget_tokens": 1024}
    with client.messages.stream(model="a-claude-think", max_tokens=2048, messages=HELLO, thinking=thinking) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert "thinking" in kinds and "signature" in kinds
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].signature == "sig-abc123"  # type: ignore[union-attr]
    assert final.content[1].text == "echo: hello there"  # type: ignore[union-attr]
    assert final.usage.cache_read_input_tokens == 2000 and final.usage.input_tokens == 21
    assert stream.current_message_snapshot.usage.input_tokens == 21


def test_a_native_stream_starts_with_anthropics_own_input_usage(gateway: str) -> None:
    events = sse_events(gateway, {"model": "a-claude-echo", "max_tokens": 16, "messages": HELLO})
    assert events[0][1]["message"]["usage"]["input_tokens"] == 21  # message_start, before any content


def test_native_citations_and_server_tool_blocks_come_back_whole_and_streamed(client: anthropic.Anthropic) -> None:
    whole = client.messages.create(model="a-claude-search", max_tokens=64, messages=HELLO)
    with client.messages.stream(model="a-claude-search", max_tokens=64, messages=HELLO) as stream:
        streamed = stream.get_final_message()
    for message in (whole, streamed):
        assert [b.type for b in message.content] == ["server_tool_use", "web_search_tool_result", "text"]
        assert message.content[0].input == {"query": "capital of France"}  # type: ignore[union-attr]
        text = message.content[2]
        assert text.text == "The capital is Paris."  # type: ignore[union-attr]
        assert text.citations[0].url == "https://example.com/paris"  # type: ignore[union-attr]


def test_native_tool_round_trip(client: anthropic.Anthropic, anthropic_upstream: FakeAnthropic) -> None:
    ask = [{"role": "user", "content": "weather?"}]
    first = client.messages.create(model="a-claude-tools", max_tokens=64, tools=[WEATHER], messages=ask)
    use = first.content[-1]
    assert use.type == "tool_use" and use.input == {"city": "Paris"} and first.stop_reason == "tool_use"
    follow = [*ask, {"role": "assistant", "content": first.content},
              {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "rain"}]}]
    with client.messages.stream(model="a-claude-tools", max_tokens=64, tools=[WEATHER], messages=follow) as stream:
        second = stream.get_final_message()
    assert second.content[0].text == "tool said: rain"  # type: ignore[union-attr]
    assert anthropic_upstream.requests[-1]["body"]["messages"][2]["content"][0]["tool_use_id"] == use.id


def test_count_tokens_is_exact_from_anthropic(client: anthropic.Anthropic, anthropic_upstream: FakeAnthropic) -> None:
    raw = client.messages.with_raw_response.count_tokens(model="a-claude-echo", messages=HELLO, tools=[WEATHER])
    assert raw.headers["x-gateway-token-count"] == "exact"
    assert raw.parse().input_tokens == 4242
    sent = anthropic_upstream.requests[-1]
    assert sent["path"] == "/v1/messages/count_tokens"
    assert sent["body"] == {"model": "claude-echo", "messages": HELLO, "tools": [WEATHER]}


def test_an_overloaded_anthropic_is_a_529_overloaded_error(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.OverloadedError) as info:
        client.messages.create(model="a-overloaded", max_tokens=16, messages=HELLO)
    assert info.value.status_code == 529
    assert info.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


def test_a_stream_failing_midway_ends_with_an_error_event_not_a_message_stop(client: anthropic.Anthropic,
                                                                              gateway: str) -> None:
    events = sse_events(gateway, {"model": "a-stream-error", "max_tokens": 16, "messages": HELLO})
    names = [name for name, _ in events]
    assert names[0] == "message_start" and "content_block_delta" in names
    assert names[-1] == "error" and "message_stop" not in names and "message_delta" not in names
    assert events[-1][1]["error"]["type"] == "overloaded_error"
    stream = client.messages.stream(model="a-stream-error", max_tokens=16, messages=HELLO)
    with pytest.raises(anthropic.APIStatusError, match="overloaded"), stream as events:
        for _ in events:
            pass


# bad input


def _post(client: anthropic.Anthropic, body: dict[str, Any], **headers: str) -> anthropic.BadRequestError:
    with pytest.raises(anthropic.BadRequestError) as info:
        client.post("/v1/messages", body=body, cast_to=anthropic.types.Message,
                    options={"headers": headers} if headers else {})
    return info.value


IMAGE_FILE = {"type": "image", "source": {"type": "file", "file_id": "file_1"}}
BAD_INPUT = [
    ({"model": "mock", "messages": HELLO}, "max_tokens"),
    ({"model": "mock", "max_tokens": 8, "messages": [*HELLO, *HELLO]}, "messages.1.role"),
    ({"model": "mock", "max_tokens": 8, "messages": [{"role": "user", "content": [{"type": "video"}]}]},
     "messages.0.content.0.type"),
    ({"model": "mock", "max_tokens": 8, "messages": [
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_x", "content": "1"}]}]},
     "messages.0.content.0.tool_use_id"),
    ({"model": "mock", "max_tokens": 8, "messages": [{"role": "user", "content": [IMAGE_FILE]}]},
     "messages.0.content.0.source.type"),
]


@pytest.mark.parametrize(("body", "field"), BAD_INPUT, ids=[f for _, f in BAD_INPUT])
def test_bad_input_is_a_400_naming_the_field_and_the_gateway_keeps_serving(client: anthropic.Anthropic,
                                                                           body: dict[str, Any], field: str) -> None:
    error = _post(client, body)
    assert error.status_code == 400
    assert error.body == {"type": "error", "error": {"type": "invalid_request_error", "message": error.body["error"][  # type: ignore[index]
        "message"]}}
    assert error.body["error"]["message"].startswith(field + ": ")  # type: ignore[index]
    assert client.messages.create(model="mock", max_tokens=8, messages=HELLO).content


def test_a_wrong_anthropic_version_is_a_400_naming_the_header(client: anthropic.Anthropic) -> None:
    error = _post(client, {"model": "mock", "max_tokens": 8, "messages": HELLO}, **{"anthropic-version": "latest"})
    assert error.body["error"]["message"].startswith("anthropic-version: ")  # type: ignore[index]
