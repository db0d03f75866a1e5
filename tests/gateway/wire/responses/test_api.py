"""POST /v1/responses end to end: the real app under uvicorn, driven by the official openai SDK and raw HTTP,
against the mock alias and the in-process fake OpenAI upstream."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pydantic
import pytest

from llm_gateway.composition.root import create_app
from llm_gateway.config.settings import Settings
from llm_gateway.server.app import GatewayApp
from tests.conftest import make_settings
from tests.support.server import running
from tests.support.upstream import FakeUpstream

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
MASTER = "sk-master-responses-0123456789"


def app_with_responses(settings: Settings) -> GatewayApp:
    """The app as a user gets it: create_app serves /v1/responses beside the other model endpoints."""
    return create_app(settings)


@pytest.fixture(scope="module")
def url(upstream: FakeUpstream) -> Iterator[str]:
    with running(app_with_responses(make_settings(upstream.url))) as base:  # type: ignore[attr-defined]
        yield base


@pytest.fixture
def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="sk-client-secret", max_retries=0)


@pytest.fixture
def aclient(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="sk-client-secret", max_retries=0)


def sse_frames(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) per frame, insisting on OpenAI's framing: `event: <type>\\ndata: {json}`, nothing else."""
    frames = []
    for block in text.split("\n\n"):
        if not block or block.startswith(":"):  # the end, or a keep-alive comment
            continue
        event, data = block.split("\n")
        assert event.startswith("event: ") and data.startswith("data: "), block
        frames.append((event.removeprefix("event: "), orjson.loads(data.removeprefix("data: "))))
    return frames


# the mock alias, through the SDK


def test_a_text_response_parses_with_the_sdk(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="mock",
        input="hello there",
        instructions="be brief",
        max_output_tokens=100,
        temperature=0.3,
        metadata={"team": "a"},
        user="u1",
    )
    assert response.object == "response" and response.status == "completed" and response.id.startswith("resp_")
    assert response.output_text == "Mock reply to: hello there"
    assert response.output[0].type == "message" and response.output[0].id.startswith("msg_")
    assert response.instructions == "be brief" and response.temperature == 0.3 and response.max_output_tokens == 100
    usage = response.usage
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    again = client.responses.create(
        model="mock",
        input="hello there",
        instructions="be brief",
        max_output_tokens=100,
        temperature=0.3,
        metadata={"team": "a"},
        user="u1",
    )
    assert again.model_dump() == response.model_dump()  # the mock is deterministic, so is its response


def test_the_stream_helper_gets_the_final_response(client: openai.OpenAI) -> None:
    whole = client.responses.create(model="mock", input="tell me a short story about a cat")
    with client.responses.stream(model="mock", input="tell me a short story about a cat") as stream:
        events = list(stream)
        final = stream.get_final_response()
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 2 and "".join(deltas) == whole.output_text
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert final.output_text == whole.output_text and final.id == whole.id
    assert final.usage is not None and final.usage.total_tokens == whole.usage.total_tokens


def test_create_with_stream_true_yields_the_events(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="mock", input="hi", stream=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].type == "response.completed" and events[-1].response.output_text == "Mock reply to: hi"


async def test_async_client_whole_and_streamed(aclient: openai.AsyncOpenAI) -> None:
    whole = await aclient.responses.create(model="mock", input="hello async")
    assert whole.output_text == "Mock reply to: hello async"
    async with aclient.responses.stream(model="mock", input="hello async") as stream:
        text = "".join([e.delta async for e in stream if e.type == "response.output_text.delta"])
        final = await stream.get_final_response()
    assert text == whole.output_text == final.output_text
    events = [e async for e in await aclient.responses.create(model="mock", input="hello async", stream=True)]
    assert events[-1].response.usage.output_tokens == whole.usage.output_tokens


def test_a_tool_round_trip(client: openai.OpenAI) -> None:
    first = client.responses.create(model="mock", input="What's the weather in Paris? Use the tool.", tools=[WEATHER])
    call = first.output[0]
    assert call.type == "function_call" and call.name == "get_weather" and call.status == "completed"
    assert "city" in orjson.loads(call.arguments)
    follow_up = [
        {"role": "user", "content": "What's the weather in Paris? Use the tool."},
        *[item.model_dump(exclude_none=True) for item in first.output],
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21C"},
    ]
    second = client.responses.create(model="mock", input=follow_up, tools=[WEATHER])
    assert second.output_text == "The tool returned: sunny, 21C"


