"""Shared fixtures: a real fake upstream on 127.0.0.1 and a real gateway in front of it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from llm_gateway.composition.root import create_app
from llm_gateway.config.settings import Settings, parse_settings
from tests.support.server import running
from tests.support.state_servers import PostgresServer, RedisServer, postgres_bindir, redis_binary, require
from tests.support.upstream import FakeUpstream


def make_settings(upstream_url: str | None = None, **sections: Any) -> Settings:
    """Settings with alias `mock` and, given an upstream, aliases served by it (api key sk-upstream)."""
    raw: dict[str, Any] = {
        "providers": {"mock": {"type": "mock", "embedding_dim": 8}},
        "models": {"mock": {"provider": "mock", "model": "mock-1"}},
        "router": {"retries": 1, "backoff_seconds": 0, "cooldown_failures": 100},
    }
    if upstream_url:
        raw["providers"]["up"] = {
            "type": "openai",
            "base_url": f"{upstream_url}/v1",
            "api_key": "sk-upstream",
            "timeout": {"read": 5, "first_token": 5, "total": 10},
        }
        for alias in (
            "echo",
            "tools",
            "fail-500",
            "fail-429",
            "fail-400",
            "context",
            "error-200",
            "malformed",
            "slow",
            "reset",
        ):
            raw["models"][alias] = {"provider": "up", "model": alias}
        raw["models"]["gpt-test"] = {"provider": "up", "model": "echo"}
    for name, value in sections.items():
        if isinstance(value, dict) and isinstance(raw.get(name), dict):
            raw[name] = {**raw[name], **value}
        else:
            raw[name] = value
    return parse_settings(raw, {})


@pytest.fixture(scope="session")
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream()
    with running(fake.app) as url:
        fake.url = url  # type: ignore[attr-defined]
        yield fake


@pytest.fixture(scope="session")
def gateway_url(upstream: FakeUpstream) -> Iterator[str]:
    app = create_app(make_settings(upstream.url))  # type: ignore[attr-defined]
    with running(app) as url:
        yield url


# Real PostgreSQL and Redis servers (tests/support/state_servers.py): one of each per session, started on first use.


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(require("redis-server", redis_binary())).start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer(require("PostgreSQL (initdb, postgres)", postgres_bindir())).start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def database_url(postgres_server: PostgresServer) -> str:
    """A fresh empty database on the session's PostgreSQL."""
    return postgres_server.new_database()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own, which it may kill and restart."""
    server = RedisServer(require("redis-server", redis_binary())).start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL of this test's own, which it may stop and start again (same port, same data)."""
    server = PostgresServer(require("PostgreSQL (initdb, postgres)", postgres_bindir())).start()
    try:
        yield server
    finally:
        server.close()
