"""Budget reservations: admission holds an estimate of a request's cost against the key's spend; the real cost
replaces it when the request settles. So N parallel requests on a nearly spent key cannot all pass the check before
any of them has cost anything: once spend + held reaches the budget the next request is refused, and the key ends at
most one request's estimate (plus the estimates' error) above its budget.

A reservation that is never settled (its replica killed mid-request) lapses after `hold_seconds`, so a crash cannot
lock a key out for good. `InProcessLedger` holds them in this worker (the single-process default); `RedisLedger`
holds the key's total (spend + held) in Redis, seeded from the spend store when Redis does not have it, so every
replica reserves against the same figure. Both answer `reserve()` with None (admitted) or the total that refused it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from llm_gateway.policies.redis_counter import NO_ANSWER, LimitStoreUnavailable

HOLD_SECONDS = 600.0  # longer than any request may run (the router's deadline, a long stream)
TOTAL_TTL_SECONDS = 86_400  # an idle key's total is dropped from Redis after a day and re-read from the store
StoredSpend = Callable[[str], Awaitable[float]]


class Ledger(Protocol):
    async def reserve(self, key_id: str, ticket: str, estimate: float, budget: float) -> float | None: ...

    async def settle(self, key_id: str, ticket: str, cost: float) -> None: ...

    async def aclose(self) -> None: ...


class InProcessLedger:
    """Reservations in a dict; the spend they add to comes from `spent(key_id)` (the store plus unflushed spend)."""

    def __init__(self, spent: StoredSpend, *, hold_seconds: float = HOLD_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._spent = spent
        self.hold_seconds = hold_seconds
        self._clock = clock
        self._held: dict[str, dict[str, tuple[float, float]]] = {}  # key id -> ticket -> (amount, lapses at)

    def held(self, key_id: str) -> float:
        tickets = self._held.get(key_id)
        if not tickets:
            return 0.0
        now = self._clock()
        for ticket in [t for t, (_, until) in tickets.items() if until <= now]:
            del tickets[ticket]
        return sum(amount for amount, _ in tickets.values())

    async def reserve(self, key_id: str, ticket: str, estimate: float, budget: float) -> float | None:
        spent = await self._spent(key_id)
        total = spent + self.held(key_id)  # read after the await: no other reservation can slip in between
        if total >= budget:
            return total
        self._held.setdefault(key_id, {})[ticket] = (estimate, self._clock() + self.hold_seconds)
        return None

    async def settle(self, key_id: str, ticket: str, cost: float) -> None:
        """Drop the hold; the real cost reaches `spent` through the budget policy's own batch."""
        tickets = self._held.get(key_id)
        if tickets is not None:
            tickets.pop(ticket, None)
            if not tickets:
                del self._held[key_id]

    async def aclose(self) -> None:
        self._held.clear()


# KEYS: total, held (zset ticket -> lapses at), amounts (hash ticket -> estimate).
# ARGV: ticket, estimate, budget, hold seconds, ttl. Returns "init" when the total must be seeded, "ok" or the total.
RESERVE = """
local total = redis.call('GET', KEYS[1])
if not total then return 'init' end
total = tonumber(total)
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, ticket in ipairs(lapsed) do
  total = total - tonumber(redis.call('HGET', KEYS[3], ticket) or '0')
  redis.call('HDEL', KEYS[3], ticket)
end
if #lapsed > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now) end
local ttl = tonumber(ARGV[5])
if total >= tonumber(ARGV[3]) then
  redis.call('SET', KEYS[1], tostring(total), 'EX', ttl)
  return tostring(total)
end
redis.call('SET', KEYS[1], tostring(total + tonumber(ARGV[2])), 'EX', ttl)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('EXPIRE', KEYS[3], ttl)
return 'ok'
"""

# KEYS as above; ARGV: ticket, real cost. The hold (if it has not lapsed) is replaced by the cost.
SETTLE = """
local held = redis.call('HGET', KEYS[3], ARGV[1])
local change = tonumber(ARGV[2]) - tonumber(held or '0')
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('INCRBYFLOAT', KEYS[1], tostring(change)) end
return 'ok'
"""


class RedisLedger:
    """One total per key in Redis, shared by every replica. Redis unreachable: 503 (closed) or the in-process
    ledger's answer (open), like the rate limits."""

    def __init__(self, client: Any, spent: StoredSpend, *, fail_mode: str = "closed",
                 hold_seconds: float = HOLD_SECONDS) -> None:
        self.client = client
        self._spent = spent
        self.fail_mode = fail_mode
        self.hold_seconds = hold_seconds
        self._reserve = client.register_script(RESERVE)
        self._settle = client.register_script(SETTLE)
        self._fallback = InProcessLedger(spent, hold_seconds=hold_seconds)
        self.counters = {"store_errors": 0}

    @staticmethod
    def _keys(key_id: str) -> list[str]:
        tag = "{" + key_id + "}"  # one hash slot per key, should the Redis be a cluster
        return [f"gw:budget:{tag}:total", f"gw:budget:{tag}:held", f"gw:budget:{tag}:amounts"]

    async def reserve(self, key_id: str, ticket: str, estimate: float, budget: float) -> float | None:
        keys = self._keys(key_id)
        args = [ticket, repr(estimate), repr(budget), self.hold_seconds, TOTAL_TTL_SECONDS]
        try:
            answer = await self._reserve(keys=keys, args=args)
        except NO_ANSWER as exc:
            return await self._unreachable(exc, key_id, ticket, estimate, budget)
        if answer in (b"init", "init"):
            seed = await self._spent(key_id)  # the store's own failure is its own 503
            try:
                await self.client.set(keys[0], repr(seed), nx=True, ex=TOTAL_TTL_SECONDS)
                answer = await self._reserve(keys=keys, args=args)
            except NO_ANSWER as exc:
                return await self._unreachable(exc, key_id, ticket, estimate, budget)
        if answer in (b"ok", "ok"):
            return None
        return float(answer)

    async def _unreachable(self, exc: Exception, key_id: str, ticket: str, estimate: float, budget: float
                           ) -> float | None:
        self.counters["store_errors"] += 1
        if self.fail_mode == "closed":
            raise LimitStoreUnavailable(
                "The gateway cannot check the key's budget: its limit store is unavailable. Try again shortly."
            ) from exc
        return await self._fallback.reserve(key_id, ticket, estimate, budget)

    async def settle(self, key_id: str, ticket: str, cost: float) -> None:
        await self._fallback.settle(key_id, ticket, cost)
        try:
            await self._settle(keys=self._keys(key_id), args=[ticket, repr(cost)])
        except NO_ANSWER:  # the hold lapses by itself; the spend itself is in the store's batch either way
            self.counters["store_errors"] += 1

    async def aclose(self) -> None:
        await self._fallback.aclose()
        await self.client.aclose()

