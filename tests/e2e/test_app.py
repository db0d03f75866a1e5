"""End to end: the real app under uvicorn, driven by the official openai SDK (sync and async), mock and upstream."""

from __future__ import annotations

import uuid

import httpx
import openai
import pytest

from tests.support.upstream import FakeUpstream

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture
def client(gateway_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway_url}/v1", api_key="sk-client-secret", max_retries=0)


@pytest.fixture
def aclient(gateway_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gateway_url}/v1", api_key="sk-client-secret", max_retries=0)


def test_mock_chat_is_deterministic_with_real_usage(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "hello there"}]
    first = client.chat.completions.create(model="mock", messages=messages)
    second = client.chat.completions.create(model="mock", messages=messages)
    assert first.model_dump() == second.model_dump()
    assert first.object == "chat.completion"
    assert first.choices[0].message.content == "Mock reply to: hello there"
    assert first.choices[0].finish_reason == "stop"
    assert (
        first.usage.prompt_tokens > 0
        and first.usage.total_tokens == first.usage.prompt_tokens + first.usage.completion_tokens
    )


def test_mock_stream_joins_to_the_whole_answer_and_reports_usage(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "tell me a short story about a cat"}]
    whole = client.chat.completions.create(model="mock", messages=messages)
    chunks = list(
        client.chat.completions.create(
            model="mock", messages=messages, stream=True, stream_options={"include_usage": True}
        )
    )
    assert len(chunks) > 3
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == whole.usage.total_tokens
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_mock_tool_call_round_trip(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "What's the weather in Paris? Use the tool."}]
    first = client.chat.completions.create(model="mock", messages=messages, tools=[WEATHER_TOOL])
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"},
    ]
    second = client.chat.completions.create(model="mock", messages=messages, tools=[WEATHER_TOOL])
    assert "sunny, 21C" in second.choices[0].message.content


def test_mock_embeddings_float_and_base64(client: openai.OpenAI) -> None:
    floats = client.embeddings.create(model="mock", input=["a", "b"], encoding_format="float")
    default = client.embeddings.create(model="mock", input=["a", "b"])  # the SDK asks for base64 and decodes it
    assert len(floats.data) == 2 and len(floats.data[0].embedding) == 8
    assert default.data[0].embedding == pytest.approx(floats.data[0].embedding, rel=1e-5)


def test_completions_and_models(client: openai.OpenAI) -> None:
    completion = client.completions.create(model="mock", prompt="once upon", max_tokens=50)
    assert completion.object == "text_completion" and "once upon" in completion.choices[0].text
    ids = [m.id for m in client.models.list()]
    assert "mock" in ids and "echo" in ids
    assert client.models.retrieve("mock").id == "mock"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


async def test_async_client_stream_and_not(aclient: openai.AsyncOpenAI) -> None:
    result = await aclient.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi"}])
    assert result.choices[0].message.content == "echo: hi"
    stream = await aclient.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "echo: hi"


def test_upstream_gets_pass_through_fields_its_own_key_and_model(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": "hi"}],
        response_format={"type": "json_object"},
        extra_body={"top_k": 5, "reasoning_effort": "low", "vendor_field": {"a": [1, 2]}},
    )
    seen = upstream.requests[-1]
    assert seen["body"]["model"] == "echo"
    assert seen["body"]["top_k"] == 5 and seen["body"]["reasoning_effort"] == "low"
    assert seen["body"]["vendor_field"] == {"a": [1, 2]} and seen["body"]["response_format"] == {"type": "json_object"}
    assert seen["headers"]["authorization"] == "Bearer sk-upstream"
    assert "sk-client-secret" not in str(seen["headers"])
    assert uuid.UUID(seen["headers"]["x-request-id"]).version == 4  # what every upstream accepts


def test_upstream_stream_with_usage_and_tool_calls(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="tools",
            messages=[{"role": "user", "content": "weather?"}],
            tools=[WEATHER_TOOL],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    args = "".join(
        c.choices[0].delta.tool_calls[0].function.arguments or ""
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
    )
    assert args == '{"city": "Paris"}'
    assert chunks[-1].usage.total_tokens == 18


@pytest.mark.parametrize(
    ("model", "error", "status"),
    [
        ("fail-400", openai.BadRequestError, 400),
        ("context", openai.BadRequestError, 400),
        ("fail-429", openai.RateLimitError, 429),
        ("fail-500", openai.APIStatusError, 502),
        ("error-200", openai.APIStatusError, 502),
        ("malformed", openai.APIStatusError, 502),
    ],
)
def test_upstream_errors_map_to_openai_errors(client: openai.OpenAI, model: str, error: type, status: int) -> None:
    with pytest.raises(error) as info:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == status
    assert info.value.body["message"]


def test_upstream_message_is_kept(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="fail-400", messages=[{"role": "user", "content": "hi"}])
    assert info.value.body["message"] == "bad parameter foo" and info.value.body["code"] == "invalid_value"


def test_stream_reset_mid_way_ends_with_an_error_event(client: openai.OpenAI, gateway_url: str) -> None:
    stream = client.chat.completions.create(
        model="reset", messages=[{"role": "user", "content": "hello world"}], stream=True
    )
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass
    assert httpx.get(f"{gateway_url}/healthz").status_code == 200  # still serving


def test_stream_error_before_first_byte_is_an_http_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="fail-400", messages=[{"role": "user", "content": "hi"}], stream=True)


