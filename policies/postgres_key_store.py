"""Virtual keys and their spend on PostgreSQL (asyncpg), shared by every replica: the SQLite KeyStore's contract.

A key created on any machine is found by every replica; spend is added with upserts (`requests = requests + ...`), so
the totals are the sum over replicas whatever order their batches arrive in; rows are written in key order so two
replicas' batches never deadlock. A revocation sends `NOTIFY gateway_keys, '<hash>'` in its own transaction, and
`watch()` LISTENs for it, so every replica drops the key from its cache within a second, not a cache TTL; after a
lost connection the watcher reconnects and then reports "anything may have changed" (None) to flush the whole cache.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import asyncpg
import orjson

from llm_gateway.policies.key_store import (
    KEY_PREFIX,
    DuplicateKeyName,
    KeyRecord,
    KeyStoreUnavailable,
    UsageRow,
    hash_key,
)
from llm_gateway.vocab.postgres import UNAVAILABLE, migrate, open_pool, safe_url
from llm_gateway.vocab.types import KeyInfo

log = logging.getLogger("gateway.policy")
CHANNEL = "gateway_keys"
_WATCH_PING_SECONDS = 2.0  # a dead listening connection is noticed within this (plus the reconnect)
_RECONNECT_FIRST_SECONDS = 0.25
_RECONNECT_MAX_SECONDS = 4.0

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE IF NOT EXISTS gateway_keys (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            hash TEXT NOT NULL UNIQUE,
            hint TEXT NOT NULL,
            models TEXT NOT NULL,
            rpm INTEGER,
            tpm INTEGER,
            budget_usd DOUBLE PRECISION,
            expires_at DOUBLE PRECISION,
            created_at DOUBLE PRECISION NOT NULL,
            revoked_at DOUBLE PRECISION
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS gateway_key_usage (
            key_id TEXT NOT NULL,
            alias TEXT NOT NULL,
            requests BIGINT NOT NULL DEFAULT 0,
            prompt_tokens BIGINT NOT NULL DEFAULT 0,
            completion_tokens BIGINT NOT NULL DEFAULT 0,
            spend_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
            PRIMARY KEY (key_id, alias)
        )
        """,
    ),
)

_COLUMNS = "id, name, hash, hint, models, rpm, tpm, budget_usd, expires_at, created_at, revoked_at"


