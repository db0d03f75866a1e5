"""Budget reservations: parallel requests on a nearly spent key see each other's estimates, in one process and across
replicas (RedisLedger on a real redis-server); a hold that is never settled lapses; Redis down follows the fail mode."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from llm_gateway.policies.budget import BudgetPolicy
from llm_gateway.policies.budget_ledger import InProcessLedger, RedisLedger
from llm_gateway.policies.key_store import KeyStore, UsageRow
from llm_gateway.policies.redis_counter import LimitStoreUnavailable
from llm_gateway.vocab.errors import QuotaExceeded
from llm_gateway.vocab.types import Call, KeyInfo, RequestContext, Usage
from tests.support.clock import Clock
from tests.support.state_servers import RedisServer

KEY = KeyInfo(id="key_b", name="thrifty", budget_usd=0.05)


def call() -> Call:
    return Call(kind="chat", alias="mock", body={"model": "mock", "messages": []})


def spent_at(value: float):
    async def spent(key_id: str) -> float:
        await asyncio.sleep(0)  # a real store awaits: another request may run meanwhile
        return value

    return spent


async def test_in_process_reservations_count_against_the_budget() -> None:
    ledger = InProcessLedger(spent_at(0.01))
    admitted = [await ledger.reserve("k", f"t{i}", 0.018, 0.05) for i in range(5)]
    assert admitted[:3] == [None, None, None]  # 0.01, 0.028, 0.046: each below the budget when it asked
    assert admitted[3] == pytest.approx(0.064) and admitted[4] == pytest.approx(0.064)
    await ledger.settle("k", "t0", 0.0)
    assert await ledger.reserve("k", "t5", 0.018, 0.05) is None  # the settled hold is gone


async def test_an_unsettled_hold_lapses() -> None:
    clock = Clock(0.0)
    ledger = InProcessLedger(spent_at(0.0), hold_seconds=60, clock=clock)
    assert await ledger.reserve("k", "a", 1.0, 1.0) is None
    assert await ledger.reserve("k", "b", 1.0, 1.0) == 1.0
    clock.now += 61
    assert await ledger.reserve("k", "c", 1.0, 1.0) is None


async def test_parallel_requests_on_a_nearly_spent_key_overshoot_by_at_most_one_estimate(store: KeyStore) -> None:
    key = KeyInfo(id="key_p", name="p", budget_usd=0.05)
    await store.add_usage([UsageRow("key_p", "mock", 1, 0, 0, 0.04)])
    policy = BudgetPolicy(store, flush_seconds=3600, estimate=lambda c: 0.018)

    async def one(i: int) -> bool:
        ctx = RequestContext(request_id=f"r{i}", key=key)
        try:
            await policy.before(call(), ctx)
        except QuotaExceeded:
            return False
        await asyncio.sleep(0.01)  # the upstream answers while the others are admitted or refused
        ctx.usage, ctx.cost_usd = Usage(10, 8), 0.018
        await policy.after(call(), {}, ctx)
        return True

    results = await asyncio.gather(*(one(i) for i in range(40)))
    assert sum(results) == 1  # $0.04 spent: one more fits under $0.05, and it ends $0.008 over, < one estimate
    assert await policy.spent("key_p") == pytest.approx(0.058)
    await policy.aclose()


async def test_a_failed_request_gives_its_reservation_back(store: KeyStore) -> None:
    policy = BudgetPolicy(store, flush_seconds=3600, estimate=lambda c: 0.05)
    first = RequestContext(request_id="a", key=KEY)
    await policy.before(call(), first)
    with pytest.raises(QuotaExceeded):
        await policy.before(call(), RequestContext(request_id="b", key=KEY))
    await policy.abandon(call(), first)  # the pipeline calls this when the upstream fails
    await policy.before(call(), RequestContext(request_id="c", key=KEY))
    await policy.aclose()


def ledger(url: str, spent=None, **kwargs) -> RedisLedger:
    client = Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    return RedisLedger(client, spent or spent_at(0.0), **kwargs)


async def test_replicas_reserve_against_one_total_in_redis(redis_url: str) -> None:
    replicas = [ledger(redis_url, spent_at(0.01)) for _ in range(3)]
    answers = await asyncio.gather(*(replicas[i % 3].reserve("k", f"t{i}", 0.018, 0.05) for i in range(30)))
    assert answers.count(None) == 3  # seeded with the store's $0.01, then 0.028, 0.046, refused from 0.064 on
    admitted = f"t{answers.index(None)}"
    await replicas[0].settle("k", admitted, 0.02)  # the real cost replaces the hold, on any replica
    total = float(await replicas[0].client.get("gw:budget:{k}:total"))
    assert total == pytest.approx(0.01 + 0.018 * 3 + 0.002)
    for r in replicas:
        await r.client.aclose()


async def test_a_redis_hold_that_is_never_settled_lapses(redis_url: str) -> None:
    crashed, alive = ledger(redis_url, hold_seconds=0.05), ledger(redis_url, hold_seconds=0.05)
    assert await crashed.reserve("k2", "lost", 1.0, 1.0) is None  # its replica dies before settling
    assert await alive.reserve("k2", "next", 1.0, 1.0) == 1.0
    await asyncio.sleep(0.1)
    assert await alive.reserve("k2", "later", 1.0, 1.0) is None
    for r in (crashed, alive):
        await r.client.aclose()


async def test_redis_down_refuses_budgeted_requests_when_closed_and_checks_locally_when_open(
    own_redis: RedisServer,
) -> None:
    closed, opened = ledger(own_redis.url), ledger(own_redis.url, fail_mode="open")
    own_redis.stop()
    with pytest.raises(LimitStoreUnavailable) as caught:
        await closed.reserve("k", "a", 0.01, 1.0)
    assert caught.value.status == 503
    assert await opened.reserve("k", "a", 0.6, 1.0) is None
    assert await opened.reserve("k", "b", 0.6, 1.0) is None
    assert await opened.reserve("k", "c", 0.6, 1.0) == pytest.approx(1.2)  # the local ledger still holds
    for r in (closed, opened):
        await r.client.aclose()


class FlakyStore:
    """A spend store that answers once, then is unavailable."""

    location = "flaky"

    def __init__(self) -> None:
        self.calls = 0

    async def spent(self, key_id: str) -> float:
        from llm_gateway.policies.key_store import KeyStoreUnavailable

        self.calls += 1
        if self.calls > 1:
            raise KeyStoreUnavailable("down")
        return 0.04

    async def aclose(self) -> None:
        return None


async def test_a_budget_check_uses_the_last_spend_read_while_the_store_is_away() -> None:
    clock = Clock(0.0)
    store = FlakyStore()
    policy = BudgetPolicy(store, refresh_seconds=1, clock=clock, estimate=lambda c: 0.02)  # type: ignore[arg-type]
    await policy.before(call(), RequestContext(request_id="a", key=KEY))  # 0.04 < 0.05: admitted, 0.06 held
    clock.now += 5  # time to re-read: the store is down now
    with pytest.raises(QuotaExceeded):
        await policy.before(call(), RequestContext(request_id="b", key=KEY))  # checked against 0.04 + the hold
    assert store.calls == 2
    never_read = BudgetPolicy(FlakyStore(), estimate=lambda c: 0.0)  # type: ignore[arg-type]
    never_read.store.calls = 1  # type: ignore[attr-defined]
    from llm_gateway.policies.key_store import KeyStoreUnavailable

    with pytest.raises(KeyStoreUnavailable):
        await never_read.before(call(), RequestContext(request_id="c", key=KEY))
