"""Rate counters shared by every worker and replica: the in-process token buckets' arithmetic in Redis, one Lua script
per operation.

`take` runs one script over every bucket a request draws on, so it is all or nothing across them and atomic across
the fleet: 200 parallel requests at rpm = 10 on any number of replicas let exactly 10 through. The clock is Redis's
own (`TIME`), so replicas whose clocks disagree still agree on the buckets. A bucket's key expires once it would have
refilled anyway, so idle keys cost no memory and an expired bucket reads as the full one it would be.

When Redis cannot be reached (or answers too slowly) the configured fail mode decides: `closed` refuses the request
with a 503 whose code says the limit store is unavailable; `open` admits it, logs it (once a second at most) and
counts it. The client library reconnects on the next call, so the gateway recovers by itself when Redis is back.
Takes that arrive while one is on the wire go together in the next pipeline (each script still atomic), and settles
(the real token count replacing the estimate) are queued and written in one pipeline every 50 ms, off the request's
path: under load one round trip serves many requests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from redis.exceptions import RedisError

from llm_gateway.policies.rate_counter import SECONDS_PER_WINDOW, Limit, Reading
from llm_gateway.vocab.errors import ServiceUnavailable

log = logging.getLogger("gateway.policy")
# No answer from Redis: refused, reset, timed out, or an error reply (e.g. loading its data after a restart).
NO_ANSWER: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
KEY_PREFIX = "gw:rl:"
_MAX_BATCH = 256  # takes per pipeline
SETTLE_DELAY_SECONDS = 0.05  # corrections wait this long for others to share their round trip

# KEYS: bucket keys; ARGV: per_minute, amount for each key in turn, then seconds per window.
# Returns level and wait (seconds short) per key, as strings (Lua numbers would come back truncated to integers).
TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[#ARGV])
local levels, waits, admitted = {}, {}, true
for i = 1, #KEYS do
  local size, amount = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local rate = size / window
  local held = redis.call('HMGET', KEYS[i], 'level', 'at')
  local level = size
  if held[1] then
    level = math.min(size, tonumber(held[1]) + (now - tonumber(held[2])) * rate)
  end
  local wait = 0
  if level < amount then
    wait = (amount - level) / rate
    admitted = false
  end
  levels[i], waits[i] = level, wait
end
local out = {}
for i = 1, #KEYS do
  local size = tonumber(ARGV[2 * i - 1])
  if admitted then levels[i] = levels[i] - tonumber(ARGV[2 * i]) end
  redis.call('HSET', KEYS[i], 'level', tostring(levels[i]), 'at', tostring(now))
  redis.call('PEXPIRE', KEYS[i], math.ceil(((size - levels[i]) / (size / window) + 1) * 1000))
  out[2 * i - 1], out[2 * i] = tostring(levels[i]), tostring(waits[i])
end
return out
"""

