"""Rate counters: per-minute budgets of requests or tokens, behind a small interface a shared store can implement.

Each limit is a token bucket that holds at most `per_minute` and refills at `per_minute / 60` a second, so a client
may burst up to its limit and then goes on at the limit's pace (OpenAI's own limits behave this way). `take()` is all
or nothing across every bucket a request draws on, so a denied request consumes nothing and the counters stay right
however hard a burst hits them. `settle()` corrects a bucket once the real figure is known (real tokens after the
call); the level may go below zero, which is debt the refill pays back before the next request is admitted.

`InProcessCounter` keeps the buckets in this worker's memory; with several workers each enforces its own share. A
shared implementation (Redis with a Lua script doing the same arithmetic) only has to implement `RateCounter`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

SECONDS_PER_WINDOW = 60.0


@dataclass(frozen=True, slots=True)
class Limit:
    """One bucket: `key` names what it counts (e.g. "key:k_1:tokens"), `per_minute` is its size."""

    key: str
    per_minute: int
    rate: float = field(init=False, compare=False)  # per second; read several times a request, so computed once
    unit: str = field(init=False, compare=False)  # "requests" or "tokens": the last word of the key

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate", self.per_minute / SECONDS_PER_WINDOW)
        object.__setattr__(self, "unit", self.key.rpartition(":")[2])


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs a setattr call per field, per request
class Reading:
    """A bucket as seen by one request: what is left, when it is full again, and how long to wait if denied."""

    limit: Limit
    remaining: float
    reset_seconds: float
    retry_after: float = 0.0  # > 0: this bucket did not have enough

    @property
    def denied(self) -> bool:
        return self.retry_after > 0


class RateCounter(Protocol):
    async def take(self, demands: Sequence[tuple[Limit, float]]) -> list[Reading]:
        """Draw `amount` from every bucket if each has enough; otherwise draw nothing. One reading per demand."""
        ...

    async def settle(self, limit: Limit, amount: float) -> None:
        """Draw `amount` more (negative: give back) without checking, once the real cost is known."""
        ...

    async def aclose(self) -> None: ...


class InProcessCounter:
    """Token buckets in a dict. Every method runs without awaiting, so on one event loop each call is atomic."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, list[float]] = {}  # key -> [level, time of level]

    def _level(self, limit: Limit, now: float) -> list[float]:
        bucket = self._buckets.get(limit.key)
        if bucket is None:
            bucket = self._buckets[limit.key] = [float(limit.per_minute), now]
        else:
            bucket[0] = min(float(limit.per_minute), bucket[0] + (now - bucket[1]) * limit.rate)
            bucket[1] = now
        return bucket

    async def take(self, demands: Sequence[tuple[Limit, float]]) -> list[Reading]:
        now = self._clock()
        levels = []
        admitted = True
        for limit, amount in demands:
            bucket = self._level(limit, now)
            wait = (amount - bucket[0]) / limit.rate if bucket[0] < amount else 0.0
            admitted = admitted and not wait
            levels.append((limit, amount, bucket, wait))
        readings = []
        for limit, amount, bucket, wait in levels:
            if admitted:
                bucket[0] -= amount
            readings.append(Reading(limit, bucket[0], (limit.per_minute - bucket[0]) / limit.rate, wait))
        return readings

    async def settle(self, limit: Limit, amount: float) -> None:
        bucket = self._level(limit, self._clock())
        bucket[0] -= amount

    async def aclose(self) -> None:
        self._buckets.clear()
