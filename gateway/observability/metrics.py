"""The gateway's Prometheus metrics: one registry per app, label children cached so a request costs a few increments.

Counts the gateway itself makes (requests, latencies, tokens, spend, upstream errors, denials) are incremented
where they happen. Counts other parts keep as plain ints (the recorder's hits/misses/records/store errors, a
policy's own counters, the router's deployment health) are *synced* into real metrics by delta: at most once a
second while requests come, and at every scrape. Syncing (rather than a read-at-scrape custom
collector) is what makes `gateway serve --workers N` sum them across workers: in prometheus-client's multiprocess
mode only real metrics reach the shared files a scrape aggregates.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Latency buckets in seconds: a gateway answers in milliseconds (replay, cache) up to minutes (long generations).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
OTHER = "other"  # the label value for anything that is not a configured name
NONE = ""  # no key (auth off) / no provider (answered before routing)


def multiprocess_dir() -> str | None:
    """The shared directory of `gateway serve --workers N` (set by the serve command), else None."""
    return os.environ.get(MULTIPROC_ENV) or None


class GatewayMetrics:
    """Every metric the gateway exports, registered in its own registry (tests build many apps in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "gateway_requests",
            "Client requests, one per request, by how they ended.",
            ["endpoint", "alias", "provider", "status_class", "outcome"],
            registry=r,
        )
        self.duration = Histogram(
            "gateway_request_duration_seconds",
            "Whole request latency as the client saw it (streams: until the end).",
            ["endpoint", "alias"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.overhead = Histogram(
            "gateway_overhead_seconds",
            "The gateway's own time: request latency minus time spent waiting on upstreams.",
            ["endpoint"],
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )
        self.upstream = Histogram(
            "gateway_upstream_duration_seconds",
            "Time spent waiting on the upstream that answered.",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.first_token = Histogram(
            "gateway_time_to_first_token_seconds",
            "Streams: time from the request to the first chunk.",
            ["alias"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.stream_duration = Histogram(
            "gateway_stream_duration_seconds",
            "Streams: time from the first chunk to the end of the stream.",
            ["alias"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.prompt_tokens = Counter(
            "gateway_prompt_tokens", "Prompt tokens of answered requests.", ["alias", "key"], registry=r
        )
        self.completion_tokens = Counter(
            "gateway_completion_tokens", "Completion tokens of answered requests.", ["alias", "key"], registry=r
        )
        self.spend = Counter(
            "gateway_spend_usd", "Spend in US dollars at the alias's configured price.", ["alias", "key"], registry=r
        )
        self.replica = Gauge(
            "gateway_replica_info",
            "1, labelled with the replica's name ([state] replica_id, GATEWAY_REPLICA_ID or the host name).",
            ["replica"],
            registry=r,
            multiprocess_mode="max",
        )
        self.in_flight = Gauge(
            "gateway_requests_in_flight",
            "Client requests being served (streams included).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.open_streams = Gauge(
            "gateway_open_streams", "Streams open to clients.", registry=r, multiprocess_mode="livesum"
        )
        self.upstream_errors = Counter(
            "gateway_upstream_errors",
            "Failed upstream attempts (retries included) by provider and kind.",
            ["provider", "kind"],
            registry=r,
        )
        self.denials = Counter(
            "gateway_policy_denials",
            "Requests a policy refused, by policy and error code.",
            ["policy", "code"],
            registry=r,
        )
        self.policy_events = Counter(
            "gateway_policy_events",
            "A policy's own counters (e.g. redactions), by policy and counter.",
            ["policy", "event"],
            registry=r,
        )
        self.recording = {
            name: Counter(f"gateway_recording_{name}", help_text, registry=r)
            for name, help_text in (
                ("hits", "Requests answered from a recording (replay or cache hit)."),
                ("misses", "Recording lookups that found nothing."),
                ("records", "Recordings written."),
                ("store_errors", "Recording store reads or writes that failed."),
            )
        }
        labels = ["alias", "deployment", "provider"]
        self.deployment_healthy = Gauge(
            "gateway_deployment_healthy",
            "1 when the deployment takes traffic, 0 while it cools down.",
            labels,
            registry=r,
            multiprocess_mode="min",
        )
        self.deployment_cooldown = Gauge(
            "gateway_deployment_cooldown_seconds",
            "Seconds left before a cooling deployment takes traffic again.",
            labels,
            registry=r,
            multiprocess_mode="max",
        )
        self.deployment_cooldowns = Counter(
            "gateway_deployment_cooldowns",
            "Times the deployment was taken out of rotation after failures.",
            labels,
            registry=r,
        )
        self.deployment_in_flight = Gauge(
            "gateway_deployment_in_flight",
            "Upstream calls in flight per deployment.",
            labels,
            registry=r,
            multiprocess_mode="livesum",
        )


class MetricBatch:
    """Increments and observations held as plain Python, added to their prometheus-client children in one go.

    A live Histogram.observe takes a lock per value and walks the buckets (~1.2 us); a Counter.inc ~0.5 us; six of
    them per request were a tenth of the gateway's own time. Here a request appends to lists, and flush() (at most
    once a second, and before every scrape) bisects each list into bucket counts and adds each count once.
    """

    __slots__ = ("_counts", "_samples")

    def __init__(self) -> None:
        self._counts: dict[Any, float] = {}  # Counter child -> pending amount
        self._samples: dict[Any, list[float]] = {}  # Histogram child -> pending observations

    def inc(self, child: Any, amount: float = 1.0) -> None:
        counts = self._counts
        counts[child] = counts.get(child, 0.0) + amount

    def observe(self, child: Any, value: float) -> None:
        samples = self._samples.get(child)
        if samples is None:
            self._samples[child] = [value]
        else:
            samples.append(value)

    def flush(self) -> None:
        counts, self._counts = self._counts, {}
        samples, self._samples = self._samples, {}
        for child, amount in counts.items():
            child.inc(amount)
        for child, values in samples.items():
            add_observations(child, values)


def add_observations(child: Any, values: list[float]) -> None:
    """What child.observe(v) for each value does (v lands in the first bucket whose bound is >= v), one add a bucket.

    Reaches prometheus-client's Histogram internals (_upper_bounds, _buckets, _sum; unchanged since 0.4, checked by
    tests/gateway/test_metrics.py against live observe()); without them it falls back to observe().
    """
    bounds = getattr(child, "_upper_bounds", None)
    buckets = getattr(child, "_buckets", None)
    total = getattr(child, "_sum", None)
    if bounds is None or buckets is None or total is None:
        for value in values:
            child.observe(value)
        return
    per_bucket = [0] * len(bounds)
    for value in values:
        per_bucket[bisect_left(bounds, value)] += 1
    total.inc(sum(values))
    for bucket, count in zip(buckets, per_bucket):
        if count:
            bucket.inc(count)


class DeltaSync:
    """Turns monotonic ints kept elsewhere into counter increments, remembering what was already counted."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: dict[Any, int] = {}

    def push(self, key: Any, value: int, inc: Callable[[float], None]) -> None:
        before = self._seen.get(key, 0)
        if value > before:
            inc(value - before)
            self._seen[key] = value
        elif value < before:  # the source was reset (e.g. a new recorder): start over
            self._seen[key] = value



def render(metrics: GatewayMetrics) -> bytes:
    """The exposition text: in multiprocess mode the sum over every worker's files, else this process's registry."""
    directory = multiprocess_dir()
    if directory:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
        return generate_latest(registry)
    return generate_latest(metrics.registry)
