"""A Messages body -> the canonical chat body: translated as chat clients write it, refusals naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from llm_gateway.vocab.errors import InvalidRequest
from llm_gateway.wire.anthropic.request import check_version, to_chat_body

WEATHER = {"name": "get_weather", "description": "d", "input_schema": {"type": "object"}}
PNG = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}


def chat(**body: Any) -> dict[str, Any]:
    return to_chat_body({"model": "m", "max_tokens": 16, **body}).chat


def test_a_plain_conversation_is_the_chat_body_a_chat_client_sends() -> None:
    body = chat(system="Be brief.", messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]},
                                             {"role": "assistant", "content": "hello"},
                                             {"role": "user", "content": "bye"}])
    assert body == {"model": "m", "max_tokens": 16, "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"}, {"role": "user", "content": "bye"}]}


def test_system_blocks_images_and_documents_become_chat_parts() -> None:
    body = chat(system=[{"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}}, {"type": "text",
                                                                                                "text": "b"}],
                messages=[{"role": "user", "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image", "source": PNG},
                    {"type": "image", "source": {"type": "url", "url": "https://x.test/cat.png"}},
                    {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
                     "title": "doc.pdf"},
                    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "notes"}},
                ]}])
    assert body["messages"][0] == {"role": "system", "content": "a\n\nb"}
    assert body["messages"][1]["content"] == [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://x.test/cat.png"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "doc.pdf"}},
        {"type": "text", "text": "notes"},
    ]


def test_tool_use_and_results_become_tool_calls_and_tool_messages_in_order() -> None:
    body = chat(tools=[WEATHER], tool_choice={"type": "tool", "name": "get_weather",
                                              "disable_parallel_tool_use": True},
                messages=[{"role": "user", "content": "weather?"},
                          {"role": "assistant", "content": [
                              {"type": "thinking", "thinking": "hm", "signature": "s"},
                              {"type": "text", "text": "Checking."},
                              {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                               "input": {"city": "Paris"}}]},
                          {"role": "user", "content": [
                              {"type": "tool_result", "tool_use_id": "toolu_1",
                               "content": [{"type": "text", "text": "sunny"}]},
                              {"type": "text", "text": "and tomorrow?"}]}])
    assert body["messages"][1] == {"role": "assistant", "content": "Checking.", "tool_calls": [
        {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]}
    assert body["messages"][2:] == [{"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
                                    {"role": "user", "content": "and tomorrow?"}]
    assert body["tools"] == [{"type": "function", "function": {"name": "get_weather", "description": "d",
                                                               "parameters": {"type": "object"}}}]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False


@pytest.mark.parametrize(("choice", "expected"), [({"type": "auto"}, "auto"), ({"type": "any"}, "required"),
                                                  ({"type": "none"}, "none")])
def test_tool_choice_values(choice: dict[str, Any], expected: str) -> None:
    assert chat(tools=[WEATHER], tool_choice=choice, messages=[{"role": "user", "content": "x"}])["tool_choice"] == (
        expected)


def test_sampling_stops_metadata_and_streaming() -> None:
    body = chat(messages=[{"role": "user", "content": "x"}], stop_sequences=["END"], temperature=0.2, top_p=0.9,
                top_k=3, metadata={"user_id": "u1"}, stream=True, service_tier="auto",
                output_config={"format": {"type": "json_schema", "schema": {"type": "object"}}})
    assert body["stop"] == ["END"] and body["temperature"] == 0.2 and body["top_p"] == 0.9 and body["top_k"] == 3
    assert body["user"] == "u1" and "service_tier" not in body and "metadata" not in body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["response_format"]["json_schema"]["schema"] == {"type": "object"}


def test_what_chat_cannot_carry_is_listed_not_refused() -> None:
    out = to_chat_body({"model": "m", "max_tokens": 2048, "thinking": {"type": "enabled", "budget_tokens": 1024},
                        "tools": [{"type": "web_search_20250305", "name": "web_search"}], "container": "c1",
                        "cache_control": {"type": "ephemeral"}, "messages": [{"role": "user", "content": "x"}]})
    assert [param for param, _ in out.untranslatable] == ["tools.0.type", "thinking", "container"]
    assert "tools" not in out.chat and "thinking" not in out.chat


def test_a_plain_request_has_nothing_untranslatable() -> None:
    out = to_chat_body({"model": "m", "max_tokens": 8, "thinking": {"type": "disabled"}, "speed": "standard",
                        "messages": [{"role": "user", "content": [{"type": "text", "text": "x",
                                                                   "cache_control": {"type": "ephemeral"}}]}]})
    assert out.untranslatable == []


BAD = [
    ({"max_tokens": None}, "max_tokens"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"model": 3}, "model"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}, "messages.1.role"),
    ({"messages": [{"role": "system", "content": "a"}]}, "messages.0.role"),
    ({"messages": [{"role": "user", "content": [{"type": "audio"}]}]}, "messages.0.content.0.type"),
    ({"messages": [{"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "n", "input": {}}]}]},
     "messages.0.content.0.type"),
    ({"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9"}]}]},
     "messages.0.content.0.tool_use_id"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]},
     "messages.0.content.0.source.type"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {**PNG, "media_type": "text/html"}}]}]},
     "messages.0.content.0.source.media_type"),
    ({"messages": [{"role": "user", "content": "x"}], "tools": [{"name": "t"}]}, "tools.0.input_schema"),
    ({"messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "sometimes"}}, "tool_choice.type"),
    ({"messages": [{"role": "user", "content": "x"}], "temperature": 1.5}, "temperature"),
    ({"messages": [{"role": "user", "content": "x"}], "stop_sequences": "END"}, "stop_sequences"),
    ({"messages": [{"role": "user", "content": "x"}], "thinking": {"type": "enabled", "budget_tokens": 10}},
     "thinking.budget_tokens"),
    ({"messages": [{"role": "user", "content": "x"}], "system": [{"type": "image"}]}, "system.0"),
]


@pytest.mark.parametrize(("override", "field"), BAD, ids=[f for _, f in BAD])
def test_bad_input_names_the_field(override: dict[str, Any], field: str) -> None:
    body = {"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": "x"}], **override}
    body = {k: v for k, v in body.items() if v is not None}
    with pytest.raises(InvalidRequest) as info:
        to_chat_body(body)
    assert info.value.param == field
    assert info.value.message.startswith(field + ": ")


def test_count_tokens_needs_no_max_tokens_and_never_streams() -> None:
    out = to_chat_body({"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]},
                       count_only=True)
    assert "max_tokens" not in out.chat and "stream" not in out.chat


@pytest.mark.parametrize("version", ["2023-06-01", "2023-01-01", "2026-10-21", None])
def test_published_versions_pass(version: str | None) -> None:
    check_version(version)


@pytest.mark.parametrize("version", ["latest", "2022-12-31", "2023-6-1", ""])
def test_a_wrong_version_is_refused(version: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        check_version(version)
    assert info.value.param == "anthropic-version"
