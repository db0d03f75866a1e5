"""Responses <-> chat translation of request bodies and whole answers, checked against the SDK's types."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.responses import Response

from llm_gateway.vocab.errors import InvalidRequest, UpstreamMalformed
from llm_gateway.wire.responses.format import echo_fields, to_chat_body, to_response
from llm_gateway.wire.schema import parse_call

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather by city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def chat(**body: Any) -> dict[str, Any]:
    """The chat body for a Responses body, checked the way /v1/responses checks it (parse_call)."""
    translated = to_chat_body({"model": "mock", **body})
    parse_call("chat", translated, {"mock"})
    return translated


def answer(message: dict[str, Any], finish: str = "stop", **usage: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-x",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14, **usage},
    }


# request -> chat body


def test_a_string_input_is_one_user_message_after_the_instructions() -> None:
    body = chat(input="hi", instructions="be brief")
    assert body["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert "input" not in body and "instructions" not in body


def test_sampling_and_bookkeeping_fields_pass_through_and_unknown_fields_are_kept() -> None:
    body = chat(
        input="hi",
        temperature=0.2,
        top_p=0.9,
        user="u1",
        metadata={"team": "a"},
        store=False,
        parallel_tool_calls=False,
        service_tier="auto",
        top_k=5,
        max_output_tokens=64,
    )
    assert body["max_completion_tokens"] == 64 and "max_output_tokens" not in body
    assert {
        k: body[k]
        for k in ("temperature", "top_p", "user", "metadata", "store", "parallel_tool_calls", "service_tier", "top_k")
    } == {
        "temperature": 0.2,
        "top_p": 0.9,
        "user": "u1",
        "metadata": {"team": "a"},
        "store": False,
        "parallel_tool_calls": False,
        "service_tier": "auto",
        "top_k": 5,
    }


def test_message_items_and_their_content_parts_become_chat_messages() -> None:
    body = chat(
        input=[
            {"role": "developer", "content": "rules"},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "what is this?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
                ],
            },
            {
                "type": "message",
                "role": "assistant",
                "id": "msg_1",
                "status": "completed",
                "content": [{"type": "output_text", "text": "a cat", "annotations": []}],
            },
        ]
    )
    assert body["messages"] == [
        {"role": "developer", "content": "rules"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
            ],
        },
        {"role": "assistant", "content": "a cat"},
    ]


def test_a_tool_round_trip_joins_the_calls_to_the_assistant_turn_and_answers_them_as_tool_messages() -> None:
    body = chat(
        tools=[WEATHER],
        input=[
            {"role": "user", "content": "weather in Paris and Rome?"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
            {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": '{"city":"Paris"}',
            },
            {"type": "function_call", "call_id": "call_2", "name": "get_weather", "arguments": '{"city":"Rome"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
            {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "rain"}]},
        ],
    )
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "rain"}]},
    ]
    assert body["tools"] == [
        {
            "type": "function",
            "function": {"name": "get_weather", "description": "Weather by city", "parameters": WEATHER["parameters"]},
        }
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("required", "required"),
        ({"type": "function", "name": "get_weather"}, {"type": "function", "function": {"name": "get_weather"}}),
        (
            {"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "get_weather"}]},
            {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "required",
                    "tools": [{"type": "function", "function": {"name": "get_weather"}}],
                },
            },
        ),
    ],
)
def test_tool_choice_is_nested_the_chat_way(choice: Any, expected: Any) -> None:
    assert chat(input="hi", tools=[WEATHER], tool_choice=choice)["tool_choice"] == expected


def test_text_format_becomes_response_format() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}
    body = chat(
        input="hi",
        text={"format": {"type": "json_schema", "name": "thing", "schema": schema, "strict": True}, "verbosity": "low"},
    )
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "thing", "schema": schema, "strict": True},
    }
    assert body["verbosity"] == "low" and "text" not in body
    assert chat(input="hi", text={"format": {"type": "json_object"}})["response_format"] == {"type": "json_object"}
    assert "response_format" not in chat(input="hi", text={"format": {"type": "text"}})


def test_reasoning_effort_and_streaming_usage_are_asked_of_the_chat_model() -> None:
    body = chat(input="hi", reasoning={"effort": "low"}, stream=True, stream_options={"include_obfuscation": False})
    assert body["reasoning_effort"] == "low" and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_features_at_their_off_value_are_accepted() -> None:
    body = chat(
        input="hi",
        background=False,
        include=[],
        previous_response_id=None,
        truncation="disabled",
        top_logprobs=0,
        max_tool_calls=None,
    )
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert not {"background", "include", "previous_response_id", "truncation", "top_logprobs"} & set(body)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"background": True}, "background"),
        ({"include": ["reasoning.encrypted_content"]}, "include"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"truncation": "auto"}, "truncation"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"tool_choice": {"type": "web_search_preview"}}, "tool_choice"),
        ({"reasoning": {"effort": "low", "summary": "auto"}}, "reasoning.summary"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "messages"),
        ({"max_tokens": 5}, "max_tokens"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
        ({"input": [{"type": "web_search_call", "id": "ws_1"}]}, "input[0].type"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}]},
            "input[0].content[0].image_url",
        ),
    ],
)
def test_unsupported_features_are_a_400_naming_the_parameter(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        to_chat_body({"model": "mock", "input": "hi", **extra})
    assert info.value.param == param and info.value.status == 400


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "input"),
        ({"input": 3}, "input"),
        ({"input": []}, "input"),
        ({"input": ["hi"]}, "input[0]"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
        ({"input": [{"role": "user"}]}, "input[0].content"),
        ({"input": [{"role": "user", "content": [{"type": "input_video"}]}]}, "input[0].content[0].type"),
        ({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "input[0].call_id"),
        ({"input": [{"type": "function_call_output", "call_id": "c", "output": 5}]}, "input[0].output"),
        ({"input": "hi", "instructions": ["x"]}, "instructions"),
        ({"input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
        ({"input": "hi", "tools": [{"type": "function"}]}, "tools[0].name"),
        ({"input": "hi", "text": {"format": {"type": "xml"}}}, "text.format.type"),
        ({"input": "hi", "text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
    ],
)
def test_malformed_input_is_a_400_naming_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        to_chat_body({"model": "mock", **body})
    assert info.value.param == param


def test_a_body_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="JSON object"):
        to_chat_body(["hi"])


# whole answers


def test_a_text_answer_is_a_completed_response_the_sdk_parses() -> None:
    request = {
        "model": "mock",
        "input": "hi",
        "instructions": "be brief",
        "temperature": 0.5,
        "tools": [WEATHER],
        "metadata": {"team": "a"},
    }
    raw = to_response(
        answer(
            {"content": "hello"},
            prompt_tokens_details={"cached_tokens": 6},
            completion_tokens_details={"reasoning_tokens": 1},
        ),
        echo_fields(request),
    )
    response = Response.model_validate(raw, strict=True)
    assert response.id == "resp_abc123" and response.object == "response" and response.status == "completed"
    assert response.output_text == "hello" and response.output[0].id == "msg_abc123"
    assert response.created_at == 1700000000 and response.model == "gpt-x" and response.error is None
    assert response.instructions == "be brief" and response.temperature == 0.5 and response.metadata == {"team": "a"}
    assert response.tools[0].name == "get_weather" and response.tool_choice == "auto" and response.parallel_tool_calls
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (10, 4, 14)
    assert usage.input_tokens_details.cached_tokens == 6 and usage.output_tokens_details.reasoning_tokens == 1


def test_tool_calls_are_function_call_items() -> None:
    calls = [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
        {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}},
    ]
    response = Response.model_validate(
        to_response(answer({"content": None, "tool_calls": calls}, "tool_calls"), echo_fields({"input": "hi"}))
    )
    assert [(o.type, o.id, o.call_id, o.arguments, o.status) for o in response.output] == [
        ("function_call", "fc_abc123_0", "call_1", '{"city":"Paris"}', "completed"),
        ("function_call", "fc_abc123_1", "call_2", '{"city":"Rome"}', "completed"),
    ]
    assert response.output_text == ""


@pytest.mark.parametrize(("finish", "reason"), [("length", "max_output_tokens"), ("content_filter", "content_filter")])
def test_a_cut_answer_is_incomplete_with_the_reason(finish: str, reason: str) -> None:
    response = Response.model_validate(
        to_response(answer({"content": "partial"}, finish), echo_fields({})), strict=True
    )
    assert response.status == "incomplete" and response.incomplete_details.reason == reason
    assert response.output[0].status == "incomplete" and response.output_text == "partial"


def test_a_refusal_is_a_refusal_part() -> None:
    response = to_response(answer({"content": None, "refusal": "I can't."}), echo_fields({}))
    assert response["output"][0]["content"] == [{"type": "refusal", "refusal": "I can't."}]


def test_an_answer_without_choices_is_a_malformed_upstream() -> None:
    with pytest.raises(UpstreamMalformed):
        to_response({"id": "chatcmpl-1", "choices": []}, echo_fields({}))
