"""Build the configured policy chain, in order, from settings.

The order is the request's path through them: who the caller is, whether they may still spend, whether they are
within their rate, then what the request and its answer may contain. Each part is built only when configured, so
the shipped config (auth off, no limits, no guards) runs with an empty chain.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from llm_gateway.composition.state import budget_ledger, key_store, rate_counter
from llm_gateway.config.policy_settings import GuardSettings
from llm_gateway.config.settings import Settings
from llm_gateway.policies.auth import AuthPolicy
from llm_gateway.policies.budget import BudgetPolicy
from llm_gateway.policies.deny_list import DenyListPolicy
from llm_gateway.policies.injection import InjectionPolicy
from llm_gateway.policies.moderation import MODERATION_PROMPT, Ask, ModerationPolicy, is_flagged
from llm_gateway.policies.pii import PiiPolicy
from llm_gateway.policies.rate_limit import PerMinute, RateLimitPolicy
from llm_gateway.policies.request_limits import RequestLimitsPolicy
from llm_gateway.policies.stream_usage import StreamUsagePolicy
from llm_gateway.vocab.errors import UpstreamMalformed
from llm_gateway.vocab.tokens import count_call_prompt
from llm_gateway.vocab.types import Call, Policy, RequestContext

Send = Callable[[Call, RequestContext], Awaitable[dict[str, Any]]]


def build_policies(settings: Settings, send: Send | None = None) -> list[Policy]:
    """`send` serves a call the gateway makes on its own behalf (through the recorder, then the router); the
    moderation guard asks its alias with it."""
    policies: list[Policy] = []
    policies += access_policies(settings)
    policies += guard_policies(settings, send)
    return policies


def access_policies(settings: Settings) -> list[Policy]:
    """Keys, budgets, rate limits, and the stream usage they need to count real tokens."""
    policies: list[Policy] = []
    auth = settings.auth
    if auth.enabled:
        store = key_store(settings)  # shared: auth reads keys, the budget writes their spend
        policies.append(AuthPolicy(store, master_key=auth.master_key, cache_ttl_seconds=auth.cache_ttl_seconds))
        budget = BudgetPolicy(store, flush_seconds=auth.spend_flush_seconds, refresh_seconds=auth.cache_ttl_seconds,
                              estimate=cost_estimate(settings))
        budget.ledger = budget_ledger(settings, budget.spent)
        policies.append(budget)
    aliases = {alias: PerMinute(m.rpm, m.tpm) for alias, m in settings.models.items()}
    key_default = PerMinute(settings.limits.rpm, settings.limits.tpm)
    # keys carry their own limits, so with auth on the policy is always there
    if auth.enabled or any(p.rpm or p.tpm for p in aliases.values()):
        counter = rate_counter(settings)
        policies.append(RateLimitPolicy(counter, count_call_prompt, aliases=aliases, key_default=key_default))
    if policies:
        policies.append(StreamUsagePolicy())
    return policies


def cost_estimate(settings: Settings) -> Callable[[Call], float]:
    """What a call may cost at most: prompt tokens + the completion it allows (max_tokens, else a default) at the
    alias's price. The budget reserves this at admission."""
    prices = {alias: m.price for alias, m in settings.models.items()}

    def estimate(call: Call) -> float:
        price = prices.get(call.alias)
        if price is None or not (price.input_per_mtok or price.output_per_mtok):
            return 0.0
        body = call.body
        allowed = body.get("max_completion_tokens") or body.get("max_tokens")
        choices = body.get("n") if isinstance(body.get("n"), int) else 1
        completion = (allowed if isinstance(allowed, int) else DEFAULT_COMPLETION_ESTIMATE) * max(1, choices)
        return price.cost(count_call_prompt(call.kind, body), completion)

    return estimate


DEFAULT_COMPLETION_ESTIMATE = 1024  # tokens held for an answer whose request sets no max_tokens


def guard_policies(settings: Settings, send: Send | None = None) -> list[Policy]:
    """Request limits and input/output safety guards ([guards]), after access control, in their configured order."""
    guards = settings.guards
    policies: list[Policy] = []
    for name in guards.order:
        policy = _guard(name, settings, guards, send)
        if policy is not None:
            policies.append(policy)
    return policies


def _guard(name: str, settings: Settings, guards: GuardSettings, send: Send | None) -> Policy | None:
    window = guards.hold_back_chars
    if name == "request_limits":
        limits = settings.limits
        allowed = {alias: m.allowed_params for alias, m in settings.models.items() if m.allowed_params}
        if not limits.limits_requests and not allowed:
            return None
        return RequestLimitsPolicy(max_messages=limits.max_messages, max_tokens=limits.max_tokens,
                                   max_tokens_action=limits.max_tokens_action, allowed_params=allowed)
    if name == "deny_list":
        deny = guards.deny_list
        if not deny.patterns and not deny.keywords:
            return None
        return DenyListPolicy(deny.patterns, deny.keywords, output=deny.output, window=window)
    if name == "pii":
        pii = guards.pii
        return None if pii.action == "off" else PiiPolicy(pii.action, pii.types, output=pii.output, window=window)
    if name == "injection":
        injection = guards.injection
        return None if injection.action == "off" else InjectionPolicy(injection.action, injection.extra_patterns)
    if name == "moderation":
        moderation = guards.moderation
        if not moderation.alias or send is None:
            return None
        return ModerationPolicy(moderation_ask(send, moderation.alias), on_error=moderation.on_error)
    raise ValueError(f"unknown guard {name!r}")


def moderation_ask(send: Send, alias: str) -> Ask:
    """Ask `alias` (through the recorder and the router: replayable, retries, fallbacks, any backend) whether a text
    should be flagged."""

    async def ask(text: str) -> bool:
        body = {"model": alias, "temperature": 0, "max_tokens": 5,
                "messages": [{"role": "system", "content": MODERATION_PROMPT}, {"role": "user", "content": text}]}
        response = await send(Call(kind="chat", alias=alias, body=body), RequestContext(request_id="moderation"))
        try:
            answer = response["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as exc:
            raise UpstreamMalformed(f"moderation alias `{alias}` answered without a message") from exc
        return is_flagged(answer)

    return ask
