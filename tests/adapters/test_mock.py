"""The mock backend: deterministic answers, real token counts, tool calls, truncation, embeddings."""

from __future__ import annotations

import base64
import struct

from openai.types import Completion, CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from llm_gateway.adapters.mock import MockAdapter
from llm_gateway.vocab.types import Call

ADAPTER = MockAdapter("mock", embedding_dim=16)
TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "parameters": {
            "type": "object",
            "properties": {"term": {"type": "string"}, "limit": {"type": "integer"}},
            "required": ["term"],
        },
    },
}


def chat(**body) -> Call:
    return Call(
        kind="chat",
        alias="mock",
        body={"model": "mock", "messages": [{"role": "user", "content": "hi there"}], **body},
        model="mock-1",
    )


async def test_same_request_same_answer_and_sdk_shape() -> None:
    first, second = await ADAPTER.chat(chat()), await ADAPTER.chat(chat())
    assert first == second
    parsed = ChatCompletion.model_validate(first)
    assert parsed.model == "mock-1" and parsed.choices[0].message.content == "Mock reply to: hi there"
    assert parsed.usage.completion_tokens == 6  # "Mock reply to: hi there" in cl100k


async def test_max_tokens_truncates_with_finish_reason_length() -> None:
    result = await ADAPTER.chat(chat(max_tokens=2))
    assert result["choices"][0]["finish_reason"] == "length" and result["usage"]["completion_tokens"] == 2


async def test_n_choices_differ() -> None:
    result = await ADAPTER.chat(chat(n=3))
    contents = [c["message"]["content"] for c in result["choices"]]
    assert len(set(contents)) == 3 and [c["index"] for c in result["choices"]] == [0, 1, 2]


async def test_tool_call_only_when_asked() -> None:
    plain = await ADAPTER.chat(chat(tools=[TOOL]))
    assert plain["choices"][0]["finish_reason"] == "stop"
    named = await ADAPTER.chat(
        Call(
            kind="chat",
            alias="mock",
            body={"model": "mock", "messages": [{"role": "user", "content": "please lookup cats"}], "tools": [TOOL]},
        )
    )
    calls = named["choices"][0]["message"]["tool_calls"]
    assert calls[0]["function"]["name"] == "lookup" and '"term"' in calls[0]["function"]["arguments"]
    forced = await ADAPTER.chat(chat(tools=[TOOL], tool_choice="required"))
    assert forced["choices"][0]["finish_reason"] == "tool_calls"
    refused = await ADAPTER.chat(chat(tools=[TOOL], tool_choice="none"))
    assert refused["choices"][0]["finish_reason"] == "stop"


async def test_stream_chunks_validate_and_join_to_the_whole() -> None:
    whole = await ADAPTER.chat(chat(stream_options={"include_usage": True}))
    chunks = [c async for c in ADAPTER.stream_chat(chat(stream_options={"include_usage": True}))]
    for c in chunks:
        ChatCompletionChunk.model_validate(c)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == whole["choices"][0]["message"]["content"]
    assert chunks[-1]["usage"] == whole["usage"]


async def test_completions_echo_and_token_prompts() -> None:
    result = await ADAPTER.complete(
        Call(kind="completion", alias="mock", body={"prompt": "abc", "echo": True, "max_tokens": 50})
    )
    Completion.model_validate(result)
    assert result["choices"][0]["text"].startswith("abc")
    tokens = await ADAPTER.complete(Call(kind="completion", alias="mock", body={"prompt": [1, 2, 3]}))
    assert tokens["usage"]["prompt_tokens"] == 3


async def test_embeddings_are_unit_vectors_in_float_or_base64() -> None:
    floats = await ADAPTER.embed(Call(kind="embedding", alias="mock", body={"input": ["a", "b"]}))
    CreateEmbeddingResponse.model_validate(floats)
    vector = floats["data"][0]["embedding"]
    assert len(vector) == 16 and abs(sum(v * v for v in vector) - 1) < 1e-9
    encoded = await ADAPTER.embed(
        Call(kind="embedding", alias="mock", body={"input": "a", "encoding_format": "base64", "dimensions": 4})
    )
    decoded = struct.unpack("<4f", base64.b64decode(encoded["data"][0]["embedding"]))
    assert len(decoded) == 4


async def test_moderation_has_openais_shape_flags_deterministically_and_honours_the_deny_list() -> None:
    import re

    from openai.types import ModerationCreateResponse

    adapter = MockAdapter("mock")
    adapter.deny_patterns = (re.compile(r"launch-code-\d+", re.IGNORECASE),)
    body = {"model": "mod", "input": ["a friendly hello", "I will kill them", "the launch-code-7 is"]}
    call = Call(kind="moderation", alias="mod", body=body)
    answer = await adapter.moderate(call)
    parsed = ModerationCreateResponse.model_validate(answer, strict=True)
    assert [r.flagged for r in parsed.results] == [False, True, True]
    assert parsed.results[1].categories.violence and parsed.results[2].categories.illicit
    assert parsed.results[1].category_scores.violence > 0.9 > parsed.results[0].category_scores.violence
    assert await adapter.moderate(call) == answer  # stable: same input, same scores and id
    multimodal = {"input": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "x"}}]}
    images = await adapter.moderate(Call(kind="moderation", alias="mod", body=multimodal))
    [result] = images["results"]
    assert result["category_applied_input_types"]["violence"] == ["text", "image"]
    assert result["category_applied_input_types"]["hate"] == ["text"]


async def test_max_tokens_zero_answers_nothing_and_echo_scores_the_prompt() -> None:
    adapter = MockAdapter("mock")
    body = {"model": "m", "prompt": "Once upon a time", "max_tokens": 0, "echo": True}
    answer = await adapter.complete(Call(kind="completion", alias="m", body=body))
    assert answer["choices"][0]["text"] == "Once upon a time" and answer["choices"][0]["finish_reason"] == "length"
    chat = await adapter.chat(Call(kind="chat", alias="m", body={"messages": [{"role": "user", "content": "x"}],
                                                                  "max_tokens": 0}))
    assert chat["choices"][0]["message"]["content"] == "" and chat["usage"]["completion_tokens"] == 0