def test_a_streamed_tool_call(client: openai.OpenAI) -> None:
    with client.responses.stream(
        model="mock",
        input="look up the weather in Paris",
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in [e.type for e in events]
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert final.output[0].type == "function_call" and final.output[0].arguments == done.arguments


class City(pydantic.BaseModel):
    name: str
    population: int


def test_text_format_json_schema_parses_into_the_model(client: openai.OpenAI) -> None:
    parsed = client.responses.parse(model="mock", input="Describe Paris.", text_format=City)
    assert isinstance(parsed.output_parsed, City) and parsed.text.format.type == "json_schema"
    json_object = client.responses.create(
        model="mock", input="Say hi as JSON.", text={"format": {"type": "json_object"}}
    )
    assert orjson.loads(json_object.output_text) == {"reply": "Mock reply to: Say hi as JSON."}


def test_the_token_limit_makes_an_incomplete_response(client: openai.OpenAI, url: str) -> None:
    response = client.responses.create(model="mock", input="tell me a very long story please", max_output_tokens=2)
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
    raw = httpx.post(
        f"{url}/v1/responses",
        json={"model": "mock", "input": "tell me a very long story please", "max_output_tokens": 2, "stream": True},
    )
    assert sse_frames(raw.text)[-1][0] == "response.incomplete"


# the fake OpenAI upstream


def test_the_upstream_gets_a_chat_request(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    response = client.responses.create(
        model="echo",
        input=[{"role": "user", "content": "ping"}],
        instructions="be brief",
        max_output_tokens=50,
        tools=[WEATHER],
    )
    assert response.output_text == "echo: ping" and response.model == "echo"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (11, 7)
    sent = upstream.requests[-1]
    assert sent["path"] == "/v1/chat/completions" and sent["headers"]["authorization"] == "Bearer sk-upstream"
    assert sent["body"]["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "ping"}]
    assert sent["body"]["max_completion_tokens"] == 50 and sent["body"]["tools"][0]["function"]["name"] == "get_weather"
    assert "input" not in sent["body"] and "max_output_tokens" not in sent["body"]


def test_an_upstream_stream_asks_for_usage_and_reports_it(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    with client.responses.stream(model="echo", input="ping") as stream:
        final = stream.get_final_response()
    assert final.output_text == "echo: ping" and final.usage.total_tokens == 18
    assert upstream.requests[-1]["body"]["stream_options"] == {"include_usage": True}


def test_an_upstream_tool_call(client: openai.OpenAI) -> None:
    response = client.responses.create(model="tools", input="weather?", tools=[WEATHER])
    assert [(o.type, o.call_id, o.arguments) for o in response.output] == [
        ("function_call", "call_up_1", '{"city": "Paris"}')
    ]


@pytest.mark.parametrize(
    ("alias", "error"),
    [
        ("fail-400", openai.BadRequestError),
        ("fail-429", openai.RateLimitError),
        ("fail-500", openai.InternalServerError),
        ("nope", openai.NotFoundError),
    ],
)
def test_errors_before_the_answer_are_openai_errors(client: openai.OpenAI, alias: str, error: type) -> None:
    with pytest.raises(error):
        client.responses.create(model=alias, input="hi")
    with pytest.raises(error):
        client.responses.create(model=alias, input="hi", stream=True)


def test_an_upstream_that_drops_mid_stream_ends_with_error_and_response_failed(client: openai.OpenAI, url: str) -> None:
    raw = httpx.post(f"{url}/v1/responses", json={"model": "reset", "input": "a long enough message", "stream": True})
    frames = sse_frames(raw.text)
    assert raw.status_code == 200 and [name for name, _ in frames[-2:]] == ["error", "response.failed"]
    assert frames[-1][1]["response"]["status"] == "failed" and frames[-1][1]["response"]["error"]["message"]
    with client.responses.stream(model="reset", input="a long enough message") as stream:
        events = list(stream)
        with pytest.raises(RuntimeError, match="response.completed"):
            stream.get_final_response()
    assert events[-1].type == "response.failed" and events[-2].type == "error"


# raw HTTP: framing and refusals


def test_sse_framing_is_openai_s(url: str) -> None:
    raw = httpx.post(
        f"{url}/v1/responses",
        json={"model": "mock", "input": "hi", "stream": True},
        headers={"x-request-id": "req-responses-1"},
    )
    assert raw.status_code == 200 and raw.headers["content-type"].startswith("text/event-stream")
    assert raw.headers["x-request-id"] == "req-responses-1" and "[DONE]" not in raw.text
    frames = sse_frames(raw.text)
    assert all(name == data["type"] for name, data in frames)
    assert [data["sequence_number"] for _, data in frames] == list(range(len(frames)))
    assert frames[0][0] == "response.created" and frames[-1][0] == "response.completed"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"previous_response_id": "resp_123"}, "previous_response_id"),
        ({"background": True}, "background"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"input": [{"role": "robot", "content": "hi"}]}, "input[0].role"),
        ({"temperature": 7}, "temperature"),
    ],
)
def test_unsupported_or_bad_params_are_a_400_naming_the_param(url: str, extra: dict[str, Any], param: str) -> None:
    raw = httpx.post(f"{url}/v1/responses", json={"model": "mock", "input": "hi", **extra})
    assert raw.status_code == 400
    error = raw.json()["error"]
    assert (
        error["param"] == param
        and error["type"] == "invalid_request_error"
        and set(error) == {"message", "type", "param", "code"}
    )
    assert httpx.post(f"{url}/v1/responses", json={"model": "mock", "input": "hi"}).status_code == 200


