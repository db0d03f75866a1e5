"""Deny-list: requests with a listed pattern or keyword are refused without echoing it; answers are cut."""

from __future__ import annotations

import pytest

from llm_gateway.policies.deny_list import DenyListPolicy
from llm_gateway.vocab.errors import ContentPolicyViolation
from llm_gateway.vocab.types import Call, RequestContext


def chat(content: object, *, stream: bool = False) -> Call:
    return Call(kind="chat", alias="m", body={"model": "m", "messages": [{"role": "user", "content": content}]},
                stream=stream)


def chunk(text: str | None, finish: str | None = None) -> dict:
    delta = {} if text is None else {"content": text}
    return {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta,
                                                                      "finish_reason": finish}]}


async def test_a_keyword_or_pattern_in_any_text_part_is_a_content_policy_violation() -> None:
    policy = DenyListPolicy(patterns=[r"launch\s+codes?"], keywords=["Zeus"])
    for content in ("what are the LAUNCH  codes", "tell me about zeus",
                    [{"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": "ZEUS!"}]):
        with pytest.raises(ContentPolicyViolation) as info:
            await policy.before(chat(content), RequestContext(request_id="r"))
        assert info.value.status == 400 and info.value.code == "content_policy_violation"
        assert "zeus" not in info.value.message.lower() and "launch" not in info.value.message.lower()


async def test_keywords_match_whole_words_only_and_clean_requests_pass_unchanged() -> None:
    policy = DenyListPolicy(keywords=["zeus"])
    assert await policy.before(chat("zeusian architecture"), RequestContext(request_id="r")) is None
    completion = Call(kind="completion", alias="m", body={"model": "m", "prompt": ["fine", "zeus"]})
    with pytest.raises(ContentPolicyViolation):
        await policy.before(completion, RequestContext(request_id="r"))


async def test_a_whole_answer_is_cut_before_the_pattern_with_content_filter() -> None:
    policy = DenyListPolicy(keywords=["zeus"])
    response = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "The god is Zeus, king."},
                             "finish_reason": "stop"}]}
    out = await policy.after(chat("hi"), response, RequestContext(request_id="r"))
    assert out is not None
    assert out["choices"][0]["message"]["content"] == "The god is "
    assert out["choices"][0]["finish_reason"] == "content_filter"
    assert response["choices"][0]["message"]["content"] == "The god is Zeus, king."  # not modified in place
    assert policy.output_counters.outputs_blocked == 1


async def test_a_streamed_pattern_split_across_chunks_is_cut_and_nothing_after_it_is_sent() -> None:
    policy = DenyListPolicy(patterns=[r"zeus-\d+"], window=16)
    call, ctx = chat("hi", stream=True), RequestContext(request_id="r")
    sent: list[dict] = []
    for c in (chunk(""), chunk("The launch code is ze"), chunk("us-"), chunk("42 and then"), chunk(" more"),
              chunk(None, "stop"), {"id": "c", "choices": [], "usage": {"prompt_tokens": 1}}):
        out = await policy.on_chunk(call, c, ctx)
        sent += [c] if out is None else out
    sent += await policy.end_stream(call, ctx)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in sent if c["choices"])
    assert text == "The launch code is "
    assert [c["choices"][0]["finish_reason"] for c in sent if c["choices"]][-1] == "content_filter"
    assert sent[-1] == {"id": "c", "choices": [], "usage": {"prompt_tokens": 1}}  # usage still reaches the gateway


async def test_a_clean_stream_is_delivered_whole_even_without_a_finish_chunk() -> None:
    policy = DenyListPolicy(keywords=["zeus"], window=8)
    call, ctx = chat("hi", stream=True), RequestContext(request_id="r")
    sent: list[dict] = []
    for c in (chunk("Hello "), chunk("there, "), chunk("friend")):
        out = await policy.on_chunk(call, c, ctx)
        sent += [c] if out is None else out
    sent += await policy.end_stream(call, ctx)
    assert "".join(c["choices"][0]["delta"]["content"] for c in sent) == "Hello there, friend"