def test_sse_framing_is_exactly_openais(gateway_url: str) -> None:
    body = {"model": "mock", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    raw = httpx.post(f"{gateway_url}/v1/chat/completions", json=body).text
    frames = raw.split("\n\n")
    assert frames[-1] == "" and frames[-2] == "data: [DONE]"
    assert all(f.startswith("data: {") for f in frames[:-2] if not f.startswith(":"))


@pytest.mark.parametrize(
    ("content", "status", "param"),
    [
        (b"{bad json", 400, None),
        (b"[1, 2]", 400, None),
        (b'{"model": "mock", "messages": []}', 400, "messages"),
        (b'{"model": "mock", "messages": "hi"}', 400, "messages"),
        (
            b'{"model": "mock", "messages": [{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}]}',
            400,
            "messages[1].role",
        ),
        (b'{"model": "mock", "messages": [{"role": "user", "content": 5}]}', 400, "messages[0].content"),
        (b'{"model": "mock", "messages": [{"role": "user", "content": "a"}], "stream": "yes"}', 400, "stream"),
        (b'{"model": "mock", "messages": [{"role": "user", "content": "a"}], "temperature": 7}', 400, "temperature"),
        (b'{"model": "mock", "messages": [{"role": "user", "content": "a"}], "n": 0}', 400, "n"),
        (b'{"messages": [{"role": "user", "content": "a"}]}', 400, "model"),
        (b'{"model": "nope", "messages": [{"role": "user", "content": "a"}]}', 404, "model"),
    ],
)
def test_bad_input_gets_a_precise_openai_error(
    gateway_url: str, content: bytes, status: int, param: str | None
) -> None:
    response = httpx.post(
        f"{gateway_url}/v1/chat/completions", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["param"] == param
    assert response.headers["x-request-id"]


def test_oversize_body_is_413_and_wrong_method_405_and_path_404(gateway_url: str) -> None:
    big = b'{"model": "mock", "messages": [{"role": "user", "content": "' + b"a" * (9 * 1024 * 1024) + b'"}]}'
    assert httpx.post(f"{gateway_url}/v1/chat/completions", content=big).status_code == 413
    assert httpx.get(f"{gateway_url}/v1/chat/completions").status_code == 405
    assert httpx.get(f"{gateway_url}/v1/nothing").json()["error"]["type"] == "invalid_request_error"
    assert httpx.get(f"{gateway_url}/healthz").status_code == 200
    assert httpx.get(f"{gateway_url}/readyz").status_code == 200


def test_client_request_id_is_echoed(gateway_url: str) -> None:
    body = {"model": "mock", "messages": [{"role": "user", "content": "hi"}]}
    ok = httpx.post(f"{gateway_url}/v1/chat/completions", json=body, headers={"x-request-id": "abc-123"})
    hostile = httpx.post(f"{gateway_url}/v1/chat/completions", json=body, headers={"x-request-id": "x" * 500})
    assert ok.headers["x-request-id"] == "abc-123"
    assert hostile.headers["x-request-id"].startswith("req_")


def test_mock_structured_output_parses_with_the_sdk(client: openai.OpenAI) -> None:
    from pydantic import BaseModel

    class City(BaseModel):
        name: str
        population: int

    class Answer(BaseModel):
        cities: list[City]
        capital: City | None
        confident: bool

    result = client.chat.completions.parse(
        model="mock", messages=[{"role": "user", "content": "cities?"}], response_format=Answer
    )
    parsed = result.choices[0].message.parsed
    assert isinstance(parsed, Answer) and parsed.cities[0].name == "example name"
    again = client.chat.completions.parse(
        model="mock", messages=[{"role": "user", "content": "cities?"}], response_format=Answer
    )
    assert again.choices[0].message.parsed == parsed
    json_mode = client.chat.completions.create(
        model="mock", messages=[{"role": "user", "content": "hi"}], response_format={"type": "json_object"}
    )
    assert json_mode.choices[0].message.content == '{"reply":"Mock reply to: hi"}'
