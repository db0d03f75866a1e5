"""The Store protocol and `open_store()`; each store lives in its own module.

Every store must make a put atomic (a reader sees the old recording or the new one, never a part) and safe with
several processes writing at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Protocol

from llm_gateway.recordings.model import CorruptRecording, Recording

STORE_KINDS = ("sqlite", "directory", "postgres")


class Store(Protocol):
    location: str
    corrupt: list[CorruptRecording]  # filled by iter() with what it had to skip

    async def get(self, key: str) -> Recording | None:
        """The recording, None when there is none; CorruptRecording when it cannot be read."""
        ...

    async def put(self, key: str, recording: Recording) -> None: ...

    def iter(self) -> AsyncIterator[Recording]:
        """Every readable recording; unreadable ones are logged and listed in `corrupt`."""
        ...

    async def delete(self, key: str) -> bool: ...

    async def touch(self, keys: Iterable[str], when: float) -> None:
        """Note that these recordings were used (for `prune --unused-since`); stores may ignore it."""
        ...

    async def aclose(self) -> None: ...


def open_store(kind: str, path: str) -> Store:
    """`path` is a file or directory, or for "postgres" the database's postgresql:// URL."""
    if kind == "sqlite":
        from llm_gateway.recordings.sqlite_store import SQLiteStore

        return SQLiteStore(path)
    if kind == "directory":
        from llm_gateway.recordings.directory_store import DirectoryStore

        return DirectoryStore(path)
    if kind == "postgres":
        from llm_gateway.recordings.postgres_store import PostgresStore

        return PostgresStore(path)
    raise ValueError(f"unknown recording store {kind!r}: expected one of {', '.join(STORE_KINDS)}")
