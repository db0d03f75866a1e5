"""Requests and tokens per minute, per key and per alias, with OpenAI's x-ratelimit-* headers on every answer.

Tokens are estimated before the call (prompt + requested max_tokens, counted by the injected `count_prompt`) and
drawn from the token buckets with the request; once the real usage is known the difference is settled, so the
buckets track what was really used. A denial draws nothing (see policies/rate_counter.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from llm_gateway.policies.rate_counter import Limit, RateCounter, Reading
from llm_gateway.vocab.counters import int_counters
from llm_gateway.vocab.errors import RateLimited
from llm_gateway.vocab.types import BasePolicy, Call, KeyInfo, RequestContext

_PENDING = "rate_limit.tokens"  # ctx.state: (token limits drawn from, tokens drawn)
_SCOPE_CACHE_SIZE = 10_000  # (alias, key) pairs; cleared when full, rebuilt as requests come


@dataclass(frozen=True, slots=True)
class PerMinute:
    rpm: int | None = None
    tpm: int | None = None


@dataclass(frozen=True, slots=True)
class _Scope:
    """One set of limits a request falls under, and how to name it to the client."""

    label: str  # "key `ci`" / "model `gpt-4o`"
    requests: Limit | None
    tokens: Limit | None


class RateLimitPolicy(BasePolicy):
    name = "rate_limit"

    def __init__(
        self,
        counter: RateCounter,
        count_prompt: Callable[[str, dict[str, Any]], int],
        *,
        aliases: Mapping[str, PerMinute] | None = None,
        key_default: PerMinute = PerMinute(),
    ) -> None:
        self.counter = counter
        self.count_prompt = count_prompt
        self.aliases = {a: p for a, p in (aliases or {}).items() if p.rpm or p.tpm}
        self.key_default = key_default
        self.counters = {"limited": 0, "too_large": 0}
        # (alias, key limits) -> scopes: their Limits are the same for every request of that key and alias
        self._scope_cache: dict[tuple[Any, ...], list[_Scope]] = {}

    async def before(self, call: Call, ctx: RequestContext) -> Call | None:
        scopes = self._scopes(call.alias, ctx.key)
        if not scopes:
            return None
        token_limits = [s.tokens for s in scopes if s.tokens is not None]
        tokens = self.estimate(call) if token_limits else 0
        demands: list[tuple[Limit, float]] = []
        for scope in scopes:
            if scope.requests is not None:
                demands.append((scope.requests, 1))
            if scope.tokens is not None:
                if tokens > scope.tokens.per_minute:
                    self.counters["too_large"] += 1
                    raise RateLimited(
                        f"Request too large for {scope.label}: it needs about {tokens} tokens (prompt + max_tokens) "
                        f"and the limit is {scope.tokens.per_minute} tokens per minute. Shorten the prompt or lower "
                        "max_tokens.",
                    )
                demands.append((scope.tokens, tokens))
        readings = await self.counter.take(demands)
        headers = ratelimit_headers(readings)
        ctx.response_headers.update(headers)
        denied = [(r, s) for r in readings if r.denied for s in scopes if r.limit in (s.requests, s.tokens)]
        if denied:
            self.counters["limited"] += 1
            reading, scope = max(denied, key=lambda pair: pair[0].retry_after)
            unit = "requests" if reading.limit is scope.requests else "tokens"
            raise RateLimited(
                f"Rate limit reached for {scope.label} on {unit} per minute: limit {reading.limit.per_minute}, "
                f"remaining {max(0, math.floor(reading.remaining))}"
                + (f", requested {tokens}" if unit == "tokens" else "")
                + f". Please try again in {reading.retry_after:.1f}s.",
                retry_after=max(1.0, math.ceil(reading.retry_after)),
                headers=dict(headers),
            )
        if token_limits:
            ctx.state[_PENDING] = (token_limits, tokens)
        return None

    async def after(self, call: Call, response: dict[str, Any], ctx: RequestContext) -> dict[str, Any] | None:
        await self._settle(ctx)
        return None

    async def end_stream(self, call: Call, ctx: RequestContext) -> list[dict[str, Any]]:
        await self._settle(ctx)
        return []

    def estimate(self, call: Call) -> int:
        """Prompt tokens plus the completion tokens the request allows (times `n` choices)."""
        body = call.body
        prompt = self.count_prompt(call.kind, body)
        allowed = body.get("max_completion_tokens") or body.get("max_tokens") or 0
        choices = body.get("n") or 1
        if not isinstance(allowed, int) or not isinstance(choices, int):
            return prompt
        return prompt + max(0, allowed) * max(1, choices)  # a nonsensical limit is for the upstream to refuse

    async def _settle(self, ctx: RequestContext) -> None:
        pending = ctx.state.pop(_PENDING, None)
        if pending is None or ctx.usage is None:
            return  # no real usage (an answer without it): the estimate stands
        token_limits, estimated = pending
        difference = ctx.usage.total_tokens - estimated
        if difference:
            for limit in token_limits:
                await self.counter.settle(limit, difference)

    def _scopes(self, alias: str, key: KeyInfo | None) -> list[_Scope]:
        ident = (alias, None) if key is None else (alias, key.id, key.name, key.rpm, key.tpm, key.is_master)
        scopes = self._scope_cache.get(ident)
        if scopes is None:
            if len(self._scope_cache) >= _SCOPE_CACHE_SIZE:
                self._scope_cache.clear()
            scopes = self._scope_cache[ident] = self._new_scopes(alias, key)
        return scopes

    def _new_scopes(self, alias: str, key: KeyInfo | None) -> list[_Scope]:
        scopes = []
        if key is not None and not key.is_master:
            rpm = key.rpm if key.rpm is not None else self.key_default.rpm
            tpm = key.tpm if key.tpm is not None else self.key_default.tpm
            if rpm or tpm:
                scopes.append(_Scope(
                    f"key `{key.name}`",
                    Limit(f"key:{key.id}:requests", rpm) if rpm else None,
                    Limit(f"key:{key.id}:tokens", tpm) if tpm else None,
                ))
        per_alias = self.aliases.get(alias)
        if per_alias is not None:
            scopes.append(_Scope(
                f"model `{alias}`",
                Limit(f"alias:{alias}:requests", per_alias.rpm) if per_alias.rpm else None,
                Limit(f"alias:{alias}:tokens", per_alias.tpm) if per_alias.tpm else None,
            ))
        return scopes

    def counter_values(self) -> list[tuple[str, int]]:
        """The policy's counts and its counter's (a shared store's errors, requests admitted unchecked)."""
        return super().counter_values() + list(int_counters(getattr(self.counter, "counters", None)))

    async def aclose(self) -> None:
        await self.counter.aclose()


def ratelimit_headers(readings: list[Reading]) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers, for the tightest requests bucket and the tightest tokens bucket."""
    tightest_by_unit: dict[str, tuple[float, Reading]] = {}
    for reading in readings:
        share = reading.remaining / reading.limit.per_minute
        unit = reading.limit.unit
        held = tightest_by_unit.get(unit)
        if held is None or share < held[0]:
            tightest_by_unit[unit] = (share, reading)
    headers: dict[str, str] = {}
    for unit, (limit_name, remaining_name, reset_name) in _HEADER_NAMES:
        held = tightest_by_unit.get(unit)
        if held is None:
            continue
        tightest = held[1]
        headers[limit_name] = str(tightest.limit.per_minute)
        headers[remaining_name] = str(max(0, math.floor(tightest.remaining)))
        headers[reset_name] = duration(tightest.reset_seconds)
    return headers


_HEADER_NAMES = tuple(
    (unit, (f"x-ratelimit-limit-{unit}", f"x-ratelimit-remaining-{unit}", f"x-ratelimit-reset-{unit}"))
    for unit in ("requests", "tokens")
)


def duration(seconds: float) -> str:
    """A duration as OpenAI writes its reset headers: "20ms", "1.5s", "6m0s"."""
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, rest = divmod(round(seconds, 3), 60)
    if minutes:
        return f"{int(minutes)}m{rest:.0f}s" if rest < 59.5 else f"{int(minutes) + 1}m0s"
    return f"{rest:g}s"
