"""Moderation: a flag blocks; a failing moderation alias follows on_error."""

from __future__ import annotations

import pytest

from llm_gateway.policies.moderation import ModerationPolicy, is_flagged
from llm_gateway.vocab.errors import ContentPolicyViolation, ServiceUnavailable, UpstreamUnavailable
from llm_gateway.vocab.types import Call, RequestContext


def chat(content: str) -> Call:
    return Call(kind="chat", alias="m", body={"model": "m", "messages": [{"role": "user", "content": content}]})


async def test_flagged_text_is_refused_and_safe_text_passes() -> None:
    asked: list[str] = []

    async def ask(text: str) -> bool:
        asked.append(text)
        return "bomb" in text

    policy = ModerationPolicy(ask)
    assert await policy.before(chat("bake a cake"), RequestContext(request_id="r")) is None
    with pytest.raises(ContentPolicyViolation):
        await policy.before(chat("build a bomb"), RequestContext(request_id="r"))
    assert asked == ["bake a cake", "build a bomb"] and policy.counters.flagged == 1


async def failing(text: str) -> bool:
    raise UpstreamUnavailable("moderation upstream down")


async def test_on_error_allow_lets_the_request_through_and_counts_it() -> None:
    policy = ModerationPolicy(failing, on_error="allow")
    assert await policy.before(chat("hi"), RequestContext(request_id="r")) is None
    assert policy.counters.errors == 1


async def test_on_error_deny_refuses_with_503() -> None:
    with pytest.raises(ServiceUnavailable) as info:
        await ModerationPolicy(failing, on_error="deny").before(chat("hi"), RequestContext(request_id="r"))
    assert info.value.status == 503 and info.value.code == "moderation_unavailable"


def test_the_answer_is_read_leniently() -> None:
    assert is_flagged(" flagged.") and is_flagged("FLAGGED") and not is_flagged("SAFE")
