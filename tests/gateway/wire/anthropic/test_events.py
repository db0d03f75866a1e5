"""Chat chunks -> Anthropic's event sequence; upstream events chat cannot carry go out renumbered; failures end it."""

from __future__ import annotations

from typing import Any

import orjson

from llm_gateway.vocab.errors import UpstreamUnavailable
from llm_gateway.wire.anthropic.api import MessagesWire
from llm_gateway.wire.anthropic.events import MessageEvents


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-7", "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra}


def run(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    events = MessageEvents("m")
    out = [e for c in chunks for e in events.feed(c)]
    return out + events.finish_events()


def test_text_then_a_tool_call_with_usage_at_the_end() -> None:
    events = run([
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Let me "}), chunk({"content": "check."}),
        chunk({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        chunk({}, "tool_calls"),
        {"id": "chatcmpl-7", "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 4}},
    ])
    assert [e["type"] for e in events] == [
        "message_start", "ping", "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop", "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop", "message_delta", "message_stop"]
    assert events[0]["message"]["id"] == "msg_7"
    assert events[6]["content_block"] == {"type": "tool_use", "id": "call_1", "name": "f", "input": {}}
    assert [e["index"] for e in events if e["type"] == "content_block_delta"] == [0, 0, 1, 1]
    assert events[-2]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert events[-2]["usage"]["input_tokens"] == 12 and events[-2]["usage"]["output_tokens"] == 4


def test_native_thinking_events_are_renumbered_into_the_stream() -> None:
    start = {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}
    think = {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hm"}}
    sign = {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "s"}}
    stop = {"type": "content_block_stop", "index": 0}
    events = run([chunk({"role": "assistant", "content": ""}), chunk({"anthropic": start}),
                  chunk({"anthropic": think}), chunk({"anthropic": sign}), chunk({"anthropic": stop}),
                  chunk({"content": "Hi"}),
                  chunk({}, "stop", anthropic={"stop_reason": "stop_sequence", "stop_sequence": "END"})])
    blocks = [(e["type"], e.get("index")) for e in events if e["type"].startswith("content_block")]
    assert blocks == [("content_block_start", 0), ("content_block_delta", 0), ("content_block_delta", 0),
                      ("content_block_stop", 0), ("content_block_start", 1), ("content_block_delta", 1),
                      ("content_block_stop", 1)]
    assert events[3]["delta"] == {"type": "thinking_delta", "thinking": "hm"}
    assert events[-2]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "END"}


def test_a_cut_stream_says_refusal_whatever_the_upstream_said() -> None:
    events = run([chunk({"content": "Pa"}), chunk({}, "content_filter", anthropic={"stop_reason": "end_turn"})])
    assert events[-2]["delta"]["stop_reason"] == "refusal"


def test_a_failure_is_an_error_event_and_nothing_after_it() -> None:
    framer = MessagesWire().framer(({"model": "m"}, None))  # type: ignore[arg-type]
    assert framer.feed(chunk({"content": "Hi"})).startswith(b"event: message_start\n")
    failed = framer.fail(UpstreamUnavailable("overloaded", upstream_status=529, code="overloaded"))
    assert failed.startswith(b"event: error\ndata: ") and failed.count(b"event: ") == 1
    assert orjson.loads(failed.split(b"data: ", 1)[1]) == {
        "type": "error", "error": {"type": "overloaded_error", "message": "overloaded"}}
