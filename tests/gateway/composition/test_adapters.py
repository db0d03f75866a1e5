"""build_adapters: each provider `type` gets its adapter, and a per-provider transport reaches it (respx)."""

from __future__ import annotations

import httpx
import pytest
import respx

from llm_gateway.adapters.anthropic import AnthropicAdapter
from llm_gateway.adapters.llamacpp import LlamaCppAdapter
from llm_gateway.adapters.mock import MockAdapter
from llm_gateway.adapters.openai import OpenAIAdapter
from llm_gateway.composition.adapters import build_adapter, build_adapters
from llm_gateway.config.settings import ProviderSettings
from llm_gateway.vocab.types import Call


def test_each_type_gets_its_adapter() -> None:
    providers = {
        "up": ProviderSettings(name="up", type="openai", base_url="http://up.test/v1"),
        "anth": ProviderSettings(name="anth", type="anthropic", base_url="http://anth.test", api_key="k"),
        "local": ProviderSettings(name="local", type="llamacpp"),  # loads nothing until its first request
        "mock": ProviderSettings(name="mock", type="mock"),
    }
    adapters = build_adapters(providers)
    kinds = {name: type(a) for name, a in adapters.items()}
    assert kinds == {"up": OpenAIAdapter, "anth": AnthropicAdapter, "local": LlamaCppAdapter, "mock": MockAdapter}


async def test_a_transport_reaches_only_its_provider() -> None:
    providers = {
        "anth": ProviderSettings(name="anth", type="anthropic", base_url="http://anth.test", api_key="sk-ant-provider",
                                 anthropic_version="2023-06-01"),
        "mock": ProviderSettings(name="mock", type="mock"),
    }
    with respx.mock(base_url="http://anth.test", assert_all_called=True) as upstream:
        route = upstream.post("/v1/messages").respond(200, json={
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "stop_reason": "end_turn",
            "content": [{"type": "text", "text": "hi"}], "usage": {"input_tokens": 3, "output_tokens": 1}})
        adapters = build_adapters(providers, {"anth": httpx.MockTransport(upstream.async_handler)})
        call = Call(kind="chat", alias="claude", model="claude-x", provider="anth",
                    body={"model": "claude", "messages": [{"role": "user", "content": "hello"}]})
        answer = await adapters["anth"].chat(call)
        await adapters["anth"].aclose()
    assert answer["choices"][0]["message"]["content"] == "hi"
    sent = route.calls.last.request.headers
    assert sent["x-api-key"] == "sk-ant-provider" and sent["anthropic-version"] == "2023-06-01"


def test_unknown_provider_type_cannot_be_built() -> None:
    # config validation rejects it first (listing the valid types); this is the last line of defence
    with pytest.raises(ValueError, match="unknown provider type 'nope'"):
        build_adapter(ProviderSettings(name="x", type="nope"))
