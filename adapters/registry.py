"""Every provider `type`: its adapter, its default URL and whether it needs a key. Config validates against this;
the composition root builds from it. Adding a backend is one file in adapters/ and one entry here.

The builders read a provider's settings structurally (`ProviderFields`): config's parsed [providers.<name>] table
fits it without adapters/ importing config.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from llm_gateway.adapters.anthropic import AnthropicAdapter
from llm_gateway.adapters.http import HttpUpstream
from llm_gateway.adapters.llamacpp import LlamaCppAdapter, LlamaCppSettings
from llm_gateway.adapters.mock import MockAdapter
from llm_gateway.adapters.openai import OpenAIAdapter
from llm_gateway.vocab.types import Adapter


class Timeouts(Protocol):
    connect: float
    read: float
    total: float


class ProviderFields(Protocol):
    """What [providers.<name>] holds once parsed; each builder reads only the fields its adapter takes."""

    name: str
    base_url: str
    api_key: str
    headers: Mapping[str, str]
    timeouts: Timeouts
    max_connections: int
    max_answer_bytes: int
    max_event_bytes: int
    anthropic_version: str
    default_max_tokens: int
    model_path: str
    n_ctx: int
    n_threads: int
    concurrency: int
    embedding_dim: int
    stream_delay_ms: int
    request_id_header: str
    request_id_format: str


Build = Callable[[ProviderFields, Any], Adapter]  # (settings, transport for tests or None) -> adapter


@dataclass(frozen=True, slots=True)
class ProviderType:
    build: Build
    default_url: str = ""
    # "required": always; "if_referenced": when the config names a key (`api_key = "${VAR}"`), e.g. a local vLLM
    # needs none but OpenAI does; "never": the backend runs here
    key: Literal["required", "if_referenced", "never"] = "never"

    def needs_key(self, key_referenced: bool) -> bool:
        return self.key == "required" or (self.key == "if_referenced" and key_referenced)


def http_upstream(p: ProviderFields) -> HttpUpstream:
    t = p.timeouts
    return HttpUpstream(
        name=p.name,
        base_url=p.base_url,
        api_key=p.api_key,
        headers=dict(p.headers),
        connect_timeout=t.connect,
        read_timeout=t.read,
        total_timeout=t.total,
        max_connections=p.max_connections,
        max_answer_bytes=p.max_answer_bytes,
        max_event_bytes=p.max_event_bytes,
        request_id_header=p.request_id_header,
        request_id_format=p.request_id_format,
    )


def _openai(p: ProviderFields, transport: Any) -> Adapter:
    return OpenAIAdapter(http_upstream(p), transport=transport)


def _anthropic(p: ProviderFields, transport: Any) -> Adapter:
    return AnthropicAdapter(
        http_upstream(p), version=p.anthropic_version, default_max_tokens=p.default_max_tokens, transport=transport
    )


def _llamacpp(p: ProviderFields, transport: Any) -> Adapter:
    return LlamaCppAdapter(
        LlamaCppSettings(
            name=p.name,
            model_path=p.model_path,
            n_ctx=p.n_ctx,
            n_threads=p.n_threads,
            concurrency=p.concurrency,
            default_max_tokens=p.default_max_tokens,
        )
    )


def _mock(p: ProviderFields, transport: Any) -> Adapter:
    return MockAdapter(p.name, embedding_dim=p.embedding_dim, stream_delay_ms=p.stream_delay_ms)


PROVIDER_TYPES: dict[str, ProviderType] = {
    "openai": ProviderType(_openai, default_url="https://api.openai.com/v1", key="if_referenced"),
    "anthropic": ProviderType(_anthropic, default_url="https://api.anthropic.com", key="required"),
    "llamacpp": ProviderType(_llamacpp),
    "mock": ProviderType(_mock),
}
