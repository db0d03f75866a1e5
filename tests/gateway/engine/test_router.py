"""Router: strategies, retries with backoff, Retry-After, cooldown and recovery, fallbacks, stream failover.

Scripted adapters and an injected sleep / clock / rng, so nothing waits. The end-to-end counterpart (one of two real
upstreams stopped, every request still served) is in tests/gateway/test_providers_e2e.py.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from llm_gateway.config.settings import Deployment, ModelSettings, RouterSettings
from llm_gateway.engine.router import Router
from llm_gateway.vocab.errors import (
    ContextLengthExceeded,
    ModelNotFound,
    ProviderNotConfigured,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from llm_gateway.vocab.types import Call, RequestContext
from tests.support.clock import Clock


class Scripted:
    """An adapter whose answers are scripted per upstream model: a list of outcomes, consumed in order."""

    def __init__(self, name: str, script: dict[str, list[Any]] | None = None) -> None:
        self.name = name
        self.script = script or {}
        self.calls: list[str] = []

    def _next(self, call: Call) -> Any:
        self.calls.append(call.model)
        outcomes = self.script.get(call.model) or ["ok"]
        return outcomes.pop(0) if len(outcomes) > 1 else outcomes[0]

    async def chat(self, call: Call) -> dict[str, Any]:
        outcome = self._next(call)
        if isinstance(outcome, Exception):
            raise outcome
        if outcome == "hang":
            await asyncio.sleep(3600)
        return {"served_by": f"{self.name}/{call.model}", "alias": call.alias}

    async def stream_chat(self, call: Call) -> AsyncIterator[dict[str, Any]]:
        outcome = self._next(call)
        if isinstance(outcome, Exception):
            raise outcome
        if outcome == "hang":
            await asyncio.sleep(3600)
        yield {"chunk": 1, "served_by": f"{self.name}/{call.model}"}
        if outcome == "break":
            raise UpstreamError("connection reset mid-stream", provider=self.name, kind="connect")
        yield {"chunk": 2}

    complete = chat
    stream_complete = stream_chat

    async def embed(self, call: Call) -> dict[str, Any]:
        return await self.chat(call)

    async def list_models(self) -> list[dict[str, Any]]:
        return []

    async def aclose(self) -> None:
        return None


def make_router(
    models: dict[str, ModelSettings],
    adapters: dict[str, Scripted],
    sleeps: list[float],
    clock: Clock | None = None,
    **router: Any,
) -> Router:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    settings = RouterSettings(**{"retries": 2, "backoff_seconds": 0.25, "cooldown_failures": 3, **router})
    return Router(
        models,
        adapters,
        settings,
        sleep=sleep,
        clock=clock or Clock(),
        rng=random.Random(7),
        first_token_timeouts={"a": 0.2, "b": 0.2},
    )


def alias(name: str, *deployments: tuple[str, str, float], **kwargs: Any) -> ModelSettings:
    return ModelSettings(alias=name, deployments=tuple(Deployment(p, m, w) for p, m, w in deployments), **kwargs)


def call(alias_name: str = "chat", stream: bool = False) -> Call:
    return Call(kind="chat", alias=alias_name, body={"model": alias_name, "messages": []}, stream=stream)


def ctx() -> RequestContext:
    return RequestContext(request_id="req_test")


async def drain(iterator: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    return [chunk async for chunk in iterator]


# strategies


async def test_weighted_strategy_follows_the_weights() -> None:
    adapters = {"a": Scripted("a"), "b": Scripted("b")}
    router = make_router({"chat": alias("chat", ("a", "m", 3.0), ("b", "m", 1.0))}, adapters, [])
    for _ in range(400):
        await router.send(call(), ctx())
    share = len(adapters["a"].calls) / 400
    assert 0.68 < share < 0.82  # 3:1 with a seeded rng


async def test_zero_weight_deployment_serves_only_as_a_spare() -> None:
    adapters = {"a": Scripted("a"), "b": Scripted("b", {"m": [UpstreamUnavailable("down", provider="b")]})}
    router = make_router({"chat": alias("chat", ("b", "m", 1.0), ("a", "m", 0.0))}, adapters, [])
    c = ctx()
    assert (await router.send(call(), c))["served_by"] == "a/m"  # b failed; the spare took over
    assert c.deployment == "a/m"


async def test_least_busy_picks_the_deployment_with_fewer_requests_in_flight() -> None:
    adapters = {"a": Scripted("a"), "b": Scripted("b")}
    router = make_router({"chat": alias("chat", ("a", "m", 1.0), ("b", "m", 1.0), strategy="least_busy")}, adapters, [])
    open_stream = await router.stream(call(stream=True), ctx())  # held open: one in flight
    busy = adapters["a"].calls and "a" or "b"
    for _ in range(5):
        c = ctx()
        await router.send(call(), c)
        assert not c.deployment.startswith(busy)
    assert [h["in_flight"] for h in router.health() if h["provider"] == busy] == [1]
    await drain(open_stream)
    assert all(h["in_flight"] == 0 for h in router.health())


async def test_lowest_latency_tries_each_then_prefers_the_fastest() -> None:
    adapters = {"a": Scripted("a"), "b": Scripted("b")}
    router = make_router(
        {"chat": alias("chat", ("a", "m", 1.0), ("b", "m", 1.0), strategy="lowest_latency")}, adapters, []
    )
    await router.send(call(), ctx())
    await router.send(call(), ctx())
    assert (
        sorted(adapters["a"].calls + adapters["b"].calls) == ["m", "m"] and adapters["a"].calls and adapters["b"].calls
    )
    states = router.routes["chat"].states
    states[0].latency_ewma, states[1].latency_ewma = 0.9, 0.1
    for _ in range(5):
        c = ctx()
        await router.send(call(), c)
        assert c.deployment == "b/m"


# retries and backoff


async def test_retries_a_5xx_with_exponential_backoff_and_jitter() -> None:
    fail = UpstreamStatusError("boom", upstream_status=503, provider="a")
    adapters = {"a": Scripted("a", {"m": [fail, fail, "ok"]})}
    sleeps: list[float] = []
    router = make_router({"chat": alias("chat", ("a", "m", 1.0))}, adapters, sleeps)
    assert (await router.send(call(), ctx()))["served_by"] == "a/m"
    assert len(adapters["a"].calls) == 3
    assert 0.125 <= sleeps[0] <= 0.25 and 0.25 <= sleeps[1] <= 0.5  # base * 2**n, times a jitter in [0.5, 1]


async def test_gives_up_after_the_configured_retries_with_the_upstream_error() -> None:
    fail = UpstreamStatusError("boom", upstream_status=503, provider="a")
    adapters = {"a": Scripted("a", {"m": [fail]})}
    router = make_router({"chat": alias("chat", ("a", "m", 1.0))}, adapters, [], retries=1)
    with pytest.raises(UpstreamStatusError) as info:
        await router.send(call(), ctx())
    assert info.value.status == 502 and info.value.upstream_status == 503
    assert len(adapters["a"].calls) == 2


async def test_a_client_error_is_not_retried() -> None:
    adapters = {"a": Scripted("a", {"m": [UpstreamStatusError("bad field", upstream_status=400, provider="a")]})}
    sleeps: list[float] = []
    router = make_router({"chat": alias("chat", ("a", "m", 1.0))}, adapters, sleeps)
    with pytest.raises(UpstreamStatusError) as info:
        await router.send(call(), ctx())
    assert info.value.status == 400 and len(adapters["a"].calls) == 1 and sleeps == []
    health = router.health()[0]  # the deployment answered: healthy, but a quick 400 is no latency sample or "served"
    assert (
        health["healthy"] and health["errors"] == 1 and health["served"] == 0 and health["latency_ewma_seconds"] is None
    )  # errors: the request failed on it, as the per-alias table counts it; its health is untouched


async def test_429_waits_at_least_retry_after() -> None:
    limited = UpstreamRateLimited("slow down", provider="a", retry_after=3.0)
    adapters = {"a": Scripted("a", {"m": [limited, "ok"]})}
    sleeps: list[float] = []
    router = make_router({"chat": alias("chat", ("a", "m", 1.0))}, adapters, sleeps)
    await router.send(call(), ctx())
    assert sleeps == [3.0]


async def test_429_with_retry_after_beyond_the_deadline_is_answered_at_once() -> None:
    limited = UpstreamRateLimited("slow down", provider="a", retry_after=600.0)
    adapters = {"a": Scripted("a", {"m": [limited, "ok"]})}
    sleeps: list[float] = []
    router = make_router({"chat": alias("chat", ("a", "m", 1.0))}, adapters, sleeps, deadline_seconds=30)
    with pytest.raises(UpstreamRateLimited) as info:
        await router.send(call(), ctx())
    assert sleeps == [] and info.value.headers["retry-after"] == "600"


async def test_a_hanging_upstream_ends_at_the_total_deadline() -> None:
    adapters = {"a": Scripted("a", {"m": ["hang"]})}
    router = make_router({"chat": alias("chat", ("a", "m", 1.0))}, adapters, [], deadline_seconds=0.05, retries=0)
    with pytest.raises(UpstreamTimeout) as info:
        await router.send(call(), ctx())
    assert info.value.status == 504
    assert router.health()[0]["errors"] == 1


class SlowFailing(Scripted):
    """Fails after using up `seconds` of the injected clock, as an upstream that answers 503 late would."""

    def __init__(self, name: str, clock: Clock, seconds: float) -> None:
        super().__init__(name)
        self.clock = clock
        self.seconds = seconds

    async def chat(self, call: Call) -> dict[str, Any]:
        self.calls.append(call.model)
        self.clock.now += self.seconds
        raise UpstreamUnavailable("overloaded, answered late", provider=self.name)


async def test_an_exhausted_deadline_charges_no_deployment_it_did_not_ask() -> None:
    clock = Clock()
    adapters = {"a": SlowFailing("a", clock, 200), "b": Scripted("b"), "c": Scripted("c")}
    models = {
        "chat": alias("chat", ("a", "m", 1.0), ("b", "m", 0.0), fallbacks=("spare",)),
        "spare": alias("spare", ("c", "m", 1.0)),
    }
    sleeps: list[float] = []
    router = make_router(models, adapters, sleeps, clock, deadline_seconds=120)
    with pytest.raises(UpstreamUnavailable, match="answered late"):  # the real failure, not a bare "deadline"
        await router.send(call(), ctx())
    assert adapters["b"].calls == [] and adapters["c"].calls == [] and sleeps == []
    assert {h["provider"]: h["errors"] for h in router.health()} == {"a": 1, "b": 0, "c": 0}


# cooldown and recovery


async def test_repeated_failures_cool_a_deployment_down_and_it_recovers() -> None:
    clock = Clock()
    down = UpstreamUnavailable("refused", provider="a")
    adapters = {"a": Scripted("a", {"m": [down, down, "ok"]}), "b": Scripted("b")}
    router = make_router(
        {"chat": alias("chat", ("a", "m", 100.0), ("b", "m", 0.01))},
        adapters,
        [],
        clock,
        cooldown_failures=2,
        cooldown_seconds=30,
    )
    for _ in range(2):  # a fails twice (b answers each time): a cools down
        assert (await router.send(call(), ctx()))["served_by"] == "b/m"
    health = {h["provider"]: h for h in router.health()}
    assert health["a"]["healthy"] is False and health["a"]["cooldowns"] == 1
    calls_before = len(adapters["a"].calls)
    for _ in range(10):  # despite its weight, a is skipped while cooling down
        assert (await router.send(call(), ctx()))["served_by"] == "b/m"
    assert len(adapters["a"].calls) == calls_before
    clock.now += 31
    assert (await router.send(call(), ctx()))["served_by"] == "a/m"  # recovered
    assert {h["provider"]: h["healthy"] for h in router.health()} == {"a": True, "b": True}


async def test_a_deployment_still_down_after_its_cooldown_cools_again_at_the_first_failure() -> None:
    clock = Clock()
    down = UpstreamUnavailable("refused", provider="a")
    adapters = {"a": Scripted("a", {"m": [down]}), "b": Scripted("b")}  # a never recovers
    router = make_router(
        {"chat": alias("chat", ("a", "m", 100.0), ("b", "m", 0.01))},
        adapters,
        [],
        clock,
        cooldown_failures=3,
        cooldown_seconds=30,
    )
    for _ in range(3):
        assert (await router.send(call(), ctx()))["served_by"] == "b/m"
    assert len(adapters["a"].calls) == 3 and router.health()[0]["cooldowns"] == 1
    clock.now += 31  # the cooldown ends: a is tried once more, fails, and is out again at once
    assert (await router.send(call(), ctx()))["served_by"] == "b/m"
    assert len(adapters["a"].calls) == 4 and router.health()[0]["cooldowns"] == 2 and not router.health()[0]["healthy"]
    adapters["a"].script = {"m": ["ok"]}  # it recovers: one success ends the probation
    clock.now += 31
    assert (await router.send(call(), ctx()))["served_by"] == "a/m"
    adapters["a"].script = {"m": [down, "ok"]}
    assert (await router.send(call(), ctx()))["served_by"] == "b/m"  # one failure is not a cooldown any more
    assert router.health()[0]["healthy"] and router.health()[0]["cooldowns"] == 2


async def test_when_every_deployment_cools_down_the_router_still_tries_one() -> None:
    clock = Clock()
    down = UpstreamUnavailable("refused", provider="a")
    adapters = {"a": Scripted("a", {"m": [down, down, "ok"]})}
    router = make_router({"chat": alias("chat", ("a", "m", 1.0))}, adapters, [], clock, cooldown_failures=1)
    assert (await router.send(call(), ctx()))["served_by"] == "a/m"


# fallbacks


async def test_alias_fallback_serves_when_every_deployment_failed() -> None:
    down = UpstreamUnavailable("refused", provider="a")
    adapters = {"a": Scripted("a", {"m": [down]}), "b": Scripted("b")}
    models = {"chat": alias("chat", ("a", "m", 1.0), fallbacks=("spare",)), "spare": alias("spare", ("b", "s", 1.0))}
    router = make_router(models, adapters, [])
    c = ctx()
    answer = await router.send(call(), c)
    assert answer == {"served_by": "b/s", "alias": "spare"} and c.deployment == "b/s"
    assert len(adapters["a"].calls) == 3  # retries first, then the fallback


async def test_context_window_fallback_only_for_a_too_long_prompt() -> None:
    too_long = UpstreamStatusError(
        "prompt is too long", upstream_status=400, code="context_length_exceeded", provider="a"
    )
    adapters = {
        "a": Scripted("a", {"small": [too_long], "bad": [UpstreamStatusError("bad", upstream_status=400)]}),
        "b": Scripted("b"),
    }
    models = {
        "chat": alias("chat", ("a", "small", 1.0), context_window_fallbacks=("big",)),
        "strict": alias("strict", ("a", "bad", 1.0), context_window_fallbacks=("big",)),
        "big": alias("big", ("b", "large", 1.0)),
    }
    router = make_router(models, adapters, [])
    assert (await router.send(call(), ctx()))["served_by"] == "b/large"
    with pytest.raises(UpstreamStatusError):
        await router.send(call("strict"), ctx())


async def test_local_context_error_takes_the_context_fallback_too() -> None:
    adapters = {"a": Scripted("a", {"small": [ContextLengthExceeded("too long")]}), "b": Scripted("b")}
    models = {
        "chat": alias("chat", ("a", "small", 1.0), context_window_fallbacks=("big",)),
        "big": alias("big", ("b", "large", 1.0)),
    }
    assert (await make_router(models, adapters, []).send(call(), ctx()))["served_by"] == "b/large"


async def test_unknown_alias_and_missing_key() -> None:
    router = make_router({"chat": alias("chat", ("a", "m", 1.0))}, {"a": Scripted("a")}, [])
    with pytest.raises(ModelNotFound):
        await router.send(call("nope"), ctx())
    router.missing_keys["a"] = "A_API_KEY"
    with pytest.raises(ProviderNotConfigured, match="A_API_KEY"):
        await router.send(call(), ctx())


# streams


async def test_stream_fails_over_before_the_first_chunk() -> None:
    adapters = {"a": Scripted("a", {"m": [UpstreamUnavailable("refused", provider="a")]}), "b": Scripted("b")}
    router = make_router({"chat": alias("chat", ("a", "m", 10.0), ("b", "m", 0.01))}, adapters, [])
    c = ctx()
    chunks = await drain(await router.stream(call(stream=True), c))
    assert chunks[0]["served_by"] == "b/m" and len(chunks) == 2 and c.deployment == "b/m"


async def test_stream_first_token_timeout_fails_over() -> None:
    adapters = {"a": Scripted("a", {"m": ["hang"]}), "b": Scripted("b")}
    router = make_router({"chat": alias("chat", ("a", "m", 10.0), ("b", "m", 0.01))}, adapters, [])
    chunks = await drain(await router.stream(call(stream=True), ctx()))
    assert chunks[0]["served_by"] == "b/m"
    assert {h["provider"]: h["errors"] for h in router.health()} == {"a": 1, "b": 0}


async def test_a_failure_after_the_first_chunk_ends_the_stream_and_counts_against_health() -> None:
    adapters = {"a": Scripted("a", {"m": ["break"]})}
    errors: list[tuple[str, str]] = []
    router = make_router({"chat": alias("chat", ("a", "m", 1.0))}, adapters, [])
    router.on_upstream_error = lambda provider, kind: errors.append((provider, kind))
    stream = await router.stream(call(stream=True), ctx())
    assert (await anext(stream))["chunk"] == 1
    with pytest.raises(UpstreamError, match="mid-stream"):
        await anext(stream)
    assert len(adapters["a"].calls) == 1  # no failover once a chunk went out
    health = router.health()[0]
    assert health["errors"] == 1 and health["in_flight"] == 0 and errors == [("a", "connect")]


async def test_a_primed_stream_dropped_unread_releases_its_deployment() -> None:
    import gc

    router = make_router({"chat": alias("chat", ("a", "m", 1.0))}, {"a": Scripted("a")}, [])
    stream = await router.stream(call(stream=True), ctx())
    assert router.health()[0]["in_flight"] == 1
    del stream  # the client left before the body started: nobody iterates or closes it
    gc.collect()
    assert router.health()[0]["in_flight"] == 0


# a call in a protocol the adapter may not speak (Call.native)


class Native(Scripted):
    native_protocols = frozenset({"anthropic.messages"})

    async def count_tokens(self, call: Call) -> int | None:
        self.calls.append(call.model)
        return 42


def native_call(untranslatable: tuple[tuple[str, str], ...]) -> Call:
    from llm_gateway.vocab.types import NativeRequest

    c = call()
    c.native = NativeRequest("anthropic.messages", {"model": "chat"}, {}, c.body["messages"], untranslatable)
    return c


async def test_what_chat_cannot_carry_is_a_400_naming_it_on_a_backend_that_does_not_speak_the_protocol() -> None:
    from llm_gateway.vocab.errors import InvalidRequest

    adapters = {"a": Scripted("a")}
    router = make_router({"chat": alias("chat", ("a", "m", 1.0))}, adapters, [])
    with pytest.raises(InvalidRequest) as info:
        await router.send(native_call((("thinking", "needs reasoning"),)), ctx())
    assert info.value.param == "thinking" and info.value.message.startswith("thinking: needs reasoning")
    assert adapters["a"].calls == []  # refused before the upstream was asked
    assert (await router.send(native_call(()), ctx()))["served_by"] == "a/m"  # nothing untranslatable: served


async def test_a_backend_that_speaks_the_protocol_gets_it_whatever_it_carries() -> None:
    adapters = {"a": Native("a")}
    router = make_router({"chat": alias("chat", ("a", "m", 1.0))}, adapters, [])
    assert (await router.send(native_call((("thinking", "needs reasoning"),)), ctx()))["served_by"] == "a/m"


async def test_count_tokens_asks_the_first_deployment_that_counts_else_none() -> None:
    router = make_router(
        {"chat": alias("chat", ("a", "m", 1.0), ("b", "n", 1.0))}, {"a": Scripted("a"), "b": Native("b")}, []
    )
    assert await router.count_tokens(call()) == 42
    plain = make_router({"chat": alias("chat", ("a", "m", 1.0))}, {"a": Scripted("a")}, [])
    assert await plain.count_tokens(call()) is None


# one client cannot take a deployment out


async def test_a_request_specific_500_is_not_asked_again_and_the_only_deployment_stays_in() -> None:
    fail = UpstreamStatusError("1 validation error: max_tokens", upstream_status=500, provider="a", kind="5xx")
    adapters = {"a": Scripted("a", {"m": [fail]})}
    sleeps: list[float] = []
    router = make_router({"chat": alias("chat", ("a", "m", 1.0))}, adapters, sleeps, retries=2)
    for _ in range(5):  # more than cooldown_failures requests, each answered 500
        with pytest.raises(UpstreamStatusError):
            await router.send(call(), ctx())
    assert len(adapters["a"].calls) == 5 and sleeps == []  # one attempt per request: the same body would only fail
    [health] = router.health()
    assert health["healthy"] and health["status"] == "healthy" and health["cooldowns"] == 0  # the last healthy one
    assert health["errors"] == 5  # one per request, as the usage page's per-alias table counts them


async def test_the_failures_one_request_causes_count_once_and_another_deployment_serves() -> None:
    down = UpstreamUnavailable("refused", provider="a")
    adapters = {"a": Scripted("a", {"m": [down]}), "b": Scripted("b", {"m": [down, down, "ok"]})}
    router = make_router({"chat": alias("chat", ("a", "m", 1.0), ("b", "m", 1.0))}, adapters, [], retries=5)
    c = ctx()
    await router.send(call(), c)  # a, b, then a or b again ...: several attempts, one failure per deployment
    assert c.deployment == "b/m" and len(adapters["a"].calls) >= 2 and len(adapters["b"].calls) == 3
    states = {s.deployment.provider: s for s in router.routes["chat"].states}
    assert states["a"].errors == 1 and states["a"].failures == 1
    assert states["b"].failures == 0  # it served in the end


async def test_a_deployment_is_cooled_down_only_while_another_is_healthy() -> None:
    fail = UpstreamStatusError("boom", upstream_status=500, provider="a", kind="5xx")
    adapters = {"a": Scripted("a", {"m": [fail]}), "b": Scripted("b", {"m": [fail]})}
    router = make_router({"chat": alias("chat", ("a", "m", 1.0), ("b", "m", 1.0))}, adapters, [], retries=1)
    for _ in range(6):
        with pytest.raises(UpstreamStatusError):
            await router.send(call(), ctx())
    health = router.health()
    assert sum(h["healthy"] for h in health) == 1  # one cooled down; the other, the last healthy one, never


async def test_deployments_that_cannot_serve_are_reported_as_such() -> None:
    class Unavailable(Scripted):
        def unavailable_reason(self) -> str:
            return "needs llama-cpp-python: pip install 'llm-gateway[local]'"

    adapters = {"a": Scripted("a"), "b": Unavailable("b")}
    models = {"x": alias("x", ("a", "m", 1.0)), "y": alias("y", ("b", "m", 1.0))}
    router = make_router(models, adapters, [])
    router.missing_keys["a"] = "OPENAI_API_KEY"
    rows = {h["alias"]: h for h in router.health()}
    x = rows["x"]
    assert (x["healthy"], x["status"], x["reason"]) == (False, "not_configured", "set OPENAI_API_KEY")
    assert (rows["y"]["healthy"], rows["y"]["status"]) == (False, "unavailable") and "llama" in rows["y"]["reason"]
