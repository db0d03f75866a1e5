"""Alias -> deployments: pick one (weighted / least busy / lowest latency), retry with backoff, cool down, fall back.

Failover happens only before the first chunk of a stream; after that an upstream failure ends the stream.

One client cannot take a deployment out: the failures one request causes count once per deployment, a deployment
that *answered* a request with HTTP 500 is not asked that request again (a 500 caused by the body, as llama-cpp-python's
server answers its validation errors, would only repeat; other deployments and fallbacks are still tried, and
502/503/504, timeouts and refused connections, which say nothing about the body, are retried as before), and the
last healthy deployment of an alias is never cooled down (Envoy's panic rule: a degraded deployment beats none).
"""

from __future__ import annotations

import asyncio
import random
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from llm_gateway.config.settings import Deployment, ModelSettings, RouterSettings
from llm_gateway.vocab.errors import (
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    ProviderNotConfigured,
    ServiceUnavailable,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamStatusError,
    UpstreamTimeout,
)
from llm_gateway.vocab.types import Adapter, Call, RequestContext


@dataclass
class DeploymentState:
    """Health of one deployment, kept per worker."""

    deployment: Deployment
    in_flight: int = 0
    failures: int = 0
    cooldown_until: float = 0.0
    latency_ewma: float | None = None
    cooldowns: int = 0
    served: int = 0
    errors: int = 0

    def healthy(self, now: float) -> bool:
        return self.cooldown_until <= now


@dataclass
class AliasRoute:
    settings: ModelSettings
    states: list[DeploymentState] = field(default_factory=list)


