"""Where shared state lives, picked from [state]: SQLite and in-process counters by default, PostgreSQL for keys,
spend and recordings when `database_url` is set, Redis for rate limits and budget reservations when `redis_url` is.

The drivers are imported only when configured, so the embedded default loads neither. `probe()` answers whether each
configured server can be reached, for `gateway check` and for `gateway serve`'s refusal to start without them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llm_gateway.config.settings import Settings
from llm_gateway.config.state_settings import StateSettings, masked_url
from llm_gateway.policies.budget_ledger import InProcessLedger, Ledger, RedisLedger
from llm_gateway.policies.key_store import KeyStore
from llm_gateway.policies.rate_counter import InProcessCounter, RateCounter


def redis_client(state: StateSettings) -> Any:
    """A redis.asyncio client bounded by redis_timeout_seconds: one quick retry (a connection Redis dropped on a
    restart is replaced), then an error the fail mode decides about."""
    from redis.asyncio import BlockingConnectionPool, Redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    timeout = state.redis_timeout_seconds
    # blocking: past max_connections a call waits (up to the timeout) for a free connection instead of failing
    pool = BlockingConnectionPool.from_url(state.redis_url, max_connections=64, timeout=timeout,
                                           socket_timeout=timeout, socket_connect_timeout=timeout,
                                           retry=Retry(NoBackoff(), 1), health_check_interval=0)
    return Redis(connection_pool=pool)


def key_store(settings: Settings) -> Any:
    """Keys and spend: the [state] database when there is one, else the SQLite state file."""
    if settings.state.database_url:
        from llm_gateway.policies.postgres_key_store import PostgresKeyStore

        return PostgresKeyStore(settings.state.database_url)
    return KeyStore(settings.server.state_path)


def rate_counter(settings: Settings) -> RateCounter:
    if settings.state.redis_url:
        from llm_gateway.policies.redis_counter import RedisCounter

        state = settings.state
        return RedisCounter(redis_client(state), fail_mode=state.on_redis_error, location=masked_url(state.redis_url))
    return InProcessCounter()


def budget_ledger(settings: Settings, spent: Callable[[str], Any]) -> Ledger:
    if settings.state.redis_url:
        return RedisLedger(redis_client(settings.state), spent, fail_mode=settings.state.on_redis_error)
    return InProcessLedger(spent)


def fleet_stats(settings: Settings, snapshot: Callable[[], dict[str, Any]]) -> Any:
    """The usage figures shared through Redis, so /ui shows the fleet: None without a redis_url or metrics."""
    if not settings.state.redis_url or not settings.metrics.enabled:
        return None
    import os

    from llm_gateway.observability.fleet_stats import FleetStats, RedisBoard

    member = f"{settings.state.replica_id}:{os.getpid()}"
    return FleetStats(RedisBoard(redis_client(settings.state)), member, snapshot)


@dataclass(frozen=True, slots=True)
class Probe:
    name: str  # "PostgreSQL" | "Redis"
    url: str  # masked
    ok: bool
    detail: str  # the version or schema it reports, or why it did not answer


async def probe(state: StateSettings) -> list[Probe]:
    """Ask each configured server for a sign of life (a few seconds at most each)."""
    probes = []
    if state.database_url:
        probes.append(await _probe_postgres(state.database_url))
    if state.redis_url:
        probes.append(await _probe_redis(state))
    return probes


async def _probe_postgres(url: str) -> Probe:
    from llm_gateway.vocab.postgres import UNAVAILABLE, open_pool, schema_versions

    try:
        pool = await open_pool(url, min_size=1, max_size=1)
    except UNAVAILABLE as exc:
        return Probe("PostgreSQL", masked_url(url), False, str(exc))
    try:
        version = await pool.fetchval("SHOW server_version")
        schemas = await schema_versions(pool)
    finally:
        await pool.close()
    described = ", ".join(f"{k} v{v}" for k, v in sorted(schemas.items())) or "no gateway tables yet"
    return Probe("PostgreSQL", masked_url(url), True, f"server {version}; schema: {described}")


async def _probe_redis(state: StateSettings) -> Probe:
    client = redis_client(state)
    try:
        info = await asyncio.wait_for(client.info("server"), timeout=max(2.0, state.redis_timeout_seconds * 4))
        return Probe("Redis", masked_url(state.redis_url), True, f"server {info.get('redis_version', '?')}")
    except Exception as exc:  # noqa: BLE001 - refused, timed out, auth: all say "not usable", with redis-py's reason
        return Probe("Redis", masked_url(state.redis_url), False, f"{type(exc).__name__}: {exc}")
    finally:
        await client.aclose()


async def migrate_all(settings: Settings) -> dict[str, int]:
    """Create or migrate every table the configured PostgreSQL holds; {component: version}. SchemaTooNew when a
    newer gateway migrated it, DatabaseUnavailable when it does not answer."""
    if not settings.state.database_url:
        return {}
    from llm_gateway.policies.postgres_key_store import PostgresKeyStore
    from llm_gateway.recordings.postgres_store import PostgresStore

    versions: dict[str, int] = {}
    for name, store in (("keys", PostgresKeyStore(settings.state.database_url)),
                        ("recordings", PostgresStore(settings.state.database_url))):
        try:
            versions[name] = await store.migrate()
        finally:
            await store.aclose()
    return versions


async def startup_check(settings: Settings) -> tuple[list[str], list[str]]:
    """(problems that must stop `gateway serve`, notes to print) about the shared state servers; migrates the
    schema on the way, so replicas starting together agree on it before any serves."""
    from llm_gateway.vocab.postgres import SchemaTooNew

    problems: list[str] = []
    notes: list[str] = []
    state = settings.state
    for p in await probe(state):
        if p.ok:
            notes.append(f"{p.name} at {p.url}: {p.detail}")
        elif p.name == "Redis" and state.on_redis_error == "open":
            notes.append(f"{p.name} at {p.url} is unreachable ({p.detail}); serving anyway with rate limits and "
                         "budget reservations unchecked ([state] on_redis_error = \"open\") until it answers")
        else:
            problems.append(f"{p.name} at {p.url} is unreachable: {p.detail}")
    if state.database_url and not problems:
        try:
            versions = await migrate_all(settings)
            notes.append("PostgreSQL schema: " + ", ".join(f"{k} v{v}" for k, v in versions.items()))
        except SchemaTooNew as exc:
            problems.append(str(exc))
    return problems, notes
