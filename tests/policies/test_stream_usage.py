"""Streams always report usage to the gateway; a client that did not ask for it never sees it."""

from __future__ import annotations

from llm_gateway.policies.stream_usage import StreamUsagePolicy
from llm_gateway.vocab.types import Call, RequestContext

USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def stream(**body: object) -> Call:
    return Call(kind="chat", alias="mock", body={"model": "mock", "messages": [], "stream": True, **body}, stream=True)


async def test_usage_is_asked_for_on_a_copy_and_dropped_on_the_way_back() -> None:
    policy, ctx = StreamUsagePolicy(), RequestContext(request_id="r")
    client_options = {"some_future_option": 1}
    call = stream(stream_options=client_options)
    rewritten = await policy.before(call, ctx)
    assert rewritten is not None and rewritten is not call
    assert rewritten.body["stream_options"] == {"some_future_option": 1, "include_usage": True}
    assert call.body["stream_options"] == {"some_future_option": 1}  # the client's dict is untouched
    content = {"choices": [{"index": 0, "delta": {"content": "hi"}}], "usage": None}
    assert await policy.on_chunk(rewritten, content, ctx) is None
    assert await policy.on_chunk(rewritten, {"choices": [], "usage": USAGE}, ctx) == []
    last = {"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": USAGE}
    assert await policy.on_chunk(rewritten, last, ctx) == [{"id": "x", "choices": last["choices"]}]


async def test_a_client_that_asked_for_usage_gets_it() -> None:
    policy, ctx = StreamUsagePolicy(), RequestContext(request_id="r")
    call = stream(stream_options={"include_usage": True})
    assert await policy.before(call, ctx) is None
    assert await policy.on_chunk(call, {"choices": [], "usage": USAGE}, ctx) is None


async def test_whole_answers_and_embeddings_are_left_alone() -> None:
    policy, ctx = StreamUsagePolicy(), RequestContext(request_id="r")
    whole = Call(kind="chat", alias="mock", body={"model": "mock", "messages": []})
    embedding = Call(kind="embedding", alias="mock", body={"model": "mock", "input": "x"}, stream=True)
    assert await policy.before(whole, ctx) is None
    assert await policy.before(embedding, ctx) is None
    assert await policy.on_chunk(whole, {"choices": [], "usage": USAGE}, ctx) is None
