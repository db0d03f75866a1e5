"""Virtual keys and their spend in the gateway's SQLite state database (through aiosqlite).

A key is stored only as the SHA-256 of its text: keys are 256-bit random strings, so a fast hash is as strong as a
slow one and keeps the hot-path lookup cheap; the plain key exists only in the answer to `create()`. Spend and tokens
are kept per key and alias, added in batches (`add_usage`) by the budget policy.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite
import orjson

from llm_gateway.vocab.errors import ServiceUnavailable
from llm_gateway.vocab.sqlite import connect_sqlite
from llm_gateway.vocab.types import KeyInfo

log = logging.getLogger("gateway.policy")
KEY_PREFIX = "sk-gw-"

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        hint TEXT NOT NULL,
        models TEXT NOT NULL,
        rpm INTEGER,
        tpm INTEGER,
        budget_usd REAL,
        expires_at REAL,
        created_at REAL NOT NULL,
        revoked_at REAL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS key_usage (
        key_id TEXT NOT NULL,
        alias TEXT NOT NULL,
        requests INTEGER NOT NULL DEFAULT 0,
        prompt_tokens INTEGER NOT NULL DEFAULT 0,
        completion_tokens INTEGER NOT NULL DEFAULT 0,
        spend_usd REAL NOT NULL DEFAULT 0,
        PRIMARY KEY (key_id, alias)
    )
    """,
)


def hash_key(plain: str) -> str:
    return hashlib.sha256(plain.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A stored key: what a request is allowed, and whether it may still be used (never the key itself)."""

    info: KeyInfo
    hash: str
    hint: str  # the first characters of the key, so an operator can tell keys apart in `keys list`
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None

    def usable(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def status(self, now: float) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"


@dataclass(frozen=True, slots=True)
class UsageRow:
    key_id: str
    alias: str
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    spend_usd: float = 0.0


class DuplicateKeyName(ValueError):
    pass


class KeyStoreUnavailable(ServiceUnavailable):
    """The state database could not be read on the request path: 503, never a 500 or a wrong 401."""

    code = "key_store_unavailable"


class KeyStore:
    def __init__(self, path: str) -> None:
        self.location = path
        self._db: aiosqlite.Connection | None = None
        self._opening = asyncio.Lock()

    async def _conn(self) -> aiosqlite.Connection:
        """Opened on first use (inside the serving loop); reopened if used again after aclose()."""
        if self._db is not None:
            return self._db
        async with self._opening:
            if self._db is None:
                db = await connect_sqlite(self.location, _SCHEMA)
                self._db = db
        return self._db

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
        """A new key; returns its record and the plain key, which is not kept anywhere."""
        db = await self._conn()
        now = time.time()
        async with db.execute(
            "SELECT 1 FROM keys WHERE name = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)",
            (name, now),
        ) as cursor:
            if await cursor.fetchone() is not None:
                raise DuplicateKeyName(f"an active key is already named {name!r}; revoke it first or pick another name")
        plain = KEY_PREFIX + secrets.token_urlsafe(32)
        info = KeyInfo(id="key_" + secrets.token_hex(6), name=name, models=tuple(models), rpm=rpm, tpm=tpm,
                       budget_usd=budget_usd)
        record = KeyRecord(info=info, hash=hash_key(plain), hint=plain[: len(KEY_PREFIX) + 4], created_at=now,
                           expires_at=expires_at)
        await db.execute(
            "INSERT INTO keys (id, name, hash, hint, models, rpm, tpm, budget_usd, expires_at, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (info.id, name, record.hash, record.hint, orjson.dumps(list(models)).decode(), rpm, tpm, budget_usd,
             expires_at, now),
        )
        await db.commit()
        return record, plain

    async def find(self, key_hash: str) -> KeyRecord | None:
        try:
            db = await self._conn()
            async with db.execute(f"SELECT {_COLUMNS} FROM keys WHERE hash = ?", (key_hash,)) as cursor:
                row = await cursor.fetchone()
        except (sqlite3.Error, OSError) as exc:
            raise self._unavailable("the key", exc) from exc
        return _record(row) if row is not None else None

    async def list_keys(self) -> list[KeyRecord]:
        db = await self._conn()
        async with db.execute(f"SELECT {_COLUMNS} FROM keys ORDER BY created_at, id") as cursor:
            return [_record(row) async for row in cursor]

    async def revoke(self, id_or_name: str) -> list[KeyRecord]:
        """Revoke the key with this id, or the active keys with this name; returns what was revoked."""
        db = await self._conn()
        now = time.time()
        async with db.execute(
            f"SELECT {_COLUMNS} FROM keys WHERE revoked_at IS NULL AND (id = ? OR name = ?)", (id_or_name, id_or_name)
        ) as cursor:
            rows = [_record(row) async for row in cursor]
        exact = [r for r in rows if r.info.id == id_or_name]
        targets = exact or rows
        await db.executemany("UPDATE keys SET revoked_at = ? WHERE id = ?", [(now, r.info.id) for r in targets])
        await db.commit()
        return targets

    async def add_usage(self, rows: Iterable[UsageRow]) -> None:
        """Add to the running totals, in one transaction."""
        params = [(r.key_id, r.alias, r.requests, r.prompt_tokens, r.completion_tokens, r.spend_usd) for r in rows]
        if not params:
            return
        db = await self._conn()
        await db.executemany(
            "INSERT INTO key_usage (key_id, alias, requests, prompt_tokens, completion_tokens, spend_usd) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(key_id, alias) DO UPDATE SET "
            "requests = requests + excluded.requests, prompt_tokens = prompt_tokens + excluded.prompt_tokens, "
            "completion_tokens = completion_tokens + excluded.completion_tokens, "
            "spend_usd = spend_usd + excluded.spend_usd",
            params,
        )
        await db.commit()

    async def spent(self, key_id: str) -> float:
        try:
            db = await self._conn()
            async with db.execute("SELECT COALESCE(SUM(spend_usd), 0) FROM key_usage WHERE key_id = ?", (key_id,)) as c:
                row = await c.fetchone()
        except (sqlite3.Error, OSError) as exc:
            raise self._unavailable("the key's budget", exc) from exc
        return float(row[0]) if row else 0.0

    async def usage(self) -> list[UsageRow]:
        db = await self._conn()
        async with db.execute(
            "SELECT key_id, alias, requests, prompt_tokens, completion_tokens, spend_usd FROM key_usage "
            "ORDER BY key_id, alias"
        ) as cursor:
            return [UsageRow(*row) async for row in cursor]

    def _unavailable(self, what: str, exc: BaseException) -> KeyStoreUnavailable:
        log.error("key store %s failed: %s", self.location, exc)  # the details for the operator, not the client
        return KeyStoreUnavailable(f"The gateway could not check {what}: its key store is unavailable. Try again.")

    async def aclose(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()


_COLUMNS = "id, name, hash, hint, models, rpm, tpm, budget_usd, expires_at, created_at, revoked_at"


def _record(row: Sequence[Any]) -> KeyRecord:
    id_, name, key_hash, hint, models, rpm, tpm, budget, expires_at, created_at, revoked_at = row
    info = KeyInfo(id=id_, name=name, models=tuple(orjson.loads(models)), rpm=rpm, tpm=tpm, budget_usd=budget)
    return KeyRecord(info=info, hash=key_hash, hint=hint, created_at=created_at, expires_at=expires_at,
                     revoked_at=revoked_at)
