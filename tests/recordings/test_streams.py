"""Chunks <-> whole responses, as the openai SDK sees them."""

from __future__ import annotations

from llm_gateway.recordings.streams import aggregate, fit_usage, synthesize

CHAT = "/v1/chat/completions"
BASE = {"id": "c1", "object": "chat.completion.chunk", "created": 7, "model": "m", "system_fingerprint": "fp"}


def chunk(delta: dict, finish: str | None = None, index: int = 0) -> dict:
    return {**BASE, "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}]}


def test_aggregate_joins_content_and_merges_tool_call_fragments() -> None:
    chunks = [
        chunk({"role": "assistant", "content": ""}),
        chunk(
            {
                "tool_calls": [
                    {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get", "arguments": ""}}
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
        chunk({"content": "two"}, index=1),
        chunk({"content": " words"}, index=1),
        chunk({}, "tool_calls"),
        chunk({}, "stop", index=1),
        {**BASE, "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}},
    ]
    whole = aggregate(chunks, CHAT)
    assert whole["id"] == "c1" and whole["object"] == "chat.completion" and whole["system_fingerprint"] == "fp"
    first, second = whole["choices"]
    assert first["message"]["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "get", "arguments": '{"city": "Paris"}'}}
    ]
    assert first["message"]["content"] is None and first["finish_reason"] == "tool_calls"
    assert second["message"]["content"] == "two words" and second["finish_reason"] == "stop"
    assert whole["usage"]["total_tokens"] == 3


def test_synthesized_stream_aggregates_back_to_the_whole() -> None:
    whole = {
        "id": "c1",
        "object": "chat.completion",
        "created": 7,
        "model": "m",
        "system_fingerprint": "fp",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "logprobs": None,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "refusal": None,
                    "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "get", "arguments": "{}"}}
                    ],
                },
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }
    chunks = synthesize(whole, CHAT, include_usage=True)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == whole["usage"]
    assert aggregate(chunks, CHAT) == whole
    assert synthesize(whole, CHAT, include_usage=False)[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_completions_stream_round_trip() -> None:
    whole = {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 7,
        "model": "m",
        "usage": None,
        "choices": [{"text": " done", "index": 0, "logprobs": None, "finish_reason": "length"}],
    }
    chunks = synthesize(whole, "/v1/completions", include_usage=False)
    assert [c["choices"][0]["text"] for c in chunks] == [" done", ""]
    assert aggregate(chunks, "/v1/completions") == whole


def test_fit_usage_drops_a_usage_chunk_nobody_asked_for_and_never_invents_one() -> None:
    usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    plain = [chunk({"content": "a"}), chunk({}, "stop")]
    with_usage = [*plain, {**BASE, "choices": [], "usage": usage}]
    assert fit_usage(with_usage, False, usage) == plain
    assert fit_usage(plain, True, usage) == plain  # the upstream sent none: the replay sends none
    assert fit_usage(plain, False, usage) == plain and fit_usage(with_usage, True, usage) == with_usage
