"""Build one adapter per configured provider; the only place that maps a provider `type` to its adapter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llm_gateway.config.settings import ProviderSettings
from llm_gateway.vocab.types import Adapter


def build_adapter(settings: ProviderSettings, *, transport: Any = None) -> Adapter:
    if settings.type == "openai":
        from llm_gateway.adapters.openai import OpenAIAdapter

        return OpenAIAdapter(settings, transport=transport)
    if settings.type == "mock":
        from llm_gateway.adapters.mock import MockAdapter

        return MockAdapter(settings)
    if settings.type == "anthropic":
        from llm_gateway.adapters.anthropic import AnthropicAdapter

        return AnthropicAdapter(settings, transport=transport)
    if settings.type == "llamacpp":
        from llm_gateway.adapters.llamacpp import LlamaCppAdapter

        return LlamaCppAdapter(settings)
    raise ValueError(f"unknown provider type {settings.type!r}")  # config validation makes this unreachable


def build_adapters(
    providers: Mapping[str, ProviderSettings], transports: Mapping[str, Any] | None = None
) -> dict[str, Adapter]:
    transports = transports or {}
    return {name: build_adapter(p, transport=transports.get(name)) for name, p in providers.items()}
