"""The output half shared by the guards that scan answers: whole responses and streams, with a hold-back window.

A subclass gives `output_scan(ctx)`; blocked text is cut where the match starts and the choice finishes with
`finish_reason = "content_filter"` (what OpenAI itself sends), so clients see a short answer, never the pattern.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from llm_gateway.policies.text_filter import HoldBack, Scan, filter_whole
from llm_gateway.policies.text_parts import answer_text_field, choice_text, with_choice_text
from llm_gateway.vocab.types import BasePolicy, Call, RequestContext

log = logging.getLogger("gateway.policy")


@dataclass(slots=True)
class OutputCounters:
    """Read by metrics: answers cut and answers rewritten by this guard."""

    outputs_blocked: int = 0
    outputs_rewritten: int = 0


@dataclass(slots=True)
class _StreamState:
    hold: HoldBack
    blocked: bool = False
    template: dict[str, Any] = field(default_factory=dict)


class OutputGuard(BasePolicy):
    window = 64

    def __init__(self) -> None:
        self.output_counters = OutputCounters()

    def output_scan(self, ctx: RequestContext) -> Scan | None:
        """How to scan this request's answer; None leaves answers alone."""
        return None

    async def after(self, call: Call, response: dict[str, Any], ctx: RequestContext) -> dict[str, Any] | None:
        choices = response.get("choices")
        if call.kind == "embedding" or not isinstance(choices, list):
            return None
        scan = self.output_scan(ctx)
        if scan is None:
            return None
        container, key = answer_text_field(call.kind, streamed=False)
        new_choices: list[Any] | None = None
        for i, choice in enumerate(choices):
            text = choice_text(choice, container, key) if isinstance(choice, dict) else None
            if not text:
                continue
            released = filter_whole(text, scan)
            if released.text == text and not released.blocked:
                continue
            new_choices = new_choices or list(choices)
            new = with_choice_text(choice, container, key, released.text)
            if released.blocked:
                new["finish_reason"] = "content_filter"
            new_choices[i] = new
            self._count(released.blocked, ctx)
        return None if new_choices is None else {**response, "choices": new_choices}

    def reads_chunks(self, call: Call, ctx: RequestContext) -> bool:
        return self._stream_state(call, ctx) is not None

    async def on_chunk(self, call: Call, chunk: dict[str, Any], ctx: RequestContext) -> list[dict[str, Any]] | None:
        choices = chunk.get("choices")
        state = self._stream_state(call, ctx)
        if state is None or not choices:
            return None
        if state.blocked:
            return []  # the answer was cut: nothing after the cut reaches the client (usage-only chunks still do)
        state.template = chunk
        container, key = answer_text_field(call.kind, streamed=True)
        new_choices: list[Any] = []
        changed = False
        for choice in choices:
            text = choice_text(choice, container, key)
            finish = choice.get("finish_reason")
            if text is None and not finish:
                new_choices.append(choice)
                continue
            released = state.hold.feed(choice.get("index", 0), text or "", final=bool(finish))
            if released.text == (text or "") and not released.blocked:
                new_choices.append(choice)
                continue
            changed = True
            new = with_choice_text(choice, container, key, released.text)
            if released.blocked:
                new["finish_reason"] = "content_filter"
                state.blocked = True
                self._count(True, ctx)
            new_choices.append(new)
        return [{**chunk, "choices": new_choices}] if changed else None

    async def end_stream(self, call: Call, ctx: RequestContext) -> list[dict[str, Any]]:
        """A stream that ended without finish_reason still gets its held text (or its cut)."""
        state = ctx.state.get(self._state_key)
        if not isinstance(state, _StreamState) or state.blocked:
            return []
        container, key = answer_text_field(call.kind, streamed=True)
        base = {k: v for k, v in state.template.items() if k not in ("choices", "usage")}
        out = []
        for index in state.hold.pending():
            released = state.hold.feed(index, "", final=True)
            choice = with_choice_text({"index": index, "finish_reason": None}, container, key, released.text)
            if released.blocked:
                choice["finish_reason"] = "content_filter"
                self._count(True, ctx)
            out.append({**base, "choices": [choice]})
        return out

    @property
    def _state_key(self) -> str:
        return f"{self.name}.stream"

    def _stream_state(self, call: Call, ctx: RequestContext) -> _StreamState | None:
        state = ctx.state.get(self._state_key)
        if state is None:
            scan = self.output_scan(ctx) if call.kind != "embedding" else None
            if scan is None:
                ctx.state[self._state_key] = False
                return None
            state = ctx.state[self._state_key] = _StreamState(HoldBack(scan, self.window))
        return state or None

    def _count(self, blocked: bool, ctx: RequestContext) -> None:
        if blocked:
            self.output_counters.outputs_blocked += 1
            ctx.flags.append(f"{self.name}:output_cut")
            # like denials: the request id and the guard, never the content
            log.info("request %s: answer cut by %s", ctx.request_id, self.name,
                     extra={"request_id": ctx.request_id, "policy": self.name})
        else:
            self.output_counters.outputs_rewritten += 1
