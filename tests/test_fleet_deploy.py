"""deploy/fleet: the compose file's replicas, servers and config agree with each other and with the gateway."""

from __future__ import annotations

from pathlib import Path

import yaml

from llm_gateway.config.settings import load_settings

FLEET = Path(__file__).resolve().parents[1] / "deploy" / "fleet"


def test_compose_runs_two_replicas_on_one_postgres_and_one_redis() -> None:
    compose = yaml.safe_load((FLEET / "compose.yaml").read_text())
    services = compose["services"]
    replicas = {name: s for name, s in services.items() if s.get("image") == "llm-gateway"}
    assert len(replicas) == 2 and {"postgres", "redis", "lb"} <= set(services)
    ids = {s["environment"]["GATEWAY_REPLICA_ID"] for s in replicas.values()}
    assert ids == set(replicas)  # each names itself
    for s in replicas.values():
        env = s["environment"]
        database_url = env["GATEWAY_DATABASE_URL"]
        assert database_url.startswith("postgresql://") and "@postgres:5432/" in database_url
        assert env["GATEWAY_REDIS_URL"] == "redis://redis:6379/0"
        assert set(s["depends_on"]) == {"postgres", "redis"}
    nginx = (FLEET / "nginx.conf").read_text()
    assert all(f"server {name}:8080;" in nginx for name in replicas)


def test_the_replicas_config_loads_with_the_compose_environment() -> None:
    compose = yaml.safe_load((FLEET / "compose.yaml").read_text())
    env = {k: str(v) for k, v in compose["services"]["gateway-a"]["environment"].items()}
    env["GATEWAY_MASTER_KEY"] = "sk-master-0123456789abcdef"
    settings = load_settings(FLEET / "gateway.toml", env=env)
    assert settings.state.database_url == "postgresql://gateway:gateway@postgres:5432/gateway"
    assert settings.state.redis_url == "redis://redis:6379/0" and settings.state.replica_id == "gateway-a"
    assert settings.recording.store == "postgres" and settings.auth.enabled
