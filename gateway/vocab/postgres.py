"""Opening the gateway's PostgreSQL database the one way every store does: a small asyncpg pool, the schema migrated.

Shared vocabulary like vocab/sqlite.py: it imports nothing else of ours, so policies and recordings may use it.
Each store names its component ("keys", "recordings") and lists its migrations in order; `migrate()` applies the
missing ones under an advisory lock (so replicas starting together migrate once), never drops data, and refuses a
database whose schema is newer than this gateway knows (a newer replica migrated it: this one must not write to it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg

CONNECT_TIMEOUT_SECONDS = 5.0
COMMAND_TIMEOUT_SECONDS = 10.0
_LOCK_ID = 0x67617465  # "gate": pg_advisory_xact_lock, held by the transaction that migrates

_VERSIONS = """
CREATE TABLE IF NOT EXISTS gateway_schema (
    component TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    migrated_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer gateway than this one."""


class DatabaseUnavailable(RuntimeError):
    """PostgreSQL did not answer (refused, timed out, authentication failed)."""


# What asyncpg and the OS raise when the server is not there or goes away: every one means "no answer".
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    asyncpg.exceptions.InvalidPasswordError,
)

UNAVAILABLE = (*CONNECTION_ERRORS, DatabaseUnavailable)  # a store operation that got no answer


async def open_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool on `url`; DatabaseUnavailable (naming the server, never the password) when it cannot connect."""
    try:
        return await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, timeout=CONNECT_TIMEOUT_SECONDS,
                                         command_timeout=COMMAND_TIMEOUT_SECONDS)
    except CONNECTION_ERRORS as exc:
        raise DatabaseUnavailable(f"PostgreSQL at {safe_url(url)} is unreachable: {exc}") from exc


async def migrate(pool: asyncpg.Pool, component: str, migrations: Sequence[Sequence[str]]) -> int:
    """Bring `component`'s tables to len(migrations); returns the version. Each migration is a list of statements."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_ID)
        await conn.execute(_VERSIONS)
        current = await conn.fetchval("SELECT version FROM gateway_schema WHERE component = $1", component) or 0
        known = len(migrations)
        if current > known:
            raise SchemaTooNew(
                f"the database's {component} schema is version {current}, newer than this gateway knows ({known}): "
                "a newer gateway migrated it. Upgrade this gateway; it will not write to a schema it does not know."
            )
        for statements in migrations[current:]:
            for statement in statements:
                await conn.execute(statement)
        if known > current:
            await conn.execute(
                "INSERT INTO gateway_schema (component, version) VALUES ($1, $2) ON CONFLICT (component) "
                "DO UPDATE SET version = excluded.version, migrated_at = now()", component, known)
        return known


async def schema_versions(pool: asyncpg.Pool) -> dict[str, int]:
    async with pool.acquire() as conn:
        exists = await conn.fetchval("SELECT to_regclass('gateway_schema') IS NOT NULL")
        if not exists:
            return {}
        return {r["component"]: r["version"] for r in await conn.fetch("SELECT component, version FROM gateway_schema")}


def safe_url(url: str) -> str:
    """The URL with any password hidden."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user, colon, _ = credentials.partition(":")
    return f"{scheme}://{user}{':****' if colon else ''}@{host}"


def is_connection_error(exc: BaseException) -> bool:
    return isinstance(exc, CONNECTION_ERRORS)


Record = Any  # asyncpg.Record: rows read by index or column name
