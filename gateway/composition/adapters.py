"""One adapter per configured provider, built by its type's entry in the registry (adapters/registry.py)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from llm_gateway.adapters.mock import MockAdapter
from llm_gateway.adapters.registry import PROVIDER_TYPES
from llm_gateway.config.settings import ProviderSettings
from llm_gateway.vocab.types import Adapter


def build_adapter(settings: ProviderSettings, *, transport: Any = None) -> Adapter:
    kind = PROVIDER_TYPES.get(settings.type)
    if kind is None:  # config validation makes this unreachable
        raise ValueError(f"unknown provider type {settings.type!r}")
    return kind.build(settings, transport)


def build_adapters(
    providers: Mapping[str, ProviderSettings], transports: Mapping[str, Any] | None = None
) -> dict[str, Adapter]:
    transports = transports or {}
    return {name: build_adapter(p, transport=transports.get(name)) for name, p in providers.items()}


def share_deny_list(adapters: Mapping[str, Adapter], patterns: Iterable[str], keywords: Iterable[str]) -> None:
    """The mock's /v1/moderations flags what [guards.deny_list] denies, so a test can see the same rules."""
    compiled = tuple(re.compile(p, re.IGNORECASE) for p in patterns)
    compiled += tuple(re.compile(r"\b" + re.escape(k) + r"\b", re.IGNORECASE) for k in keywords)
    for adapter in adapters.values():
        if isinstance(adapter, MockAdapter):
            adapter.deny_patterns = compiled
