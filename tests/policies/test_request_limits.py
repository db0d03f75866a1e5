"""Request limits: message count, max_tokens clamp or reject, parameters allowed per alias."""

from __future__ import annotations

import pytest

from llm_gateway.policies.request_limits import RequestLimitsPolicy
from llm_gateway.vocab.errors import InvalidRequest
from llm_gateway.vocab.types import Call, RequestContext


def chat(n: int = 1, alias: str = "m", **extra: object) -> Call:
    messages = [{"role": "user", "content": "hi"}] * n
    return Call(kind="chat", alias=alias, body={"model": alias, "messages": messages, **extra})


async def test_too_many_messages_is_a_400_naming_messages() -> None:
    policy = RequestLimitsPolicy(max_messages=2)
    assert await policy.before(chat(2), RequestContext(request_id="r")) is None
    with pytest.raises(InvalidRequest) as info:
        await policy.before(chat(3), RequestContext(request_id="r"))
    assert info.value.param == "messages" and "3" in info.value.message


async def test_max_tokens_is_clamped_on_a_copy_with_a_header() -> None:
    policy, ctx = RequestLimitsPolicy(max_tokens=100), RequestContext(request_id="r")
    call = chat(max_tokens=500, max_completion_tokens=50)
    out = await policy.before(call, ctx)
    assert out is not None and out.body["max_tokens"] == 100 and out.body["max_completion_tokens"] == 50
    assert call.body["max_tokens"] == 500
    assert ctx.response_headers["x-gateway-max-tokens-clamped"] == "100"
    assert await policy.before(chat(max_tokens=100), ctx) is None


async def test_max_tokens_can_be_rejected_instead() -> None:
    policy = RequestLimitsPolicy(max_tokens=100, max_tokens_action="reject")
    with pytest.raises(InvalidRequest) as info:
        await policy.before(chat(max_completion_tokens=101), RequestContext(request_id="r"))
    assert info.value.param == "max_completion_tokens"


async def test_parameters_outside_an_alias_allow_list_are_refused_by_name() -> None:
    policy = RequestLimitsPolicy(allowed_params={"m": ("temperature",)})
    assert await policy.before(chat(temperature=0.2, stream=True), RequestContext(request_id="r")) is None
    assert await policy.before(chat(alias="other", top_k=3), RequestContext(request_id="r")) is None
    with pytest.raises(InvalidRequest) as info:
        await policy.before(chat(temperature=0.2, top_k=3), RequestContext(request_id="r"))
    assert info.value.param == "top_k" and "temperature" in info.value.message
