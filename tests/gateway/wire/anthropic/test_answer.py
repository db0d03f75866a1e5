"""A chat completion -> a Messages `message`; an Anthropic backend's own message goes back verbatim unless cut."""

from __future__ import annotations

from typing import Any

from llm_gateway.wire.anthropic.answer import message_id, to_message, to_usage


def completion(message: dict[str, Any], finish: str = "stop", **extra: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-abc", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 5, "total_tokens": 35,
                      "prompt_tokens_details": {"cached_tokens": 10}}, **extra}


def test_text_and_tool_calls_become_blocks_with_stop_reason_and_usage() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    message = to_message(completion({"content": "Sure.", "tool_calls": [call]}, "tool_calls"))
    assert message == {
        "id": "msg_abc", "type": "message", "role": "assistant", "model": "m",
        "content": [{"type": "text", "text": "Sure."}, {"type": "tool_use", "id": "call_1", "name": "f",
                                                         "input": {"a": 1}}],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 20, "output_tokens": 5, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 10},
    }


def test_finish_reasons_map_to_stop_reasons() -> None:
    assert to_message(completion({"content": "x"}, "length"))["stop_reason"] == "max_tokens"
    assert to_message(completion({"content": "x"}, "content_filter"))["stop_reason"] == "refusal"
    assert to_message(completion({"content": "x"}, "stop"))["stop_reason"] == "end_turn"


NATIVE = {"id": "msg_01", "content": [{"type": "thinking", "thinking": "t", "signature": "sig"},
                                      {"type": "text", "text": "Paris.", "citations": [{"type": "x"}]}],
          "stop_reason": "stop_sequence", "stop_sequence": "END"}


def test_an_anthropic_backends_message_goes_back_verbatim_while_the_choice_agrees() -> None:
    message = to_message(completion({"content": "Paris."}, "stop", anthropic=NATIVE))
    assert message["content"] == NATIVE["content"]
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "END")


def test_a_cut_answer_is_built_from_what_the_policies_let_through_keeping_thinking() -> None:
    message = to_message(completion({"content": "Par"}, "content_filter", anthropic=NATIVE))
    assert message["content"] == [NATIVE["content"][0], {"type": "text", "text": "Par"}]
    assert message["stop_reason"] == "refusal" and message["stop_sequence"] is None


def test_ids_and_cache_usage() -> None:
    assert message_id("msg_01x") == "msg_01x" and message_id("chatcmpl-9") == "msg_9"
    usage = to_usage({"prompt_tokens": 2121, "completion_tokens": 9, "cache_creation_input_tokens": 100,
                      "cache_read_input_tokens": 2000, "prompt_tokens_details": {"cached_tokens": 2000}})
    assert usage == {"input_tokens": 21, "output_tokens": 9, "cache_creation_input_tokens": 100,
                     "cache_read_input_tokens": 2000}
