"""One recording for every protocol: a conversation recorded through /v1/chat/completions, /v1/responses or
/v1/messages against a real OpenAI-compatible upstream replays, with that upstream stopped, through the other two,
streamed and whole, with ids, content, tool calls and usage translated."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from llm_gateway.composition.root import create_app
from tests.conftest import make_settings
from tests.support.server import free_port, running
from tests.support.upstream import FakeUpstream

SYSTEM = "Be brief."
ASK = "What's the weather in Paris?"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
DESCRIPTION = "The weather in a city"
PROTOCOLS = ("chat", "responses", "messages")
# what each protocol's answer says, normalized: id stem, tool call or text, usage (prompt, completion)
Seen = dict[str, Any]


def _chat(url: str, turn: int, stream: bool, tool_id: str = "") -> Seen:
    sdk = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ASK}]
    if turn == 2:
        function = {"name": "get_weather", "arguments": '{"city": "Paris"}'}
        call = {"id": tool_id, "type": "function", "function": function}
        messages += [{"role": "assistant", "content": None, "tool_calls": [call]},
                     {"role": "tool", "tool_call_id": tool_id, "content": "sunny"}]
    function = {"name": "get_weather", "description": DESCRIPTION, "parameters": SCHEMA}
    tools = [{"type": "function", "function": function}]
    kwargs: dict[str, Any] = {"model": "tools", "messages": messages, "tools": tools, "max_tokens": 64}
    if not stream:
        answer = sdk.chat.completions.create(**kwargs)
        message, usage, answer_id = answer.choices[0].message, answer.usage, answer.id
        calls = [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or ()]
        text = message.content
    else:
        chunks = list(sdk.chat.completions.create(**kwargs, stream=True, stream_options={"include_usage": True}))
        answer_id, usage = chunks[0].id, chunks[-1].usage
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) or None
        heads = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or ()]
        arguments = "".join(tc.function.arguments or "" for tc in heads)
        calls = [(heads[0].id, heads[0].function.name, arguments)] if heads else []
    assert usage is not None
    return _seen(answer_id.removeprefix("chatcmpl-"), text, calls, usage.prompt_tokens, usage.completion_tokens)


def _responses(url: str, turn: int, stream: bool, tool_id: str = "") -> Seen:
    sdk = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
    items: list[dict[str, Any]] = [{"role": "user", "content": ASK}]
    if turn == 2:
        items += [{"type": "function_call", "call_id": tool_id, "name": "get_weather", "arguments": '{"city":"Paris"}'},
                  {"type": "function_call_output", "call_id": tool_id, "output": "sunny"}]
    tools = [{"type": "function", "name": "get_weather", "description": DESCRIPTION, "parameters": SCHEMA}]
    kwargs: dict[str, Any] = {"model": "tools", "instructions": SYSTEM, "input": items, "tools": tools,
                              "max_output_tokens": 64}
    if stream:
        with sdk.responses.stream(**kwargs) as events:
            response = events.get_final_response()
    else:
        response = sdk.responses.create(**kwargs)
    calls = [(o.call_id, o.name, o.arguments) for o in response.output if o.type == "function_call"]
    assert response.usage is not None
    return _seen(response.id.removeprefix("resp_"), response.output_text or None, calls,
                 response.usage.input_tokens, response.usage.output_tokens)


def _messages(url: str, turn: int, stream: bool, tool_id: str = "") -> Seen:
    sdk = anthropic.Anthropic(base_url=url, api_key="x", max_retries=0)
    messages: list[dict[str, Any]] = [{"role": "user", "content": ASK}]
    if turn == 2:
        use = {"type": "tool_use", "id": tool_id, "name": "get_weather", "input": {"city": "Paris"}}
        messages += [{"role": "assistant", "content": [use]},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": "sunny"}]}]
    tools = [{"name": "get_weather", "description": DESCRIPTION, "input_schema": SCHEMA}]
    kwargs: dict[str, Any] = {"model": "tools", "system": SYSTEM, "messages": messages, "tools": tools,
                              "max_tokens": 64}
    if stream:
        with sdk.messages.stream(**kwargs) as events:
            message = events.get_final_message()
    else:
        message = sdk.messages.create(**kwargs)
    calls = [(b.id, b.name, b.input) for b in message.content if b.type == "tool_use"]
    text = "".join(b.text for b in message.content if b.type == "text") or None
    return _seen(message.id.removeprefix("msg_"), text, calls, message.usage.input_tokens, message.usage.output_tokens)


def _seen(stem: str, text: str | None, calls: list[tuple[str, str, Any]], prompt: int, completion: int) -> Seen:
    import json

    return {"id": stem, "text": text, "usage": (prompt, completion),
            "calls": [(i, name, args if isinstance(args, dict) else json.loads(args)) for i, name, args in calls]}


DRIVERS: dict[str, Callable[..., Seen]] = {"chat": _chat, "responses": _responses, "messages": _messages}


def _conversation(url: str, protocol: str, *, stream_first: bool, stream_second: bool) -> tuple[Seen, Seen]:
    drive = DRIVERS[protocol]
    first = drive(url, 1, stream_first)
    second = drive(url, 2, stream_second, first["calls"][0][0])
    return first, second


@pytest.fixture(scope="module", params=PROTOCOLS)
def recorded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Any]:
    """The conversation recorded through one protocol (first turn whole, second streamed); the upstream then stops."""
    protocol = request.param
    store = tmp_path_factory.mktemp(f"recorded-{protocol}")
    upstream = FakeUpstream()
    with running(upstream.app) as upstream_url:
        settings = make_settings(upstream_url, recording={"mode": "record", "store": "directory", "path": str(store)})
        with running(create_app(settings)) as url:
            live = _conversation(url, protocol, stream_first=False, stream_second=True)
    assert len(upstream.requests) == 2
    assert len(list(store.glob("*.json"))) == 2  # one recording per turn, whichever protocol made it
    return protocol, store, live


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_recording_replays_through_the_other_protocols(recorded: tuple[str, Path, Any], stream: bool) -> None:
    protocol, store, (first, second) = recorded
    assert first["calls"] == [("call_up_1", "get_weather", {"city": "Paris"})] and first["usage"] == (11, 7)
    assert second["text"] == "tool said: sunny" and second["calls"] == []
    dead = f"http://127.0.0.1:{free_port()}"  # nobody listens: an escaped call would fail
    settings = make_settings(dead, recording={"mode": "replay", "store": "directory", "path": str(store)})
    with running(create_app(settings)) as url:
        for other in PROTOCOLS:
            if other == protocol:
                continue
            replayed = _conversation(url, other, stream_first=stream, stream_second=stream)
            assert replayed == (first, second), f"recorded through {protocol}, replayed through {other}"
