"""Keys, model access, rate limits and budgets through the real app, driven by the openai SDK."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llm_gateway.composition.root import create_app
from llm_gateway.config.settings import Settings, parse_settings
from llm_gateway.policies.key_store import KeyStore
from tests.conftest import make_settings
from tests.gateway.observability.test_metrics import value
from tests.support.server import running
from tests.support.upstream import FakeUpstream

MASTER = "sk-master-e2e-0123456789"
PRICE = {"input_per_mtok": 1000.0, "output_per_mtok": 1000.0}  # the fake upstream's 11 + 7 tokens: $0.018
HI = [{"role": "user", "content": "hi"}]


class Gateway:
    def __init__(self, url: str, keys: dict[str, str], db: str) -> None:
        self.url = url
        self.keys = keys
        self.db = db

    def client(self, key: str, **kwargs: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, **kwargs)

    def key(self, name: str) -> openai.OpenAI:
        return self.client(self.keys[name])


async def _create_keys(db: str) -> dict[str, str]:
    store = KeyStore(db)
    specs: dict[str, dict[str, Any]] = {
        "wide": {},
        "narrow": {"models": ["echo"]},
        "slow": {"rpm": 2},
        "burst": {"rpm": 5},  # one more every 12 s: a slow machine cannot sneak an extra one in
        "tokens": {"tpm": 200},
        "thrifty": {"budget_usd": 0.03},
        "streamer": {"models": ["echo"], "budget_usd": 0.03},
        "expired": {"expires_at": 1.0},
        "revoked": {},
    }
    keys = {}
    for name, spec in specs.items():
        _, keys[name] = await store.create(name, **spec)
    await store.revoke("revoked")
    await store.aclose()
    return keys


@pytest.fixture(scope="module")
def gateway(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    db = str(tmp_path_factory.mktemp("auth") / "state.db")
    keys = asyncio.run(_create_keys(db))
    settings = _settings(upstream.url, db)  # type: ignore[attr-defined]
    with running(create_app(settings)) as url:
        yield Gateway(url, keys, db)


def _settings(upstream_url: str, db: str) -> Settings:
    raw: dict[str, Any] = {
        "server": {"state_path": db},
        "providers": {
            "mock": {"type": "mock"},
            "up": {"type": "openai", "base_url": f"{upstream_url}/v1", "api_key": "sk-upstream"},
        },
        "models": {
            "mock": {"provider": "mock", "model": "mock-1"},
            "echo": {"provider": "up", "model": "echo", "price": PRICE},
            "limited": {"provider": "mock", "model": "mock-1", "rpm": 3},
        },
        "router": {"retries": 0},
        # cache_ttl_seconds = 0: a revocation is seen at once; spend is written every 50 ms
        "auth": {"mode": "keys", "master_key": "${GATEWAY_MASTER_KEY}", "cache_ttl_seconds": 0,
                 "spend_flush_seconds": 0.05},
        "logging": {"access_log": False},
    }
    return parse_settings(raw, {"GATEWAY_MASTER_KEY": MASTER})


def _usage_rows(db: str, key_name: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT u.alias, u.requests, u.prompt_tokens, u.completion_tokens, u.spend_usd FROM key_usage u "
            "JOIN keys k ON k.id = u.key_id WHERE k.name = ?", (key_name,)
        ).fetchall()


# keys


def test_a_valid_key_is_served(gateway: Gateway) -> None:
    answer = gateway.key("wide").chat.completions.create(model="mock", messages=HI)
    assert answer.choices[0].message.content


def test_no_key_is_an_authentication_error_that_says_how_to_send_one(gateway: Gateway) -> None:
    no_bearer = gateway.client("unused", default_headers={"Authorization": "Basic dXNlcjpwdw=="})
    with pytest.raises(openai.AuthenticationError) as info:
        no_bearer.chat.completions.create(model="mock", messages=HI)
    assert info.value.status_code == 401 and info.value.code == "invalid_api_key"
    assert "Authorization: Bearer" in info.value.message
    bare = httpx.post(gateway.url + "/v1/chat/completions", json={"model": "mock", "messages": HI})
    assert bare.status_code == 401 and bare.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("which", ["sk-gw-made-up-key", "expired", "revoked"])
def test_wrong_expired_and_revoked_keys_get_one_indistinguishable_401(gateway: Gateway, which: str) -> None:
    key = gateway.keys.get(which, which)
    with pytest.raises(openai.AuthenticationError) as info:
        gateway.client(key).chat.completions.create(model="mock", messages=HI)
    assert info.value.code == "invalid_api_key"
    assert info.value.message.endswith("Incorrect API key provided: the key is wrong, expired or revoked.")
    assert key not in info.value.message


def test_the_azure_api_key_header_is_accepted(gateway: Gateway) -> None:
    response = httpx.post(gateway.url + "/v1/chat/completions", headers={"api-key": gateway.keys["wide"]},
                          json={"model": "mock", "messages": HI})
    assert response.status_code == 200


def test_the_master_key_is_served_too(gateway: Gateway) -> None:
    assert gateway.client(MASTER).chat.completions.create(model="mock", messages=HI).choices


def test_a_revocation_reaches_the_running_gateway(gateway: Gateway) -> None:
    async def make() -> str:
        store = KeyStore(gateway.db)
        _, plain = await store.create("short-lived-" + uuid.uuid4().hex[:6])
        await store.aclose()
        return plain

    plain = asyncio.run(make())
    client = gateway.client(plain)
    client.chat.completions.create(model="mock", messages=HI)

    async def revoke() -> None:
        store = KeyStore(gateway.db)
        (record,) = [r for r in await store.list_keys() if r.hint == plain[:10]]
        await store.revoke(record.info.id)
        await store.aclose()

    asyncio.run(revoke())
    with pytest.raises(openai.AuthenticationError):  # cache_ttl_seconds = 0 here: at once
        client.chat.completions.create(model="mock", messages=HI)


# model access


def test_a_key_limited_to_some_models_gets_403_for_the_others(gateway: Gateway) -> None:
    client = gateway.key("narrow")
    with pytest.raises(openai.PermissionDeniedError) as info:
        client.chat.completions.create(model="mock", messages=HI)
    assert info.value.status_code == 403 and info.value.code == "model_not_allowed"
    assert "`mock`" in info.value.message and "echo" in info.value.message
    assert [m.id for m in client.models.list()] == ["echo"]
    assert len([m.id for m in gateway.key("wide").models.list()]) == 3


def test_admin_figures_need_the_master_key(gateway: Gateway) -> None:
    assert httpx.get(gateway.url + "/ui/api/stats").status_code == 401
    with_key = httpx.get(gateway.url + "/ui/api/stats", headers={"authorization": f"Bearer {gateway.keys['wide']}"})
    assert with_key.status_code == 403 and with_key.json()["error"]["code"] == "master_key_required"
    assert httpx.get(gateway.url + "/ui/api/stats", headers={"authorization": f"Bearer {MASTER}"}).status_code == 200


# rate limits


def test_every_answer_carries_the_rate_limit_headers(gateway: Gateway) -> None:
    raw = gateway.key("tokens").chat.completions.with_raw_response.create(model="mock", messages=HI, max_tokens=10)
    assert raw.headers["x-ratelimit-limit-tokens"] == "200"
    assert 0 < int(raw.headers["x-ratelimit-remaining-tokens"]) < 200
    assert raw.headers["x-ratelimit-reset-tokens"].endswith("s")
    limited = gateway.key("wide").chat.completions.with_raw_response.create(model="limited", messages=HI)
    assert limited.headers["x-ratelimit-limit-requests"] == "3"
    assert "x-ratelimit-remaining-requests" in limited.headers


def test_a_key_over_its_rpm_gets_a_rate_limit_error_with_retry_after(gateway: Gateway) -> None:
    client = gateway.key("slow")
    for _ in range(2):
        client.chat.completions.create(model="mock", messages=HI)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="mock", messages=HI)
    err = info.value
    assert err.code == "rate_limit_exceeded"
    assert "key `slow`" in err.message and "requests per minute" in err.message
    assert int(err.response.headers["retry-after"]) >= 1
    assert err.response.headers["x-ratelimit-remaining-requests"] == "0"


def test_a_request_above_the_token_limit_is_refused_as_too_large(gateway: Gateway) -> None:
    with pytest.raises(openai.RateLimitError, match="Request too large"):
        gateway.key("tokens").chat.completions.create(model="mock", messages=HI, max_tokens=5000)


async def test_a_burst_far_above_the_limit_gets_429s_never_a_500(gateway: Gateway) -> None:
    headers = {"authorization": f"Bearer {gateway.keys['burst']}"}
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=30) as client:
        responses = await asyncio.gather(*(
            client.post("/v1/chat/completions", json={"model": "mock", "messages": HI}) for _ in range(100)
        ))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 5, 429: 95}
    assert all(r.json()["error"]["code"] == "rate_limit_exceeded" for r in responses if r.status_code == 429)


# budgets


def test_a_key_past_its_budget_gets_insufficient_quota(gateway: Gateway) -> None:
    client = gateway.key("thrifty")
    client.chat.completions.create(model="echo", messages=HI)  # $0.018
    client.chat.completions.create(model="echo", messages=HI)  # $0.036: over $0.03
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="echo", messages=HI)
    assert info.value.code == "insufficient_quota"
    assert "`thrifty` has used its budget" in info.value.message


def test_a_stream_is_charged_though_its_client_did_not_ask_for_usage(gateway: Gateway, upstream: FakeUpstream) -> None:
    client = gateway.key("streamer")
    marker = "stream-usage-" + uuid.uuid4().hex
    messages = [{"role": "user", "content": marker}]
    chunks = list(client.chat.completions.create(model="echo", messages=messages, stream=True))
    assert chunks and all(c.usage is None for c in chunks)  # the usage chunk the gateway asked for was dropped
    assert all(c.choices for c in chunks)
    sent = [r["body"] for r in upstream.requests if r["body"].get("messages") == messages]
    assert sent[0]["stream_options"] == {"include_usage": True}
    # a client that asked for usage gets it as usual
    asked = list(client.chat.completions.create(model="echo", messages=messages, stream=True,
                                                stream_options={"include_usage": True}))
    assert asked[-1].usage is not None and asked[-1].usage.total_tokens == 18
    with pytest.raises(openai.RateLimitError) as info:  # two streams, $0.036: the budget is spent
        client.chat.completions.create(model="echo", messages=messages, stream=True)
    assert info.value.code == "insufficient_quota"


def test_spend_and_tokens_reach_the_state_database(gateway: Gateway) -> None:
    client = gateway.key("wide")
    for _ in range(2):
        client.chat.completions.create(model="echo", messages=HI)
    for _ in range(200):  # written in the background every spend_flush_seconds (0.05 here)
        rows = _usage_rows(gateway.db, "wide")
        if any(alias == "echo" and requests >= 2 for alias, requests, *_ in rows):
            break
        time.sleep(0.02)
    echo = next(row for row in rows if row[0] == "echo")
    assert echo[1:4] == (2, 22, 14) and echo[4] == pytest.approx(0.036)


# denials are counted and logged


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage() + " " + str(record.__dict__))


def test_denials_are_counted_by_policy_and_logged_without_content(gateway: Gateway) -> None:
    secret = "sk-gw-" + uuid.uuid4().hex
    handler = _Lines()  # on the logger itself: `gateway serve` stops "gateway.*" propagating to the root
    logger = logging.getLogger("gateway.policy")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with pytest.raises(openai.AuthenticationError):
            gateway.client(secret).chat.completions.create(model="mock", messages=[{"role": "user", "content": "x9z"}])
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    text = httpx.get(gateway.url + "/metrics").text
    assert value(text, "gateway_policy_denials_total", policy="auth", code="invalid_api_key") >= 1
    assert any("denied by auth" in line and "invalid_api_key" in line for line in handler.lines)
    assert not any(secret in line or "x9z" in line for line in handler.lines)


def test_with_auth_off_nothing_is_asked() -> None:
    app = create_app(make_settings(logging={"access_log": False}))
    assert app.state.gateway.pipeline.policies == []
    with running(app) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="anything", max_retries=0)
        raw = client.chat.completions.with_raw_response.create(model="mock", messages=HI)
    assert "x-ratelimit-limit-requests" not in raw.headers


def test_the_spend_left_at_shutdown_is_written(tmp_path: Path) -> None:
    db = str(tmp_path / "state.db")
    keys = asyncio.run(_create_keys(db))
    raw = {
        "server": {"state_path": db},
        "providers": {"mock": {"type": "mock"}},
        "models": {"mock": {"provider": "mock", "model": "mock-1", "price": PRICE}},
        "auth": {"mode": "keys", "spend_flush_seconds": 3600},
        "logging": {"access_log": False},
    }
    with running(create_app(parse_settings(raw, {}))) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key=keys["wide"], max_retries=0)
        for _ in range(3):
            client.chat.completions.create(model="mock", messages=HI)
        assert _usage_rows(db, "wide") == []  # the hour-long batch has not been written yet
    ((alias, requests, *_),) = _usage_rows(db, "wide")
    assert (alias, requests) == ("mock", 3)
