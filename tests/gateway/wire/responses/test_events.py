"""Chat chunks -> Responses streaming events: OpenAI's order, sequence numbers, and the SDK's own event types."""

from __future__ import annotations

from typing import Any

import pydantic
from openai.types.responses import Response, ResponseStreamEvent

from llm_gateway.vocab.errors import UpstreamTimeout
from llm_gateway.wire.responses.events import ResponseEvents
from llm_gateway.wire.responses.format import echo_fields, to_response
from tests.gateway.wire.responses.test_format import answer

EVENT = pydantic.TypeAdapter(ResponseStreamEvent)
# fields OpenAI's published spec (and the Java and .NET SDKs' types) require that this openai-python's types do not
REQUIRED_BEYOND_THE_SDK = {"response.function_call_arguments.done": {"name", "item_id", "arguments"}}


def check_event(event: dict[str, Any]) -> None:
    """Strictly, as the SDK's own type for this event's `type` (no coercion), plus the spec's further fields."""
    parsed = EVENT.validate_python(event, strict=True)
    assert type(parsed).model_fields["type"].annotation.__args__ == (event["type"],)  # type: ignore[union-attr]
    assert REQUIRED_BEYOND_THE_SDK.get(event["type"], set()) <= event.keys(), event


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "chatcmpl-abc123", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-x",
            "choices": choices, **extra}


def run(chunks: list[dict[str, Any]], **request: Any) -> list[dict[str, Any]]:
    events = ResponseEvents(echo_fields({"model": "mock", **request}))
    out = [e for c in chunks for e in events.feed(c)] + events.finish()
    for event in out:  # every event is one the SDK's own type for it accepts, strictly, field for field
        check_event(event)
    return out


def text_stream() -> list[dict[str, Any]]:
    return [chunk({"role": "assistant", "content": ""}), chunk({"content": "Hel"}), chunk({"content": "lo"}),
            chunk({}, "stop"), chunk(usage={"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14})]


def test_a_text_stream_is_the_openai_event_sequence() -> None:
    events = run(text_stream())
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == "Hello"
    assert events[6]["text"] == "Hello" and events[7]["part"]["text"] == "Hello"
    assert {e.get("item_id") for e in events[3:8]} == {"msg_abc123"}


def test_the_completed_event_carries_the_same_response_as_the_whole_answer() -> None:
    completed = run(text_stream(), instructions="be brief")[-1]["response"]
    whole = to_response(answer({"content": "Hello"}), echo_fields({"model": "mock", "instructions": "be brief"}))
    assert completed == whole


def test_a_tool_call_stream_opens_a_function_call_item_after_the_text() -> None:
    events = run([
        chunk({"role": "assistant", "content": "Let me check."}),
        chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                               "function": {"name": "get_weather", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
        chunk({"tool_calls": [{"index": 1, "id": "call_2", "function": {"name": "get_time", "arguments": "{}"}}]}),
        chunk({}, "tool_calls"),
    ])
    types = [e["type"] for e in events]
    assert types.index("response.output_item.done") < types.index("response.function_call_arguments.delta")
    added = [e for e in events if e["type"] == "response.output_item.added"]
    assert [(e["output_index"], e["item"]["type"]) for e in added] == [(0, "message"), (1, "function_call"),
                                                                       (2, "function_call")]
    done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert [(e["item_id"], e["arguments"]) for e in done] == [("fc_abc123_0", '{"city":"Paris"}'),
                                                              ("fc_abc123_1", "{}")]
    final = Response.model_validate(events[-1]["response"], strict=True)
    assert [o.type for o in final.output] == ["message", "function_call", "function_call"]
    assert final.output[1].call_id == "call_1" and final.output[2].name == "get_time"
    assert final.usage is None  # the chat stream reported none


def test_a_stream_cut_by_the_token_limit_ends_with_response_incomplete() -> None:
    events = run([chunk({"content": "par"}), chunk({}, "length")], max_output_tokens=1)
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert events[-2]["item"]["status"] == "incomplete" and events[-1]["response"]["max_output_tokens"] == 1


def test_an_empty_stream_still_answers_an_empty_message() -> None:
    events = run([])
    assert events[-1]["type"] == "response.completed"
    assert Response.model_validate(events[-1]["response"]).output_text == ""


def test_a_failure_mid_stream_is_an_error_event_then_response_failed() -> None:
    events = ResponseEvents(echo_fields({}))
    out = events.feed(chunk({"content": "Hel"}))
    out += events.fail(UpstreamTimeout("The upstream stopped answering.", provider="up"))
    for event in out:
        check_event(event)
    assert [e["type"] for e in out[-2:]] == ["error", "response.failed"]
    assert out[-2]["code"] == "upstream_timeout" and out[-2]["message"] == "The upstream stopped answering."
    failed = out[-1]["response"]
    assert failed["status"] == "failed" and failed["error"] == {"code": "server_error",
                                                                 "message": "The upstream stopped answering."}
    assert [e["sequence_number"] for e in out] == list(range(len(out)))


def test_a_refusal_streams_as_a_refusal_part() -> None:
    events = run([chunk({"refusal": "I can't"}), chunk({"refusal": " help."}), chunk({}, "stop")])
    types = [e["type"] for e in events]
    assert types.count("response.refusal.delta") == 2 and "response.output_text.delta" not in types
    assert next(e for e in events if e["type"] == "response.refusal.done")["refusal"] == "I can't help."
    assert events[-1]["response"]["output"][0]["content"] == [{"type": "refusal", "refusal": "I can't help."}]