def test_a_body_that_is_not_json_is_a_400(url: str) -> None:
    raw = httpx.post(f"{url}/v1/responses", content=b"{not json", headers={"content-type": "application/json"})
    assert raw.status_code == 400 and "JSON" in raw.json()["error"]["message"]


def test_only_post_is_allowed(url: str) -> None:
    assert httpx.get(f"{url}/v1/responses").status_code == 405


# policies apply as they do to chat


def test_auth_applies_to_responses(tmp_path: Any) -> None:
    settings = make_settings(auth={"mode": "keys", "master_key": MASTER}, server={"state_path": str(tmp_path / "s.db")})
    with running(app_with_responses(settings)) as base:
        anonymous = openai.OpenAI(base_url=f"{base}/v1", api_key="sk-not-a-key", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            anonymous.responses.create(model="mock", input="hi")
        master = openai.OpenAI(base_url=f"{base}/v1", api_key=MASTER, max_retries=0)
        assert master.responses.create(model="mock", input="hi").output_text == "Mock reply to: hi"


# recordings apply as they do to chat


def test_a_recorded_response_replays_whole_and_streamed(upstream: FakeUpstream, tmp_path: Any) -> None:
    def recording(mode: str) -> dict[str, Any]:
        return {"mode": mode, "store": "directory", "path": str(tmp_path)}

    ask = {"model": "echo", "input": "remember me", "instructions": "be brief"}
    with running(app_with_responses(make_settings(upstream.url, recording=recording("record")))) as base:  # type: ignore[attr-defined]
        recorded = openai.OpenAI(base_url=f"{base}/v1", api_key="sk-x", max_retries=0).responses.create(**ask)
    sent = len(upstream.requests)
    with running(app_with_responses(make_settings(upstream.url, recording=recording("replay")))) as base:  # type: ignore[attr-defined]
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="sk-x", max_retries=0)
        replayed = client.responses.create(**ask)
        with client.responses.stream(**ask) as stream:
            streamed = stream.get_final_response()
        with pytest.raises(openai.NotFoundError):  # a miss names the recording key, as on chat
            client.responses.create(**{**ask, "input": "never recorded"})
    assert len(upstream.requests) == sent  # the replays never reached the upstream
    assert replayed.model_dump() == recorded.model_dump()
    assert streamed.output_text == recorded.output_text == "echo: remember me" and streamed.id == recorded.id
