"""Request validation: what the gateway relies on is checked, everything else passes through untouched."""

from __future__ import annotations

import pytest

from llm_gateway.vocab.errors import InvalidRequest, ModelNotFound
from llm_gateway.wire.schema import parse_call

ALIASES = {"mock"}
USER = [{"role": "user", "content": "hi"}]


def test_unknown_fields_are_kept_untouched() -> None:
    body = {"model": "mock", "messages": USER, "top_k": 3, "reasoning_effort": "high", "x_vendor": {"a": 1}}
    call = parse_call("chat", body, ALIASES)
    assert call.body is body and call.alias == "mock" and not call.stream


def test_nulls_are_accepted_for_optional_fields() -> None:
    body = {"model": "mock", "messages": USER, "temperature": None, "stream": None, "max_tokens": None, "stop": None}
    assert parse_call("chat", body, ALIASES).stream is False


@pytest.mark.parametrize(
    ("message", "param"),
    [
        ({"content": "x"}, "messages[1].role"),
        ({"role": "user"}, "messages[1].content"),
        ({"role": "tool", "content": "x"}, "messages[1].tool_call_id"),
        ({"role": "user", "content": [{"text": "no type"}]}, "messages[1].content[0]"),
        ("just a string", "messages[1]"),
    ],
)
def test_message_errors_name_the_field(message: object, param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_call("chat", {"model": "mock", "messages": [USER[0], message]}, ALIASES)
    assert info.value.param == param


def test_assistant_turn_with_only_tool_calls_is_valid() -> None:
    tool_call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = USER + [
        {"role": "assistant", "content": None, "tool_calls": [tool_call]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    ]
    parse_call("chat", {"model": "mock", "messages": messages}, ALIASES)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", 2.5),
        ("top_p", -1),
        ("n", 0),
        ("presence_penalty", 3),
        ("stop", [1]),
        ("stop", ["a", "b", "c", "d", "e"]),
        ("tools", [{"type": "function", "function": {}}]),
        ("tool_choice", "always"),
        ("temperature", True),
    ],
)
def test_out_of_range_and_wrong_types_are_rejected(field: str, value: object) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_call("chat", {"model": "mock", "messages": USER, field: value}, ALIASES)
    assert info.value.param.startswith(field)


def test_stream_options_checked_only_when_streaming() -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_call(
            "chat",
            {"model": "mock", "messages": USER, "stream": True, "stream_options": {"include_usage": "y"}},
            ALIASES,
        )
    assert info.value.param == "stream_options.include_usage"


def test_unknown_model_is_404_model_not_found() -> None:
    with pytest.raises(ModelNotFound) as info:
        parse_call("chat", {"model": "gpt-5", "messages": USER}, ALIASES)
    assert info.value.status == 404 and info.value.code == "model_not_found"


@pytest.mark.parametrize("prompt", ["text", ["a", "b"], [1, 2, 3], [[1, 2], [3]]])
def test_completion_prompts_of_every_documented_shape(prompt: object) -> None:
    assert parse_call("completion", {"model": "mock", "prompt": prompt}, ALIASES).kind == "completion"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "mock"}, "input"),
        ({"model": "mock", "input": ""}, "input"),
        ({"model": "mock", "input": [None]}, "input"),
        ({"model": "mock", "input": "x", "encoding_format": "hex"}, "encoding_format"),
        ({"model": "mock", "input": "x", "dimensions": 0}, "dimensions"),
    ],
)
def test_embedding_errors(body: dict, param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_call("embedding", body, ALIASES)
    assert info.value.param == param


def test_embeddings_never_stream() -> None:
    assert parse_call("embedding", {"model": "mock", "input": "x", "stream": True}, ALIASES).stream is False


def test_validation_is_no_stricter_than_the_api_reference() -> None:
    # legacy completions: max_tokens 0 (with echo: score the prompt) and best_of 0 are valid
    parse_call("completion", {"model": "mock", "prompt": "x", "max_tokens": 0, "echo": True, "best_of": 0}, ALIASES)
    # chat's limits are the upstream's to judge (a reasoning model's, an old server's): passed through
    for field in ("max_tokens", "max_completion_tokens"):
        for value in (0, 1.5, -1):
            assert parse_call("chat", {"model": "mock", "messages": USER, field: value}, ALIASES).body[field] == value
    with pytest.raises(InvalidRequest) as info:
        parse_call("completion", {"model": "mock", "prompt": "x", "max_tokens": -1}, ALIASES)
    assert info.value.param == "max_tokens"


def test_moderation_inputs_as_openai_takes_them_and_its_default_model() -> None:
    aliases = {"mock", "omni-moderation-latest"}
    parts = [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "u"}}]
    for value in ("text", ["a", "b"], parts):
        assert parse_call("moderation", {"model": "mock", "input": value}, aliases).kind == "moderation"
    assert parse_call("moderation", {"input": "x"}, aliases).alias == "omni-moderation-latest"
    with pytest.raises(InvalidRequest) as info:
        parse_call("moderation", {"model": "mock", "input": [{"type": "audio"}]}, aliases)
    assert info.value.param == "input[0]"
    with pytest.raises(InvalidRequest):
        parse_call("moderation", {"model": "mock"}, aliases)
