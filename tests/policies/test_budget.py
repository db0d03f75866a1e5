"""Budgets: spend recorded per key and alias in batches, 429 insufficient_quota once spent, nothing lost or doubled."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from llm_gateway.policies.budget import BudgetPolicy
from llm_gateway.policies.key_store import KeyStore, UsageRow
from llm_gateway.vocab.errors import QuotaExceeded
from llm_gateway.vocab.types import Call, KeyInfo, RequestContext, Usage
from tests.support.clock import Clock

KEY = KeyInfo(id="key_1", name="ci", budget_usd=1.0)


def call(alias: str = "mock", stream: bool = False) -> Call:
    return Call(kind="chat", alias=alias, body={"model": alias, "messages": []}, stream=stream)


def answered(key: KeyInfo = KEY, cost: float = 0.25, prompt: int = 10, completion: int = 5) -> RequestContext:
    ctx = RequestContext(request_id="req", key=key)
    ctx.usage = Usage(prompt, completion)
    ctx.cost_usd = cost
    return ctx


async def test_spend_is_batched_and_written_per_key_and_alias(store: KeyStore) -> None:
    policy = BudgetPolicy(store, flush_seconds=3600)
    for alias in ("mock", "mock", "gpt"):
        await policy.after(call(alias), {}, answered())
    await policy.end_stream(call(stream=True), answered(cost=0.0, prompt=1, completion=1))
    assert await store.usage() == []  # nothing written on the request path
    await policy.flush()
    rows = {(u.key_id, u.alias): u for u in await store.usage()}
    assert rows[("key_1", "mock")] == UsageRow("key_1", "mock", 3, 21, 11, 0.5)
    assert rows[("key_1", "gpt")] == UsageRow("key_1", "gpt", 1, 10, 5, 0.25)
    assert policy.counters["flushes"] == 1
    await policy.aclose()  # stop the flush timer before the loop closes


async def test_a_request_is_recorded_once(store: KeyStore) -> None:
    policy = BudgetPolicy(store, flush_seconds=3600)
    ctx = answered()
    await policy.after(call(), {}, ctx)
    await policy.end_stream(call(), ctx)
    await policy.flush()
    assert [u.requests for u in await store.usage()] == [1]
    await policy.aclose()


async def test_requests_without_a_key_are_not_recorded(store: KeyStore) -> None:
    policy = BudgetPolicy(store)
    ctx = answered()
    ctx.key = None
    await policy.after(call(), {}, ctx)
    await policy.aclose()
    assert await store.usage() == []


async def test_a_key_past_its_budget_gets_insufficient_quota(store: KeyStore) -> None:
    policy = BudgetPolicy(store, flush_seconds=3600, clock=Clock(0.0))
    for _ in range(3):
        await policy.before(call(), answered())
        await policy.after(call(), {}, answered(cost=0.3))
    await policy.before(call(), answered())  # 0.9 of 1.0: still allowed
    await policy.after(call(), {}, answered(cost=0.3))
    with pytest.raises(QuotaExceeded) as info:
        await policy.before(call(), answered())  # seen at once, before any flush
    err = info.value
    assert err.status == 429 and err.code == "insufficient_quota" and err.type == "insufficient_quota"
    assert "`ci`" in err.message and "$1.20 of $1.00" in err.message
    assert policy.counters["exhausted"] == 1


async def test_keys_without_a_budget_are_never_refused(store: KeyStore) -> None:
    policy = BudgetPolicy(store)
    free = KeyInfo(id="k2", name="free")
    await policy.after(call(), {}, answered(free, cost=1000.0))
    await policy.before(call(), answered(free))
    await policy.aclose()


async def test_spend_is_not_counted_twice_across_a_flush(store: KeyStore) -> None:
    clock = Clock(0.0)
    policy = BudgetPolicy(store, flush_seconds=3600, refresh_seconds=10, clock=clock)
    await store.add_usage([UsageRow("key_1", "mock", 1, 0, 0, 0.5)])  # another worker's spend
    assert await policy.spent("key_1") == pytest.approx(0.5)
    await policy.after(call(), {}, answered(cost=0.2))
    assert await policy.spent("key_1") == pytest.approx(0.7)
    await policy.flush()
    assert await policy.spent("key_1") == pytest.approx(0.7)
    clock.now += 11  # re-read from the store
    assert await policy.spent("key_1") == pytest.approx(0.7)


async def test_other_workers_spend_is_seen_after_the_refresh(store: KeyStore) -> None:
    clock = Clock(0.0)
    policy = BudgetPolicy(store, refresh_seconds=5, clock=clock)
    await policy.before(call(), answered())
    await store.add_usage([UsageRow("key_1", "mock", 1, 0, 0, 2.0)])
    await policy.before(call(), answered())  # cached figure
    clock.now += 5
    with pytest.raises(QuotaExceeded):
        await policy.before(call(), answered())


async def test_a_failed_write_keeps_the_batch_for_the_next_try(store: KeyStore) -> None:
    policy = BudgetPolicy(store, flush_seconds=3600)
    await policy.after(call(), {}, answered(cost=0.1))
    original = store.add_usage

    async def broken(rows: object) -> None:
        raise OSError("disk full")

    store.add_usage = broken  # type: ignore[method-assign]
    with pytest.raises(OSError):
        await policy.flush()
    await policy.after(call(), {}, answered(cost=0.1))
    assert await policy.spent("key_1") == pytest.approx(0.2)
    store.add_usage = original  # type: ignore[method-assign]
    await policy.flush()
    assert [(u.requests, u.spend_usd) for u in await store.usage()] == [(2, pytest.approx(0.2))]
    assert policy.counters["flush_errors"] == 1


async def test_the_background_flush_writes_without_being_asked(store: KeyStore) -> None:
    policy = BudgetPolicy(store, flush_seconds=0.01)
    await policy.after(call(), {}, answered())
    for _ in range(500):
        if await store.usage():
            break
        await asyncio.sleep(0.01)
    assert [u.requests for u in await store.usage()] == [1]
    await policy.aclose()


async def test_aclose_writes_what_is_left(store: KeyStore, tmp_path: Path) -> None:
    policy = BudgetPolicy(store, flush_seconds=3600)
    await policy.after(call(), {}, answered())
    await policy.aclose()
    reopened = KeyStore(str(tmp_path / "state" / "state.db"))
    assert [u.requests for u in await reopened.usage()] == [1]
    await reopened.aclose()


def test_a_tiny_budget_reads_as_what_it_is() -> None:
    from llm_gateway.policies.budget import usd

    assert usd(0.00001) == "$0.00001" and usd(0.0000123) == "$0.0000123"
    assert usd(5) == "$5.00" and usd(0.25) == "$0.25" and usd(1.23456) == "$1.2346" and usd(0) == "$0.00"
