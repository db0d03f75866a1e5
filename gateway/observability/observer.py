"""What the gateway tells its operators about each request: metrics, the request log and the usage figures.

The server calls `start()` when a request arrives, `stream_opened()` when a stream's first chunk is ready and
`finish()` once per client request (for a stream when it ends); each reads the request's typed facts on its context.
finish() must stay cheap: label children are cached per label tuple, the log line is a dict handed to a queue, and
nothing here may fail a request. What it syncs from elsewhere (recorder counters, deployment health, policy
counters) it is handed by the composition root as plain sources: it knows no gateway, router or pipeline.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from llm_gateway.config.settings import Settings
from llm_gateway.observability.metrics import (
    OTHER,
    DeltaSync,
    GatewayMetrics,
    MetricBatch,
    multiprocess_dir,
    render,
)
from llm_gateway.observability.request_log import RequestLog
from llm_gateway.observability.tracing import TRACEPARENT
from llm_gateway.observability.usage_stats import UsageStats
from llm_gateway.vocab.errors import GatewayError
from llm_gateway.vocab.types import Policy, RequestContext

log = logging.getLogger("gateway.observe")
_STATUS_CLASS = {n: f"{n}xx" for n in range(1, 6)}
_RECORDER_COUNTERS = ("hits", "misses", "records", "store_errors")
_SLOW_SYNC_SECONDS = 1.0  # recorder, deployment health and policy counters: refreshed this often and per scrape


Health = Callable[[], list[dict[str, Any]]]  # one row per deployment: alias, deployment, provider, healthy, ...


def _no_health() -> list[dict[str, Any]]:
    return []


class Observer:
    def __init__(
        self,
        settings: Settings,
        *,
        recorder_counters: Any = None,
        health: Health = _no_health,
        policies: Sequence[Policy] = (),
        log_stream: Any = None,
    ) -> None:
        """`recorder_counters`, `health` and `policies` are read at sync time (once a second and per scrape)."""
        self.settings = settings
        self.recorder_counters = recorder_counters
        self.health = health
        self.policies = policies  # the pipeline's own list: read live
        self.enabled = settings.metrics.enabled
        self.metrics = GatewayMetrics()
        self.usage = UsageStats()
        self.request_log = RequestLog(settings.logging, log_stream)
        self.aliases = frozenset(settings.models)
        self.providers = frozenset(settings.providers)
        self.in_flight = 0
        self.open_streams = 0
        self.started_at = time.time()
        self.replica = settings.state.replica_id
        self.tracing: Any = None  # Tracing (observability/tracing.py) when [tracing] is on
        self.fleet: Any = None  # FleetStats (observability/fleet_stats.py) when the figures are shared through Redis
        if self.enabled:
            self.metrics.replica.labels(self.replica).set(1)
        self._request_children: dict[tuple[str, ...], tuple[Any, ...]] = {}
        self._token_children: dict[tuple[str, str], tuple[Any, Any, Any]] = {}
        self._stream_children: dict[str, tuple[Any, Any]] = {}
        self._error_children: dict[tuple[str, str], Any] = {}
        self._synced = DeltaSync()
        self._batch = MetricBatch()  # request counts and latencies, added to the metrics at least once a second
        self._recorder_seen: tuple[Any, ...] = ()
        # One process: the live gauges read our own ints at scrape time (no per-request gauge work). Several workers:
        # each worker's gauge lives in the shared files, so it is moved per request and summed over live workers.
        self._move_gauges = multiprocess_dir() is not None
        if self.enabled and not self._move_gauges:
            self.metrics.in_flight.set_function(lambda: self.in_flight)
            self.metrics.open_streams.set_function(lambda: self.open_streams)
        self._next_slow_sync = 0.0
        self._failures = 0

    # per request

    def start(self, ctx: RequestContext, endpoint: str) -> None:
        if self.fleet is not None and self.in_flight == 0:
            self.fleet.start()  # once: it ignores later calls
        ctx.endpoint = endpoint
        if self.tracing is not None:
            self.tracing.begin(ctx)
        else:
            given = ctx.headers.get("traceparent")
            if given and TRACEPARENT.fullmatch(given):
                ctx.traceparent = given  # no span of ours: the upstream joins the client's trace
        ctx.started = time.perf_counter()
        self.in_flight += 1
        if self._move_gauges and self.enabled:
            self.metrics.in_flight.inc()

    def stream_opened(self, ctx: RequestContext) -> None:
        """The first chunk of a stream is ready to go out: time to first token ends, the stream's life begins."""
        ctx.stream_opened = time.perf_counter()
        self.open_streams += 1
        if self._move_gauges and self.enabled:
            self.metrics.open_streams.inc()

    def upstream_error(self, provider: str, kind: str) -> None:
        """One failed upstream attempt (called by the router, retries included)."""
        if not self.enabled:
            return
        key = (provider if provider in self.providers else OTHER, kind or "error")
        child = self._error_children.get(key)
        if child is None:
            child = self._error_children[key] = self.metrics.upstream_errors.labels(*key)
        child.inc()

    def finish(self, ctx: RequestContext, status: int) -> None:
        """Called once per client request: when the JSON answer is ready, or when a stream ends."""
        try:
            self._finish(ctx, status)
        except Exception:
            self._failures += 1
            if self._failures <= 3:  # say it, without flooding the log under load
                log.exception("observing request %s failed", ctx.request_id)

    def _finish(self, ctx: RequestContext, status: int) -> None:
        if ctx.span is not None:
            self.tracing.end(ctx, status)
        now = time.perf_counter()
        started = ctx.started or now
        total = now - started
        opened = ctx.stream_opened
        self.in_flight -= 1
        if opened is not None:
            self.open_streams -= 1
        endpoint = ctx.endpoint
        alias = ctx.alias
        if alias and alias not in self.aliases:
            alias = OTHER
        provider = ctx.provider if not ctx.provider or ctx.provider in self.providers else OTHER
        outcome = "denied" if ctx.denied_by else ctx.outcome
        key_name = ctx.key.name if ctx.key is not None else ""
        usage = ctx.usage
        prompt = usage.prompt_tokens if usage is not None else 0
        completion = usage.completion_tokens if usage is not None else 0
        error = ctx.error
        # gateway time: all of it minus the upstream wait; for a stream, up to its first chunk (after that the
        # pace is the upstream's)
        overhead = max(0.0, (opened if opened is not None else now) - started - ctx.upstream_seconds)
        if self.enabled:
            self._count(
                ctx, endpoint, alias, provider, status, outcome, key_name, total, overhead, started, opened, now
            )
            failed = status >= 400 or outcome == "error"  # a stream that broke after its 200
            self.usage.add(alias, key_name, outcome, failed, total, prompt, completion, ctx.cost_usd)
            if outcome == "denied":
                self._count_denial(ctx.denied_by, error)
            if self._move_gauges:
                self._batch.flush()  # several workers: a scrape in another worker reads what is in the shared files
            if now >= self._next_slow_sync:
                self._next_slow_sync = now + _SLOW_SYNC_SECONDS
                self._batch.flush()
                self._sync_recorder()
                self._sync_slow()
        if self.request_log.enabled:
            self.request_log.write(
                self._log_entry(ctx, endpoint, alias, status, outcome, key_name, total, started, opened, error)
            )

    def route_error(self, ctx: RequestContext, endpoint: str, status: int, error: BaseException) -> None:
        """An error answered on a Starlette route (/v1/models, the operator routes, an unknown URL): its request log
        line, with the one id the answer carries."""
        ctx.error = error
        if not self.request_log.enabled:
            return
        now = time.perf_counter()
        started = ctx.started or now
        outcome = "denied" if ctx.denied_by else "error"
        key_name = ctx.key.name if ctx.key is not None else ""
        self.request_log.write(
            self._log_entry(ctx, endpoint, ctx.alias, status, outcome, key_name, now - started, started, None, error)
        )

    def _count(
        self,
        ctx: RequestContext,
        endpoint: str,
        alias: str,
        provider: str,
        status: int,
        outcome: str,
        key_name: str,
        total: float,
        overhead: float,
        started: float,
        opened: float | None,
        now: float,
    ) -> None:
        m = self.metrics
        labels = (endpoint, alias, provider, _STATUS_CLASS.get(status // 100, "other"), outcome)
        children = self._request_children.get(labels)
        if children is None:
            children = self._request_children[labels] = (
                m.requests.labels(*labels),
                m.duration.labels(endpoint, alias),
                m.overhead.labels(endpoint),
                m.upstream.labels(provider) if provider else None,
            )
        requests, duration, overhead_child, upstream = children
        batch = self._batch
        batch.inc(requests)
        batch.observe(duration, total)
        batch.observe(overhead_child, overhead)
        if self._move_gauges:
            m.in_flight.dec()
        if upstream is not None and ctx.upstream_seconds:
            batch.observe(upstream, ctx.upstream_seconds)
        if opened is not None:
            if self._move_gauges:
                m.open_streams.dec()
            stream = self._stream_children.get(alias)
            if stream is None:
                stream = self._stream_children[alias] = (m.first_token.labels(alias), m.stream_duration.labels(alias))
            batch.observe(stream[0], opened - started)
            batch.observe(stream[1], now - opened)
        usage = ctx.usage
        if usage is not None and alias:
            tokens = self._token_children.get((alias, key_name))
            if tokens is None:
                tokens = self._token_children[(alias, key_name)] = (
                    m.prompt_tokens.labels(alias, key_name),
                    m.completion_tokens.labels(alias, key_name),
                    m.spend.labels(alias, key_name),
                )
            batch.inc(tokens[0], usage.prompt_tokens)
            batch.inc(tokens[1], usage.completion_tokens)
            if ctx.cost_usd:
                batch.inc(tokens[2], ctx.cost_usd)

    def _count_denial(self, policy: str, error: Any) -> None:
        known = any(p.name == policy for p in self.policies)  # denials are rare: no cached set to keep in step
        policy = policy if known else (OTHER if policy else "unknown")
        code = getattr(error, "code", None) or "denied"
        if not isinstance(error, GatewayError):
            code = "denied"
        self.metrics.denials.labels(policy, str(code)).inc()

    def _log_entry(
        self,
        ctx: RequestContext,
        endpoint: str,
        alias: str,
        status: int,
        outcome: str,
        key_name: str,
        total: float,
        started: float,
        opened: float | None,
        error: Any,
    ) -> dict[str, Any]:
        usage = ctx.usage
        entry: dict[str, Any] = {
            "request_id": ctx.request_id,
            "replica": self.replica,
            "endpoint": endpoint,
            "alias": alias,
            "provider": ctx.provider,
            "deployment": ctx.deployment,
            "status": status,
            "outcome": outcome,
            "latency_seconds": round(total, 6),
            "upstream_seconds": round(ctx.upstream_seconds, 6),
            "first_token_seconds": round(opened - started, 6) if opened is not None else None,
            "prompt_tokens": usage.prompt_tokens if usage is not None else None,
            "completion_tokens": usage.completion_tokens if usage is not None else None,
            "cost_usd": round(ctx.cost_usd, 8),
            "key": key_name or None,
            "flags": list(ctx.flags),
            "stream": opened is not None,
        }
        if ctx.denied_by:
            entry["denied_by"] = ctx.denied_by
        if isinstance(error, GatewayError):
            entry["error_code"] = error.code
            entry["error_type"] = error.type
        if self.request_log.log_content:
            # only what passed the input policies (redaction) and, for a whole answer, the output policies
            if ctx.call is not None:
                entry["request"] = ctx.call.body
            if ctx.answer is not None:
                entry["response"] = ctx.answer
        return entry

    # syncing counters kept elsewhere

    def _sync_recorder(self) -> None:
        counters = self.recorder_counters
        if counters is None:
            return
        seen = tuple(getattr(counters, name, 0) for name in _RECORDER_COUNTERS)
        if seen == self._recorder_seen:  # the common case: one comparison per request
            return
        self._recorder_seen = seen
        push = self._synced.push
        for name in _RECORDER_COUNTERS:
            value = getattr(counters, name, 0)
            if isinstance(value, int):
                push(("recording", name), value, self.metrics.recording[name].inc)

    def _sync_slow(self) -> None:
        m = self.metrics
        for row in self.health():
            labels = (row["alias"], row["deployment"], row["provider"])
            m.deployment_healthy.labels(*labels).set(1 if row["healthy"] else 0)
            m.deployment_cooldown.labels(*labels).set(row["cooldown_seconds_left"])
            m.deployment_in_flight.labels(*labels).set(row["in_flight"])
            self._synced.push(("cooldowns", labels), row["cooldowns"], m.deployment_cooldowns.labels(*labels).inc)
        for policy in self.policies:
            name = policy.name
            for event, value in policy.counter_values():
                self._synced.push(("policy", name, event), value, m.policy_events.labels(name, event).inc)

    def sync(self) -> None:
        """Bring every synced metric up to date (before a scrape or a stats answer)."""
        if self.enabled:
            self._batch.flush()
            self._sync_recorder()
            self._sync_slow()

    # what the operator endpoints answer

    def exposition(self) -> bytes:
        self.sync()
        return render(self.metrics)

    def stats(self) -> dict[str, Any]:
        """The usage figures of this worker: what /ui draws and `gateway stats` prints."""
        self.sync()
        counters = self.recorder_counters
        recording = {name: int(getattr(counters, name, 0) or 0) for name in _RECORDER_COUNTERS}
        looked_up = recording["hits"] + recording["misses"]
        recording["hit_rate"] = round(recording["hits"] / looked_up, 6) if looked_up else None
        return {
            "replica": self.replica,
            "pid": os.getpid(),
            "started_at": self.started_at,
            "now": time.time(),
            "record_mode": self.settings.recording.mode,
            "in_flight": self.in_flight,
            "open_streams": self.open_streams,
            **self.usage.snapshot(),
            "recording": recording,
            "deployments": self.health(),
        }

    async def fleet_stats(self) -> dict[str, Any]:
        """Every replica's figures merged when they are shared ([state] redis_url); else this worker's."""
        if self.fleet is None:
            return self.stats()
        return await self.fleet.merged()

    def close(self) -> None:
        if self.tracing is not None:
            self.tracing.close()
        self.sync()
        self.request_log.close()
