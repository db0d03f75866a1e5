"""Build the configured policy chain, in order, from settings.

The order is the request's path through them: who the caller is, whether they may still spend, whether they are
within their rate, then what the request and its answer may contain. Each part is built only when configured, so
the shipped config (auth off, no limits, no guards) runs with an empty chain.
"""

from __future__ import annotations

from gateway.config import Settings
from gateway.tokens import count_call_prompt
from gateway.types import Policy
from policies.auth import AuthPolicy
from policies.budget import BudgetPolicy
from policies.key_store import KeyStore
from policies.rate_counter import InProcessCounter
from policies.rate_limit import PerMinute, RateLimitPolicy
from policies.stream_usage import StreamUsagePolicy


def build_policies(settings: Settings) -> list[Policy]:
    policies: list[Policy] = []
    policies += access_policies(settings)
    policies += guard_policies(settings)
    return policies


def access_policies(settings: Settings) -> list[Policy]:
    """Keys, budgets, rate limits, and the stream usage they need to count real tokens."""
    policies: list[Policy] = []
    auth = settings.auth
    if auth.enabled:
        store = KeyStore(settings.server.state_path)  # shared: auth reads keys, the budget writes their spend
        policies.append(AuthPolicy(store, master_key=auth.master_key, cache_ttl_seconds=auth.cache_ttl_seconds))
        policies.append(BudgetPolicy(store, flush_seconds=auth.spend_flush_seconds,
                                     refresh_seconds=auth.cache_ttl_seconds))
    aliases = {alias: PerMinute(m.rpm, m.tpm) for alias, m in settings.models.items()}
    key_default = PerMinute(settings.limits.rpm, settings.limits.tpm)
    # keys carry their own limits, so with auth on the policy is always there
    if auth.enabled or any(p.rpm or p.tpm for p in aliases.values()):
        counter = InProcessCounter()
        policies.append(RateLimitPolicy(counter, count_call_prompt, aliases=aliases, key_default=key_default))
    if policies:
        policies.append(StreamUsagePolicy())
    return policies


def guard_policies(settings: Settings) -> list[Policy]:
    """Request limits and input/output safety guards ([guards]), after access control, in their configured order."""
    return []
