"""One adapter per configured provider, built by its type's entry in the registry (adapters/registry.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
