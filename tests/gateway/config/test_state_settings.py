"""[state]: unset means embedded; URLs expand ${VAR}; GATEWAY_DATABASE_URL / GATEWAY_REDIS_URL override; bad URLs and
fail modes are reported with their path; `gateway check` never prints a password."""

from __future__ import annotations

import pytest

from llm_gateway.config.masking import masked
from llm_gateway.config.settings import ConfigError, parse_settings

MINIMAL = {"providers": {"m": {"type": "mock"}}, "models": {"mock": {"provider": "m"}}}


def test_unset_state_is_the_embedded_default() -> None:
    state = parse_settings(MINIMAL, {}).state
    assert state.database_url == "" and state.redis_url == "" and not state.shared
    assert state.on_redis_error == "closed" and state.replica_id  # the host name


def test_urls_expand_and_the_environment_overrides_them() -> None:
    raw = {**MINIMAL, "state": {"database_url": "postgresql://gw:${PGPASS}@db/gw", "redis_url": "redis://r:6379/0",
                                "replica_id": "a", "on_redis_error": "open"}}
    state = parse_settings(raw, {"PGPASS": "pw"}).state
    assert state.database_url == "postgresql://gw:pw@db/gw" and state.replica_id == "a" and state.shared
    env = {"PGPASS": "pw", "GATEWAY_DATABASE_URL": "postgresql://other/gw", "GATEWAY_REDIS_URL": "redis://other:1",
           "GATEWAY_REPLICA_ID": "pod-7"}
    state = parse_settings(raw, env).state
    assert (state.database_url, state.redis_url, state.replica_id) == ("postgresql://other/gw", "redis://other:1",
                                                                        "pod-7")


def test_mistakes_are_reported_with_their_path() -> None:
    raw = {**MINIMAL, "state": {"database_url": "mysql://x", "on_redis_error": "maybe", "colour": 1},
           "recording": {"store": "postgres"}}
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw, {"GATEWAY_REDIS_URL": "http://r"})
    text = "\n".join(caught.value.problems)
    assert "state.database_url: expected a postgresql:// URL" in text
    assert "GATEWAY_REDIS_URL: expected a redis:// URL" in text
    assert "state.on_redis_error" in text and "state.colour" in text


def test_postgres_recordings_need_a_database() -> None:
    with pytest.raises(ConfigError, match='recording.store: "postgres" needs \\[state\\] database_url'):
        parse_settings({**MINIMAL, "recording": {"store": "postgres"}}, {})


def test_check_masks_the_passwords_in_the_urls() -> None:
    raw = {**MINIMAL, "state": {"database_url": "postgresql://gw:secret@db:5432/gw",
                                "redis_url": "redis://:hunter2@cache:6379/0"}}
    data = masked(parse_settings(raw, {}))
    # userinfo goes whole, as it does from every URL `gateway check` prints (a user name can be a secret too)
    assert data["state"]["database_url"] == "postgresql://****@db:5432/gw"
    assert data["state"]["redis_url"] == "redis://****@cache:6379/0"