# KEYS[1]: the bucket; ARGV: per_minute, amount (negative gives back), seconds per window.
SETTLE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local size, amount, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local rate = size / window
local held = redis.call('HMGET', KEYS[1], 'level', 'at')
local level = size
if held[1] then level = math.min(size, tonumber(held[1]) + (now - tonumber(held[2])) * rate) end
level = level - amount
redis.call('HSET', KEYS[1], 'level', tostring(level), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(((size - level) / rate + 1) * 1000))
return tostring(level)
"""


class LimitStoreUnavailable(ServiceUnavailable):
    """Redis, where the rate limits live, did not answer and the fail mode is `closed`."""

    code = "rate_limit_store_unavailable"


class RedisCounter:
    """A RateCounter on a redis.asyncio client (given, so one client serves the counter and the budget ledger)."""

    def __init__(self, client: Any, *, fail_mode: str = "closed", location: str = "redis") -> None:
        if fail_mode not in ("closed", "open"):
            raise ValueError(f"fail_mode must be 'closed' or 'open', got {fail_mode!r}")
        self.client = client
        self.fail_mode = fail_mode
        self.location = location
        self._take = client.register_script(TAKE)  # EVALSHA, and EVAL again after a Redis restart lost the script
        self._settle = client.register_script(SETTLE)
        self.counters = {"store_errors": 0, "admitted_unchecked": 0}
        self._last_logged = 0.0
        self._pending: dict[str, tuple[Limit, float]] = {}  # bucket key -> (limit, correction not yet written)
        self._flusher: asyncio.Task[None] | None = None
        self._queued: list[tuple[list[str], list[float], asyncio.Future[Any]]] = []  # takes waiting for a batch
        self._sending = False

    async def take(self, demands: Sequence[tuple[Limit, float]]) -> list[Reading]:
        keys = [KEY_PREFIX + limit.key for limit, _ in demands]
        args: list[float] = []
        for limit, amount in demands:
            args += (limit.per_minute, amount)
        args.append(SECONDS_PER_WINDOW)
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queued.append((keys, args, answer))
        if not self._sending:
            self._sending = True
            asyncio.get_running_loop().create_task(self._send_takes())
        try:
            out = await answer
        except NO_ANSWER as exc:
            return self._unreachable(demands, exc)
        readings = []
        for i, (limit, _) in enumerate(demands):
            level, wait = float(out[2 * i]), float(out[2 * i + 1])
            readings.append(Reading(limit, level, (limit.per_minute - level) / limit.rate, wait))
        return readings

    async def _send_takes(self) -> None:
        """Every take queued while the previous batch was on the wire goes in one pipeline: under load a round trip
        (and redis-py's per-call cost) serves many requests. Each script still runs atomically on its own."""
        try:
            while self._queued:
                batch, self._queued = self._queued[:_MAX_BATCH], self._queued[_MAX_BATCH:]
                try:
                    if len(batch) == 1:
                        keys, args, answer = batch[0]
                        results: list[Any] = [await self._take(keys=keys, args=args)]
                    else:
                        async with self.client.pipeline(transaction=False) as pipe:
                            for keys, args, _ in batch:
                                await self._take(keys=keys, args=args, client=pipe)
                            results = await pipe.execute(raise_on_error=False)
                except NO_ANSWER as exc:
                    results = [exc] * len(batch)
                for (_, _, answer), result in zip(batch, results, strict=True):
                    if answer.done():
                        continue  # its request was cancelled (client gone)
                    if isinstance(result, BaseException):
                        answer.set_exception(result)
                    else:
                        answer.set_result(result)
        finally:
            self._sending = False

    async def settle(self, limit: Limit, amount: float) -> None:
        """Queued, not awaited: corrections are summed per bucket and written together in one pipeline a moment
        later, so a request's answer never waits on Redis a second time."""
        held = self._pending.get(limit.key)
        self._pending[limit.key] = (limit, amount + (held[1] if held is not None else 0.0))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(SETTLE_DELAY_SECONDS)
        await self.flush()

    async def flush(self) -> None:
        """Write the queued corrections (one script call each, one round trip for all)."""
        pending, self._pending = self._pending, {}
        if not pending:
            return
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for limit, amount in pending.values():
                    await self._settle(keys=[KEY_PREFIX + limit.key], args=[limit.per_minute, amount,
                                                                             SECONDS_PER_WINDOW], client=pipe)
                await pipe.execute()
        except NO_ANSWER as exc:  # the requests have been answered: corrections that cannot be written are dropped
            self.counters["store_errors"] += 1
            self._log(f"rate-limit corrections of {len(pending)} bucket(s) dropped: {exc}")

    def _unreachable(self, demands: Sequence[tuple[Limit, float]], exc: Exception) -> list[Reading]:
        self.counters["store_errors"] += 1
        if self.fail_mode == "closed":
            self._log(f"rate-limit store {self.location} unreachable, refusing requests (fail mode closed): {exc}")
            raise LimitStoreUnavailable(
                "The gateway cannot check rate limits: its limit store is unavailable. Try again shortly."
            ) from exc
        self.counters["admitted_unchecked"] += 1
        self._log(f"rate-limit store {self.location} unreachable, admitting unchecked (fail mode open): {exc}")
        return [Reading(limit, float(limit.per_minute), 0.0) for limit, _ in demands]

    def _log(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_logged >= 1.0:  # a burst against a dead server logs once a second, not per request
            self._last_logged = now
            log.error("%s", message)

    async def aclose(self) -> None:
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            flusher.cancel()
            try:
                await flusher
            except asyncio.CancelledError:
                pass
        await self.flush()
        await self.client.aclose()
