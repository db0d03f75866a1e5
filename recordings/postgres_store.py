"""Recordings on PostgreSQL ([recording] store = "postgres", the [state] database_url): one store for every replica
and every CI runner, with the SQLite store's semantics (same bytes per recording, get/put/iter/delete/touch).

A put is an upsert inside a transaction that locks the row it replaces and keeps the other shape of answer that row
has (a whole answer recorded on one replica and a stream of the same request on another both survive), so
concurrent recording loses nothing. Each put commits before the answer is acknowledged by the recorder's caller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable

import asyncpg
import orjson

from llm_gateway.recordings.model import CorruptRecording, Recording
from llm_gateway.vocab.postgres import migrate, open_pool, safe_url

log = logging.getLogger("gateway.recordings")
_ITER_BATCH = 500  # rows per fetch while iterating, so a large store never sits in memory whole

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE IF NOT EXISTS gateway_recordings (
            key TEXT PRIMARY KEY,
            alias TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            created DOUBLE PRECISION NOT NULL,
            last_used DOUBLE PRECISION,
            data BYTEA NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS gateway_recordings_created ON gateway_recordings (created, key)",
    ),
)


class PostgresStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self.location = safe_url(url)
        self.corrupt: list[CorruptRecording] = []
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def _conn(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        async with self._opening:
            if self._pool is None:
                pool = await open_pool(self.url)
                try:
                    await migrate(pool, "recordings", MIGRATIONS)
                except BaseException:
                    await pool.close()
                    raise
                self._pool = pool
        return self._pool

    async def migrate(self) -> int:
        return await migrate(await self._conn(), "recordings", MIGRATIONS)

    def _where(self, key: str) -> str:
        return f"{self.location} (key {key})"

    async def get(self, key: str) -> Recording | None:
        pool = await self._conn()
        row = await pool.fetchrow("SELECT data, last_used FROM gateway_recordings WHERE key = $1", key)
        if row is None:
            return None
        recording = Recording.from_json(bytes(row[0]), self._where(key))
        recording.meta.last_used = row[1]
        return recording

    async def put(self, key: str, recording: Recording) -> None:
        pool = await self._conn()
        async with pool.acquire() as conn, conn.transaction():
            # insert-or-lock: the first writer of a key creates it; every later one waits on the row lock
            await conn.execute(
                "INSERT INTO gateway_recordings (key, alias, endpoint, created, data) VALUES ($1, '', '', 0, '') "
                "ON CONFLICT (key) DO NOTHING", key)
            old = await conn.fetchval("SELECT data FROM gateway_recordings WHERE key = $1 FOR UPDATE", key)
            if old:
                try:
                    recording = recording.keeping_other_shape(Recording.from_json(bytes(old), self._where(key)))
                except CorruptRecording:
                    pass  # a corrupt row is replaced whole
            data = orjson.dumps(recording.to_dict())  # the upstream's key order kept (README "identical")
            await conn.execute(
                "UPDATE gateway_recordings SET alias = $2, endpoint = $3, created = $4, data = $5 WHERE key = $1",
                key, recording.meta.alias, recording.endpoint, recording.meta.created, data)

    async def iter(self) -> AsyncIterator[Recording]:
        pool = await self._conn()
        self.corrupt = []
        after: tuple[float, str] = (float("-inf"), "")
        while True:
            rows = await pool.fetch(
                "SELECT key, data, last_used, created FROM gateway_recordings WHERE (created, key) > ($1, $2) "
                "AND data <> '' ORDER BY created, key LIMIT $3", after[0], after[1], _ITER_BATCH)
            for key, data, last_used, _created in rows:
                try:
                    recording = Recording.from_json(bytes(data), self._where(key))
                except CorruptRecording as exc:
                    log.warning("%s", exc)
                    self.corrupt.append(exc)
                    continue
                recording.meta.last_used = last_used
                yield recording
            if len(rows) < _ITER_BATCH:
                return
            after = (rows[-1][3], rows[-1][0])

    async def delete(self, key: str) -> bool:
        pool = await self._conn()
        status = await pool.execute("DELETE FROM gateway_recordings WHERE key = $1", key)
        return status != "DELETE 0"

    async def touch(self, keys: Iterable[str], when: float) -> None:
        batch = sorted(set(keys))  # in key order: two replicas touching the same rows never deadlock
        if not batch:
            return
        pool = await self._conn()
        await pool.execute("UPDATE gateway_recordings SET last_used = $1 WHERE key = ANY($2::text[])", when, batch)

    async def aclose(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
