"""Rate limits: all-or-nothing token buckets, estimates settled with real usage, OpenAI's headers, 429s."""

from __future__ import annotations

import asyncio

import pytest

from llm_gateway.policies.rate_counter import InProcessCounter, Limit
from llm_gateway.policies.rate_limit import PerMinute, RateLimitPolicy, duration
from llm_gateway.vocab.errors import RateLimited
from llm_gateway.vocab.tokens import count_call_prompt
from llm_gateway.vocab.types import Call, KeyInfo, RequestContext, Usage
from tests.support.clock import Clock


def call(text: str = "hello there", alias: str = "mock", **body: object) -> Call:
    return Call(kind="chat", alias=alias,
                body={"model": alias, "messages": [{"role": "user", "content": text}], **body})


def ctx(key: KeyInfo | None = None) -> RequestContext:
    return RequestContext(request_id="req_1", key=key)


KEY = KeyInfo(id="key_1", name="ci", rpm=2)


# the counter


async def test_take_is_all_or_nothing() -> None:
    counter = InProcessCounter(Clock(0.0))
    small, big = Limit("a:requests", 1), Limit("b:tokens", 100)
    first = await counter.take([(small, 1), (big, 10)])
    assert [r.denied for r in first] == [False, False] and first[1].remaining == 90
    second = await counter.take([(small, 1), (big, 10)])
    assert [r.denied for r in second] == [True, False]
    assert second[1].remaining == 90  # the denied request drew nothing from the bucket that had room


async def test_buckets_refill_at_the_per_minute_pace() -> None:
    clock = Clock(0.0)
    counter = InProcessCounter(clock)
    limit = Limit("k:requests", 60)  # one a second
    for _ in range(60):
        assert not (await counter.take([(limit, 1)]))[0].denied
    denied = (await counter.take([(limit, 1)]))[0]
    assert denied.denied and denied.retry_after == pytest.approx(1.0)
    assert denied.reset_seconds == pytest.approx(60.0)
    clock.now += 1.0
    assert not (await counter.take([(limit, 1)]))[0].denied
    clock.now += 3600
    assert (await counter.take([(limit, 0)]))[0].remaining == 60  # never above the limit


async def test_settle_can_leave_debt_that_the_refill_pays_back() -> None:
    clock = Clock(0.0)
    counter = InProcessCounter(clock)
    limit = Limit("k:tokens", 600)  # 10 a second
    await counter.take([(limit, 100)])
    await counter.settle(limit, 600)  # the answer used far more than estimated
    reading = (await counter.take([(limit, 1)]))[0]
    assert reading.denied and reading.remaining == pytest.approx(-100)
    assert reading.retry_after == pytest.approx(10.1)
    await counter.settle(limit, -200)  # and a give-back
    assert (await counter.take([(limit, 0)]))[0].remaining == pytest.approx(100)


# the policy


def policy(clock: Clock | None = None, **kwargs: object) -> RateLimitPolicy:
    return RateLimitPolicy(InProcessCounter(clock or Clock(0.0)), count_call_prompt, **kwargs)  # type: ignore[arg-type]


async def test_no_limits_means_no_work_and_no_headers() -> None:
    p = policy()
    c = ctx(KeyInfo(id="k", name="unlimited"))
    assert await p.before(call(), c) is None
    assert c.response_headers == {}


async def test_a_keys_rpm_admits_its_limit_then_429s_with_retry_after() -> None:
    clock = Clock(0.0)
    p = policy(clock)
    first = ctx(KEY)
    await p.before(call(), first)
    assert first.response_headers == {
        "x-ratelimit-limit-requests": "2",
        "x-ratelimit-remaining-requests": "1",
        "x-ratelimit-reset-requests": "30s",
    }
    await p.before(call(), ctx(KEY))
    denied = ctx(KEY)
    with pytest.raises(RateLimited) as info:
        await p.before(call(), denied)
    err = info.value
    assert err.status == 429 and err.code == "rate_limit_exceeded"
    assert err.headers["retry-after"] == "30"
    assert err.headers["x-ratelimit-remaining-requests"] == "0"
    assert "key `ci`" in err.message and "requests per minute" in err.message and "limit 2" in err.message
    clock.now += 30
    await p.before(call(), ctx(KEY))


