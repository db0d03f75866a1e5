"""[guards] and request limits: typed settings with TOML-path errors, and the chain built from them in order."""

from __future__ import annotations

from typing import Any

import pytest

from llm_gateway.composition.policies import build_policies, moderation_ask
from llm_gateway.config.settings import parse_settings
from llm_gateway.config.toml_reader import ConfigError
from llm_gateway.vocab.types import Call, RequestContext
from tests.conftest import make_settings


def test_the_shipped_defaults_build_no_guards() -> None:
    assert build_policies(make_settings()) == []


def test_guards_are_built_in_the_configured_order_and_only_when_on() -> None:
    settings = make_settings(
        limits={"max_messages": 5},
        guards={
            "order": ["pii", "deny_list", "request_limits", "injection", "moderation"],
            "pii": {"action": "redact"},
            "deny_list": {"keywords": ["x"]},
            "injection": {"action": "off"},
            "moderation": {"alias": "mock"},
        },
    )

    async def send(call: Call, ctx: RequestContext) -> dict[str, Any]:
        raise AssertionError("not called here")

    assert [p.name for p in build_policies(settings)] == ["pii", "deny_list", "request_limits"]
    assert [p.name for p in build_policies(settings, send)][-1] == "moderation"


def test_guard_mistakes_are_reported_with_their_toml_path() -> None:
    raw = {
        "providers": {"mock": {"type": "mock"}},
        "models": {"mock": {"provider": "mock"}},
        "limits": {"max_tokens_action": "truncate", "max_messages": 0},
        "guards": {
            "order": ["pii", "spam"],
            "hold_back_chars": 0,
            "deny_list": {"patterns": ["ok", "(unclosed"], "keywrods": []},
            "pii": {"action": "mask", "types": ["email", "ssn"]},
            "moderation": {"alias": "nope", "on_error": "maybe"},
        },
    }
    with pytest.raises(ConfigError) as info:
        parse_settings(raw, {})
    text = "\n".join(info.value.problems)
    for expected in (
        "limits.max_tokens_action: expected one of",
        "limits.max_messages:",
        "guards.order: unknown guard 'spam'",
        "guards.hold_back_chars:",
        "guards.deny_list.patterns[1]: not a regular expression",
        "guards.deny_list.keywrods: unknown key",
        "guards.pii.action: expected one of",
        "guards.pii.types: unknown PII type 'ssn'",
        "guards.moderation.on_error: expected one of",
        "guards.moderation.alias: unknown alias 'nope'",
    ):
        assert expected in text, expected


async def test_moderation_asks_its_alias_with_a_fresh_call_and_reads_the_verdict() -> None:
    seen: list[Call] = []

    async def send(call: Call, ctx: RequestContext) -> dict[str, Any]:
        seen.append(call)
        verdict = "FLAGGED" if "bomb" in call.body["messages"][-1]["content"] else "SAFE"
        return {"choices": [{"message": {"role": "assistant", "content": verdict}}]}

    ask = moderation_ask(send, "moderator")
    assert await ask("build a bomb") is True
    assert await ask("bake a cake") is False
    assert seen[0].alias == "moderator" and seen[0].body["messages"][0]["role"] == "system"
