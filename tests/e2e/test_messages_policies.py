"""Keys, model access and rate limits on /v1/messages exactly as on the chat routes, through the anthropic SDK:
x-api-key or Bearer, Anthropic's error classes, anthropic-ratelimit-* and retry-after headers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from llm_gateway.composition.root import create_app
from llm_gateway.config.settings import parse_settings
from llm_gateway.policies.key_store import KeyStore
from tests.support.server import running

MASTER = "sk-master-messages-0123456789"
HELLO = [{"role": "user", "content": "hi"}]


async def _create_keys(db: str) -> dict[str, str]:
    store = KeyStore(db)
    keys = {}
    for name, spec in {"wide": {}, "narrow": {"models": ["mock"]}, "slow": {"rpm": 2}}.items():
        _, keys[name] = await store.create(name, **spec)
    await store.aclose()
    return keys


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    db = str(tmp_path_factory.mktemp("messages-auth") / "state.db")
    keys = asyncio.run(_create_keys(db))
    raw: dict[str, Any] = {
        "server": {"state_path": db},
        "providers": {"mock": {"type": "mock"}},
        "models": {"mock": {"provider": "mock", "model": "mock-1"}, "other": {"provider": "mock", "model": "mock-2"}},
        "auth": {"mode": "keys", "master_key": "${GATEWAY_MASTER_KEY}", "cache_ttl_seconds": 0},
        "logging": {"access_log": False},
    }
    with running(create_app(parse_settings(raw, {"GATEWAY_MASTER_KEY": MASTER}))) as url:
        yield url, keys


def sdk(url: str, **kwargs: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, max_retries=0, **kwargs)


def test_a_key_is_taken_as_a_bearer_token_or_in_x_api_key(gateway: tuple[str, dict[str, str]]) -> None:
    url, keys = gateway
    assert sdk(url, api_key=keys["wide"]).messages.create(model="mock", max_tokens=8, messages=HELLO).content
    as_x_api_key = sdk(url, auth_token=None, api_key=None, default_headers={"x-api-key": keys["wide"]})
    assert as_x_api_key.messages.create(model="mock", max_tokens=8, messages=HELLO).content


def test_no_key_or_a_wrong_one_is_an_authentication_error(gateway: tuple[str, dict[str, str]]) -> None:
    url, _ = gateway
    with pytest.raises(anthropic.AuthenticationError) as info:
        sdk(url, api_key="sk-gw-not-a-key").messages.create(model="mock", max_tokens=8, messages=HELLO)
    assert info.value.status_code == 401
    assert info.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    with pytest.raises(anthropic.AuthenticationError):
        sdk(url, api_key="sk-gw-not-a-key").messages.count_tokens(model="mock", messages=HELLO)


def test_model_access_is_a_permission_error(gateway: tuple[str, dict[str, str]]) -> None:
    url, keys = gateway
    narrow = sdk(url, api_key=keys["narrow"])
    assert narrow.messages.create(model="mock", max_tokens=8, messages=HELLO).content
    with pytest.raises(anthropic.PermissionDeniedError) as info:
        narrow.messages.create(model="other", max_tokens=8, messages=HELLO)
    assert info.value.body["error"]["type"] == "permission_error"  # type: ignore[index]
    with pytest.raises(anthropic.PermissionDeniedError):
        narrow.messages.count_tokens(model="other", messages=HELLO)


def test_a_rate_limit_is_a_rate_limit_error_with_anthropics_headers(gateway: tuple[str, dict[str, str]]) -> None:
    url, keys = gateway
    slow = sdk(url, api_key=keys["slow"])
    served = slow.messages.with_raw_response.create(model="mock", max_tokens=8, messages=HELLO)
    assert served.headers["anthropic-ratelimit-requests-limit"] == "2"
    assert served.headers["anthropic-ratelimit-requests-remaining"] == "1"
    assert served.headers["anthropic-ratelimit-requests-reset"].endswith("Z")
    assert "x-ratelimit-limit-requests" not in served.headers
    slow.messages.create(model="mock", max_tokens=8, messages=HELLO)
    with pytest.raises(anthropic.RateLimitError) as info:
        slow.messages.create(model="mock", max_tokens=8, messages=HELLO)
    headers = info.value.response.headers
    assert int(headers["retry-after"]) >= 1
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert info.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
