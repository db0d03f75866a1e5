"""Opening the gateway's SQLite files the one way every store does: WAL, a busy timeout, the schema applied.

Shared vocabulary like gateway/types.py: it imports nothing else of ours, so policies and recordings may use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import aiosqlite

BUSY_TIMEOUT_SECONDS = 30.0  # several workers and test processes write the same file; wait rather than fail


async def connect_sqlite(path: str, schema: Sequence[str]) -> aiosqlite.Connection:
    """A connection in WAL mode (readers never block the writer) with `schema` applied; closed again on failure."""
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = await aiosqlite.connect(path, timeout=BUSY_TIMEOUT_SECONDS)
    try:
        await db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute("PRAGMA synchronous = NORMAL")  # durable across process crashes; WAL keeps it consistent
        for statement in schema:
            await db.execute(statement)
        await db.commit()
    except BaseException:
        await db.close()
        raise
    return db