class Router:
    def __init__(
        self,
        models: Mapping[str, ModelSettings],
        adapters: Mapping[str, Adapter],
        settings: RouterSettings,
        *,
        missing_keys: Mapping[str, str] | None = None,
        first_token_timeouts: Mapping[str, float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.adapters = adapters
        self.missing_keys = dict(missing_keys or {})  # provider -> env var names to set
        self.first_token_timeouts = dict(first_token_timeouts or {})
        self.routes = {alias: AliasRoute(m, [DeploymentState(d) for d in m.deployments]) for alias, m in models.items()}
        self._sleep = sleep
        self._clock = clock  # tests inject sleep, clock and rng to pin backoff, cooldown and weighting without waiting
        self._rng = rng or random.Random()
        # told of every failed upstream attempt, retries included (the observer counts them by provider and kind)
        self.on_upstream_error: Callable[[str, str], None] | None = None

    def health(self) -> list[dict[str, Any]]:
        now = self._clock()
        rows = []
        for alias, route in self.routes.items():
            for s in route.states:
                status, reason = self._status(s, now)
                rows.append(self._health_row(alias, s, now, status, reason))
        return rows

    def _status(self, s: DeploymentState, now: float) -> tuple[str, str]:
        """healthy | cooling_down | not_configured (no key) | unavailable (the adapter says it cannot serve)."""
        missing = self.missing_keys.get(s.deployment.provider)
        if missing is not None:
            return "not_configured", f"set {missing}"
        adapter = self.adapters.get(s.deployment.provider)
        problem = getattr(adapter, "unavailable_reason", None)
        reason = problem() if problem is not None else None
        if reason:
            return "unavailable", reason
        return ("healthy", "") if s.healthy(now) else ("cooling_down", "")

    @staticmethod
    def _health_row(alias: str, s: DeploymentState, now: float, status: str, reason: str) -> dict[str, Any]:
        return {
            "alias": alias,
            "deployment": s.deployment.label,
            "provider": s.deployment.provider,
            "healthy": status == "healthy",  # can take traffic now: 0 in gateway_deployment_healthy otherwise
            "status": status,
            "reason": reason,
            "cooldown_seconds_left": max(0.0, round(s.cooldown_until - now, 3)),
            "cooldowns": s.cooldowns,
            "in_flight": s.in_flight,
            "latency_ewma_seconds": s.latency_ewma,
            "served": s.served,
            "errors": s.errors,  # requests that failed on it (each counted once, however often it was retried)
        }

    # public entry points

    async def count_tokens(self, call: Call) -> int | None:
        """The exact input token count from the first deployment whose adapter counts (`count_tokens`), or None."""
        route = self.routes.get(call.alias)
        if route is None:
            raise ModelNotFound(f"The model {call.alias!r} does not exist", param="model")
        for state in route.states:
            dep = state.deployment
            count = getattr(self.adapters.get(dep.provider), "count_tokens", None)
            if count is None or dep.provider in self.missing_keys:
                continue
            try:
                return await count(call.routed(call.alias, dep.model, dep.provider))
            except UpstreamError:
                continue  # an estimate is a better answer than an upstream's failure
        return None

    async def send(self, call: Call, ctx: RequestContext) -> dict[str, Any]:
        async def attempt(c: Call, adapter: Adapter) -> dict[str, Any]:
            if c.kind == "chat":
                return await adapter.chat(c)
            if c.kind == "completion":
                return await adapter.complete(c)
            if c.kind == "moderation":
                moderate = getattr(adapter, "moderate", None)
                if moderate is None:
                    raise InvalidRequest(
                        f"The model {c.alias!r} is served by provider {c.provider!r}, which has no moderations "
                        "endpoint; route /v1/moderations to an OpenAI-compatible or mock provider.",
                        param="model",
                    )
                return await moderate(c)
            return await adapter.embed(c)

        return await self._run(call, ctx, attempt)

    async def stream(self, call: Call, ctx: RequestContext) -> AsyncIterator[dict[str, Any]]:
        """A stream whose first chunk was already received (failover done), or an error raised before any chunk."""

        async def attempt(c: Call, adapter: Adapter) -> tuple[dict[str, Any] | None, AsyncIterator[dict[str, Any]]]:
            iterator = adapter.stream_chat(c) if c.kind == "chat" else adapter.stream_complete(c)
            timeout = self.first_token_timeouts.get(c.provider)
            try:
                if timeout:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for runs the step in a task of its own, an extra
                    # task and event-loop turn before every stream's first byte
                    async with asyncio.timeout(timeout):
                        first = await anext(iterator)
                else:
                    first = await anext(iterator)
            except StopAsyncIteration:
                return None, iterator
            except TimeoutError:
                await _close(iterator)
                raise UpstreamTimeout(
                    f"upstream {c.provider!r} sent no first token within {timeout}s",
                    provider=c.provider,
                    kind="timeout",
                ) from None
            except BaseException:
                await _close(iterator)
                raise
            return first, iterator

        held: list[DeploymentState] = []
        first, iterator = await self._run(call, ctx, attempt, held)
        release = _Release(held[0] if held else None)
        relay = self._relay(first, iterator, release)
        # a relay never iterated (client gone before the body started) never runs its finally: release on collection
        weakref.finalize(relay, release)
        return relay

    # routing

    async def _run(
        self,
        call: Call,
        ctx: RequestContext,
        attempt: Callable[[Call, Adapter], Awaitable[Any]],
        held: list[DeploymentState] | None = None,
    ) -> Any:
        """Try the alias, then its fallbacks.

        `held` (streams) receives the serving deployment, still counted in flight.
        """
        tried: list[str] = []
        last_error: GatewayError | None = None
        route = self.routes.get(call.alias)
        if route is None:
            raise ModelNotFound(f"The model {call.alias!r} does not exist", param="model")
        deadline = self._clock() + self.settings.deadline_seconds
        queue = [call.alias, *route.settings.fallbacks]
        context_fallbacks = list(route.settings.context_window_fallbacks)
        while queue:
            alias = queue.pop(0)
            if alias in tried:
                continue
            if last_error is not None and self._clock() >= deadline:
                break  # no time left for a fallback: the error that used it up is the one to report
            tried.append(alias)
            try:
                return await self._run_alias(alias, call, ctx, attempt, deadline, held)
            except GatewayError as exc:
                last_error = exc
                if getattr(exc, "code", None) == "context_length_exceeded" and context_fallbacks:
                    queue = context_fallbacks + queue
                    context_fallbacks = []
                    continue
                if not _failover_worthy(exc):
                    raise
        assert last_error is not None
        raise last_error

    async def _run_alias(
        self,
        alias: str,
        call: Call,
        ctx: RequestContext,
        attempt: Callable[[Call, Adapter], Awaitable[Any]],
        deadline: float,
        held: list[DeploymentState] | None = None,
    ) -> Any:
        route = self.routes[alias]
        last_error: GatewayError | None = None
        excluded: set[int] = set()  # tried by this request: picked again only when nothing else is left
        answered_500: set[int] = set()  # answered this request with HTTP 500: never asked it again
        charged: set[int] = set()  # failures this request caused, counted once per deployment
        for try_number in range(self.settings.retries + 1):
            if self._clock() >= deadline:
                # out of time (earlier tries or aliases used it up): answer now without charging a deployment that was
                # never asked; the last real upstream error says more than "deadline" when there is one
                last_error = last_error or UpstreamTimeout(
                    f"no answer within the {self.settings.deadline_seconds}s deadline", kind="timeout"
                )
                break
            if all(id(s) in excluded for s in route.states):
                excluded.clear()  # each was tried once: the next round goes through them again
            state = self._pick(route, excluded, answered_500)
            if state is None:
                break
            dep = state.deployment
            missing = self.missing_keys.get(dep.provider)
            if missing is not None:
                last_error = ProviderNotConfigured(
                    f"The model {alias!r} is served by provider {dep.provider!r}, which has no API key: set {missing}"
                )
                excluded.add(id(state))
                continue
            c = call.routed(alias, dep.model, dep.provider)
            _refuse_untranslatable(c, self.adapters[dep.provider], dep.label)
            # who was asked, on the answer and the log line even when it fails (a success sets the same)
            ctx.deployment = dep.label
            ctx.provider = dep.provider
            started = self._clock()
            state.in_flight += 1
            try:
                async with asyncio.timeout(deadline - started):
                    result = await attempt(c, self.adapters[dep.provider])
            except TimeoutError:
                last_error = UpstreamTimeout(
                    f"no answer from {dep.label!r} within the {self.settings.deadline_seconds}s deadline",
                    provider=dep.provider,
                    kind="timeout",
                )
                self._failed_once(route, state, charged)
                excluded.add(id(state))
                if self.on_upstream_error is not None:
                    self.on_upstream_error(dep.provider, "timeout")
            except UpstreamError as exc:
                last_error = exc
                if self.on_upstream_error is not None:
                    self.on_upstream_error(exc.provider or dep.provider, exc.kind)
                if not exc.retryable:
                    # the deployment is fine (it answered), the request is not: no failure counted, and no latency
                    # sample either, since a quick 400 would make lowest_latency favour whoever rejects fastest; it
                    # is still a request that failed on it, as the usage page's per-alias table counts it
                    state.failures = 0
                    if id(state) not in charged:
                        state.errors += 1
                    raise
                self._failed_once(route, state, charged)
                excluded.add(id(state))
                if isinstance(exc, UpstreamStatusError) and exc.upstream_status == 500:
                    answered_500.add(id(state))
            else:
                self._succeeded(state, self._clock() - started)
                ctx.deployment = dep.label
                ctx.provider = dep.provider
                ctx.upstream_seconds += self._clock() - started
                if held is not None:
                    held.append(state)  # a stream stays in flight until it ends (see _relay)
                return result
            finally:
                if held is None or state not in held:
                    state.in_flight -= 1
            if try_number < self.settings.retries:
                if len(answered_500) == len(route.states):
                    break  # every deployment answered this request with a 500: asking again would only repeat it
                if _waits_past_deadline(last_error, self._clock(), deadline):
                    break  # Retry-After asks for longer than the deadline allows: answer the 429 now
                delay = self._backoff(try_number, last_error, deadline)
                if delay > 0:  # zero when the deadline is spent: the loop's first check answers at once
                    await self._sleep(delay)
        if last_error is None:
            raise ServiceUnavailable(f"every deployment of {alias!r} is cooling down after failures; try again shortly")
        raise last_error

    async def _relay(
        self, first: dict[str, Any] | None, iterator: AsyncIterator[dict[str, Any]], release: _Release
    ) -> AsyncIterator[dict[str, Any]]:
        """Relay a primed stream; a failure after the first chunk cannot fail over, but still counts against health."""
        try:
            async with aclosing(iterator):
                if first is None:
                    return
                yield first
                async for chunk in iterator:
                    yield chunk
        except UpstreamError as exc:
            state = release.state
            if state is not None:
                self._failed(state, self._route_of(state))
                if self.on_upstream_error is not None:
                    self.on_upstream_error(exc.provider or state.deployment.provider, exc.kind)
            raise
        finally:
            release()

    def _pick(
        self, route: AliasRoute, excluded: set[int], answered_500: set[int] = frozenset()  # type: ignore[assignment]
    ) -> DeploymentState | None:
        now = self._clock()
        candidates = [s for s in route.states if id(s) not in excluded and s.healthy(now)]
        if not candidates:
            # every deployment is cooling down or was tried: retry the least recently failed one rather than fail
            # (but never one that already answered this request with HTTP 500)
            askable = [s for s in route.states if id(s) not in answered_500]
            candidates = [s for s in askable if id(s) not in excluded] or askable
            return min(candidates, key=lambda s: s.cooldown_until) if candidates else None
        if len(candidates) == 1:
            return candidates[0]
        strategy = route.settings.strategy
        if strategy == "least_busy":
            return min(candidates, key=lambda s: s.in_flight)
        if strategy == "lowest_latency":
            untried = [s for s in candidates if s.latency_ewma is None]
            return untried[0] if untried else min(candidates, key=lambda s: s.latency_ewma or 0.0)
        weights = [s.deployment.weight for s in candidates]
        if sum(weights) <= 0:
            return self._rng.choice(candidates)
        return self._rng.choices(candidates, weights=weights)[0]

    def _backoff(self, try_number: int, error: GatewayError | None, deadline: float) -> float:
        delay = min(self.settings.backoff_max_seconds, self.settings.backoff_seconds * (2**try_number))
        delay = delay * (0.5 + self._rng.random() / 2)  # jitter: spread retries of many clients
        if isinstance(error, UpstreamRateLimited) and error.retry_after is not None:
            delay = max(delay, error.retry_after)
        return max(0.0, min(delay, deadline - self._clock()))

    def _failed_once(self, route: AliasRoute, state: DeploymentState, charged: set[int]) -> None:
        """Count a failure against `state`, once per request however often the request retried it."""
        if id(state) not in charged:
            charged.add(id(state))
            self._failed(state, route)

    def _failed(self, state: DeploymentState, route: AliasRoute | None = None) -> None:
        state.failures += 1
        state.errors += 1
        if state.failures >= self.settings.cooldown_failures and not self._last_healthy(state, route):
            state.cooldown_until = self._clock() + self.settings.cooldown_seconds
            state.cooldowns += 1
            # back from a cooldown it is on probation: one more failure (before a success resets the count) cools
            # it down again, rather than `cooldown_failures` more requests finding it still down
            state.failures = self.settings.cooldown_failures - 1

    def _route_of(self, state: DeploymentState) -> AliasRoute | None:
        return next((r for r in self.routes.values() if any(s is state for s in r.states)), None)

    def _last_healthy(self, state: DeploymentState, route: AliasRoute | None) -> bool:
        """True when no other deployment of the alias could take the traffic: then it is never cooled down."""
        if route is None:
            return False
        now = self._clock()
        return not any(s is not state and s.healthy(now) for s in route.states)

    @staticmethod
    def _succeeded(state: DeploymentState, seconds: float) -> None:
        state.failures = 0
        state.served += 1
        state.latency_ewma = seconds if state.latency_ewma is None else 0.8 * state.latency_ewma + 0.2 * seconds


def _refuse_untranslatable(call: Call, adapter: Adapter, label: str) -> None:
    """A call in a protocol the adapter does not speak, asking for what the chat shape cannot carry: a 400 naming it."""
    native = call.native
    if native is None or not native.untranslatable or native.protocol in getattr(adapter, "native_protocols", ()):
        return
    param, reason = native.untranslatable[0]
    raise InvalidRequest(
        f"{param}: {reason}; the model {call.alias!r} is served by {label!r}, which does not speak "
        f"{native.protocol} and gets a translation without it",
        param=param,
    )


def _failover_worthy(exc: GatewayError) -> bool:
    return isinstance(exc, (UpstreamError, ServiceUnavailable)) and (
        exc.retryable or isinstance(exc, ServiceUnavailable)
    )


class _Release:
    """Takes a streaming deployment out of its in-flight count exactly once, however the stream ends."""

    def __init__(self, state: DeploymentState | None) -> None:
        self.state = state

    def __call__(self) -> None:
        if self.state is not None:
            self.state.in_flight -= 1
            self.state = None


def _waits_past_deadline(error: GatewayError | None, now: float, deadline: float) -> bool:
    retry_after = getattr(error, "retry_after", None)
    return retry_after is not None and now + retry_after > deadline


async def _close(iterator: AsyncIterator[Any]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()