class PostgresKeyStore:
    def __init__(self, url: str, *, max_connections: int = 10) -> None:
        self.url = url
        self.location = safe_url(url)
        self.max_connections = max_connections
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None

    async def _conn(self) -> asyncpg.Pool:
        """The pool, opened (and the schema migrated) on first use, inside the serving loop."""
        if self._pool is not None:
            return self._pool
        async with self._opening:
            if self._pool is None:
                pool = await open_pool(self.url, max_size=self.max_connections)
                try:
                    await migrate(pool, "keys", MIGRATIONS)
                except BaseException:
                    await pool.close()
                    raise
                self._pool = pool
        return self._pool

    async def migrate(self) -> int:
        pool = await self._conn()
        return await migrate(pool, "keys", MIGRATIONS)

    async def create(
        self,
        name: str,
        *,
        models: Sequence[str] = (),
        rpm: int | None = None,
        tpm: int | None = None,
        budget_usd: float | None = None,
        expires_at: float | None = None,
    ) -> tuple[KeyRecord, str]:
        pool = await self._conn()
        now = time.time()
        plain = KEY_PREFIX + secrets.token_urlsafe(32)
        info = KeyInfo(id="key_" + secrets.token_hex(6), name=name, models=tuple(models), rpm=rpm, tpm=tpm,
                       budget_usd=budget_usd)
        record = KeyRecord(info=info, hash=hash_key(plain), hint=plain[: len(KEY_PREFIX) + 4], created_at=now,
                           expires_at=expires_at)
        async with pool.acquire() as conn, conn.transaction():
            # two operators creating the same name on two machines: the second waits, then sees the first
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", "gateway_keys:" + name)
            taken = await conn.fetchval(
                "SELECT 1 FROM gateway_keys WHERE name = $1 AND revoked_at IS NULL "
                "AND (expires_at IS NULL OR expires_at > $2)", name, now)
            if taken:
                raise DuplicateKeyName(f"an active key is already named {name!r}; revoke it first or pick another name")
            await conn.execute(
                "INSERT INTO gateway_keys (id, name, hash, hint, models, rpm, tpm, budget_usd, expires_at, created_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                info.id, name, record.hash, record.hint, orjson.dumps(list(models)).decode(), rpm, tpm, budget_usd,
                expires_at, now)
        return record, plain

    async def find(self, key_hash: str) -> KeyRecord | None:
        try:
            pool = await self._conn()
            row = await pool.fetchrow(f"SELECT {_COLUMNS} FROM gateway_keys WHERE hash = $1", key_hash)
        except UNAVAILABLE as exc:
            raise self._unavailable("the key", exc) from exc
        return _record(row) if row is not None else None

    async def list_keys(self) -> list[KeyRecord]:
        pool = await self._conn()
        return [_record(r) for r in await pool.fetch(f"SELECT {_COLUMNS} FROM gateway_keys ORDER BY created_at, id")]

    async def revoke(self, id_or_name: str) -> list[KeyRecord]:
        pool = await self._conn()
        async with pool.acquire() as conn, conn.transaction():
            rows = [_record(r) for r in await conn.fetch(
                f"SELECT {_COLUMNS} FROM gateway_keys WHERE revoked_at IS NULL AND (id = $1 OR name = $1) FOR UPDATE",
                id_or_name)]
            targets = [r for r in rows if r.info.id == id_or_name] or rows
            now = time.time()
            for record in targets:
                await conn.execute("UPDATE gateway_keys SET revoked_at = $1 WHERE id = $2", now, record.info.id)
                await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, record.hash)  # delivered at commit
        return targets

    async def add_usage(self, rows: Iterable[UsageRow]) -> None:
        """Add to the running totals in one statement; in key order, so concurrent replicas never deadlock."""
        batch = sorted(rows, key=lambda r: (r.key_id, r.alias))
        if not batch:
            return
        try:
            pool = await self._conn()
            await pool.execute(
                "INSERT INTO gateway_key_usage (key_id, alias, requests, prompt_tokens, completion_tokens, spend_usd) "
                "SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], "
                "$6::float8[]) ON CONFLICT (key_id, alias) DO UPDATE SET "
                "requests = gateway_key_usage.requests + excluded.requests, "
                "prompt_tokens = gateway_key_usage.prompt_tokens + excluded.prompt_tokens, "
                "completion_tokens = gateway_key_usage.completion_tokens + excluded.completion_tokens, "
                "spend_usd = gateway_key_usage.spend_usd + excluded.spend_usd",
                [r.key_id for r in batch], [r.alias for r in batch], [r.requests for r in batch],
                [r.prompt_tokens for r in batch], [r.completion_tokens for r in batch], [r.spend_usd for r in batch])
        except UNAVAILABLE as exc:
            raise self._unavailable("the spend", exc) from exc

    async def spent(self, key_id: str) -> float:
        try:
            pool = await self._conn()
            value = await pool.fetchval(
                "SELECT COALESCE(SUM(spend_usd), 0) FROM gateway_key_usage WHERE key_id = $1", key_id)
        except UNAVAILABLE as exc:
            raise self._unavailable("the key's budget", exc) from exc
        return float(value or 0.0)

    async def usage(self) -> list[UsageRow]:
        pool = await self._conn()
        rows = await pool.fetch(
            "SELECT key_id, alias, requests, prompt_tokens, completion_tokens, spend_usd FROM gateway_key_usage "
            "ORDER BY key_id, alias")
        return [UsageRow(*r) for r in rows]

    def watch(self, on_change: Callable[[str | None], None]) -> None:
        """Call `on_change(hash)` for each key revoked anywhere, `on_change(None)` when notices may have been missed."""
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._watch(on_change))

    async def _watch(self, on_change: Callable[[str | None], None]) -> None:
        reconnecting = False
        pause = _RECONNECT_FIRST_SECONDS
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(self.url, timeout=5)
                await conn.add_listener(CHANNEL, lambda _c, _pid, _ch, payload: on_change(payload))
                if reconnecting:
                    on_change(None)  # whatever was revoked while nobody listened
                reconnecting = True
                pause = _RECONNECT_FIRST_SECONDS
                while True:
                    await asyncio.sleep(_WATCH_PING_SECONDS)
                    await conn.execute("SELECT 1", timeout=_WATCH_PING_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: reconnect; the cache is flushed once listening again
                reconnecting = True
                # (not now: while the database is down nothing can be revoked, and cached keys keep serving)
                log.warning("listening for key revocations on %s failed (%s); reconnecting in %gs", self.location,
                            exc, pause)
            finally:
                if conn is not None:
                    conn.terminate()
            await asyncio.sleep(pause)
            pause = min(_RECONNECT_MAX_SECONDS, pause * 2)  # a long outage logs a line every few seconds, no more

    def _unavailable(self, what: str, exc: BaseException) -> KeyStoreUnavailable:
        log.error("key store %s failed: %s", self.location, exc)
        return KeyStoreUnavailable(f"The gateway could not check {what}: its key store is unavailable. Try again.")

    async def aclose(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            try:
                await watcher
            except asyncio.CancelledError:
                pass
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()


def _record(row: Any) -> KeyRecord:
    id_, name, key_hash, hint, models, rpm, tpm, budget, expires_at, created_at, revoked_at = tuple(row)
    info = KeyInfo(id=id_, name=name, models=tuple(orjson.loads(models)), rpm=rpm, tpm=tpm, budget_usd=budget)
    return KeyRecord(info=info, hash=key_hash, hint=hint, created_at=created_at, expires_at=expires_at,
                     revoked_at=revoked_at)
