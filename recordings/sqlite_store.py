"""The default store: one embedded SQLite database through aiosqlite, in WAL mode.

WAL lets readers go on while one process writes; the busy timeout makes concurrent writers (several workers, parallel
test processes) wait their turn instead of failing. Each put is one transaction, so a crash leaves the old row or the
new one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable

import aiosqlite
import orjson

from llm_gateway.recordings.model import CorruptRecording, Recording
from llm_gateway.vocab.sqlite import connect_sqlite

log = logging.getLogger("gateway.recordings")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS recordings (
    key TEXT PRIMARY KEY,
    alias TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    created REAL NOT NULL,
    last_used REAL,
    data BLOB NOT NULL
)
"""


class SQLiteStore:
    def __init__(self, path: str) -> None:
        self.location = path
        self.corrupt: list[CorruptRecording] = []
        self._db: aiosqlite.Connection | None = None
        self._opening = asyncio.Lock()

    async def _conn(self) -> aiosqlite.Connection:
        if self._db is not None:
            return self._db
        async with self._opening:
            if self._db is None:
                db = await connect_sqlite(self.location, (_SCHEMA,))
                self._db = db
        return self._db

    def _where(self, key: str) -> str:
        return f"{self.location} (key {key})"

    async def get(self, key: str) -> Recording | None:
        db = await self._conn()
        async with db.execute("SELECT data, last_used FROM recordings WHERE key = ?", (key,)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        recording = Recording.from_json(row[0], self._where(key))
        recording.meta.last_used = row[1]
        return recording

    async def put(self, key: str, recording: Recording) -> None:
        db = await self._conn()
        data = orjson.dumps(recording.to_dict())  # the upstream's key order kept
        await db.execute(
            "INSERT INTO recordings (key, alias, endpoint, created, last_used, data) VALUES (?, ?, ?, ?, NULL, ?) "
            "ON CONFLICT(key) DO UPDATE SET alias = excluded.alias, endpoint = excluded.endpoint, "
            "created = excluded.created, data = excluded.data",
            (key, recording.meta.alias, recording.endpoint, recording.meta.created, data),
        )
        await db.commit()

    async def iter(self) -> AsyncIterator[Recording]:
        db = await self._conn()
        self.corrupt = []
        async with db.execute("SELECT key, data, last_used FROM recordings ORDER BY created, key") as cursor:
            async for key, data, last_used in cursor:
                try:
                    recording = Recording.from_json(data, self._where(key))
                except CorruptRecording as exc:
                    log.warning("%s", exc)
                    self.corrupt.append(exc)
                    continue
                recording.meta.last_used = last_used
                yield recording

    async def delete(self, key: str) -> bool:
        db = await self._conn()
        cursor = await db.execute("DELETE FROM recordings WHERE key = ?", (key,))
        await db.commit()
        return cursor.rowcount > 0

    async def touch(self, keys: Iterable[str], when: float) -> None:
        rows = [(when, key) for key in keys]
        if not rows:
            return
        db = await self._conn()
        await db.executemany("UPDATE recordings SET last_used = ? WHERE key = ?", rows)
        await db.commit()

    async def aclose(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()
