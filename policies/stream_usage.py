"""Make every stream report its usage, so limits and budgets see real tokens, without changing what clients get.

A client that streams without `stream_options.include_usage` would leave the gateway blind to what the answer
cost. This policy asks the upstream for usage on such calls (on a copy of the body: the client's dict is untouched)
and drops the usage chunk before it reaches that client, who then sees the stream it asked for (a relayed stream's
usage-only event too: on_frames, so the stream need not be parsed for it). Recording keys
ignore stream_options, so this changes no recording key.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from llm_gateway.vocab.types import BasePolicy, Call, Frames, RequestContext

_ADDED = "stream_usage.added"


class StreamUsagePolicy(BasePolicy):
    name = "stream_usage"

    async def before(self, call: Call, ctx: RequestContext) -> Call | None:
        if not call.stream or call.kind == "embedding":
            return None
        options = call.body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            return None
        body = dict(call.body)
        body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        ctx.state[_ADDED] = True
        return replace(call, body=body)

    async def on_frames(self, call: Call, frames: Frames, ctx: RequestContext) -> Frames | None:
        if frames.usage_event is None or not ctx.state.get(_ADDED):
            return None
        return frames.without_usage_event()

    async def on_chunk(self, call: Call, chunk: dict[str, Any], ctx: RequestContext) -> list[dict[str, Any]] | None:
        # a `"usage": null` on ordinary chunks is left alone: clients read it as no usage, and copying every chunk
        # to drop it would cost more than it is worth
        if not chunk.get("usage") or not ctx.state.get(_ADDED):
            return None
        if not chunk.get("choices"):
            return []  # the usage-only chunk the client did not ask for (the pipeline has already accounted it)
        return [{k: v for k, v in chunk.items() if k != "usage"}]
