"""The pipeline's filter on a stream that breaks after it began: what was relayed is charged, every policy still
settles, and the error goes on to the server (which frames it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from llm_gateway.config.settings import Deployment, ModelSettings, Price, RouterSettings
from llm_gateway.engine.pipeline import Pipeline
from llm_gateway.engine.router import Router
from llm_gateway.vocab.errors import UpstreamIncomplete
from llm_gateway.vocab.types import BasePolicy, Call, RequestContext


def _chunk(text: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


class CutAdapter:
    name = "up"

    def __init__(self, usage: dict[str, int] | None = None) -> None:
        self.usage = usage

    async def stream_chat(self, call: Call) -> AsyncIterator[dict[str, Any]]:
        yield _chunk("hello ")
        yield _chunk("world")
        if self.usage:
            yield {"choices": [], "usage": self.usage}
        raise UpstreamIncomplete("upstream 'up' ended the stream before [DONE]", provider="up")


class Settles(BasePolicy):
    name = "settles"

    def __init__(self) -> None:
        self.settled: list[Any] = []

    async def end_stream(self, call: Call, ctx: RequestContext) -> list[dict[str, Any]]:
        self.settled.append(ctx.usage)
        return [_chunk("held back")]


def _pipeline(adapter: CutAdapter, policy: Settles) -> Pipeline:
    models = {"m": ModelSettings("m", (Deployment("up", "model"),))}
    router = Router(models, {"up": adapter}, RouterSettings(retries=0))  # type: ignore[dict-item]
    return Pipeline(router, [policy], prices={"m": Price(1_000_000, 1_000_000)})


async def _drain(pipeline: Pipeline, ctx: RequestContext) -> list[dict[str, Any]]:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    chunks = await pipeline.stream(Call("chat", "m", body, stream=True), ctx)
    got = []
    with pytest.raises(UpstreamIncomplete):
        async for chunk in chunks:
            got.append(chunk)
    return got


async def test_a_broken_stream_is_charged_what_it_relayed_and_settles_its_policies() -> None:
    policy = Settles()
    ctx = RequestContext(request_id="r")
    got = await _drain(_pipeline(CutAdapter(), policy), ctx)
    assert [c["choices"][0]["delta"]["content"] for c in got] == ["hello ", "world"]  # nothing held back is sent
    assert ctx.usage is not None and ctx.usage.completion_tokens == 2 and ctx.usage.prompt_tokens > 0
    assert ctx.cost_usd == ctx.usage.total_tokens  # at $1 a token
    assert policy.settled == [ctx.usage]


async def test_real_usage_wins_over_the_estimate() -> None:
    policy = Settles()
    ctx = RequestContext(request_id="r")
    await _drain(_pipeline(CutAdapter({"prompt_tokens": 7, "completion_tokens": 9}), policy), ctx)
    assert ctx.usage is not None and (ctx.usage.prompt_tokens, ctx.usage.completion_tokens) == (7, 9)


def test_a_broken_relayed_stream_is_charged_from_its_frames_bytes() -> None:
    import orjson

    from llm_gateway.engine.pipeline import _Relayed
    from llm_gateway.vocab.tokens import count_text
    from llm_gateway.vocab.types import Frames

    def frames(words: list[str]) -> Frames:
        return Frames(b"".join(b"data: " + orjson.dumps({"choices": [{"index": 0, "delta": {"content": w}}]})
                               + b"\n\n" for w in words))

    call = Call("chat", "a", {"model": "a", "messages": [{"role": "user", "content": "hi"}]}, stream=True)
    small = _Relayed()
    small.add_frames(frames(["Hello", " world"]))
    assert small.usage(call)["completion_tokens"] == count_text("Hello world")
    large = _Relayed()  # past the bytes kept, the rest is charged at the kept part's tokens per byte
    for _ in range(400):
        large.add_frames(frames([" word"] * 10))
    charged = large.usage(call)["completion_tokens"]
    assert 3000 < charged < 5000  # 4,000 words of about one token each, from a 16 KiB sample
    assert sum(len(f) for f in large.frames) <= _Relayed.KEEP_FRAME_BYTES
