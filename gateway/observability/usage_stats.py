"""Usage over time for the /ui page and `gateway stats`: requests, latency percentiles, tokens and spend per bucket.

Kept in memory per worker in fixed time buckets (a ring), fed once per request by the Observer; Prometheus is the
place for long-term, all-worker history, this is the at-a-glance view of the last hour.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

_SAMPLES_PER_BUCKET = 2000  # latencies kept per bucket for its percentiles; enough for p95 to be stable
_SAMPLES_TOTAL = 10000  # latencies kept for the all-time percentiles (the most recent ones)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..1) of unsorted values; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


class _Tally:
    """Counts of one group (all traffic, one alias or one key) in one span of time."""

    __slots__ = ("cap", "completion_tokens", "errors", "latencies", "prompt_tokens", "requests", "spend_usd")

    def __init__(self, cap: int) -> None:
        self.requests = 0
        self.errors = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.spend_usd = 0.0
        self.latencies: deque[float] = deque(maxlen=cap)
        self.cap = cap

    def add(self, error: bool, latency: float, prompt: int, completion: int, cost: float) -> None:
        self.requests += 1
        self.errors += error
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.spend_usd += cost
        self.latencies.append(latency)

    def view(self) -> dict[str, Any]:
        latencies = list(self.latencies)
        return {
            "requests": self.requests,
            "errors": self.errors,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "spend_usd": round(self.spend_usd, 8),
            "p50_seconds": _round(percentile(latencies, 0.50)),
            "p95_seconds": _round(percentile(latencies, 0.95)),
        }


class _Bucket:
    __slots__ = ("all", "by_alias", "by_key", "closed_view", "start")

    def __init__(self, start: float) -> None:
        self.start = start
        self.all = _Tally(_SAMPLES_PER_BUCKET)
        self.by_alias: dict[str, _Tally] = {}
        self.by_key: dict[str, _Tally] = {}
        self.closed_view: dict[str, Any] | None = None  # a past bucket never changes: its view is computed once

    def view(self) -> dict[str, Any]:
        return {
            "t": self.start,
            **self.all.view(),
            "by_alias": {name: t.view() for name, t in self.by_alias.items()},
            "by_key": {name: t.view() for name, t in self.by_key.items()},
        }


class UsageStats:
    def __init__(self, bucket_seconds: float = 10.0, keep: int = 360, clock: Callable[[], float] = time.time) -> None:
        self.bucket_seconds = bucket_seconds
        self.buckets: deque[_Bucket] = deque(maxlen=keep)
        self.total = _Tally(_SAMPLES_TOTAL)
        self.total_by_alias: dict[str, _Tally] = {}
        self.total_by_key: dict[str, _Tally] = {}
        self.outcomes: dict[str, int] = {}
        self._clock = clock

    def add(
        self, alias: str, key: str, outcome: str, error: bool, latency: float, prompt: int, completion: int, cost: float
    ) -> None:
        """One finished request; `error` when it failed (an error status, or a stream that ended in an error)."""
        now = self._clock()
        bucket = self.buckets[-1] if self.buckets else None
        if bucket is None or now >= bucket.start + self.bucket_seconds:
            bucket = _Bucket(now - now % self.bucket_seconds)
            self.buckets.append(bucket)
        args = (error, latency, prompt, completion, cost)
        self.total.add(*args)
        bucket.all.add(*args)
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        if alias:
            _group(self.total_by_alias, alias, _SAMPLES_TOTAL).add(*args)
            _group(bucket.by_alias, alias, _SAMPLES_PER_BUCKET).add(*args)
        if key:
            _group(self.total_by_key, key, _SAMPLES_TOTAL).add(*args)
            _group(bucket.by_key, key, _SAMPLES_PER_BUCKET).add(*args)

    def snapshot(self) -> dict[str, Any]:
        return {
            "bucket_seconds": self.bucket_seconds,
            "totals": {**self.total.view(), "outcomes": dict(self.outcomes)},
            "by_alias": {name: t.view() for name, t in sorted(self.total_by_alias.items())},
            "by_key": {name: t.view() for name, t in sorted(self.total_by_key.items())},
            "series": [self._view(b, closed=i < len(self.buckets) - 1) for i, b in enumerate(self.buckets)],
        }

    @staticmethod
    def _view(bucket: _Bucket, closed: bool) -> dict[str, Any]:
        if not closed:
            return bucket.view()
        if bucket.closed_view is None:
            bucket.closed_view = bucket.view()
        return bucket.closed_view


def _group(groups: dict[str, _Tally], name: str, cap: int) -> _Tally:
    tally = groups.get(name)
    if tally is None:
        tally = groups[name] = _Tally(cap)
    return tally


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
