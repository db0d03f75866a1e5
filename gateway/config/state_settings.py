"""[state]: where shared state lives when the gateway runs as a fleet (PostgreSQL for keys, spend and recordings;
Redis for rate limits and budget reservations). Unset, everything stays embedded (SQLite, in-process counters).

GATEWAY_DATABASE_URL and GATEWAY_REDIS_URL override the file, like the other GATEWAY_* variables; GATEWAY_REPLICA_ID
names this replica (default: the host name).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass

from llm_gateway.config.toml_reader import Table

FAIL_MODES = ("closed", "open")


@dataclass(frozen=True, slots=True)
class StateSettings:
    database_url: str = ""  # postgresql://user:pass@host:5432/db: keys, spend, usage (and recordings on request)
    redis_url: str = ""  # redis://host:6379/0: rate-limit buckets and budget reservations, exact across replicas
    on_redis_error: str = "closed"  # closed: 503 rate_limit_store_unavailable | open: admit, log and count
    replica_id: str = ""  # how this replica names itself in metrics, logs and /ui (default: the host name)
    redis_timeout_seconds: float = 0.5  # one Redis operation's bound, so a hung server cannot hold requests

    @property
    def shared(self) -> bool:
        return bool(self.database_url or self.redis_url)


def parse_state(t: Table, env: Mapping[str, str]) -> StateSettings:
    d = StateSettings()
    database_url, redis_url = t.string("database_url", d.database_url), t.string("redis_url", d.redis_url)
    replica_id = t.string("replica_id", d.replica_id)
    s = StateSettings(
        database_url=env.get("GATEWAY_DATABASE_URL") or database_url,
        redis_url=env.get("GATEWAY_REDIS_URL") or redis_url,
        on_redis_error=t.string("on_redis_error", d.on_redis_error, choices=FAIL_MODES),
        replica_id=env.get("GATEWAY_REPLICA_ID") or replica_id or socket.gethostname(),
        redis_timeout_seconds=t.number("redis_timeout_seconds", d.redis_timeout_seconds, minimum=0.01, maximum=60),
    )
    t.finish()
    where = {"database_url": ("GATEWAY_DATABASE_URL", ("postgresql://", "postgres://")),
             "redis_url": ("GATEWAY_REDIS_URL", ("redis://", "rediss://", "unix://"))}
    for key, (variable, schemes) in where.items():
        value = getattr(s, key)
        if value and not value.startswith(schemes):
            source = variable if env.get(variable) else f"state.{key}"
            t.problems.append(f"{source}: expected a {schemes[0]} URL, got {_masked_url(value)!r}")
    return s


def _masked_url(url: str) -> str:
    """A URL with its password hidden, for messages and `gateway check`."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user, colon, _ = credentials.partition(":")
    return f"{scheme}://{user}{':****' if colon else ''}@{host}"


masked_url = _masked_url
