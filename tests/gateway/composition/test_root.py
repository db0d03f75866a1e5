"""The composition root: what it decides from the config beyond wiring the parts."""

from __future__ import annotations

from llm_gateway.composition.root import build_gateway
from llm_gateway.config.settings import parse_settings

UPSTREAM = {"providers": {"up": {"type": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-up"}},
            "models": {"gpt": {"provider": "up", "model": "gpt-up"}}}


def test_tiktoken_is_loaded_at_start_only_where_requests_count_tokens() -> None:
    plain = build_gateway(parse_settings(UPSTREAM, {}))
    assert not plain.preload_tokens  # counted only for a broken stream or an estimate: loaded when first needed
    limited = {**UPSTREAM, "models": {"gpt": {"provider": "up", "model": "gpt-up", "tpm": 1000}}}
    assert build_gateway(parse_settings(limited, {})).preload_tokens  # a tokens-per-minute limit counts each prompt
    mock = {"providers": {"m": {"type": "mock"}}, "models": {"mock": {"provider": "m", "model": "mock-1"}}}
    assert build_gateway(parse_settings(mock, {})).preload_tokens