async def test_keys_and_aliases_are_limited_separately() -> None:
    p = policy(aliases={"mock": PerMinute(rpm=3), "other": PerMinute()})
    a, b = KeyInfo(id="a", name="a"), KeyInfo(id="b", name="b")
    for key in (a, b, a):
        await p.before(call(), ctx(key))
    with pytest.raises(RateLimited, match="model `mock`"):
        await p.before(call(), ctx(b))
    await p.before(call(alias="other"), ctx(b))  # another alias, no limit


async def test_the_master_key_is_limited_only_per_alias() -> None:
    master = KeyInfo(id="master", name="master", is_master=True)
    p = policy(key_default=PerMinute(rpm=1))
    for _ in range(5):
        await p.before(call(), ctx(master))


async def test_default_key_limits_apply_to_keys_without_their_own() -> None:
    p = policy(key_default=PerMinute(rpm=1))
    await p.before(call(), ctx(KeyInfo(id="k", name="k")))
    with pytest.raises(RateLimited):
        await p.before(call(), ctx(KeyInfo(id="k", name="k")))
    for _ in range(3):  # its own, higher limit wins
        await p.before(call(), ctx(KeyInfo(id="k2", name="k2", rpm=3)))


def test_the_estimate_is_prompt_plus_requested_completion_tokens() -> None:
    p = policy()
    prompt = count_call_prompt("chat", call().body)
    assert p.estimate(call()) == prompt
    assert p.estimate(call(max_tokens=50)) == prompt + 50
    assert p.estimate(call(max_completion_tokens=40, n=2)) == prompt + 80


async def test_tokens_are_estimated_then_settled_with_real_usage() -> None:
    p = policy(key_default=PerMinute(tpm=1000))
    key = KeyInfo(id="k", name="k")
    c = ctx(key)
    request = call(max_tokens=100)
    estimate = p.estimate(request)
    await p.before(request, c)
    assert c.response_headers["x-ratelimit-remaining-tokens"] == str(1000 - estimate)
    c.usage = Usage(prompt_tokens=10, completion_tokens=5)
    await p.after(request, {}, c)
    await p.after(request, {}, c)  # settled once only
    after = ctx(key)
    await p.before(call(), after)
    remaining = int(after.response_headers["x-ratelimit-remaining-tokens"])
    assert remaining == 1000 - 15 - p.estimate(call())


async def test_a_stream_is_settled_at_its_end() -> None:
    p = policy(key_default=PerMinute(tpm=1000))
    key = KeyInfo(id="k", name="k")
    c = ctx(key)
    request = call(max_tokens=500, stream=True)
    await p.before(request, c)
    c.usage = Usage(prompt_tokens=1, completion_tokens=1)
    assert await p.end_stream(request, c) == []
    after = ctx(key)
    await p.before(call(), after)
    assert int(after.response_headers["x-ratelimit-remaining-tokens"]) == 1000 - 2 - p.estimate(call())


async def test_a_request_larger_than_the_token_limit_is_refused_without_drawing() -> None:
    p = policy(key_default=PerMinute(rpm=5, tpm=50))
    with pytest.raises(RateLimited, match="Request too large") as info:
        await p.before(call(max_tokens=100), ctx(KeyInfo(id="k", name="k")))
    assert "retry-after" not in info.value.headers
    c = ctx(KeyInfo(id="k", name="k"))
    await p.before(call(), c)
    assert c.response_headers["x-ratelimit-remaining-requests"] == "4"


async def test_a_burst_far_above_the_limit_admits_exactly_the_limit() -> None:
    p = policy(aliases={"mock": PerMinute(rpm=10, tpm=100_000)})
    key = KeyInfo(id="k", name="k", rpm=7)

    async def one() -> bool:
        try:
            await p.before(call(), ctx(key))
            return True
        except RateLimited:
            return False

    results = await asyncio.gather(*(one() for _ in range(200)))
    assert results.count(True) == 7
    assert p.counters["limited"] == 193
    c = ctx(KeyInfo(id="other", name="other"))
    await p.before(call(), c)  # the alias bucket lost only the 7 admitted, not the denied ones
    assert c.response_headers["x-ratelimit-remaining-requests"] == "2"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.02, "20ms"), (0.0, "0ms"), (1.5, "1.5s"), (30.0, "30s"), (360.0, "6m0s"), (61.2, "1m1s"), (119.9, "2m0s")],
)
def test_durations_are_written_as_openai_writes_them(seconds: float, text: str) -> None:
    assert duration(seconds) == text
