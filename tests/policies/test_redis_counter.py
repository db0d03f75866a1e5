"""RedisCounter against a real redis-server: the in-process buckets' arithmetic, shared and atomic."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from llm_gateway.policies.rate_counter import InProcessCounter, Limit
from llm_gateway.policies.redis_counter import LimitStoreUnavailable, RedisCounter
from tests.support.state_servers import RedisServer


def counter(url: str, **kwargs) -> RedisCounter:
    return RedisCounter(Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5), **kwargs)


async def test_take_is_all_or_nothing_across_buckets(redis_url: str) -> None:
    c = counter(redis_url)
    small, big = Limit("key:a:requests", 2), Limit("alias:m:requests", 100)
    assert not any(r.denied for r in await c.take([(small, 1), (big, 1)]))
    assert not any(r.denied for r in await c.take([(small, 1), (big, 1)]))
    third = await c.take([(small, 1), (big, 1)])
    assert third[0].denied and not third[1].denied
    # the refused request drew nothing from the bucket that had room
    assert 97.9 < third[1].remaining <= 98.01
    await c.aclose()


async def test_readings_match_the_in_process_counter(redis_url: str) -> None:
    c, local = counter(redis_url), InProcessCounter(clock=lambda: 0.0)
    limit = Limit("key:b:tokens", 1000)
    for amount in (300, 500, 400):
        shared, own = await c.take([(limit, amount)]), await local.take([(limit, amount)])
        assert shared[0].denied == own[0].denied
        assert shared[0].remaining == pytest.approx(own[0].remaining, abs=1.0)  # Redis's clock moves a little
    await c.aclose()


async def test_settle_corrects_the_bucket_and_may_leave_debt(redis_url: str) -> None:
    c = counter(redis_url)
    limit = Limit("key:c:tokens", 100)
    await c.take([(limit, 50)])
    await c.settle(limit, 100)  # the answer was far longer than estimated: queued...
    await c.settle(limit, 20)
    assert not (await c.take([(limit, 1)]))[0].denied  # ...not yet written
    await c.flush()  # both in one round trip
    reading = (await c.take([(limit, 1)]))[0]
    assert reading.denied and reading.remaining < 0
    await c.settle(limit, -200)  # and a refund is capped at the bucket's size
    await c.flush()
    assert (await c.take([(limit, 100)]))[0].denied is False
    await c.aclose()


async def test_parallel_takes_from_many_clients_admit_exactly_the_limit(redis_url: str) -> None:
    clients = [counter(redis_url) for _ in range(4)]
    limit = Limit("alias:x:requests", 10)
    results = await asyncio.gather(*(clients[i % 4].take([(limit, 1)]) for i in range(200)))
    assert sum(not r[0].denied for r in results) == 10
    for c in clients:
        await c.aclose()


async def test_closed_mode_refuses_with_503_when_redis_is_down(own_redis: RedisServer) -> None:
    c = counter(own_redis.url)
    limit = Limit("key:d:requests", 5)
    assert not (await c.take([(limit, 1)]))[0].denied
    own_redis.stop()
    with pytest.raises(LimitStoreUnavailable) as caught:
        await c.take([(limit, 1)])
    assert caught.value.status == 503 and caught.value.code == "rate_limit_store_unavailable"
    own_redis.start()  # recovers without a new client: the pool reconnects
    assert not (await c.take([(limit, 1)]))[0].denied
    assert c.counters["store_errors"] == 1
    await c.aclose()


async def test_open_mode_admits_and_counts_when_redis_is_down(own_redis: RedisServer) -> None:
    c = counter(own_redis.url, fail_mode="open")
    own_redis.stop()
    limit = Limit("key:e:requests", 1)
    for _ in range(3):
        assert not (await c.take([(limit, 1)]))[0].denied
    assert c.counters["admitted_unchecked"] == 3
    await c.settle(limit, 5)
    await c.flush()  # dropped, not raised
    await c.aclose()


async def test_a_bucket_key_expires_once_it_would_be_full(redis_url: str) -> None:
    c = counter(redis_url)
    await c.take([(Limit("key:f:requests", 60), 1)])  # refills 1 a second: full again after 1 s
    ttl = await c.client.pttl("gw:rl:key:f:requests")
    assert 1000 < ttl <= 2000
    await c.aclose()


async def test_queued_settles_are_written_by_themselves_shortly_after(redis_url: str) -> None:
    c = counter(redis_url)
    limit = Limit("key:g:tokens", 100)
    await c.take([(limit, 10)])
    await c.settle(limit, 80)
    for _ in range(100):  # written after SETTLE_DELAY_SECONDS, with no further call
        level = await c.client.hget("gw:rl:key:g:tokens", "level")
        if float(level) < 20:
            break
        await asyncio.sleep(0.02)
    assert float(level) < 20
    await c.aclose()
